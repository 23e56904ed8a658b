#!/usr/bin/env node
// dmahil command line: parse, run, print the verdict, exit 0 only when every scenario verified.
import fs from 'node:fs/promises';
import fsSync from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectCatalog, type CatalogEntry, type GuestVariant } from '../dma/catalog.js';
import { parseShard, runSuite, shardEntries, type SuiteVerdict } from '../dma/run-suite.js';
import { SnapshotSessionSource } from '../dma/snapshot-session-source.js';
import { CHEAP_WAITS } from '../snapshot/index.js';
import { ReusingSessionSource } from '../dma/session-source.js';
import { DmahilError, EnvironmentError, UsageError } from '../errors.js';
import { REFERENCE_AUTO_ACCEL, restoreLinuxGuest, startLinuxGuest, type LinuxSession } from '../guest/linux/profile.js';
import type { GuestSession } from '../guest/session.js';
import { startWindowsGuest } from '../guest/windows/profile.js';
import { imageMain } from '../../images/windows/cli.js';
import { readWindowsImage } from '../../images/windows/manifest.js';
import { resultsJson, type RunHost } from '../report/results-json.js';
import { htmlReport } from '../report/html.js';
import { outcome, type Verdict } from '../dma/verdict.js';
import { accessText, closeHandedOver, interactiveSsh, prepareAccess } from './shell.js';
import { doctor } from './doctor.js';
import { tally, verdictTable } from '../report/verdict-table.js';
import { parseCommandLine, USAGE, type RunOptions, type ShellOptions } from './args.js';
import { stderrProgress } from './progress.js';
import { checkQemu, type QemuInfo } from '../machine/qemu-check.js';
import { describeEdu, probeEduBehaviour } from '../machine/edu-behaviour.js';
import { needsEduBehaviour, notApplicable } from '../dma/applicability.js';
import { proveKvm } from './kvm-preflight.js';
import { buildReferenceImage, type ReferenceImage } from '../../images/linux/build.js';
import { buildLinuxDriver } from '../../guest-driver/linux/build.js';
import { DEFAULT_QEMU_BINARY } from '../machine/cmdline.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

