// The Windows guest profile: boot the golden image through a per-run overlay, log in over OpenSSH,
// install the test-signed edudma package with pnputil, check the device started, run dmactl.exe held,
// and watch for a bug check (pvpanic) or a hang, keeping a memory dump and a screendump as evidence.
//
// What `direct` and `bounce` mean here: edudma asks for a DMA v3 adapter with DmaAddressWidth 28 (the
// edu's mask). Windows needs far more than 256 MiB, so any page above 256 MiB must go through map
// registers (bounce buffers) and a page below may be used directly — Windows decides per page. `bounce`
// gives the guest 4 GiB, so almost all of RAM is beyond the width and client buffers bounce; `direct`
// gives it 2 GiB on the same image and asserts nothing about bouncing: a correct driver passes either way,
// and the direct negative controls (wrong seed, address beyond the mask) do not depend on it. Truly
// unbounced DMA on Windows needs a driver that declares a wider DmaAddressWidth (see docs/windows.md).
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ArmedReport, InfoResult } from '../../contract/result.js';
import { EDU_DMA_BITS, type Scenario } from '../../contract/scenario.js';
import { DmahilError, UsageError } from '../../errors.js';
import { Machine } from '../../machine/index.js';
import type { DeviceModelMessage } from '../../machine/device-messages.js';
import type { QmpEvent } from '../../machine/qmp/index.js';
import { openGuestMemory } from '../../memory/index.js';
import { SshChannel, type ExecResult } from '../channel/ssh-channel.js';
import type { LineStream } from '../channel/line-stream.js';
import { DmactlServer } from '../dmactl-server.js';
import { GuestCommandTimeoutError, GuestNotReadyError } from '../channel/errors.js';
import { toDeviceModelEvents } from '../device-events.js';
import type { DebugTarget, DeviceModelEvent, GuestSession, GuestStartOptions, HeldRun, SessionMemory } from '../session.js';
import { readWindowsImage } from '../../../images/windows/manifest.js';
import {
  addDriverScript, deviceStateScript, driverStatusScript, GUEST_DIR, listDumpsScript, mkdirScript, osVersionScript, parseDeviceStates, parseDumpList,
  parseOsVersion, parsePnputil, parseTestSigning, requireDmaAdapter, requireDriverStarted, requireTestSigning, systemEventsScript, testSigningScript,
  trustCertificateScript, DriverStartError,
} from './guest-commands.js';
import { createOverlay } from './overlay.js';
import { cmdToken, powershellCommand, sftpPath, winJoin } from './powershell.js';
import {
  bootTimeScript, eduBdfFromQueryPci, parseRemappingState, parseVerifierState, parseVtdTrace, rebootScript, remappingReport, remappingStateScript,
  requireVerifierActive, verifierEnableScript, verifierStateScript, windowsMachineConfig, type RemappingReport, type VerifierState, type WindowsVariantMachine,
} from './variant.js';

/** The guest bug-checked (pvpanic GUEST_PANICKED / GUEST_CRASHLOADED). */
export class GuestBugCheckError extends DmahilError {}
/** The guest stopped answering while a command ran. */
export class GuestHangError extends DmahilError {}

/** The files of the driver package the profile uploads, from `make driver` (build/windows/<arch>/). */
export const PACKAGE_FILES = ['edudma.sys', 'edudma.inf', 'edudma.cat', 'edudma-test.cer', 'dmactl.exe'] as const;

export const DEFAULT_OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const DIRECT_MEMORY_MIB = 2048;
export const BOUNCE_MEMORY_MIB = 4096;
const COMMAND_TIMEOUT_MS = 120_000;
const RUN_TIMEOUT_MS = 300_000;

