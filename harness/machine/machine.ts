// A running QEMU machine: launch (validate, pick accel/run dir/port, spawn, connect QMP), observe
// (device-model messages, exit cause), and shut down (quit → SIGTERM → SIGKILL, then clean up).
// Knows nothing of guests.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { validateMachineConfig, type MachineConfig } from './config.js';
import { chooseAccel, type ResolvedAccel } from './accel.js';
import { DEAD_RUN_STATES } from './kvm-probe.js';
import { agentSocketPath, buildQemuCommand, DEFAULT_QEMU_BINARY, shellQuote, type QemuCommand } from './cmdline.js';
import { chooseRunDirBase, createRamFile, createRunDir, removeRunDir, sweepStaleRunDirs } from './run-dir.js';
import { HOSTFWD_FAILURE, pickFreePort, type PortPicker } from './ports.js';
import { checkConfigFiles, logsInvalidMem, requireQemu, requireSetpriv } from './launch-checks.js';
import { QemuProcess, delay, type ProcessExit } from './qemu-process.js';
import { classifyExit, type MachineExit } from './exit.js';
import { registerMachine, unregisterMachine, type RegisteredMachine } from './registry.js';
import type { DeviceModelMessage } from './device-messages.js';
import { QemuStartError } from './errors.js';
import { DmahilError } from '../errors.js';
import { QmpClient, type QmpTranscriptEntry } from './qmp/index.js';
import { ramLayout, type RamLayout } from '../memory/address-map.js';

export interface LaunchOptions {
  /** Kept after the run: serial.log, qemu-stdout.log, qemu-stderr.log, qmp.log, cmdline.txt. Created if missing. */
  artifactsDir: string;
  /** Where the private run directory goes. Default /dev/shm when it has room for the RAM, else os.tmpdir(). */
  runDirBase?: string;
  /** Spawn to QMP ready. Default 30 s. */
  launchTimeoutMs?: number;
  /** Replaces the free-port picker (specs use it to force a host-forward collision). */
  pickPort?: PortPicker;
  /** Ports to try when QEMU cannot bind the host forward. Default 5. */
  portAttempts?: number;
  /**
   * Fill the RAM file (created 0600 at its full size, all zero) with a saved guest RAM image while QEMU
   * starts: only with `incoming`, where nothing runs the guest or writes its RAM before the state loads.
   * Write in place (never truncate: QEMU has it mapped). launch() returns once both are done; a throw
   * aborts the launch and the run directory, with the half-written file, is removed.
   */
  fillRamFile?: (ramFile: string) => Promise<void>;
  /**
   * Told once per process when accel 'auto' falls back to TCG because KVM cannot run a guest here.
   * Default: one line on stderr.
   */
  onWarning?: (message: string) => void;
}

/** A snapshot save or restore (QEMU migration) failed. */
export class MigrationError extends DmahilError {}

export interface SaveStateResult {
  /** Bytes of device state written (guest RAM itself is not in it: it stays in the shared RAM file). */
  bytes: number;
  ms: number;
}

export interface ShutdownOptions {
  /** How long each step (QMP quit, then SIGTERM) gets before the next. Default 5000 ms. */
  graceMs?: number;
}

const MiB = 1024 * 1024;
const SOCKET_POLL_MS = 10;

export class Machine {
  readonly exited: Promise<MachineExit>;
  private shutdownRequested = false;
  private shutdownPromise: Promise<MachineExit> | undefined;
  private shutdownEvent: { guest?: boolean; reason?: string } | undefined;
  private guestPanicked = false;
  /** A run state the vCPU never leaves (internal-error, shutdown, ...), seen after a STOP event. */
  private deadRunState: string | undefined;

