// --keep's part of the session source (the guest of a failed scenario is handed over, never closed, and
// the next scenario boots its own), and the re-run command every report prints for a failure.
import { expect } from 'chai';
import { VARIANTS } from '../../harness/dma/catalog.js';
import { ReusingSessionSource } from '../../harness/dma/session-source.js';
import type { Verdict } from '../../harness/dma/verdict.js';
import type { GuestSession } from '../../harness/guest/session.js';
import { rerunCommand } from '../../harness/report/verdict-table.js';

function fake(id: number, log: string[]): GuestSession {
  return {
    profile: `fake-${id}`, artifactsDir: '/nonexistent',
    memory: { kind: 'fake', read: async () => Buffer.alloc(0), contains: () => true, close: async () => undefined },
    info: async () => { throw new Error('unused'); },
    run: async () => { throw new Error('unused'); },
    isHealthy: () => true, deviceModelEvents: () => [],
    collectLogs: async () => void log.push(`logs ${id}`),
    close: async () => void log.push(`close ${id}`),
  };
}

describe('cli-extra: --keep and re-run commands', () => {
  it('a kept guest is never closed by the source, and the next scenario gets a fresh guest', async () => {
    const log: string[] = [];
    let boots = 0;
    const kept: GuestSession[] = [];
    const source = new ReusingSessionSource(async () => fake(++boots, log), {
      keep: (s, v) => (v.status === 'fail' && kept.length === 0 ? (kept.push(s), true) : false),
    });
    const a = await source.acquire(VARIANTS.direct);
    await source.release(a, { status: 'fail' } as Verdict);
    const b = await source.acquire(VARIANTS.direct);
    expect(b).to.not.equal(a);
    await source.release(b, { status: 'fail' } as Verdict); // only the first failure is kept
    expect(await source.acquire(VARIANTS.direct)).to.equal(b);
    await source.close();
    expect(kept).to.deep.equal([a]);
    expect(log).to.deep.equal(['logs 2', 'close 2']);
  });

  it('the re-run command selects exactly that scenario, whatever its name holds', () => {
    for (const name of ['round-trip 4096 B', 'control: skipped sync (a|b) [x] it\'s $1.5*']) {
      const cmd = rerunCommand(name);
      const quoted = /^dmahil run --grep '(.*)'$/s.exec(cmd)![1]!.replaceAll(`'\\''`, "'");
      const re = new RegExp(quoted, 'i');
      expect(re.test(name), cmd).to.equal(true);
      expect(re.test(`${name} `)).to.equal(false);
      expect(re.test(`x${name}`)).to.equal(false);
    }
  });
});
