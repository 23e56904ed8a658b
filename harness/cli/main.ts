#!/usr/bin/env node
// dmahil command line: parse, run, print the verdict, exit 0 only when every scenario verified.
import fsSync from 'node:fs';
import path from 'node:path';
import { knownVariants, type CatalogEntry } from '../dma/catalog.js';
import { parseShard, runSuite, shardEntries, type SuiteVerdict } from '../dma/run-suite.js';
import { DmahilError, UsageError } from '../errors.js';
import { REFERENCE_AUTO_ACCEL } from '../guest/linux/profile.js';
import { startGuest } from '../lib/guest.js';
import { cacheDir } from '../lib/paths.js';
import type { GuestSession } from '../guest/session.js';
import { imageMain } from '../../images/windows/cli.js';
import { readWindowsImage } from '../../images/windows/manifest.js';
import { resultsJson, type RunHost } from '../report/results-json.js';
import { htmlReport } from '../report/html.js';
import { junitReport } from '../report/junit.js';
import { outcome, type Verdict } from '../dma/verdict.js';
import { accessText, closeHandedOver, interactiveSsh, prepareAccess } from './shell.js';
import { doctor } from './doctor.js';
import { tally, verdictTable } from '../report/verdict-table.js';
import { parseCommandLine, USAGE, type RunOptions, type ShellOptions } from './args.js';
import { stderrProgress } from './progress.js';
import { reportOnInterrupt } from './interrupt.js';
import { describeEdu, probeEduBehaviour } from '../machine/edu-behaviour.js';
import { needsEduBehaviour, notApplicable, notOnGuestKernel, notOnImage } from '../dma/applicability.js';
import { checkArtifactsRoom, checkQemuOption, guestSource, preflight, repoRoot, timestamp, version } from './guests.js';
import { writeFilesSync } from './report-files.js';
import { describeDriver, driverJson, driverSource } from './driver-option.js';
import { describeGuestKernel } from './kernel-option.js';
import { exploreCommand } from './explore.js';
import { setupCommand } from './setup.js';
import { repeatedEntries, reproDifferences, runSelection } from './selection.js';