  private constructor(
    readonly config: MachineConfig,
    readonly accel: ResolvedAccel,
    readonly runDir: string,
    readonly artifactsDir: string,
    /** Host side of the 127.0.0.1 forward to config.nic.guestPort. */
    readonly sshPort: number,
    /** Guest RAM backing file (shared, live); undefined when config.sharedRam is false. */
    readonly ramFile: string | undefined,
    readonly memoryLayout: RamLayout,
    readonly qmp: QmpClient,
    private readonly proc: QemuProcess,
    private readonly registration: RegisteredMachine,
    private readonly qmpLog: fs.WriteStream,
  ) {
    qmp.onEvent((e) => {
      if (e.event === 'SHUTDOWN') this.shutdownEvent = e.data as { guest?: boolean; reason?: string };
      if (e.event === 'GUEST_PANICKED') this.guestPanicked = true;
      if (e.event === 'STOP') {
        void qmp.execute<{ status: string }>('query-status').then(
          (st) => {
            if (DEAD_RUN_STATES.has(st.status)) this.deadRunState = st.status;
          },
          () => undefined,
        );
      }
    });
    // QEMU sends SHUTDOWN / GUEST_PANICKED just before exiting; read the socket to EOF before classifying.
    const qmpClosed = new Promise<void>((resolve) => qmp.onClose(() => resolve()));
    this.exited = proc.exited.then(async (e) => {
      await Promise.race([qmpClosed, delay(1000)]);
      return this.toMachineExit(e);
    });
  }

  get name(): string {
    return this.config.name;
  }

