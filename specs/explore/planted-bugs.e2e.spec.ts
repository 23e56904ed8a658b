// The proof that `dmahil explore` finds bugs nobody wrote a scenario for: for each planted bug of the
// driver's test build (guest-driver/linux/edudma_planted.h; specs/dma/planted-bugs shows each is real),
// explore with a fixed seed and a 60 s budget finds it, confirms it on a pristine restore and shrinks it
// to the exact smallest scenario; the repro file replays it alone. With the shipped driver the same
// budget finds nothing. (specs/dma/planted-bugs also shows which bugs the fixed catalog misses.)
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { exploreCommand, type ExploreCommandResult } from '../../harness/cli/explore.js';
import { guestSource } from '../../harness/cli/guests.js';
import { repeatedEntries, reproEntry } from '../../harness/cli/selection.js';
import { runSuite } from '../../harness/dma/run-suite.js';
import { outcome } from '../../harness/dma/verdict.js';
import { readRepro } from '../../harness/explore/repro.js';
import { exploredVariants } from '../../harness/explore/variants.js';
import { findKernelVersion } from '../../images/linux/build.js';
import { buildPlantedDriver, plantedParams, type PlantedBug } from '../../guest-driver/linux/planted.js';
import { BOOT_TIMEOUT_MS, cliPath, repoRoot } from '../e2e/support.js';

const SEED = 1;
const BUDGET_MS = 60_000;
const artifactsOf = (name: string): string => path.join(repoRoot, 'reports', 'e2e', 'explore', name);

/** The smallest scenario that shows each bug: nothing smaller fails (specs/dma/planted-bugs checks the neighbours). */
const MINIMAL: Record<PlantedBug, { method: string; size: number; offset: number; flaky?: true }> = {
  'first-page': { method: 'streaming', size: 4097, offset: 0 },
  'last-chunk': { method: 'streaming', size: 2, offset: 4095 },
  'skip-64k': { method: 'streaming', size: 65536, offset: 0 },
  'sg-last': { method: 'scatter-gather', size: 2, offset: 4095 },
  race: { method: 'streaming', size: 1, offset: 0, flaky: true },
};