async function run(opts: RunOptions): Promise<number> {
  // A missing or broken golden image is bad input: say so once, before anything is created or booted.
  if (opts.image !== 'linux') readWindowsImage(opts.image);
  const progress = stderrProgress(true);
  // The catalog's selection, a repro file's one scenario (--repro) or a scenarios file's (--scenarios).
  const { selected, repro } = runSelection(opts);
  const sharded = opts.shard ? shardEntries(selected, parseShard(opts.shard)) : selected;
  if (sharded.length === 0) {
    throw new UsageError(`shard ${opts.shard} has none of the ${selected.length} selected scenarios`, { hint: 'use fewer shards than scenarios, or add --all' });
  }
  const entries = repeatedEntries(sharded, opts.repeat);
  const artifacts = path.resolve(opts.artifacts ?? path.join(repoRoot, 'reports', 'runs', timestamp()));
  checkArtifactsRoom(artifacts);
  const { qemu, reference, driver } = await preflight(opts.accel, opts.image, progress, opts.qemu, opts.driver, opts.kernel);
  if (reference) progress(describeGuestKernel(reference.kernelVersion, opts.kernel));
  if (driver) progress(describeDriver(driver));
  const ver = await version();
  if (repro) {
    const now = { image: opts.image, qemu: `${qemu.version}${qemu.package ? ` (${qemu.package})` : ''}`, guestKernel: reference?.kernelVersion ?? null, dmahil: ver };
    for (const d of reproDifferences(repro.repro, now)) progress(`note: the repro was ${d}`);
    const c = repro.repro.confirmation;
    if (c.kind === 'flaky' && opts.repeat === 1) {
      progress(`note: this failure is flaky (it failed ${c.failed} of ${c.repeats} repeats on one guest): --repeat ${c.repeats} --until-fail --boot repeats it on one guest`);
    }
  }
  // Measured, not assumed from the version: does this QEMU's edu give each control something to catch?
  const edu = entries.some(needsEduBehaviour) ? await probeEduBehaviour(qemu.binary) : undefined;
  if (edu) progress(describeEdu(edu));
  runHost = {
    qemu: `${qemu.version}${qemu.package ? ` (${qemu.package})` : ''}`,
    qemuBinary: qemu.binary,
    edu: edu ? describeEdu(edu) : null,
    accel: opts.accel === 'auto' && opts.image === 'linux' ? `auto: ${REFERENCE_AUTO_ACCEL} for the reference guest` : opts.accel,
    driver: driver ? driverJson(driver) : null,
    guestKernel: reference ? { version: reference.kernelVersion, root: opts.kernel?.root ?? '/' } : null,
    ...(opts.variants ? { variants: opts.variants.map((v) => ({ id: v.id, description: v.description, machine: v.machine ?? {} })) } : {}),
    guests: knownVariants(opts.variants).filter((v) => entries.some((e) => e.variant === v.id)).map((v) => ({ id: v.id, description: v.description, forceBounce: v.forceBounce, machine: v.machine ?? null })),
  };
  fsSync.mkdirSync(artifacts, { recursive: true });
  const repeating = opts.repeat > 1 ? ` × ${opts.repeat}${opts.untilFail ? ', until the first failure' : ''}` : '';
  progress(`${sharded.length} scenarios${repeating}${opts.shard ? ` (shard ${opts.shard} of ${selected.length})` : ''}; artifacts in ${artifacts}`);

  // Interrupted (Ctrl-C, SIGTERM): the machine registry kills every QEMU; the results so far are written.
  const seen: SuiteVerdict[] = [];
  let failedOnce = false;
  const stopReporting = reportOnInterrupt({ artifacts, progress, count: () => `${seen.length} of ${entries.length} scenarios`, write: (why) => writeReportsSync(artifacts, seen, ver, why) });
  const kept: Array<{ session: GuestSession; verdict: SuiteVerdict }> = [];
  const keep = (session: GuestSession, v: Verdict): boolean => {
    if (!opts.keep || kept.length > 0 || outcome(v) !== 'not-ok' || !session.debugTarget?.().machine.isRunning()) return false;
    // The source hands back runScenario's verdict, which has no variant; onVerdict recorded the suite's one.
    const recorded = [...seen].reverse().find((s) => s.name === v.name && s.scenario === v.scenario);
    if (!recorded) return false;
    kept.push({ session, verdict: recorded });
    return true;
  };

  const verdicts: SuiteVerdict[] = await runSuite(entries, {
    onProgress: progress,
    ...(opts.variants ? { variants: opts.variants } : {}),
    onVerdict: (v) => {
      seen.push(v);
      if (outcome(v) === 'not-ok') failedOnce = true;
      progress(`${v.status.padEnd(5)} ${v.name}: ${v.summary}`);
    },
    jobs: opts.jobs,
    notApplicable: (c: CatalogEntry) =>
      notOnImage(c, opts.image) ??
      (reference ? notOnGuestKernel(c, reference.kernelVersion, reference.virtioIommu, knownVariants(opts.variants)) : undefined) ??
      (edu ? notApplicable(c, edu) : undefined),
    // --until-fail: nothing new starts after the first scenario that did not verify.
    ...(opts.untilFail ? { stop: () => failedOnce } : {}),
    source: guestSource({ image: opts.image, accel: opts.accel, bootTimeoutMs: opts.bootTimeoutMs, artifacts, progress, reuse: opts.boot || opts.keep, keep, qemuBinary: qemu.binary, ...driverSource(driver), ...(opts.kernel ? { kernelRoot: opts.kernel } : {}) }),
  });

  // The verdict first, so a full disk under the artifacts cannot cost it.
  const report = runReport(artifacts, verdicts, ver);
  const t = tally(verdicts);
  if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
  else {
    process.stdout.write('\n' + verdictTable(verdicts) + '\n\n');
    process.stdout.write(`${t.notOk === 0 ? 'PASS' : 'FAIL'}: ${t.ok} ok, ${t.notOk} failed, ${t.skipped} skipped — artifacts in ${artifacts}\n`);
  }
  try {
    writeReportsSync(artifacts, verdicts, ver);
  } catch (e) {
    for (const k of kept) await k.session.close().catch(() => undefined);
    throw e;
  }
  process.stderr.write(`HTML report: ${path.join(artifacts, 'report.html')}\n`);
  // The run is over and reported: from here Ctrl-C / SIGTERM only end the kept guest.
  stopReporting();
  for (const k of kept) await holdForDebugging(k.session, k.verdict, artifacts);
  return t.notOk === 0 && t.ok > 0 ? 0 : 1;
}

/** Set once the run has checked its host; in every results.json written after that. */
let runHost: RunHost | undefined;