export interface WindowsGuestOptions extends GuestStartOptions {
  /** The golden image: its manifest (.json) or its .qcow2 with the manifest beside it. */
  image: string;
  /** Default: DIRECT_MEMORY_MIB or BOUNCE_MEMORY_MIB by variant; must exceed 256 for map registers. */
  memoryMiB?: number;
  cpus?: number;
  /** Default build/windows/<arch of the image>. */
  driverDir?: string;
  /** Keep the overlay disk after a run that went well too (it is always kept after a failure). */
  keepOverlay?: boolean;
  /** A Windows variant: Driver Verifier's DMA checking, intel-iommu (harness/guest/windows/variant.ts). */
  variant?: WindowsVariantMachine;
}

/** What the session needs of a machine (a Machine, or a fake in the specs). */
export interface WinMachine {
  readonly artifactsDir: string;
  isRunning(): boolean;
  readonly qmp: { execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T>; onEvent(listener: (e: QmpEvent) => void): () => void };
  deviceModelMessages(sinceMs?: number): DeviceModelMessage[];
  shutdown(): Promise<unknown>;
}

/** What the session needs of the SSH channel. */
export interface WinChannel {
  readonly isOpen: boolean;
  exec(command: string, opts: { timeoutMs: number; stdin?: string }): Promise<ExecResult>;
  /** A long-running command spoken to in lines (dmactl serve). */
  openLineStream(command: string): Promise<LineStream>;
  upload(localPath: string, remotePath: string, mode?: number): Promise<void>;
  download(remotePath: string, localPath: string): Promise<void>;
  close(): void;
}

export function packageDir(repoRoot: string, arch: 'x64' | 'x86'): string {
  return path.join(repoRoot, 'build', 'windows', arch);
}

/** Every package file present and readable, or a UsageError naming the missing ones and `make driver`. */
export async function checkDriverPackage(dir: string): Promise<void> {
  const missing: string[] = [];
  for (const f of PACKAGE_FILES) {
    try {
      await fs.access(path.join(dir, f), fs.constants.R_OK);
    } catch {
      missing.push(f);
    }
  }
  if (missing.length) throw new UsageError(`the Windows driver package in ${dir} lacks ${missing.join(', ')}`, { hint: 'build it with "make driver"' });
}

