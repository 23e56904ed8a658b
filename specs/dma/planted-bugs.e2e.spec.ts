// The planted bugs of the test build (guest-driver/linux/edudma_planted.h) are real coherency bugs: a
// hand-written scenario at each bug's boundary fails under bounce buffering, for the reason a missing
// sync gives (stale client buffer), while the scenario just inside the boundary passes, the same scenario
// passes without bouncing, and passes with no bug planted. The explorer's specs rely on exactly this.
// And the fixed catalog, the scenarios someone wrote, misses some of them.
import { expect } from 'chai';
import { makeScenario, type Scenario } from '../../harness/contract/scenario.js';
import { pattern, FILL_BYTE } from '../../harness/contract/pattern.js';
import { CATALOG } from '../../harness/dma/catalog.js';
import { notApplicable } from '../../harness/dma/applicability.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { runSuite } from '../../harness/dma/run-suite.js';
import type { SessionSource } from '../../harness/dma/session-source.js';
import { outcome } from '../../harness/dma/verdict.js';
import { probeEduBehaviour } from '../../harness/machine/edu-behaviour.js';
import { DEFAULT_QEMU_BINARY } from '../../harness/machine/cmdline.js';
import type { LinuxSession } from '../../harness/guest/linux/profile.js';
import { CHEAP_WAITS } from '../../harness/snapshot/index.js';
import { findKernelVersion } from '../../images/linux/build.js';
import { buildPlantedDriver, PLANTED_BUGS, plantedParams, type PlantedBug } from '../../guest-driver/linux/planted.js';
import { BOOT_TIMEOUT_MS, repoRoot, startReferenceGuest } from '../e2e/support.js';

const SEED = 7;
/** Each deterministic bug: the smallest scenario that shows it, and its neighbour just inside the boundary. */
const BOUNDARIES: Record<Exclude<PlantedBug, 'race'>, { fails: Partial<Scenario>; passes: Partial<Scenario> }> = {
  'first-page': { fails: { direction: 'from-device', size: 4097 }, passes: { direction: 'from-device', size: 4096 } },
  'last-chunk': { fails: { direction: 'from-device', size: 2, offset: 4095 }, passes: { direction: 'from-device', size: 1, offset: 4095 } },
  'skip-64k': { fails: { direction: 'from-device', size: 65536 }, passes: { direction: 'from-device', size: 65535 } },
  'sg-last': { fails: { direction: 'from-device', method: 'scatter-gather', size: 2, offset: 4095 }, passes: { direction: 'from-device', method: 'scatter-gather', size: 4096 } },
};

async function plant(s: LinuxSession, bug: PlantedBug | 'none', raceEvery = 5): Promise<void> {
  // Writing "planted" also restarts the race's counter.
  await s.sh(`echo ${raceEvery} > /sys/module/edudma/parameters/planted_race_every && echo ${bug} > /sys/module/edudma/parameters/planted`);
}

async function verdict(s: LinuxSession, variant: 'direct' | 'bounce', partial: Partial<Scenario>) {
  const scenario = makeScenario({ seed: SEED, ...partial });
  return runScenario(s, { name: `${variant} ${JSON.stringify(partial)}`, scenario, variant });
}