  /**
   * The host end of the agent port (config.agentPort): a stream to whatever guest process holds the port
   * open. Connect before a restored guest runs, so the guest sees the host connected all along.
   */
  connectAgent(timeoutMs = 5000): Promise<net.Socket> {
    if (!this.config.agentPort) return Promise.reject(new DmahilError('this machine has no agent port (config.agentPort)'));
    const file = agentSocketPath(this.runDir);
    return new Promise((resolve, reject) => {
      const socket = net.connect(file);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new DmahilError(`the agent port socket ${file} did not accept within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new DmahilError(`cannot connect to the agent port socket ${file}: ${e.message}`, { cause: e }));
      });
    });
  }

  /** Called when the guest closes the agent port (the process holding it ended). Returns the unsubscribe function. */
  onAgentPortClosed(listener: () => void): () => void {
    return this.qmp.onEvent((e) => {
      if (e.event === 'VSERPORT_CHANGE' && e.data.id === 'agent-port' && e.data.open === false) listener();
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  static async launch(input: MachineConfig, options: LaunchOptions): Promise<Machine> {
    const config = validateMachineConfig(input);
    checkConfigFiles(config);
    const binary = requireQemu(config.qemuBinary ?? DEFAULT_QEMU_BINARY);
    const setpriv = requireSetpriv();
    const choice = await chooseAccel(config.accel, binary, setpriv, config.kernel);
    const accel = choice.accel;
    if (choice.warning) (options.onWarning ?? ((w: string) => process.stderr.write(`dmahil: ${w}\n`)))(choice.warning);
    const artifactsDir = path.resolve(options.artifactsDir);
    fs.mkdirSync(artifactsDir, { recursive: true });
    const ramBytes = config.memoryMiB * MiB;
    const { base } = chooseRunDirBase(config.sharedRam === false ? 0 : ramBytes, options.runDirBase);
    sweepStaleRunDirs(base);
    const runDir = createRunDir(path.resolve(base), config.name);

    let proc: QemuProcess | undefined;
    let filling: Promise<void> | undefined;
    const registration: RegisteredMachine = { runDir, killNow: () => proc?.signal('SIGKILL') };
    registerMachine(registration);
    const qmpLog = fs.createWriteStream(path.join(artifactsDir, 'qmp.log'), { flags: 'w' });
    qmpLog.on('error', () => {}); // a full disk loses log lines; it must not crash the harness
    const log = artifactPaths(artifactsDir);
    try {
      const deadline = Date.now() + (options.launchTimeoutMs ?? 30_000);
      const attempts = options.portAttempts ?? 5;
      const pickPort = options.pickPort ?? pickFreePort;
      for (let attempt = 1; ; attempt++) {
        const hostPort = await pickPort();
        const cmd = buildQemuCommand({ config, accel, runDir, artifactsDir, hostPort, invalidMemLog: config.logGuestErrors !== false && logsInvalidMem(binary) });
        if (cmd.ramFile && attempt === 1) {
          const ramFile = cmd.ramFile;
          const noRoom = (e: unknown): unknown => noRoomError(e, ramFile, `guest RAM needs up to ${config.memoryMiB} MiB in ${base}: free space there`) ?? e;
          try {
            createRamFile(ramFile);
          } catch (e) {
            throw noRoom(e);
          }
          if (options.fillRamFile) {
            if (!config.incoming) throw new QemuStartError('fillRamFile needs an incoming migration (config.incoming): a running guest would race the fill');
            fs.truncateSync(ramFile, ramBytes);
            filling = options.fillRamFile(ramFile).catch((e: unknown) => Promise.reject(noRoom(e)));
            filling.catch(() => undefined); // awaited below; QEMU may fail first
          }
        }
        fs.rmSync(cmd.qmpSocket, { force: true }); // a failed attempt leaves its socket behind
        const argv = [setpriv, '--pdeathsig', 'SIGKILL', '--', binary, ...cmd.args];
        writeArtifact(log.cmdline, `${attempt > 1 ? `# attempt ${attempt}\n` : ''}${shellQuote(argv)}\n`, attempt > 1);
        proc = QemuProcess.start({ setpriv, binary, args: cmd.args, stdoutLog: log.stdout, stderrLog: log.stderr, appendLogs: attempt > 1 });

        const qmp = await connectQmp(proc, cmd, deadline, qmpLog);
        if (qmp === 'exited') {
          const exit = await proc.exited;
          const stderr = proc.earlyStderr;
          if (stderr.some((l) => HOSTFWD_FAILURE.test(l)) && attempt < attempts) continue; // port taken since we tested it
          throw new QemuStartError(`QEMU exited at start (${status(exit)}): ${proc.firstStderrLine() ?? '(nothing on stderr)'}`, {
            logFile: log.stderr,
            hint: `the full command is in ${log.cmdline}`,
          });
        }
        await checkAccel(qmp, accel, log.stderr);
        await filling;
        const layout = ramLayout('q35', ramBytes);
        return new Machine(config, accel, runDir, artifactsDir, hostPort, cmd.ramFile, layout, qmp, proc, registration, qmpLog);
      }
    } catch (err) {
      proc?.signal('SIGKILL');
      if (proc) await proc.exited;
      await filling?.catch(() => undefined); // nothing may still write into the run dir we remove
      unregisterMachine(registration);
      removeRunDir(runDir);
      qmpLog.end();
      throw err;
    }
  }

  /** True once QEMU reported GUEST_PANICKED (with panicAction 'pause' the VM is stopped, not gone). */
  get hasPanicked(): boolean {
    return this.guestPanicked;
  }

  isRunning(): boolean {
    return this.proc.isRunning;
  }

  /**
   * Why this guest will never come up, or undefined while it still may: QEMU exited, KVM reported an
   * internal error, or the vCPU stopped in a state it never leaves. A boot wait polls this so a dead
   * boot fails within moments, not at its timeout. A VM the harness paused is not dead.
   */
  deadReason(): string | undefined {
    if (!this.proc.isRunning) return 'QEMU exited';
    const kvm = this.proc.messages.find((m) => m.kind === 'kvm-internal-error');
    if (kvm) return `KVM stopped the vCPU ("${kvm.line}"): KVM cannot run this guest here; use --accel tcg`;
    if (this.guestPanicked) return 'the guest panicked (pvpanic)';
    if (this.deadRunState) return `the vCPU stopped: run state ${this.deadRunState}`;
    return undefined;
  }

  /**
   * Messages seen so far, optionally only those read at or after `sinceMs` (a Date.now() value). A burst
   * of one kind keeps its first few; the entry after them counts the rest in `more` (messageCount sums).
   */
  deviceModelMessages(sinceMs?: number): DeviceModelMessage[] {
    return sinceMs === undefined ? [...this.proc.messages] : this.proc.log.since(sinceMs);
  }

  /** Called for each new message as it is read. Returns the unsubscribe function. */
  onDeviceModelMessage(listener: (message: DeviceModelMessage) => void): () => void {
    return this.proc.onMessage(listener);
  }

  /**
   * Save the device state to `file` with QEMU migration and x-ignore-shared: guest RAM stays in the shared
   * RAM file (copy it while the VM is stopped for a consistent pair). Leaves the VM stopped; `resume()`
   * continues it. The file appears only once complete (written to `file.part`, then renamed).
   */
  async saveDeviceState(file: string, opts: { timeoutMs?: number } = {}): Promise<SaveStateResult> {
    if (!this.ramFile) throw new MigrationError('saveDeviceState needs the shared RAM file (config.sharedRam)');
    if (/['\n]/.test(file)) throw new MigrationError(`state file path ${JSON.stringify(file)} contains a quote or newline`);
    const started = performance.now();
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    const part = `${file}.part`;
    const failed = `${file}.failed`;
    fs.rmSync(failed, { force: true });
    await this.qmp.execute('stop');
    await this.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
    // exec: runs under /bin/sh -c. The rename (or the .failed marker) says the writer has finished.
    const uri = `exec:cat > '${part}' && mv '${part}' '${file}' || { rm -f '${part}'; : > '${failed}'; }`;
    await this.qmp.execute('migrate', { uri });
    const status = await this.waitMigration(deadline);
    const stderrLog = path.join(this.artifactsDir, 'qemu-stderr.log');
    const why = (): string => {
      const line = lastWriteFailure(stderrLog);
      return line ? `; QEMU's stderr says "${line}"` : '';
    };
    const dir = path.dirname(path.resolve(file));
    if (status.status !== 'completed') {
      fs.rmSync(part, { force: true });
      throw new MigrationError(`saving the device state to ${dir} failed: migration ${status.status}${status['error-desc'] ? `: ${status['error-desc']}` : ''}${why()}`, {
        hint: `check that ${dir} has room and is writable`,
        logFile: stderrLog,
      });
    }
    while (!fs.existsSync(file)) {
      if (fs.existsSync(failed)) {
        fs.rmSync(failed, { force: true });
        throw new MigrationError(`writing the device state to ${file} failed${why() || ' (the writer exited with an error)'}`, {
          hint: `check that ${dir} has room and is writable`,
          logFile: stderrLog,
        });
      }
      if (Date.now() > deadline) throw new MigrationError(`the device state writer did not finish ${file} in time`);
      await delay(2);
    }
    return { bytes: fs.statSync(file).size, ms: performance.now() - started };
  }

  /**
   * For a machine launched with `incoming: 'defer'` and the saved RAM in its RAM file: load the device
   * state from `file` (QEMU migration, x-ignore-shared) and run the VM. A bad state file makes QEMU 7.2
   * exit; that becomes a MigrationError with QEMU's own reason.
   */
  async migrateIncoming(file: string, opts: { timeoutMs?: number } = {}): Promise<number> {
    if (this.config.incoming !== 'defer') throw new MigrationError("migrateIncoming needs a machine launched with incoming: 'defer'");
    if (/['\n]/.test(file)) throw new MigrationError(`state file path ${JSON.stringify(file)} contains a quote or newline`);
    const started = performance.now();
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    const stderrLog = path.join(this.artifactsDir, 'qemu-stderr.log');
    const fail = async (why: string): Promise<never> => {
      if (!this.proc.isRunning) await this.proc.exited;
      const said = this.proc.earlyStderr.filter((l) => l.trim() !== '').slice(-2).join(' | ');
      throw new MigrationError(`restoring the device state from ${file} failed: ${why}${said ? ` (QEMU: ${said})` : ''}`, {
        hint: 'the snapshot is corrupt or was saved by a different machine configuration; save it again',
        logFile: stderrLog,
      });
    };
    try {
      await this.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: true }] });
      await this.qmp.execute('migrate-incoming', { uri: `exec:cat '${file}'` });
      for (;;) {
        const st = await this.qmp.execute<{ status: string; running: boolean }>('query-status');
        if (st.running) break;
        if (st.status === 'paused' || st.status === 'postmigrate') {
          // The source was stopped when it saved (global state): the loaded VM waits for a cont.
          const m = await this.qmp.execute<{ status?: string }>('query-migrate');
          if (m.status === 'completed') {
            await this.qmp.execute('cont');
            continue;
          }
        }
        if (st.status !== 'inmigrate' && st.status !== 'prelaunch' && st.status !== 'restore-vm') {
          const m = await this.qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate').catch(() => ({}) as { status?: string; 'error-desc'?: string });
          return await fail(`VM status ${st.status}, migration ${m.status ?? '?'}${m['error-desc'] ? `: ${m['error-desc']}` : ''}`);
        }
        if (Date.now() > deadline) return await fail('timed out');
        await delay(2);
      }
    } catch (e) {
      if (e instanceof MigrationError) throw e;
      return await fail(this.proc.isRunning ? (e as Error).message : 'QEMU exited');
    }
    return performance.now() - started;
  }