export async function startWindowsGuest(opts: WindowsGuestOptions): Promise<WindowsSession> {
  const progress = opts.onProgress ?? (() => undefined);
  const image = readWindowsImage(opts.image);
  const driverDir = opts.driverDir ?? packageDir(opts.repoRoot, image.manifest.arch);
  await checkDriverPackage(driverDir);
  const memoryMiB = opts.memoryMiB ?? (opts.forceBounce ? BOUNCE_MEMORY_MIB : DIRECT_MEMORY_MIB);
  if (memoryMiB <= 256) throw new UsageError(`a Windows guest with ${memoryMiB} MiB cannot run`, { hint: 'give it at least 2048 MiB; above 256 MiB the 28-bit edudma bounces through map registers' });
  await fs.mkdir(opts.artifactsDir, { recursive: true });

  const overlay = path.join(opts.artifactsDir, 'disk-overlay.qcow2');
  progress(`creating the run overlay over ${image.disk}`);
  await createOverlay(image.disk, overlay);
  let firmware: { kind: 'ovmf'; code: string; vars: string } | undefined;
  if (image.manifest.firmware === 'uefi') {
    const code = image.ovmfCode ?? DEFAULT_OVMF_CODE;
    await fs.access(code, fs.constants.R_OK).catch(() => {
      throw new UsageError(`OVMF firmware ${code} is not readable`, { hint: 'install it: apt-get install -y ovmf' });
    });
    const vars = path.join(opts.artifactsDir, 'ovmf-vars.fd');
    await fs.copyFile(image.ovmfVars!, vars); // the guest writes its variable store: never the golden one
    firmware = { kind: 'ovmf', code, vars };
  }

  const extras = [opts.variant?.iommu, opts.variant?.verifier ? 'verifier' : undefined].filter(Boolean);
  progress(`booting Windows (${memoryMiB} MiB, ${opts.forceBounce ? 'bounce' : 'direct'}${extras.length ? `, ${extras.join(', ')}` : ''})`);
  const machine = await Machine.launch(
    windowsMachineConfig({
      name: ['windows', opts.forceBounce ? 'bounce' : 'direct', ...extras].join('-'),
      memoryMiB,
      cpus: opts.cpus ?? 2,
      accel: opts.accel,
      overlay,
      ...(firmware ? { firmware } : {}),
      ...(opts.qemuBinary ? { qemuBinary: opts.qemuBinary } : {}),
      ...(opts.variant ? { variant: opts.variant } : {}),
    }),
    { artifactsDir: opts.artifactsDir, onWarning: progress },
  );
  const watcher = new PanicWatcher(machine);
  const serialLog = path.join(opts.artifactsDir, 'serial.log');
  let channel: SshChannel | undefined;
  const privateKey = await fs.readFile(image.privateKeyFile, 'utf8');
  const login = (): Promise<SshChannel> =>
    SshChannel.waitReady(
      { host: '127.0.0.1', port: machine.sshPort, username: image.manifest.username, privateKey },
      { timeoutMs: opts.bootTimeoutMs, deadReason: () => machine.deadReason() ?? (watcher.panicked ? 'the guest bug-checked' : undefined), logFile: serialLog },
    );
  try {
    progress(`waiting for Windows' OpenSSH login (${machine.accel.toUpperCase()}; minutes under TCG)`);
    channel = await Promise.race([login(), watcher.whenPanicked.then((e) => Promise.reject(e))]);
  } catch (e) {
    const session = new WindowsSession(machine, undefined, undefined, { artifactsDir: opts.artifactsDir, overlay, driverDir, keepOverlay: true, watcher });
    await session.captureEvidence('boot').catch(() => undefined);
    await session.close();
    if (watcher.panicked) throw watcher.panicError();
    if (e instanceof GuestNotReadyError) {
      throw new GuestNotReadyError(`Windows did not offer an SSH login: ${e.message}`, {
        hint: `is OpenSSH Server installed and enabled in the image, with the harness's key and a firewall rule? Rebuild it with "make windows-image"; the screendump and the overlay ${overlay} are kept`,
        logFile: path.join(opts.artifactsDir, 'screen-boot.ppm'),
        cause: e,
      });
    }
    throw e;
  }
  const memory = await openGuestMemory(machine);
  const debug: DebugTarget = { machine, ssh: { host: '127.0.0.1', port: machine.sshPort, user: image.manifest.username, privateKeyFile: image.privateKeyFile } };
  const session = new WindowsSession(machine, channel, memory, { artifactsDir: opts.artifactsDir, overlay, driverDir, keepOverlay: opts.keepOverlay ?? false, watcher, debug, reconnect: login, ...(opts.variant ? { variant: opts.variant } : {}) });
  try {
    progress('installing edudma (pnputil)');
    await session.installDriver();
    if (opts.variant?.verifier) {
      progress('Driver Verifier: DMA checking on edudma.sys, then one reboot (the settings apply at boot)');
      await session.enableVerifier(opts.bootTimeoutMs);
      progress('Driver Verifier verifies edudma.sys with DMA checking (a violation is bug check 0xE6)');
    }
    if (opts.variant?.iommu) progress((await session.reportRemapping()).summary);
    return session;
  } catch (e) {
    await session.collectLogs().catch(() => undefined);
    await session.close();
    throw e;
  }
}

/** Watches QMP for a bug check: pvpanic's GUEST_PANICKED (no dump configured) or GUEST_CRASHLOADED (dump being written). */
export class PanicWatcher {
  event: QmpEvent | undefined;
  readonly whenPanicked: Promise<GuestBugCheckError>;
  private resolve!: (e: GuestBugCheckError) => void;

  constructor(machine: Pick<WinMachine, 'qmp'>) {
    this.whenPanicked = new Promise((r) => (this.resolve = r));
    this.whenPanicked.catch(() => undefined);
    machine.qmp.onEvent((e) => {
      if ((e.event === 'GUEST_PANICKED' || e.event === 'GUEST_CRASHLOADED') && !this.event) {
        this.event = e;
        this.resolve(this.panicError());
      }
    });
  }