describe('dma: the planted bugs of the test build are real (hand-written scenarios, real guests)', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let bounce: LinuxSession;
  let direct: LinuxSession;

  before(async () => {
    // A stale byte reads as the fill byte; a pattern byte that happens to be 0xA5 would hide it.
    expect(pattern(SEED, 2)[1]).to.not.equal(FILL_BYTE);
    const module = await buildPlantedDriver({ kernelVersion: await findKernelVersion(), repoRoot });
    const driverOverride = { module, moduleParams: plantedParams('none') };
    bounce = await startReferenceGuest('planted/bounce', true, { driverOverride, icount: CHEAP_WAITS });
    direct = await startReferenceGuest('planted/direct', false, { driverOverride, icount: CHEAP_WAITS });
  });
  after(async () => {
    await bounce?.close();
    await direct?.close();
  });

  it('the test build says so: driver version 0.1.0-planted, parameter "planted" readable', async () => {
    expect((await bounce.info()).driver.version).to.equal('0.1.0-planted');
    expect((await bounce.sh('cat /sys/module/edudma/parameters/planted')).trim()).to.equal('none');
  });

  for (const [bug, b] of Object.entries(BOUNDARIES) as Array<[Exclude<PlantedBug, 'race'>, (typeof BOUNDARIES)[keyof typeof BOUNDARIES]]>) {
    it(`${bug}: ${JSON.stringify(b.fails)} fails under bounce (stale client buffer), ${JSON.stringify(b.passes)} passes; no bounce, or no bug: passes`, async () => {
      await plant(bounce, bug);
      await plant(direct, bug);
      const caught = await verdict(bounce, 'bounce', b.fails);
      expect(caught.status, caught.summary).to.equal('fail');
      expect(caught.findings.map((f) => f.kind), caught.summary).to.include('stale-client-buffer');
      const inside = await verdict(bounce, 'bounce', b.passes);
      expect(inside.status, inside.summary).to.equal('pass');
      const noBounce = await verdict(direct, 'direct', b.fails);
      expect(noBounce.status, noBounce.summary).to.equal('pass');
      await plant(bounce, 'none');
      const noBug = await verdict(bounce, 'bounce', b.fails);
      expect(noBug.status, noBug.summary).to.equal('pass');
    });
  }

  it('race: exactly one run in 5 fails under bounce (stale client buffer); without bouncing none does', async () => {
    await plant(bounce, 'race', 5);
    await plant(direct, 'race', 5);
    const bounced = [];
    const directs = [];
    for (let i = 0; i < 10; i++) {
      bounced.push(await verdict(bounce, 'bounce', { direction: 'from-device', size: 1 }));
      directs.push(await verdict(direct, 'direct', { direction: 'from-device', size: 1 }));
    }
    expect(bounced.map((v) => v.status)).to.deep.equal(['pass', 'pass', 'pass', 'pass', 'fail', 'pass', 'pass', 'pass', 'pass', 'fail']);
    expect(bounced[4]!.findings.map((f) => f.kind)).to.include('stale-client-buffer');
    expect(directs.every((v) => v.status === 'pass'), directs.map((v) => v.summary).join('; ')).to.equal(true);
    // Other scenarios that cannot lose it (no client destination, or minimal sync) do not count.
    await plant(bounce, 'race', 2);
    const toDevice = await verdict(bounce, 'bounce', { direction: 'to-device', size: 1 });
    const minimal = await verdict(bounce, 'bounce', { direction: 'from-device', size: 1, sync: 'minimal' });
    const first = await verdict(bounce, 'bounce', { direction: 'from-device', size: 1 });
    expect([toDevice.status, minimal.status, first.status]).to.deep.equal(['pass', 'pass', 'pass']);
    expect((await verdict(bounce, 'bounce', { direction: 'from-device', size: 1 })).status).to.equal('fail');
  });

  it('the fixed catalog (its 23 direct and bounce scenarios, as dmahil run --all --boot runs them) catches first-page, last-chunk and sg-last, and misses skip-64k and race', async () => {
    const edu = await probeEduBehaviour(DEFAULT_QEMU_BINARY);
    // These guests, never closed by the suite (as --boot reuses its guests).
    const source: SessionSource = { acquire: async (v) => (v.forceBounce ? bounce : direct), release: async () => undefined, close: async () => undefined, notPristine: () => 'two booted guests reused' };
    const caught: Record<string, string[]> = {};
    for (const bug of Object.keys(PLANTED_BUGS) as PlantedBug[]) {
      await plant(bounce, bug);
      await plant(direct, bug);
      // The planted bugs are coherency bugs of these two guests; the IOMMU and high-memory ones need their own machines.
      const verdicts = await runSuite(CATALOG.filter((e) => e.variant === 'direct' || e.variant === 'bounce'), { source, notApplicable: (c) => notApplicable(c, edu) });
      expect(verdicts).to.have.length(23);
      caught[bug] = verdicts.filter((v) => outcome(v) === 'not-ok').map((v) => `${v.variant} ${v.name}`);
    }
    expect(caught).to.deep.equal({
      'first-page': ['bounce bounced from-device 5000 B at offset 3'],
      'last-chunk': ['bounce bounced from-device 5000 B at offset 3'],
      'skip-64k': [],
      'sg-last': ['bounce bounced scatter-gather 12 KiB'],
      race: [],
    });
  });

  it('an unknown bug name is refused by the module, and the planted bug stays as it was', async () => {
    await plant(bounce, 'none');
    const r = await bounce.sh('echo no-such-bug > /sys/module/edudma/parameters/planted || echo refused; cat /sys/module/edudma/parameters/planted');
    expect(r.trim().split('\n')).to.deep.equal(['refused', 'none']);
  });
});