  /** Continue a stopped VM (after saveDeviceState). */
  async resume(): Promise<void> {
    await this.qmp.execute('cont');
  }

  private async waitMigration(deadline: number): Promise<{ status: string; 'error-desc'?: string }> {
    for (;;) {
      const m = await this.qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (m.status === 'completed' || m.status === 'failed' || m.status === 'cancelled') return { ...m, status: m.status };
      if (Date.now() > deadline) {
        await this.qmp.execute('migrate_cancel').catch(() => undefined);
        return { status: 'timed out' };
      }
      await delay(2);
    }
  }

  /**
   * Stop QEMU: QMP quit, then SIGTERM, then SIGKILL, each step given graceMs. Idempotent (every call gets
   * the same result). Always removes the run directory; the artifacts directory stays.
   */
  shutdown(options: ShutdownOptions = {}): Promise<MachineExit> {
    this.shutdownPromise ??= this.doShutdown(options.graceMs ?? 5000);
    return this.shutdownPromise;
  }

  private async doShutdown(graceMs: number): Promise<MachineExit> {
    if (this.proc.isRunning) {
      this.shutdownRequested = true;
      void this.qmp.execute('quit', undefined, { timeoutMs: graceMs }).catch(() => {}); // a close instead of a reply is normal
      if (!(await exitsWithin(this.proc, graceMs))) {
        this.proc.signal('SIGTERM');
        if (!(await exitsWithin(this.proc, graceMs))) this.proc.signal('SIGKILL');
      }
    }
    const exit = await this.exited;
    this.qmp.close('machine shut down');
    removeRunDir(this.runDir);
    unregisterMachine(this.registration);
    await new Promise<void>((resolve) => this.qmpLog.end(resolve));
    return exit;
  }