function runReport(artifacts: string, verdicts: SuiteVerdict[], ver: string, interrupted?: string) {
  return { ...resultsJson(verdicts, { version: ver, artifacts, ...(runHost ? { host: runHost } : {}) }), ...(interrupted ? { ok: false, interrupted } : {}) };
}

/** results.json, junit.xml and report.html (report-files.ts), also from the signal handler. */
function writeReportsSync(artifacts: string, verdicts: SuiteVerdict[], ver: string, interrupted?: string): void {
  writeFilesSync(artifacts, [
    ['results.json', () => JSON.stringify(runReport(artifacts, verdicts, ver, interrupted), null, 2) + '\n'],
    ['junit.xml', () => junitReport(verdicts, { suite: 'dmahil run', interrupted })],
    ['report.html', () => htmlReport(verdicts, { version: ver, artifacts, interrupted })],
  ]);
}

/** --keep: print how to reach the failed scenario's guest and keep it up until Ctrl-C / SIGTERM. */
async function holdForDebugging(session: GuestSession, v: SuiteVerdict, artifacts: string): Promise<void> {
  const target = session.debugTarget!();
  // The driver's log as it was at the failure, before anyone pokes at the guest.
  await session.collectLogs().catch(() => undefined);
  try {
    const access = await prepareAccess(target, path.join(artifacts, v.variant, 'kept'));
    process.stderr.write(`\n${accessText(access, { title: `kept the ${v.variant} guest of "${v.name}" (${v.status}): ${v.summary}`, scenario: v.name })}\nPress Ctrl-C to stop the guest.\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      void target.machine.exited.then(stop);
    });
  } finally {
    // Also when the access could not be prepared: a kept guest nobody can reach must not outlive the run.
    await closeHandedOver(session).catch(() => undefined);
  }
}

/** dmahil shell: a fresh direct guest with edudma loaded, and the system ssh client on this terminal. */
async function shell(opts: ShellOptions): Promise<number> {
  const progress = stderrProgress(true);
  const { qemu, reference, driver } = await preflight(opts.accel, 'linux', progress, opts.qemu, opts.driver, opts.kernel);
  if (reference) progress(describeGuestKernel(reference.kernelVersion, opts.kernel));
  if (driver) progress(describeDriver(driver));
  const artifacts = path.resolve(opts.artifacts ?? path.join(repoRoot, 'reports', 'runs', `${timestamp()}-shell`));
  const session = await startGuest({
    profile: 'linux',
    variant: 'direct',
    artifactsDir: path.join(artifacts, 'direct'),
    accel: opts.accel,
    bootTimeoutMs: opts.bootTimeoutMs,
    onProgress: progress,
    qemuBinary: qemu.binary,
    linux: { ...(driver?.kind === 'linux' ? { driverOverride: { module: driver.module, tool: driver.tool } } : {}), ...(opts.kernel ? { kernelRoot: opts.kernel } : {}) },
  });
  try {
    const access = await prepareAccess(session.debugTarget!(), path.join(artifacts, 'direct', 'access'));
    process.stderr.write(`${accessText(access, { title: 'guest ready, edudma loaded (dmactl is /tmp/dmahil/dmactl); the same guest from another terminal:' })}\n`);
    return await interactiveSsh(access);
  } finally {
    await closeHandedOver(session);
  }
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'image') return imageMain(argv.slice(1), repoRoot);
  const cmd = parseCommandLine(argv);
  switch (cmd.command) {
    case 'help':
      process.stdout.write(USAGE + '\n');
      return 0;
    case 'version':
      process.stdout.write((await version()) + '\n');
      return 0;
    case 'run':
      return run(cmd);
    case 'explore':
      return (await exploreCommand(cmd)).code;
    case 'shell':
      return shell(cmd);
    case 'setup':
      return setupCommand();
    case 'doctor':
      // A --qemu that is not a usable QEMU is bad input (exit 2), as for run; the one on PATH is a check.
      if (cmd.qemu !== undefined) await checkQemuOption(cmd.qemu);
      return doctor({ json: cmd.json, repoRoot, cacheDir: cacheDir(), ...(cmd.qemu !== undefined ? { qemu: cmd.qemu } : {}), ...(cmd.driver !== undefined ? { driver: cmd.driver } : {}), ...(cmd.kernel ? { kernel: cmd.kernel } : {}) });
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    const line = e instanceof DmahilError ? e.describe() : (e as Error).stack ?? String(e);
    process.stderr.write(`dmahil: ${line}\n`);
    process.exitCode = 2;
  },
);