  get panicked(): boolean {
    return this.event !== undefined;
  }

  panicError(): GuestBugCheckError {
    const e = this.event;
    const info = e?.data?.info as Record<string, unknown> | undefined;
    const code = info && info.type === 'hyper-v' ? `, bug check 0x${Number(info.arg1).toString(16)} (${['arg2', 'arg3', 'arg4', 'arg5'].map((k) => `0x${Number(info[k]).toString(16)}`).join(', ')})` : '';
    return new GuestBugCheckError(`the Windows guest bug-checked (${e?.event ?? 'pvpanic'}${code})`, {
      hint: 'open the memory dump in WinDbg (guest-memory.*) and look at the screendump; MEMORY.DMP is in the kept overlay disk after the next boot',
    });
  }
}

export interface WindowsSessionOptions {
  artifactsDir: string;
  overlay: string;
  driverDir: string;
  keepOverlay: boolean;
  watcher?: PanicWatcher;
  /** The real machine and SSH login, for dumps, --keep and `dmahil shell`. */
  debug?: DebugTarget;
  /** A new SSH login, after the verifier variant's reboot. */
  reconnect?: () => Promise<WinChannel>;
  variant?: WindowsVariantMachine;
}

export class WindowsSession implements GuestSession {
  readonly profile = 'windows';
  /** edudma.sys runs a transfer larger than its map registers window by window, reusing them. */
  readonly bounceMappings = 'per-window' as const;
  private failed = false;
  private closed = false;
  private evidenceTaken = new Set<string>();
  private server?: DmactlServer;
  readonly startedAt = new Date();
  private readonly watcher: PanicWatcher;

  constructor(
    readonly machine: WinMachine,
    private channel: WinChannel | undefined,
    private readonly mem: SessionMemory | undefined,
    private readonly opts: WindowsSessionOptions,
  ) {
    this.watcher = opts.watcher ?? new PanicWatcher(machine);
  }

  get artifactsDir(): string {
    return this.opts.artifactsDir;
  }

  get memory(): SessionMemory {
    if (!this.mem) throw new DmahilError('the Windows session has no guest memory (it never finished booting)');
    return this.mem;
  }

  private get ch(): WinChannel {
    if (!this.channel) throw new DmahilError('the Windows session has no SSH connection');
    return this.channel;
  }

  private fail<E extends Error>(e: E): E {
    this.failed = true;
    return e;
  }

  /** Run a PowerShell script; a bug check or a hang while it runs fails with that cause. */
  async ps(script: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const r = await this.guarded(this.ch.exec(powershellCommand(script), { timeoutMs }), 'a PowerShell command');
    if (r.code !== 0) {
      throw this.fail(new DmahilError(`a guest PowerShell command failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split(/\r?\n/).slice(-3).join(' | ').slice(0, 400)}`, {
        hint: 'see the System event log in the artifacts',
      }));
    }
    return r.stdout;
  }

  /** Race a guest operation against a bug check; turn a time limit into a hang with evidence. */
  private async guarded<T>(op: Promise<T>, what: string): Promise<T> {
    op.catch(() => undefined);
    try {
      return await Promise.race([op, this.watcher.whenPanicked.then((e) => Promise.reject(e))]);
    } catch (e) {
      if (e instanceof GuestBugCheckError) {
        await this.captureEvidence('panic').catch(() => undefined);
        throw this.fail(e);
      }
      if (e instanceof GuestCommandTimeoutError) {
        await this.captureEvidence('hang').catch(() => undefined);
        throw this.fail(new GuestHangError(`the Windows guest stopped answering during ${what}: ${e.message}`, {
          hint: 'look at the screendump and the memory dump in the artifacts; with NMICrashDump on, QMP inject-nmi forces a bug check and a MEMORY.DMP',
          logFile: path.join(this.artifactsDir, 'screen-hang.ppm'),
          cause: e,
        }));
      }
      throw this.fail(e as Error);
    }
  }