  private toMachineExit(e: ProcessExit): MachineExit {
    const hw = this.proc.messages.find((m) => m.kind === 'hardware-error');
    const term = this.proc.messages.find((m) => m.kind === 'terminating-on-signal');
    const { cause, detail } = classifyExit({
      code: e.code,
      signal: e.signal,
      shutdownRequested: this.shutdownRequested,
      hardwareError: hw?.line,
      shutdownEvent: this.shutdownEvent,
      guestPanicked: this.guestPanicked,
      terminatedBy: term?.kind === 'terminating-on-signal' && !this.proc.signalsSent.length ? { signal: term.signal, fromPid: term.fromPid } : undefined,
    });
    return { cause, detail, code: e.code, signal: e.signal, at: e.at };
  }
}

function artifactPaths(dir: string) {
  return {
    cmdline: path.join(dir, 'cmdline.txt'),
    stdout: path.join(dir, 'qemu-stdout.log'),
    stderr: path.join(dir, 'qemu-stderr.log'),
  };
}

function writeArtifact(file: string, text: string, append: boolean): void {
  try {
    if (append) fs.appendFileSync(file, text);
    else fs.writeFileSync(file, text);
  } catch (e) {
    throw noRoomError(e, file, 'free space there or pass --artifacts DIR on a disk with room') ?? e;
  }
}