async function version(): Promise<string> {
  const pkg = JSON.parse(await fs.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

async function run(opts: RunOptions): Promise<number> {
  // A missing or broken golden image is bad input: say so once, before anything is created or booted.
  if (opts.image !== 'linux') readWindowsImage(opts.image);
  const progress = stderrProgress(true);
  const selected = selectCatalog({ all: opts.all, grep: opts.grep });
  const entries = opts.shard ? shardEntries(selected, parseShard(opts.shard)) : selected;
  if (selected.length === 0) throw new UsageError(`no scenario matches --grep ${opts.grep}`, { hint: 'drop --grep, or add --all to search the full catalog' });
  if (entries.length === 0) {
    throw new UsageError(`shard ${opts.shard} has none of the ${selected.length} selected scenarios`, { hint: 'use fewer shards than scenarios, or add --all' });
  }
  const artifacts = path.resolve(opts.artifacts ?? path.join(repoRoot, 'reports', 'runs', timestamp()));
  checkArtifactsRoom(artifacts);
  const qemu = await preflight(opts.accel, opts.image, progress);
  // Measured, not assumed from the version: does this QEMU's edu give each control something to catch?
  const edu = entries.some(needsEduBehaviour) ? await probeEduBehaviour(DEFAULT_QEMU_BINARY) : undefined;
  if (edu) progress(describeEdu(edu));
  runHost = {
    qemu: `${qemu.version}${qemu.package ? ` (${qemu.package})` : ''}`,
    edu: edu ? describeEdu(edu) : null,
    accel: opts.accel === 'auto' && opts.image === 'linux' ? `auto: ${REFERENCE_AUTO_ACCEL} for the reference guest` : opts.accel,
  };
  await fs.mkdir(artifacts, { recursive: true });
  progress(`${entries.length} scenarios${opts.shard ? ` (shard ${opts.shard} of ${selected.length})` : ''}; artifacts in ${artifacts}`);
  // A variant's first boot logs to <artifacts>/<variant>; a later one (the fallback after a failed snapshot,
  // the replacement of a broken guest) to <variant>/boot-N, so it cannot overwrite the evidence of the first.
  const boots = new Map<string, number>();
  const bootDir = (variant: GuestVariant): string => {
    const n = (boots.get(variant.id) ?? 0) + 1;
    boots.set(variant.id, n);
    return n === 1 ? path.join(artifacts, variant.id) : path.join(artifacts, variant.id, `boot-${n}`);
  };
  const boot = (variant: GuestVariant): Promise<LinuxSession> =>
    startLinuxGuest({
      repoRoot,
      cacheDir: path.join(repoRoot, '.cache'),
      artifactsDir: bootDir(variant),
      forceBounce: variant.forceBounce,
      accel: opts.accel,
      bootTimeoutMs: opts.bootTimeoutMs,
      onProgress: progress,
      icount: CHEAP_WAITS,
    });

  const windows = (variant: GuestVariant): Promise<GuestSession> =>
    startWindowsGuest({
      image: opts.image,
      repoRoot,
      artifactsDir: bootDir(variant),
      forceBounce: variant.forceBounce,
      accel: opts.accel,
      bootTimeoutMs: opts.bootTimeoutMs,
      onProgress: progress,
    });

  // Interrupted (Ctrl-C, SIGTERM): the machine registry kills every QEMU; the results so far are written.
  const seen: SuiteVerdict[] = [];
  const ver = await version();
  const onSignal = (signal: NodeJS.Signals): void => {
    const why = `${signal} after ${seen.length} of ${entries.length} scenarios`;
    try {
      writeReportsSync(artifacts, seen, ver, why);
      progress(`interrupted (${why}); results so far in ${artifacts}`);
    } catch (e) {
      progress(`interrupted (${why}); ${e instanceof DmahilError ? e.describe() : (e as Error).message}`);
    }
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
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
    onVerdict: (v) => {
      seen.push(v);
      progress(`${v.status.padEnd(5)} ${v.name}: ${v.summary}`);
    },
    jobs: opts.jobs,
    ...(edu ? { notApplicable: (c: CatalogEntry) => notApplicable(c, edu) } : {}),
    // Windows guests restore through their own overlay per boot; snapshots are the reference guest's.
    source: opts.image !== 'linux' ? new ReusingSessionSource(windows) : opts.boot || opts.keep ? new ReusingSessionSource(boot, { keep }) : new SnapshotSessionSource({
      boot,
      restore: (snapshot, variant, n) =>
        restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(artifacts, variant.id, `restore-${n}`), readyTimeoutMs: opts.bootTimeoutMs }),
      key: (variant) => `linux ${variant.id} accel=${opts.accel} icount=${JSON.stringify(CHEAP_WAITS)}`,
      onProgress: progress,
    }),
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
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  for (const k of kept) await holdForDebugging(k.session, k.verdict, artifacts);
  return t.notOk === 0 && t.ok > 0 ? 0 : 1;
}

/**
 * Before any guest boots: a supported QEMU, and where a guest may run under KVM, proof that KVM runs a
 * Linux kernel (the reference kernel, booted through early boot: firmware alone proves too little).
 * --accel kvm without it is one line with the fix and exit 2, within seconds; with 'auto' the verdict
 * is remembered, so a Windows guest then gets TCG and one warning instead of a boot into a broken KVM.
 */
async function preflight(accel: RunOptions['accel'], image: string, progress: (m: string) => void = () => undefined): Promise<QemuInfo> {
  const qemu = await checkQemu(DEFAULT_QEMU_BINARY);
  let reference: ReferenceImage | undefined;
  if (image === 'linux') {
    // Both cached; a missing package or a kernel edudma cannot build for is bad input, not a failed scenario.
    reference = await buildReferenceImage({ cacheDir: path.join(repoRoot, '.cache', 'images'), onProgress: progress });
    await buildLinuxDriver({ kernelVersion: reference.kernelVersion, repoRoot, onProgress: progress });
  }
  // The reference guest's auto is TCG; any other guest that may get KVM first sees KVM run a kernel.
  if (accel === 'kvm' || (accel === 'auto' && image !== 'linux')) await proveKvm({ repoRoot, qemuBinary: qemu.binary, accel, reference, onProgress: progress });
  return qemu;
}

/**
 * The least free space a run's artifacts need: serial logs, QEMU logs, QMP transcripts, dmesg, memory
 * excerpts and the reports of a full catalog come to a few MiB (a memory dump of a hung guest needs more).
 */
const ARTIFACTS_MIN_FREE_BYTES = 32 * 1024 * 1024;

/** Refuse, before anything is created or booted, an artifacts folder on a file system without room. */
function checkArtifactsRoom(artifacts: string): void {
  let dir = artifacts;
  while (!fsSync.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  let free: number;
  try {
    const st = fsSync.statfsSync(dir);
    free = st.bavail * st.bsize;
  } catch {
    return; // cannot tell: the writes themselves will say
  }
  if (free >= ARTIFACTS_MIN_FREE_BYTES) return;
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
  throw new EnvironmentError(`only ${mib(free)} free for the artifacts in ${artifacts} (a run needs at least ${mib(ARTIFACTS_MIN_FREE_BYTES)} for its logs and reports)`, {
    hint: 'free space on that file system, or pass --artifacts DIR on one with room',
  });
}

/** Set once the run has checked its host; in every results.json written after that. */
let runHost: RunHost | undefined;

function runReport(artifacts: string, verdicts: SuiteVerdict[], ver: string, interrupted?: string) {
  return { ...resultsJson(verdicts, { version: ver, artifacts, ...(runHost ? { host: runHost } : {}) }), ...(interrupted ? { ok: false, interrupted } : {}) };
}

/**
 * results.json and report.html, synchronously (a signal handler calls it too). Each is written whole or
 * not at all (a .part file renamed into place); a failure is one clear error naming the folder and the fix.
 */
function writeReportsSync(artifacts: string, verdicts: SuiteVerdict[], ver: string, interrupted?: string): void {
  const files: Array<[string, () => string]> = [
    ['results.json', () => JSON.stringify(runReport(artifacts, verdicts, ver, interrupted), null, 2) + '\n'],
    ['report.html', () => htmlReport(verdicts, { version: ver, artifacts, interrupted })],
  ];
  for (const [name, text] of files) {
    const file = path.join(artifacts, name);
    const part = `${file}.part`;
    try {
      fsSync.mkdirSync(artifacts, { recursive: true });
      fsSync.writeFileSync(part, text());
      fsSync.renameSync(part, file);
    } catch (e) {
      fsSync.rmSync(part, { force: true });
      const code = (e as NodeJS.ErrnoException).code;
      throw new EnvironmentError(`cannot write ${file}: ${code === 'ENOSPC' ? 'no space left on device' : (e as Error).message}`, {
        hint: `free space on the file system of ${artifacts}, or pass --artifacts DIR on one with room`,
        cause: e,
      });
    }
  }
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
  await preflight(opts.accel, 'linux', progress);
  const artifacts = path.resolve(opts.artifacts ?? path.join(repoRoot, 'reports', 'runs', `${timestamp()}-shell`));
  const session = await startLinuxGuest({
    repoRoot,
    cacheDir: path.join(repoRoot, '.cache'),
    artifactsDir: path.join(artifacts, 'direct'),
    forceBounce: false,
    accel: opts.accel,
    bootTimeoutMs: opts.bootTimeoutMs,
    onProgress: progress,
  });
  try {
    const access = await prepareAccess(session.debugTarget(), path.join(artifacts, 'direct', 'access'));
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
    case 'shell':
      return shell(cmd);
    case 'doctor':
      return doctor({ json: cmd.json, repoRoot });
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