  async installDriver(): Promise<void> {
    const log = path.join(this.artifactsDir, 'windows');
    const signing = parseTestSigning(await this.ps(testSigningScript()));
    try {
      requireTestSigning(signing);
    } catch (e) {
      throw this.fail(e as Error);
    }
    await this.ps(mkdirScript());
    for (const f of ['edudma.sys', 'edudma.inf', 'edudma.cat', 'edudma-test.cer', 'dmactl.exe']) {
      await this.guarded(this.ch.upload(path.join(this.opts.driverDir, f), sftpPath(winJoin(GUEST_DIR, f))), `the upload of ${f}`);
    }
    await this.ps(trustCertificateScript(winJoin(GUEST_DIR, 'edudma-test.cer')));
    const pnp = parsePnputil(await this.ps(addDriverScript(winJoin(GUEST_DIR, 'edudma.inf'))));
    await fs.mkdir(log, { recursive: true });
    await fs.writeFile(path.join(log, 'pnputil.txt'), `exit ${pnp.code}\n${pnp.output}`);
    const devices = parseDeviceStates(await this.ps(deviceStateScript()));
    try {
      requireDriverStarted(devices, path.join(log, 'setupapi.dev.log'));
    } catch (e) {
      if (e instanceof DriverStartError && !pnp.ok) {
        throw this.fail(new DriverStartError(`${e.message}; pnputil exited with ${pnp.code}: ${pnp.output.trim().split(/\r?\n/).slice(-2).join(' | ')}`, e.problemCode, { hint: e.hint, logFile: e.logFile }));
      }
      throw this.fail(e as Error);
    }
    if (pnp.rebootRequired) throw this.fail(new DriverStartError('pnputil installed edudma but asks for a reboot (3010)', undefined, { hint: 'the device could not be restarted in place; read setupapi.dev.log', logFile: path.join(log, 'setupapi.dev.log') }));
    const info = await this.info();
    if (!info.ok) {
      throw this.fail(new DriverStartError(`edudma started but dmactl info failed: ${info.error?.code}: ${info.error?.message}`, undefined, { hint: 'read the driver status in the artifacts', logFile: path.join(log, 'driver-status.txt') }));
    }
    // The machine's edu keeps QEMU's default mask (28 bits): a v2 adapter (32 bits) would miss it.
    try {
      requireDmaAdapter(parseOsVersion(await this.ps(osVersionScript())), info, EDU_DMA_BITS);
    } catch (e) {
      throw this.fail(e as Error);
    }
  }

  /**
   * The verifier variant: Driver Verifier's DMA checking on edudma.sys in this run's overlay (never the
   * golden image), one reboot to apply it, then the proof that the running kernel verifies edudma.sys
   * and that the device started again under it.
   */
  async enableVerifier(rebootTimeoutMs = 1_800_000): Promise<VerifierState> {
    const dir = path.join(this.artifactsDir, 'windows');
    const file = path.join(dir, 'verifier.txt');
    await fs.mkdir(dir, { recursive: true });
    const enable = JSON.parse(await this.ps(verifierEnableScript())) as { code: number; output: string };
    await fs.writeFile(file, `verifier /flags 0x80 /driver edudma.sys: exit ${enable.code}\n${enable.output ?? ''}\n`);
    const bootBefore = (await this.ps(bootTimeScript())).trim();
    await this.server?.close();
    this.server = undefined;
    await this.reboot(bootBefore, rebootTimeoutMs);
    const state = parseVerifierState(await this.ps(verifierStateScript()));
    await fs.appendFile(file, `after the reboot: VerifyDrivers=${state.raw.verifyDrivers} VerifyDriverLevel=${state.raw.verifyDriverLevel ?? 'absent'}\n--- verifier /querysettings\n${state.raw.settings}\n--- verifier /query\n${state.raw.query}\n`);
    try {
      requireVerifierActive(state, file);
      requireDriverStarted(parseDeviceStates(await this.ps(deviceStateScript())), path.join(dir, 'setupapi.dev.log'));
    } catch (e) {
      throw this.fail(e as Error);
    }
    const info = await this.info();
    if (!info.ok) throw this.fail(new DriverStartError(`edudma started under Driver Verifier but dmactl info failed: ${info.error?.code}: ${info.error?.message}`, undefined, { logFile: file }));
    return state;
  }