/** A full disk as one line that names the file and the fix; undefined for any other error. */
function noRoomError(e: unknown, file: string, fix: string): QemuStartError | undefined {
  if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') return undefined;
  return new QemuStartError(`no space left to write ${file}`, { hint: fix, cause: e });
}

/** The last line of QEMU's stderr log that says why a write failed (the migration writer's own words). */
function lastWriteFailure(stderrLog: string): string | undefined {
  try {
    const text = fs.readFileSync(stderrLog, 'utf8').slice(-16_384);
    return text.split('\n').reverse().find((l) => /no space|write error|cannot create|permission denied/i.test(l))?.trim();
  } catch {
    return undefined;
  }
}

/** Wait for the QMP socket and complete the handshake; 'exited' when QEMU died first. */
async function connectQmp(proc: QemuProcess, cmd: QemuCommand, deadline: number, qmpLog: fs.WriteStream): Promise<QmpClient | 'exited'> {
  const onTranscript = (e: QmpTranscriptEntry) => {
    if (!qmpLog.writableEnded) qmpLog.write(`${e.at.toISOString()} ${e.direction.padEnd(4)} ${e.text}\n`);
  };
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (!proc.isRunning) return 'exited';
    if (fs.existsSync(cmd.qmpSocket)) {
      try {
        return await QmpClient.connect(cmd.qmpSocket, { timeoutMs: Math.max(1, deadline - Date.now()), onTranscript });
      } catch (err) {
        lastError = err; // not listening yet, or QEMU exiting during init: look again
        // QEMU creates the socket before initialising the network; give a failing start the chance to exit.
        if (await exitsWithin(proc, 200)) return 'exited';
      }
    }
    await delay(SOCKET_POLL_MS);
  }
  if (!proc.isRunning) return 'exited';
  const appeared = fs.existsSync(cmd.qmpSocket);
  throw new QemuStartError(
    appeared
      ? `QMP on ${cmd.qmpSocket} did not complete its handshake before the launch timeout (${String((lastError as Error | undefined)?.message ?? 'no error')})`
      : `QMP socket ${cmd.qmpSocket} never appeared before the launch timeout`,
    { logFile: path.join(path.dirname(cmd.serialLog), 'qemu-stderr.log'), hint: 'raise launchTimeoutMs on a loaded host, or read the QEMU log' },
  );
}

async function checkAccel(qmp: QmpClient, accel: ResolvedAccel, stderrLog: string): Promise<void> {
  const kvm = await qmp.execute<{ enabled: boolean; present: boolean }>('query-kvm');
  if (kvm.enabled !== (accel === 'kvm')) {
    throw new QemuStartError(`QEMU runs with KVM ${kvm.enabled ? 'enabled' : 'disabled'}, but accel '${accel}' was chosen`, { logFile: stderrLog });
  }
}

/** True when QEMU exits within ms. */
async function exitsWithin(proc: QemuProcess, ms: number): Promise<boolean> {
  await Promise.race([proc.exited, delay(ms)]);
  return !proc.isRunning;
}

function status(e: ProcessExit): string {
  return e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
}

