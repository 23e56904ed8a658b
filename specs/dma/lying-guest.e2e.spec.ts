// A lying guest never gets a pass. The test build of dmactl (build/linux/dmactl-lying, lie modes in
// guest-driver/common/dmactl/lies.c) runs every scenario honestly on the real driver and device, then
// reports it as a buggy or hostile driver would; the lie is chosen per scenario through a file in the
// guest. Real guests: direct, bounce (swiotlb=force), and a guest restored from a snapshot.
import { expect } from 'chai';
import { execa } from 'execa';
import path from 'node:path';
import { makeScenario } from '../../harness/contract/scenario.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { outcome, type Verdict } from '../../harness/dma/verdict.js';
import { restoreLinuxGuest, type LinuxSession } from '../../harness/guest/linux/profile.js';
import { CHEAP_WAITS, saveSnapshot, type Snapshot } from '../../harness/snapshot/index.js';
import { BOOT_TIMEOUT_MS, repoRoot, startReferenceGuest } from '../e2e/support.js';

type Variant = 'direct' | 'bounce';
/** What the host must say: a report that does not hold together (rule), a rejected result, or a data finding. */
type Expect = { rule: string } | { rejected: RegExp } | { finding: RegExp; not?: RegExp };

/** Pages that are not the driver's destination: the before/after evidence says so, not a missing sync. */
const WRONG_PAGES: Expect = { finding: /the reported destination pages are not where the device wrote/, not: /stale data in the client buffer/ };

/** Multi-page, unaligned, several segments: every lie has something to bend. */
const scenario = (seed: number) => makeScenario({ size: 12 * 1024, offset: 7, seed });

const LIES: Record<string, Record<Variant, Expect>> = {
  'dst-as-src': { direct: { rule: 'buffers-share-a-page' }, bounce: { rule: 'buffers-share-a-page' } },
  'dst-as-bounce': { direct: { rule: 'buffers-share-a-page' }, bounce: { rule: 'bounce-page-is-a-client-page' } },
  shift: { direct: { rule: 'device-address-is-not-the-cpu-address' }, bounce: WRONG_PAGES },
  duplicate: { direct: { rule: 'page-reported-twice' }, bounce: { rule: 'page-reported-twice' } },
  reverse: { direct: { rule: 'device-address-is-not-the-cpu-address' }, bounce: WRONG_PAGES },
  'extra-page': { direct: { rejected: /reports 5 pages; offset 7 \+ length 12288 needs 4/ }, bounce: { rejected: /reports 5 pages/ } },
  'missing-page': { direct: { rejected: /reports 3 pages/ }, bounce: { rejected: /reports 3 pages/ } },
  'wrong-offset': { direct: { rejected: /offset 8 is not the scenario offset 7/ }, bounce: { rejected: /offset 8 is not the scenario offset 7/ } },
  'wrong-length': { direct: { rejected: /length 12287 is not the scenario size 12288/ }, bounce: { rejected: /length 12287 is not the scenario size/ } },
  'segments-overlap': { direct: { rejected: /segment 1 starts at \d+, expected \d+ \(gap or overlap\)/ }, bounce: { rejected: /gap or overlap/ } },
  'segments-gap': { direct: { rejected: /gap or overlap/ }, bounce: { rejected: /gap or overlap/ } },
  'segment-in-other-buffer': { direct: { rule: 'device-address-is-not-the-cpu-address' }, bounce: { rule: 'bounce-page-is-a-client-page' } },
  'ok-over-failed-call': { direct: { rule: 'success-with-a-failed-call' }, bounce: { rule: 'success-with-a-failed-call' } },
  // The driver writes the pattern into its own destination with the CPU before the DMA (test flag): the
  // bytes after the DMA are right, only the host's read between armed and go shows whose work they are.
  precopied: { direct: { finding: /already holds the pattern before the DMA/ }, bounce: { finding: /already holds the pattern before the DMA/ } },
};

function judge(v: Verdict, e: Expect, lie: string): void {
  expect(outcome(v), `${lie}: ${v.summary}`).to.equal('not-ok');
  expect(v.status, `${lie}: ${v.summary}`).to.not.equal('pass');
  if ('rule' in e) {
    expect(v.status, v.summary).to.equal('fail');
    expect(v.findings.map((f) => f.kind), v.summary).to.include('inconsistent-report');
    expect(v.summary).to.include(`(${e.rule})`);
  } else if ('rejected' in e) {
    expect(v.status, v.summary).to.equal('error');
    expect(v.summary).to.match(/guest result rejected/).and.match(e.rejected);
  } else {
    expect(v.status, v.summary).to.equal('fail');
    expect(v.summary).to.match(e.finding);
    if (e.not) expect(v.summary).to.not.match(e.not);
  }
}

async function lie(s: LinuxSession, mode: string): Promise<void> {
  // Over the session's own SSH connection: a fresh login per lie lost the race with dropbear's auth
  // timeout on a loaded host (the idle guest's clock races under -icount sleep=off).
  await s.sh(`echo ${mode} > /tmp/dmahil/lie`);
}

describe('dma: a lying guest never gets a pass (real guests, the test build of dmactl)', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let tool: string;

  before(async () => {
    await execa('make', ['-s', 'dmactl-lying'], { cwd: repoRoot });
    tool = path.join(repoRoot, 'build/linux/dmactl-lying');
  });

  for (const variant of ['direct', 'bounce'] as const) {
    describe(`on the ${variant} guest`, () => {
      let s: LinuxSession;
      before(async () => {
        s = await startReferenceGuest(`lying-guest/${variant}`, variant === 'bounce', { driverOverride: { tool }, icount: CHEAP_WAITS });
      });
      after(async () => s?.close());

      it('honest, it passes (the same build, no lie)', async () => {
        await lie(s, 'honest');
        const v = await runScenario(s, { name: 'honest', scenario: scenario(1), variant });
        expect(v.status, v.summary).to.equal('pass');
      });

      let seed = 10;
      for (const [mode, expected] of Object.entries(LIES)) {
        it(`lie "${mode}": ${JSON.stringify(expected[variant]).replace(/"/g, '')}`, async () => {
          await lie(s, mode);
          const v = await runScenario(s, { name: `lie ${mode}`, scenario: scenario(seed++), variant });
          judge(v, expected[variant], mode);
        });
      }

      it('honest again afterwards: the guest and the host are still in step', async () => {
        await lie(s, 'honest');
        const v = await runScenario(s, { name: 'honest again', scenario: scenario(99), variant });
        expect(v.status, v.summary).to.equal('pass');
      });
    });
  }

  describe('on a guest restored from a snapshot', () => {
    let snap: Snapshot | undefined;
    let s: LinuxSession;
    before(async () => {
      const booted = await startReferenceGuest('lying-guest/snapshot-source', false, { driverOverride: { tool }, icount: CHEAP_WAITS });
      try {
        snap = await saveSnapshot(booted, { key: 'lying-guest' });
      } finally {
        await booted.close();
      }
      s = await restoreLinuxGuest(snap.point, { artifactsDir: path.join(repoRoot, 'reports/e2e/lying-guest/restored'), readyTimeoutMs: 120_000 });
    });
    after(async () => {
      await s?.close();
      await snap?.discard();
    });

    for (const mode of ['dst-as-src', 'shift', 'segment-in-other-buffer', 'ok-over-failed-call', 'precopied']) {
      it(`lie "${mode}" after the restore`, async () => {
        await lie(s, mode);
        judge(await runScenario(s, { name: `restored lie ${mode}`, scenario: scenario(200 + mode.length), variant: 'direct' }), LIES[mode]!.direct, mode);
      });
    }
  });
});