describe('explore: finds, confirms and shrinks every planted bug (real guests, the driver test build)', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let module: string;
  const found = new Map<PlantedBug, ExploreCommandResult>();

  before(async () => {
    module = await buildPlantedDriver({ kernelVersion: await findKernelVersion(), repoRoot });
  });

  const explorePlanted = async (bug: PlantedBug, variants = exploredVariants(undefined, 'linux'), name: string = bug): Promise<ExploreCommandResult> => {
    // The terminal report, as a user would see it, kept beside the artifacts.
    fs.mkdirSync(artifactsOf('.'), { recursive: true });
    const out = fs.createWriteStream(path.join(artifactsOf('.'), `${name}.txt`));
    fs.rmSync(path.join(artifactsOf('.'), `${name}.progress.log`), { force: true });
    try {
      return await exploreCommand({
        command: 'explore',
        image: 'linux',
        json: false,
        accel: 'auto',
        artifacts: artifactsOf(name),
        bootTimeoutMs: 180_000,
        jobs: 1,
        budgetMs: BUDGET_MS,
        seed: SEED,
        seedGiven: true,
        variants,
        driverOverride: { module, moduleParams: plantedParams(bug) },
        out,
        // Kept beside the report: why a restore or a snapshot failed is said only here.
        onProgress: (m) => fs.appendFileSync(path.join(artifactsOf('.'), `${name}.progress.log`), m + '\n'),
      });
    } finally {
      out.end();
    }
  };

  for (const [bug, m] of Object.entries(MINIMAL) as Array<[PlantedBug, (typeof MINIMAL)[PlantedBug]]>) {
    it(`${bug}: found with seed ${SEED} within 60 s, confirmed ${m.flaky ? 'flaky' : 'deterministic'}, shrunk to bounce from-device ${m.method} ${m.size} B at offset ${m.offset}`, async () => {
      const r = await explorePlanted(bug);
      found.set(bug, r);
      const f = r.result.failure;
      expect(r.code).to.equal(1);
      expect(f, `nothing found in ${r.result.runs} scenarios`).to.not.equal(undefined);
      expect(f!.findMs).to.be.below(BUDGET_MS);
      expect(f!.confirmation.pristine, f!.confirmation.notPristine).to.equal(true);
      expect(f!.minimalConfirmation.pristine, f!.minimalConfirmation.notPristine).to.equal(true);
      expect(f!.confirmation.kind).to.equal(m.flaky ? 'flaky' : 'deterministic');
      // Every eligible run in 5 loses the race: on a restored guest, whose probe was the first, runs 4, 9, 14, 19.
      if (m.flaky) expect([f!.minimalConfirmation.failed, f!.minimalConfirmation.repeats]).to.deep.equal([4, 20]);
      expect({ variant: f!.minimal.variant, ...f!.minimal.scenario }).to.deep.include({ variant: 'bounce', direction: 'from-device', method: m.method, sync: 'full', fault: 'none', size: m.size, offset: m.offset });
      expect(f!.minimalConfirmation.verdict.findings.map((x) => x.kind)).to.include('stale-client-buffer');
      // The reports put the minimal case first; the repro file names it and how it was found.
      expect(r.verdicts[0]!.name).to.match(/^minimal: from-device/);
      const repro = readRepro(r.reproFile!);
      expect(repro.scenario).to.deep.equal(f!.minimal.scenario);
      expect(repro).to.deep.include({ variant: 'bounce', image: 'linux' });
      expect(repro.versions.driver).to.equal('edudma 0.1.0-planted');
      expect(repro.explore).to.deep.equal({ seed: SEED, index: f!.index + 1, shrinkSteps: f!.steps.length, variants: ['direct', 'bounce'] });
      const results = JSON.parse(fs.readFileSync(path.join(r.artifacts, 'results.json'), 'utf8')) as { ok: boolean; scenarios: Array<{ name: string; rerun: string }> };
      expect(results.ok).to.equal(false);
      expect(results.scenarios[0]!.rerun).to.equal(`dmahil run --repro ${r.reproFile}`);
      const junit = fs.readFileSync(path.join(r.artifacts, 'junit.xml'), 'utf8');
      expect(junit).to.match(/<testcase [^>]*name="minimal: from-device/);
      // Minimal first in every report: before the case as found.
      const html = fs.readFileSync(path.join(r.artifacts, 'report.html'), 'utf8');
      for (const [what, text] of [['junit.xml', junit], ['report.html', html]] as const) {
        expect(text.indexOf('minimal: from-device'), what).to.be.within(0, text.indexOf('found: ') - 1);
      }
    });
  }

  it('--variants high-memory: first-page found where only the edu\'s 32-bit mask bounces (no swiotlb=force), shrunk to from-device streaming 4097 B at offset 0', async () => {
    const r = await explorePlanted('first-page', exploredVariants('high-memory', 'linux'), 'first-page-high-memory');
    const f = r.result.failure;
    expect(f, `nothing found in ${r.result.runs} scenarios`).to.not.equal(undefined);
    expect(f!.findMs).to.be.below(BUDGET_MS);
    expect(f!.minimalConfirmation.pristine, f!.minimalConfirmation.notPristine).to.equal(true);
    expect({ variant: f!.minimal.variant, ...f!.minimal.scenario }).to.deep.include({ variant: 'high-memory', direction: 'from-device', method: 'streaming', fault: 'none', size: 4097, offset: 0 });
    const v = f!.minimalConfirmation.verdict;
    expect(v.findings.map((x) => x.kind)).to.include('stale-client-buffer');
    // The guest's own word is not the evidence, but it must agree: the destination lies above 4 GiB and bounced.
    const dst = v.result!.buffers.find((b) => b.role === 'destination' && b.kind === 'client')!;
    expect(dst.bounced, JSON.stringify(dst)).to.equal(true);
    expect(dst.pages.every((p) => p >= 2 ** 32), JSON.stringify(dst.pages)).to.equal(true);
    expect(readRepro(r.reproFile!)).to.deep.include({ variant: 'high-memory' });
    const results = JSON.parse(fs.readFileSync(path.join(r.artifacts, 'results.json'), 'utf8')) as { explore: { variants: string[] } };
    expect(results.explore.variants).to.deep.equal(['high-memory']);
  });

  it('the repro files replay alone, as dmahil run --repro does: last-chunk on a pristine guest; race with --repeat 20 --until-fail --boot', async () => {
    // The race loses one eligible run in 5 on a guest: every pristine restore is the same guest, so its
    // repeats must share one guest (--boot), as explore's confirmation ran its 20 repeats on one restore.
    for (const [bug, repeat, reuse, runs] of [['last-chunk', 1, false, 1], ['race', 20, true, 5]] as const) {
      const reproFile = found.get(bug)?.reproFile;
      expect(reproFile, `${bug} was not found above`).to.be.a('string');
      const { entry } = reproEntry(reproFile!);
      const source = guestSource({ image: 'linux', accel: 'auto', bootTimeoutMs: 180_000, artifacts: artifactsOf(`replay-${bug}`), progress: () => undefined, reuse, driverOverride: { module, moduleParams: plantedParams(bug) } });
      let failed = false;
      const verdicts = await runSuite(repeatedEntries([entry], repeat), { source, onVerdict: (v) => (failed ||= outcome(v) === 'not-ok'), stop: () => failed });
      const last = verdicts.at(-1)!;
      expect(last.status, `${bug}: ${last.summary}`).to.equal('fail');
      expect(last.findings.map((x) => x.kind)).to.include('stale-client-buffer');
      expect(verdicts.map((v) => v.status)).to.deep.equal([...Array<string>(runs - 1).fill('pass'), 'fail']);
    }
  });

  it(`with the shipped driver, dmahil explore --budget 60s --seed ${SEED} reports no failure (exit 0)`, async () => {
    const artifacts = artifactsOf('shipped');
    const r = await execa('node', [cliPath, 'explore', '--budget', '60s', '--seed', String(SEED), '--artifacts', artifacts], { reject: false });
    expect(r.exitCode, r.stderr.split('\n').slice(-5).join('\n')).to.equal(0);
    expect(r.stdout).to.match(/no scenario failed/).and.match(/^PASS: \d+ scenarios explored, 0 failing/m);
    expect(r.stderr).to.match(/exploring with seed 1, budget 60\.0 s/).and.match(/explore: \d+ runs, 0 failures, [\d.]+ scenarios\/s, \d+ s of 60 s/);
    const results = JSON.parse(fs.readFileSync(path.join(artifacts, 'results.json'), 'utf8')) as { ok: boolean; explore: { runs: number; stoppedBy: string; failure: unknown; unconfirmed: unknown[]; seed: number } };
    expect(results.ok).to.equal(true);
    expect(results.explore).to.deep.include({ seed: SEED, stoppedBy: 'budget', failure: null, unconfirmed: [] });
    for (const f of ['junit.xml', 'report.html']) expect(fs.existsSync(path.join(artifacts, f)), f).to.equal(true);
    expect(fs.existsSync(path.join(artifacts, 'repro.json'))).to.equal(false);
    // More scenarios than any planted bug needed to be found.
    const most = Math.max(...[...found.values()].map((x) => (x.result.failure?.index ?? 0) + 1));
    expect(results.explore.runs).to.be.greaterThan(most);
  });
});
