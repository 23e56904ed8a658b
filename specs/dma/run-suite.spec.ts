// run-suite and the reusing session source with stand-in guests (the real guest runs the same code
// path in specs/e2e/cli.e2e.spec.ts): a broken guest is replaced, a guest that will not start fails
// only its own scenario.
import { expect } from 'chai';
import { makeScenario } from '../../harness/contract/scenario.js';
import { VARIANTS, type CatalogEntry } from '../../harness/dma/catalog.js';
import { runSuite } from '../../harness/dma/run-suite.js';
import { ReusingSessionSource } from '../../harness/dma/session-source.js';
import type { GuestSession } from '../../harness/guest/session.js';
import { outcome, type Verdict } from '../../harness/dma/verdict.js';

function fakeSession(id: number, log: string[], breaksAfterRun: boolean): GuestSession {
  let healthy = true;
  return {
    profile: `fake-${id}`,
    artifactsDir: '/nonexistent',
    memory: { kind: 'fake', read: async () => Buffer.alloc(0), contains: () => true, close: async () => undefined },
    info: async () => { throw new Error('unused'); },
    run: async () => {
      log.push(`run on ${id}`);
      if (breaksAfterRun) healthy = false;
      throw new Error(`guest ${id} fell over`);
    },
    isHealthy: () => healthy,
    deviceModelEvents: () => [],
    collectLogs: async () => undefined,
    close: async () => void log.push(`close ${id}`),
  };
}

const entry = (name: string): CatalogEntry => ({ name, variant: 'direct', quick: true, scenario: makeScenario({}) });

describe('dma: run-suite with a reusing session source', () => {
  it('gives the next scenario a fresh guest after an error, and closes every guest at the end', async () => {
    const log: string[] = [];
    let boots = 0;
    const source = new ReusingSessionSource(async (variant) => {
      expect(variant).to.equal(VARIANTS.direct);
      boots++;
      log.push(`boot ${boots}`);
      return fakeSession(boots, log, boots === 1);
    });
    const verdicts = await runSuite([entry('a'), entry('b'), entry('c')], { source });
    expect(verdicts.map((v) => v.status)).to.deep.equal(['error', 'error', 'error']);
    expect(verdicts[0]!.summary).to.match(/guest 1 fell over/);
    expect(log).to.deep.equal(['boot 1', 'run on 1', 'close 1', 'boot 2', 'run on 2', 'close 2', 'boot 3', 'run on 3', 'close 3']);
  });

  it('reuses a healthy guest between scenarios that pass or fail on their data', async () => {
    let boots = 0;
    const source = new ReusingSessionSource(async () => fakeSession(++boots, [], false));
    const s1 = await source.acquire(VARIANTS.direct);
    await source.release(s1, { status: 'fail' } as Verdict);
    expect(await source.acquire(VARIANTS.direct)).to.equal(s1);
    expect(boots).to.equal(1);
    await source.close();
  });

  it('a variant whose guest does not start is tried once: its scenarios are not run, with the one cause', async () => {
    let attempts = 0;
    const source = new ReusingSessionSource(async () => {
      attempts++;
      throw new Error(`boot ${attempts} failed`);
    });
    const progress: string[] = [];
    const verdicts = await runSuite([entry('a'), entry('b'), entry('c')], { source, onProgress: (m) => progress.push(m) });
    expect(verdicts.map((v) => v.status)).to.deep.equal(['not-run', 'not-run', 'not-run']);
    expect(new Set(verdicts.map((v) => v.summary))).to.deep.equal(new Set(['not run: the direct guest did not start: boot 1 failed']));
    expect(verdicts.map((v) => outcome(v))).to.deep.equal(['not-ok', 'not-ok', 'not-ok']);
    expect(attempts).to.equal(1);
    expect(progress.filter((m) => /did not start/.test(m))).to.have.length(1);
  });
});
