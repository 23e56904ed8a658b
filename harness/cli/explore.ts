// dmahil explore: the command around harness/explore. Same checks, guests and report files as
// `dmahil run` (results.json, junit.xml, report.html, the terminal table), with the minimal failing
// scenario first, and a repro file for `dmahil run --repro`.
import path from 'node:path';
import { CONTRACT_VERSION } from '../contract/scenario.js';
import { VARIANTS } from '../dma/catalog.js';
import { variantNotOnGuestKernel } from '../dma/applicability.js';
import type { SuiteVerdict } from '../dma/run-suite.js';
import { UsageError } from '../errors.js';
import { describeConfirmation, type Confirmation } from '../explore/confirm.js';
import { explore, exploredSequence, type ExploreProgress, type ExploreResult } from '../explore/explore.js';
import { caseLabel, caseName, type ExploreCase, type VariantId } from '../explore/generate.js';
import { ExploreGuests } from '../explore/guests.js';
import { interruptedLines, interruptedVerdicts } from '../explore/interrupted.js';
import { writeRepro, type Repro } from '../explore/repro.js';
import type { LinuxGuestOptions } from '../guest/linux/profile.js';
import { htmlReport } from '../report/html.js';
import { junitReport } from '../report/junit.js';
import { resultsJson } from '../report/results-json.js';
import { tally, verdictTable } from '../report/verdict-table.js';
import { readWindowsImage } from '../../images/windows/manifest.js';
import type { ExploreCliOptions } from './args.js';
import { checkArtifactsRoom, guestSource, preflight, repoRoot, timestamp, version } from './guests.js';
import { describeDriver, driverJson, driverSource } from './driver-option.js';
import { describeGuestKernel } from './kernel-option.js';
import { reportOnInterrupt } from './interrupt.js';
import { stderrProgress } from './progress.js';
import { writeFilesSync } from './report-files.js';

export interface ExploreCommandOptions extends ExploreCliOptions {
  /** Not on the command line: the specs' planted-bug test build of the reference guest's driver. */
  driverOverride?: LinuxGuestOptions['driverOverride'];
  /** Where the terminal report goes (default stdout). */
  out?: NodeJS.WritableStream;
  onProgress?: (m: string) => void;
}