  /** Restart Windows in the same QEMU and log in again; done when the boot time has changed. */
  private async reboot(bootBefore: string, timeoutMs: number): Promise<void> {
    const reconnect = this.opts.reconnect;
    if (!reconnect) throw this.fail(new DmahilError('this Windows session cannot log in again after a reboot'));
    // shutdown.exe returns before Windows goes down; the session may also end under it.
    await this.ch.exec(powershellCommand(rebootScript()), { timeoutMs: 30_000 }).catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.channel?.close();
      this.channel = await this.guarded(reconnect(), 'the reboot');
      const now = await this.channel.exec(powershellCommand(bootTimeScript()), { timeoutMs: 30_000 }).then((r) => (r.code === 0 ? r.stdout.trim() : undefined), () => undefined);
      if (now !== undefined && now !== bootBefore) return;
      if (Date.now() > deadline) {
        throw this.fail(new GuestHangError(`Windows did not come back from its reboot within ${Math.round(timeoutMs / 1000)} s`, { hint: 'look at the screendump; boot the kept overlay by hand to see where it stops' }));
      }
      await new Promise((r) => setTimeout(r, 2000)); // still the old boot: the restart has not begun
    }
  }

  /**
   * The iommu variant: whether Windows remapped the edu's DMA. On only when QEMU's own trace shows VT-d
   * translation on for the edu's slot; the guest's opt-in and policy are reported beside it, never as proof.
   */
  async reportRemapping(): Promise<RemappingReport> {
    const pci = await this.machine.qmp.execute('query-pci', undefined, { timeoutMs: 10_000 }).catch(() => undefined);
    const bdf = eduBdfFromQueryPci(pci);
    const guest = await this.ch
      .exec(powershellCommand(remappingStateScript()), { timeoutMs: COMMAND_TIMEOUT_MS })
      .then((r) => (r.code === 0 ? parseRemappingState(r.stdout) : undefined))
      .catch(() => undefined);
    const stderr = await fs.readFile(path.join(this.machine.artifactsDir, 'qemu-stderr.log'), 'utf8').catch(() => '');
    const report = remappingReport(bdf, parseVtdTrace(stderr, bdf ?? ''), guest);
    await fs.mkdir(path.join(this.artifactsDir, 'windows'), { recursive: true });
    await fs.writeFile(path.join(this.artifactsDir, 'windows', 'dma-remapping.json'), JSON.stringify(report, null, 2) + '\n');
    return report;
  }

  private dmactl(args: string[]): string {
    return [winJoin(GUEST_DIR, 'dmactl.exe'), ...args].map(cmdToken).join(' ');
  }

  /** One dmactl.exe serve for the session: a process start per command is slow on Windows too. */
  private get dmactlServer(): DmactlServer {
    return (this.server ??= new DmactlServer({
      open: () => this.ch.openLineStream(this.dmactl(['serve'])),
      contains: (gpa, len) => this.memory.contains(gpa, len),
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      runTimeoutMs: RUN_TIMEOUT_MS,
    }));
  }

  info(): Promise<InfoResult> {
    return this.guarded(this.dmactlServer.info(), 'dmactl info');
  }

  async run(scenario: Scenario, onArmed?: (armed: ArmedReport) => Promise<void>): Promise<HeldRun> {
    const held = await this.guarded(this.dmactlServer.run(scenario, onArmed), `dmactl run (${scenario.direction} ${scenario.size} B)`);
    return { ...held, release: () => this.guarded(held.release(), 'the release of a held run') };
  }

  debugTarget(): DebugTarget {
    if (!this.opts.debug) throw new DmahilError('this Windows session has no real machine behind it');
    return this.opts.debug;
  }

  isHealthy(): boolean {
    return !this.closed && this.machine.isRunning() && !this.watcher.panicked && (this.channel?.isOpen ?? false);
  }

  deviceModelEvents(sinceMs: number): DeviceModelEvent[] {
    return toDeviceModelEvents(this.machine.deviceModelMessages(sinceMs));
  }

  /**
   * A screendump and a memory dump, once per reason: win-dmp when the guest's vmcoreinfo driver is
   * there (WinDbg opens it), else ELF.
   */
  async captureEvidence(reason: string): Promise<string[]> {
    if (this.evidenceTaken.has(reason) || !this.machine.isRunning()) return [];
    this.evidenceTaken.add(reason);
    const made: string[] = [];
    const screen = path.join(this.artifactsDir, `screen-${reason}.ppm`);
    await this.machine.qmp.execute('screendump', { filename: screen }, { timeoutMs: 30_000 }).then(() => made.push(screen), () => undefined);
    if (reason !== 'boot') {
      await this.machine.qmp.execute('stop', undefined, { timeoutMs: 10_000 }).catch(() => undefined);
      for (const format of ['win-dmp', 'elf'] as const) {
        const file = path.join(this.artifactsDir, `guest-memory-${reason}.${format === 'elf' ? 'elf' : 'dmp'}`);
        try {
          await this.machine.qmp.execute('dump-guest-memory', { paging: false, protocol: `file:${file}`, format, detach: false }, { timeoutMs: 600_000 });
          made.push(file);
          break;
        } catch {
          await fs.rm(file, { force: true }).catch(() => undefined);
        }
      }
    }
    return made;
  }

  /** The driver's status and log, setupapi.dev.log, System errors since boot, and crash dumps when present. */
  async collectLogs(): Promise<void> {
    const dir = path.join(this.artifactsDir, 'windows');
    await fs.mkdir(dir, { recursive: true });
    const errors: string[] = [];
    if (!this.channel?.isOpen) {
      await fs.writeFile(path.join(dir, 'collect-errors.txt'), 'no SSH connection to the guest: nothing collected from inside it (see the screendumps and memory dumps)\n');
      return;
    }
    const step = async (name: string, f: () => Promise<void>): Promise<void> => {
      try {
        await f();
      } catch (e) {
        errors.push(`${name}: ${(e as Error).message}`);
      }
    };
    await step('driver status', async () => fs.writeFile(path.join(dir, 'driver-status.txt'), await this.ps(driverStatusScript())));
    await step('setupapi.dev.log', () => this.ch.download(sftpPath('C:\\Windows\\INF\\setupapi.dev.log'), path.join(dir, 'setupapi.dev.log')));
    await step('System event log', async () => fs.writeFile(path.join(dir, 'system-events.txt'), await this.ps(systemEventsScript(new Date(this.startedAt.getTime() - 3600_000).toISOString()))));
    await step('crash dumps', async () => {
      for (const d of parseDumpList(await this.ps(listDumpsScript()))) {
        await this.ch.download(sftpPath(d.path), path.join(dir, path.win32.basename(d.path)));
      }
    });
    await fs.writeFile(path.join(dir, 'collect-errors.txt'), errors.length ? errors.join('\n') + '\n' : 'none\n');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // The whole run's view: Windows may switch the edu's translation after the install.
    if (this.opts.variant?.iommu && this.channel?.isOpen && !this.watcher.panicked) await this.reportRemapping().catch(() => undefined);
    this.closed = true;
    await this.server?.close();
    this.channel?.close();
    await this.mem?.close();
    await this.machine.shutdown();
    if (!this.failed && !this.opts.keepOverlay && !this.watcher.panicked) await fs.rm(this.opts.overlay, { force: true });
  }

  /** True when a failure or a bug check was seen: the overlay is kept. */
  get keepsOverlay(): boolean {
    return this.failed || this.opts.keepOverlay || this.watcher.panicked;
  }
}