export interface ExploreCommandResult {
  code: number;
  result: ExploreResult;
  artifacts: string;
  reproFile?: string;
  /** The reports' verdicts, minimal case first. */
  verdicts: SuiteVerdict[];
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export async function exploreCommand(opts: ExploreCommandOptions): Promise<ExploreCommandResult> {
  if (opts.image !== 'linux') readWindowsImage(opts.image);
  const progress = opts.onProgress ?? stderrProgress(true);
  const out = opts.out ?? process.stdout;
  // --grep that leaves out a variant (e.g. "bounce") spares its guest.
  let variants: VariantId[] = opts.variants.map((v) => v.id);
  if (opts.grep) {
    const sample = exploredSequence(opts.seed, variants);
    const matching = Array.from({ length: 2000 }, (_, i) => sample.at(i)).filter((c) => opts.grep!.test(caseLabel(c)));
    if (matching.length === 0) throw new UsageError(`no explored scenario matches --grep ${opts.grep}`, { hint: 'names look like "bounce from-device streaming 4097 B at offset 0, full sync, seed 7"' });
    variants = variants.filter((v) => matching.some((c) => c.variant === v));
  }
  const artifacts = path.resolve(opts.artifacts ?? path.join(repoRoot, 'reports', 'runs', `${timestamp()}-explore`));
  checkArtifactsRoom(artifacts);
  const { qemu, reference, driver } = await preflight(opts.accel, opts.image, progress, opts.qemu, opts.driver, opts.kernel);
  if (reference) progress(describeGuestKernel(reference.kernelVersion, opts.kernel));
  // A variant this guest kernel cannot run would explore untranslated DMA and find nothing: refuse it.
  for (const v of opts.variants.filter((x) => variants.includes(x.id))) {
    const why = reference ? variantNotOnGuestKernel(v, reference.kernelVersion, reference.virtioIommu) : undefined;
    if (why) throw new UsageError(`--variants: ${v.id} is ${why}`, { hint: 'explore another variant, or give --kernel a kernel with the driver' });
  }
  if (driver) progress(describeDriver(driver));
  const ver = await version();
  const qemuText = `${qemu.version}${qemu.package ? ` (${qemu.package})` : ''}`;
  const source = guestSource({ image: opts.image, accel: opts.accel, bootTimeoutMs: opts.bootTimeoutMs, artifacts, progress, reuse: false, qemuBinary: qemu.binary, ...driverSource(driver), ...(opts.kernel ? { kernelRoot: opts.kernel } : {}), ...(opts.driverOverride ? { driverOverride: opts.driverOverride } : {}) });
  const guests = new ExploreGuests(source, opts.jobs, opts.variants.filter((v) => !(v.id in VARIANTS)));
  const limits = [opts.budgetMs !== undefined ? `budget ${seconds(opts.budgetMs)}` : '', opts.runs !== undefined ? `at most ${opts.runs} scenarios` : ''].filter(Boolean).join(', ');
  progress(`exploring with seed ${opts.seed}${opts.seedGiven ? '' : ` (random; --seed ${opts.seed} explores the same way)`}, ${limits}; artifacts in ${artifacts}`);

  const host = { qemu: qemuText, qemuBinary: qemu.binary, edu: null, accel: opts.accel, driver: driver ? driverJson(driver) : null, guestKernel: reference ? { version: reference.kernelVersion, root: opts.kernel?.root ?? '/' } : null };
  // Interrupted (Ctrl-C, SIGTERM): the machine registry kills every QEMU; what was seen so far is written.
  const live: ExploreProgress = { runs: 0, failures: [], steps: [] };
  const stopReporting = reportOnInterrupt({
    artifacts,
    progress,
    count: () => `${live.runs} scenarios`,
    write: (why, signal) => {
      const verdicts = interruptedVerdicts(live, opts.seed);
      const lines = interruptedLines(live, opts.seed, ver, signal);
      const report = { ...resultsJson(verdicts, { version: ver, artifacts, host }), ok: false, interrupted: why, explore: { seed: opts.seed, variants, runs: live.runs, stoppedBy: 'interrupted', unconfirmed: [], failure: null } };
      writeReports(artifacts, verdicts, report, lines, why);
      progress(lines.join('\n'));
    },
  });

  let result: ExploreResult;
  try {
    result = await explore({
      guests,
      seed: opts.seed,
      budgetMs: opts.budgetMs,
      maxRuns: opts.runs,
      variants,
      grep: opts.grep,
      jobs: opts.jobs,
      onProgress: progress,
      live,
    });
  } finally {
    stopReporting();
    await guests.close();
  }

  const f = result.failure;
  const reproFile = f ? path.join(artifacts, 'repro.json') : undefined;
  const rerun = reproFile ? `dmahil run --repro ${reproFile}` : undefined;
  const verdicts: SuiteVerdict[] = [];
  if (f) {
    verdicts.push({ ...f.minimalConfirmation.verdict, name: `minimal: ${caseName(f.minimal)}`, rerun });
    verdicts.push({ ...f.confirmation.verdict, name: `found: ${caseName(f.original)}`, rerun: `dmahil explore --seed ${result.seed}` });
  }
  for (const u of result.unconfirmed) verdicts.push({ ...u.verdict, name: `not reproduced on a fresh guest: ${caseName(u.case)}`, rerun: `dmahil explore --seed ${result.seed}` });

  const lines = summaryLines(result, ver, reproFile);
  if (f && reproFile) {
    const v = f.minimalConfirmation.verdict;
    const repro: Repro = {
      format: 'dmahil-repro',
      version: 1,
      contract: CONTRACT_VERSION,
      name: caseName(f.minimal),
      variant: f.minimal.variant,
      scenario: f.minimal.scenario,
      image: opts.image,
      verdict: { status: v.status, findings: v.findings.map((x) => x.kind), summary: v.summary },
      confirmation: confirmationJson(f.minimalConfirmation),
      explore: { seed: result.seed, index: f.index + 1, shrinkSteps: f.steps.length, variants },
      versions: { dmahil: ver, qemu: qemuText, guestKernel: reference?.kernelVersion ?? null, driver: v.result ? `${v.result.driver.name} ${v.result.driver.version}` : null },
      createdAt: new Date().toISOString(),
    };
    writeRepro(reproFile, repro);
  }
  const ok = !f && result.unconfirmed.length === 0;
  const report = {
    ...resultsJson(verdicts, { version: ver, artifacts, host }),
    ok,
    explore: exploreJson(result, reproFile, variants),
  };
  if (opts.json) out.write(JSON.stringify(report) + '\n');
  else {
    out.write('\n' + lines.join('\n') + '\n');
    if (verdicts.length > 0) out.write('\n' + verdictTable(verdicts) + '\n');
    const t = tally(verdicts);
    out.write(`\n${ok ? 'PASS' : 'FAIL'}: ${result.runs} scenarios explored, ${t.notOk} failing${f ? `; minimal: ${caseLabel(f.minimal)}` : ''} — artifacts in ${artifacts}\n`);
  }
  writeReports(artifacts, verdicts, report, lines);
  progress(`HTML report: ${path.join(artifacts, 'report.html')}`);
  return { code: ok ? 0 : 1, result, artifacts, reproFile, verdicts };
}

/** results.json, junit.xml and report.html, also from the signal handler (synchronous). */
function writeReports(artifacts: string, verdicts: SuiteVerdict[], report: { version: string }, lines: string[], interrupted?: string): void {
  const ver = report.version;
  writeFilesSync(artifacts, [
    ['results.json', () => JSON.stringify(report, null, 2) + '\n'],
    ['junit.xml', () => junitReport(verdicts, { suite: 'dmahil explore', ...(interrupted ? { interrupted } : {}) })],
    ['report.html', () => htmlReport(verdicts, { version: ver, artifacts, title: 'dmahil explore', preamble: lines, ...(interrupted ? { interrupted } : {}) })],
  ]);
}

function confirmationJson(c: Confirmation) {
  return { failed: c.failed, repeats: c.repeats, kind: c.kind, pristine: c.pristine, ...(c.notPristine ? { notPristine: c.notPristine } : {}) };
}

/** What the terminal, the HTML report and results.json say about the exploration itself. */
function summaryLines(r: ExploreResult, ver: string, reproFile: string | undefined): string[] {
  const stopped = r.stoppedBy === 'failure' ? 'stopped at the first confirmed failure' : r.stoppedBy === 'runs' ? 'stopped at --runs' : 'the budget is spent';
  const lines = [`dmahil ${ver} explored ${r.runs} scenarios in ${seconds(r.exploreMs)} (${r.scenariosPerS.toFixed(1)} scenarios/s) with seed ${r.seed}: ${stopped}`];
  for (const u of r.unconfirmed) lines.push(`failed once, not reproduced: ${caseLabel(u.case)} (${describeConfirmation(u.confirmation)})`);
  const f = r.failure;
  if (!f) {
    if (r.unconfirmed.length === 0) lines.push('no scenario failed');
    return lines;
  }
  lines.push(`found at scenario ${f.index + 1} after ${seconds(f.findMs)}: ${caseLabel(f.original)} (${describeConfirmation(f.confirmation)})`);
  lines.push(`shrunk in ${f.steps.length} steps (${f.shrinkCandidates} candidates tried on the guest, ${seconds(f.shrinkMs)} with the confirmations):`);
  f.steps.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(3)}. ${caseLabel(s.case)}`));
  lines.push(`minimal: ${caseLabel(f.minimal)} (${describeConfirmation(f.minimalConfirmation)})`);
  lines.push(`  ${f.minimalConfirmation.verdict.summary}`);
  if (reproFile) lines.push(`repro file: ${reproFile} (dmahil run --repro ${reproFile} replays it alone on a pristine guest)`);
  return lines;
}

function exploreJson(r: ExploreResult, reproFile: string | undefined, variants: readonly VariantId[]) {
  const f = r.failure;
  const kase = (c: ExploreCase) => ({ variant: c.variant, name: caseName(c), scenario: c.scenario });
  return {
    seed: r.seed,
    variants,
    runs: r.runs,
    exploreMs: Math.round(r.exploreMs),
    scenariosPerS: Number(r.scenariosPerS.toFixed(2)),
    stoppedBy: r.stoppedBy,
    unconfirmed: r.unconfirmed.map((u) => ({ index: u.index + 1, ...kase(u.case), confirmation: confirmationJson(u.confirmation) })),
    failure: f
      ? {
          index: f.index + 1,
          found: { ...kase(f.original), confirmation: confirmationJson(f.confirmation) },
          minimal: { ...kase(f.minimal), confirmation: confirmationJson(f.minimalConfirmation), findings: f.minimalConfirmation.verdict.findings, summary: f.minimalConfirmation.verdict.summary },
          shrinkPath: f.steps.map((s) => ({ ...kase(s.case), coordinates: s.system })),
          shrinkCandidates: f.shrinkCandidates,
          findMs: Math.round(f.findMs),
          shrinkMs: Math.round(f.shrinkMs),
          repro: reproFile ?? null,
        }
      : null,
  };
}
