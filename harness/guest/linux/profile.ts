// The reference guest: a small Linux from Debian packages, booted straight from kernel + initramfs,
// with the edudma module and dmactl uploaded over SFTP and loaded like a driver under test.
import fs from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { parseDmactlOutput, parseInfoResult, type ArmedReport, type InfoResult } from '../../contract/result.js';
import type { Scenario } from '../../contract/scenario.js';
import { DmahilError, DriverLoadError, UsageError } from '../../errors.js';
import { AGENT_PORT_NAME, createPrivateDir, Machine, removePrivateDir, type MachineConfig } from '../../machine/index.js';
import type { IcountConfig } from '../../machine/config.js';
import { openGuestMemory } from '../../memory/index.js';
import { driverParams, icountFits, iommuAppend, swiotlbAppend, variantMachineConfig, type VariantMachine } from './variant-machine.js';
import { SshChannel, type SshTarget } from '../channel/ssh-channel.js';
import { LineStream, type CommandStream } from '../channel/line-stream.js';
import { toDeviceModelEvents } from '../device-events.js';
import { DmactlServer } from '../dmactl-server.js';
import type { DebugTarget, DeviceModelEvent, GuestSession, GuestStartOptions, HeldRun, SessionMemory } from '../session.js';
import { buildReferenceImage } from '../../../images/linux/build.js';
import { makeRunInitrd, RUN_FILES } from '../../../images/linux/run-keys.js';
import { buildLinuxDriver } from '../../../guest-driver/linux/build.js';
import { kernelDriverBuild, type KernelRoot } from '../../kernel/kernel-root.js';

/** The driver failed to load or bind in the guest (defined with the other errors; exported here as before). */
export { DriverLoadError };

/** forceBounce is swiotlb=force here: every mapping bounces, so a missing sync shows (RAM stays under the 28-bit mask). */
export interface LinuxGuestOptions extends GuestStartOptions {
  cacheDir: string;
  /** Appended to the kernel command line. */
  extraAppend?: string;
  /**
   * Use these files instead of the built module and tool (a driver under development, or a test build),
   * and load the module with these parameters (`name=value` words, e.g. the planted build's `planted=race`).
   */
  driverOverride?: { module?: string; tool?: string; moduleParams?: string };
  /** TCG instruction counting with idle-time warp (edu's 100 ms timers cost no wall time); ignored under KVM. */
  icount?: IcountConfig;
  /** A guest variant of the user's own (dmahil.config.json "variants"): memory, CPUs, swiotlb, the edu's mask. */
  variant?: VariantMachine;
  /** --kernel: boot this kernel root's kernel and build edudma for it, instead of the installed kernel. */
  kernelRoot?: KernelRoot;
}

/** What a restore needs: the machine as it was booted, the saved device state, the guest's SSH identity. */
export interface LinuxRestorePoint {
  config: MachineConfig;
  /** Device state written by Machine.saveDeviceState (guest RAM is not in it). */
  deviceState: string;
  /** Writes the saved guest RAM into the new machine's RAM file, in place, while QEMU starts. */
  fillRam: (ramFile: string) => Promise<void>;
  clientPrivateKey: string;
  hostPublicKey: string;
  /** The saved guest has a `dmactl serve` waiting on the agent port (LinuxSession.prepareForSave). */
  agentArmed?: boolean;
}

export interface LinuxRestoreOptions {
  artifactsDir: string;
  /** Seconds to wait for SSH after the state is loaded. */
  readyTimeoutMs: number;
  /**
   * How the edu comes back (QEMU 7.2's edu has no migration state: after a restore its PCI config is
   * reset, MMIO reads nothing and DMA silently moves nothing). 'reattach' (default): `dmactl reattach`,
   * edudma writes back the config its probe left and checks the ID and liveness registers; the host then
   * checks the config space the guest OS reads (LinuxSession.reattachDevice). 'skip' exists only for the
   * negative-control spec.
   */
  edu?: 'reattach' | 'skip';
  onProgress?: (message: string) => void;
}

/** Where the restore spent its time (ms). */
export interface RestoreTimings {
  launchMs: number;
  loadStateMs: number;
  /** 0 when the restore went through the agent port: SSH logs in later, when something needs it. */
  sshMs: number;
  eduMs: number;
  totalMs: number;
  /** Which channel carried the re-attach and carries dmactl. */
  via: 'agent' | 'ssh';
}

/**
 * What 'auto' means for the reference guest: TCG. Its scenarios are bound by the edu's 100 ms DMA timer,
 * which runs on virtual time: TCG with -icount skips the idle wait, KVM cannot (-icount is TCG only) and
 * waits it out in real time, ~25x fewer round trips a second (make bench measures both where KVM works).
 * `--accel kvm` still boots it under KVM.
 */
export const REFERENCE_AUTO_ACCEL = 'tcg';

let accelExplained = false;

/** The accelerator the reference guest asks the machine for; `why` the first time in this process only. */
export function referenceGuestAccel(requested: 'auto' | 'kvm' | 'tcg'): { accel: 'auto' | 'kvm' | 'tcg'; why?: string } {
  if (requested !== 'auto') return { accel: requested };
  if (accelExplained) return { accel: REFERENCE_AUTO_ACCEL };
  accelExplained = true;
  return { accel: REFERENCE_AUTO_ACCEL, why: "accelerator: TCG with -icount (the edu's 100 ms DMA timer costs no wall time there; under KVM it runs in real time: --accel kvm to choose KVM)" };
}

// 256 MiB keeps all RAM, and so swiotlb's pool, under the edu's 28-bit mask (guest notes §5).
const MEMORY_MIB = 256;
const GUEST_DIR = '/tmp/dmahil';
const COMMAND_TIMEOUT_MS = 30_000;
/** dmactl waits up to its own per-operation timeout; 1 MiB is 514 edu operations of 100 ms virtual time. */
const RUN_TIMEOUT_MS = 300_000;

export async function startLinuxGuest(opts: LinuxGuestOptions): Promise<LinuxSession> {
  const progress = opts.onProgress ?? (() => undefined);
  progress('building the reference guest image (cached after the first build)');
  const image = await buildReferenceImage({ cacheDir: path.join(opts.cacheDir, 'images'), onProgress: progress, ...(opts.kernelRoot ? { kernelRoot: opts.kernelRoot } : {}) });
  // Without the driver the edu would bypass virtio-iommu-pci: a guest that looks translated and is not.
  if (opts.variant?.iommu === 'virtio-iommu' && image.virtioIommu.driver === 'absent') {
    throw new UsageError(`guest kernel ${image.kernelVersion} has no virtio-iommu driver (${image.virtioIommu.evidence}): a virtio-iommu guest would not translate`, {
      hint: 'use a kernel with CONFIG_VIRTIO_IOMMU (Debian 13\'s 6.12, or --kernel DIR), or intel-iommu',
    });
  }
  const driver = await driverFiles(opts, image.kernelVersion, progress);
  await fs.mkdir(opts.artifactsDir, { recursive: true });
  // Per-run keys and the 7 MB initrd that carries them: private, and gone with the session.
  const keyDir = createPrivateDir('keys');
  const removeKeys = async (): Promise<void> => removePrivateDir(keyDir);
  const keys = await makeRunInitrd(image, keyDir).catch(async (e: unknown) => {
    await removeKeys();
    throw e;
  });

  const accel = referenceGuestAccel(opts.accel);
  progress(accel.why ? `booting QEMU; ${accel.why}` : 'booting QEMU');
  const config: MachineConfig = {
    name: opts.forceBounce ? 'linux-bounce' : 'linux-direct',
    accel: accel.accel,
    kernel: image.kernel,
    initrd: keys.initrd,
    append: [image.append, swiotlbAppend(opts.variant?.swiotlb, opts.forceBounce), iommuAppend(opts.variant), opts.extraAppend ?? ''].filter(Boolean).join(' '),
    ...variantMachineConfig(opts.variant, { memoryMiB: MEMORY_MIB, cpus: 1, edu: { enabled: true } }),
    nic: { model: 'virtio-net-pci', guestPort: 22 },
    pvpanic: true,
    agentPort: true,
    panicAction: 'pause', // a panicked guest stays in memory for the host's dump (run-scenario shuts it down)
    ...(opts.icount && icountFits(opts.variant) ? { icount: opts.icount } : {}),
    ...(opts.qemuBinary ? { qemuBinary: opts.qemuBinary } : {}),
  };
  if (opts.icount && !icountFits(opts.variant)) progress(`${opts.variant?.cpus} CPUs: no -icount (TCG does not bring up a second CPU with it); the edu's 100 ms DMA timer runs in real time`);
  const machine = await Machine.launch(config, { artifactsDir: opts.artifactsDir, onWarning: progress }).catch(async (e: unknown) => {
    await removeKeys();
    throw e;
  });
  const serialLog = path.join(opts.artifactsDir, 'serial.log');
  try {
    progress(`waiting for the guest's SSH login (${machine.accel.toUpperCase()})`);
    const channel = await SshChannel.waitReady(
      { host: '127.0.0.1', port: machine.sshPort, username: 'root', privateKey: keys.clientPrivateKey, hostPublicKey: keys.hostPublicKey },
      { timeoutMs: opts.bootTimeoutMs, deadReason: () => machine.deadReason(), logFile: serialLog },
    );
    const memory = await openGuestMemory(machine);
    const session = new LinuxSession(machine, channel, memory, opts.artifactsDir, removeKeys, {
      clientPrivateKey: keys.clientPrivateKey,
      hostPublicKey: keys.hostPublicKey,
      keyDir,
      initrd: keys.initrd,
    });
    progress('loading edudma');
    const params = [driverParams(opts.variant), opts.driverOverride?.moduleParams ?? ''].filter(Boolean).join(' ');
    await session.installDriver(driver.module, driver.tool, params);
    return session;
  } catch (e) {
    await machine.shutdown();
    await removeKeys();
    throw e;
  }
}

/** The module and tool to load: the override's, building ours only for what it leaves out. */
async function driverFiles(opts: LinuxGuestOptions, kernelVersion: string, progress: (m: string) => void): Promise<{ module: string; tool: string }> {
  const { module, tool } = opts.driverOverride ?? {};
  // A prebuilt pair (--driver) needs no build, and no kernel headers on this host.
  if (module !== undefined && tool !== undefined) return { module, tool };
  progress(`building the edudma module for ${kernelVersion}`);
  const built = await buildLinuxDriver({ kernelVersion, repoRoot: opts.repoRoot, onProgress: progress, ...(opts.kernelRoot ? { kernel: kernelDriverBuild(opts.kernelRoot, opts.cacheDir) } : {}) });
  return { module: module ?? built.module, tool: tool ?? built.tool };
}

/**
 * A guest from a restore point: a new QEMU started paused (-incoming defer) while the saved RAM is written
 * into its RAM file, the device state loaded, then the edu brought back and checked. With an armed agent
 * (the default for snapshots) that goes over the agent port, which a restore does not break, and SSH logs
 * in only when something needs it; otherwise over a fresh SSH login.
 */
export async function restoreLinuxGuest(point: LinuxRestorePoint, opts: LinuxRestoreOptions): Promise<LinuxSession> {
  const progress = opts.onProgress ?? (() => undefined);
  const t0 = performance.now();
  await fs.mkdir(opts.artifactsDir, { recursive: true });
  const machine = await Machine.launch({ ...point.config, incoming: 'defer' }, { artifactsDir: opts.artifactsDir, fillRamFile: point.fillRam });
  const t1 = performance.now();
  const reattach = (opts.edu ?? 'reattach') === 'reattach';
  const target: SshTarget = { host: '127.0.0.1', port: machine.sshPort, username: 'root', privateKey: point.clientPrivateKey, hostPublicKey: point.hostPublicKey };
  const ready = { timeoutMs: opts.readyTimeoutMs, deadReason: () => machine.deadReason(), logFile: path.join(opts.artifactsDir, 'serial.log') };
  let agent: net.Socket | undefined;
  let login: Promise<SshChannel> | undefined;
  try {
    // Before the guest runs: it must see the host end of its port connected all along.
    if (point.agentArmed && reattach) agent = await machine.connectAgent();
    // Without the agent, the login starts while the state loads: its TCP connect and ssh2's setup need no running guest.
    else login = SshChannel.login(target, ready);
    const loadStateMs = await machine.migrateIncoming(point.deviceState);
    const t2 = performance.now();
    const channel = login ? await login : undefined;
    const t3 = performance.now();
    const memory = await openGuestMemory(machine);
    const session = new LinuxSession(machine, channel ?? { target, login: () => SshChannel.login(target, ready) }, memory, opts.artifactsDir, async () => undefined);
    if (reattach) {
      progress(`re-attaching the edu (over ${agent ? 'the agent port' : 'SSH'})`);
      await session.reattachDevice(agent);
    }
    const t4 = performance.now();
    session.restoreTimings = { launchMs: t1 - t0, loadStateMs, sshMs: login ? t3 - t2 : 0, eduMs: t4 - t3, totalMs: t4 - t0, via: agent ? 'agent' : 'ssh' };
    return session;
  } catch (e) {
    agent?.destroy();
    login?.then((c) => c.close(), () => undefined);
    await machine.shutdown();
    throw e;
  }
}

const DMACTL = `${GUEST_DIR}/dmactl`;

/**
 * The agent a snapshot is saved with: `dmactl serve` on the agent port, waiting for its first line. After a
 * restore the host writes `reattach` there: no SSH login, no process start, no shell on the way.
 */
const AGENT_SCRIPT = [
  `dev=; for p in /sys/class/virtio-ports/*; do read n < $p/name; [ "$n" = ${AGENT_PORT_NAME} ] && dev=/dev/\${p##*/}; done`,
  '[ -n "$dev" ] || { echo "no virtio port named ' + AGENT_PORT_NAME + '" >&2; exit 1; }',
  'exec 3<>$dev',
  `echo $$ > ${GUEST_DIR}/agent.pid`,
  `exec ${DMACTL} serve <&3 >&3 3<&-`,
].join('\n');

/** An SSH connection made only when something needs it (a restored guest's logs, --keep, a fallback). */
export interface DeferredLogin {
  target: SshTarget;
  login: () => Promise<SshChannel>;
}

export class LinuxSession implements GuestSession {
  readonly profile = 'linux-reference';
  /** One `dmactl serve` answers every info and run (a process per scenario costs ~60 ms under TCG). */
  private readonly dmactl: DmactlServer;
  private channel?: SshChannel;
  private loggingIn?: Promise<SshChannel>;
  private readonly target: SshTarget;
  private readonly login: () => Promise<SshChannel>;
  private stopWatchingAgent?: () => void;

  constructor(
    readonly machine: Machine,
    ssh: SshChannel | DeferredLogin,
    readonly memory: SessionMemory,
    readonly artifactsDir: string,
    private readonly removeKeys: () => Promise<void>,
    /** The boot's SSH identity and key initrd: what a snapshot of this guest needs to be restored. */
    readonly identity?: { clientPrivateKey: string; hostPublicKey: string; keyDir: string; initrd: string },
  ) {
    if (ssh instanceof SshChannel) this.channel = ssh;
    this.target = ssh.target;
    this.login = ssh instanceof SshChannel ? async () => ssh : ssh.login;
    this.dmactl = new DmactlServer({
      open: async () => (await this.ssh()).openLineStream(`exec ${DMACTL} serve`),
      contains: (gpa, len) => memory.contains(gpa, len),
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      runTimeoutMs: RUN_TIMEOUT_MS,
    });
  }

  /** The SSH connection, logging in on first use. */
  private ssh(): Promise<SshChannel> {
    if (this.channel) return Promise.resolve(this.channel);
    this.loggingIn ??= this.login().then(
      (c) => (this.channel = c),
      (e: unknown) => {
        this.loggingIn = undefined; // the next use tries again
        throw e;
      },
    );
    return this.loggingIn;
  }

  debugTarget(): DebugTarget {
    const t = this.target;
    const privateKeyFile = this.identity ? path.join(this.identity.keyDir, RUN_FILES.clientKey) : '';
    return { machine: this.machine, ssh: { host: t.host, port: t.port, user: t.username, privateKeyFile, privateKey: t.privateKey, hostPublicKey: t.hostPublicKey } };
  }

  /** Set by restoreLinuxGuest. */
  restoreTimings?: RestoreTimings;

  /**
   * Before a save: stop the session's `dmactl serve` (a restored guest could not use its SSH channel) and,
   * when the machine has an agent port, start the agent (AGENT_SCRIPT) there and wait until its dmactl
   * answers on the port. Returns the host end of the port, which must stay connected until the machine is
   * saved: a port with no host end reads as end-of-file, and the hang-up is a message QEMU writes into RAM.
   */
  async prepareForSave(): Promise<net.Socket | undefined> {
    await this.dmactl.close();
    if (!this.machine.config.agentPort) return undefined;
    const host = await this.machine.connectAgent();
    try {
      const ch = await this.ssh();
      const put = await ch.exec(`cat > ${GUEST_DIR}/agent.sh`, { timeoutMs: COMMAND_TIMEOUT_MS, stdin: AGENT_SCRIPT + '\n' });
      if (put.code !== 0) throw new DmahilError(`could not write the agent script into the guest: ${put.stderr.trim()}`);
      await this.sh(`rm -f ${GUEST_DIR}/agent.pid; setsid sh ${GUEST_DIR}/agent.sh </dev/null >/dev/null 2>${GUEST_DIR}/agent.err &`);
      // Its answer says dmactl serve is up and reading the port: the saved guest waits in that read.
      const agent = new LineStream(asCommandStream(host), 'dmactl serve on the agent port');
      const answer = await agent.request('info', COMMAND_TIMEOUT_MS, 'the agent starting').catch(async (e: unknown) => {
        const err = await this.sh(`cat ${GUEST_DIR}/agent.err`).catch(() => '');
        throw new DmahilError(`the agent did not answer on its port: ${(e as Error).message}${err.trim() ? `; its stderr: ${err.trim()}` : ''}`);
      });
      if (!parseInfoResult(parseDmactlOutput(answer)).ok) throw new DmahilError(`the agent's dmactl cannot use edudma: ${answer.slice(0, 300)}`);
      return host;
    } catch (e) {
      host.destroy();
      throw e;
    }
  }

  /**
   * After a restore: `dmactl reattach` over the agent port when the host end of an armed agent is given,
   * else over a `dmactl serve` started with SSH; that dmactl then serves the session. edudma writes back
   * the PCI config its probe left and checks the ID and liveness registers. Then the host checks the config
   * space as the guest OS reads it (not the driver's word): the edu's IDs, BAR0 assigned, memory decoding
   * and bus mastering on (a restore leaves them zero). Any failure throws, and this guest is not used.
   */
  async reattachDevice(agent?: net.Socket): Promise<void> {
    const failed = (why: string): DriverLoadError =>
      new DriverLoadError(`the edu did not come back after the restore: ${why}`, { logFile: path.join(this.artifactsDir, 'serial.log') });
    if (agent) {
      const stream = new LineStream(asCommandStream(agent), 'dmactl serve on the agent port');
      // The agent's process ends (it crashed, or dmactl serve exited): the port closes, the stream with it.
      this.stopWatchingAgent = this.machine.onAgentPortClosed(() => void stream.close('the guest closed the agent port (its dmactl serve ended)'));
      this.dmactl.adopt(stream);
    }
    const r = await this.dmactl.reattach().catch((e: unknown) => {
      throw failed((e as Error).message);
    });
    if (!r.ok) throw failed(`${r.error?.code}: ${r.error?.message}`);
    const problem = restoredConfigProblem(r.config);
    if (problem) throw failed(problem);
  }

  /** A shell command in the guest over the session's own SSH connection (one login per session); its stdout. */
  async sh(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const r = await (await this.ssh()).exec(command, { timeoutMs });
    if (r.code !== 0) throw new DmahilError(`guest command "${command}" exited with ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
    return r.stdout;
  }

  async installDriver(modulePath: string, toolPath: string, moduleParams = ''): Promise<void> {
    // Passed to insmod through a shell: plain name=value words only.
    if (!/^(\s*[\w.-]+=[\w.,-]+)*\s*$/.test(moduleParams)) throw new DmahilError(`module parameters ${JSON.stringify(moduleParams)} are not plain name=value words`);
    await this.sh(`mkdir -p ${GUEST_DIR}`);
    const ch = await this.ssh();
    await ch.upload(modulePath, `${GUEST_DIR}/edudma.ko`);
    await ch.upload(toolPath, `${GUEST_DIR}/dmactl`, 0o755);
    const r = await ch.exec(`insmod ${GUEST_DIR}/edudma.ko ${moduleParams.trim()}`.trimEnd(), { timeoutMs: COMMAND_TIMEOUT_MS });
    if (r.code !== 0) {
      const dmesg = await this.sh('dmesg | tail -n 20').catch(() => '');
      throw new DriverLoadError(`insmod edudma.ko failed: ${r.stderr.trim() || `exit ${r.code}`}`, {
        hint: `the module does not load into this kernel; the kernel said: ${kernelWordsAboutModule(dmesg).join(' | ') || '(nothing in dmesg)'}`,
        logFile: path.join(this.artifactsDir, 'serial.log'),
      });
    }
    const info = await this.info();
    if (!info.ok) {
      throw new DriverLoadError(`edudma loaded but is not usable: ${info.error?.code}: ${info.error?.message}`, {
        hint: 'no edu device bound (is -device edu on the QEMU command line?); see the kernel log',
        logFile: path.join(this.artifactsDir, 'serial.log'),
      });
    }
  }

  info(): Promise<InfoResult> {
    return this.dmactl.info();
  }

  run(scenario: Scenario, onArmed?: (armed: ArmedReport) => Promise<void>): Promise<HeldRun> {
    return this.dmactl.run(scenario, onArmed);
  }

  /** A restored guest that has not needed SSH yet is healthy without it. */
  isHealthy(): boolean {
    return this.machine.isRunning() && (this.channel?.isOpen ?? true);
  }

  deviceModelEvents(sinceMs: number): DeviceModelEvent[] {
    return toDeviceModelEvents(this.machine.deviceModelMessages(sinceMs));
  }

  async collectLogs(): Promise<void> {
    const dmesg = await this.sh('dmesg').catch((e: Error) => `dmesg unavailable: ${e.message}\n`);
    await fs.writeFile(path.join(this.artifactsDir, 'guest-dmesg.txt'), dmesg);
  }

  async close(): Promise<void> {
    this.stopWatchingAgent?.();
    await this.dmactl.close();
    this.channel?.close();
    this.loggingIn?.then((c) => c.close(), () => undefined);
    await this.memory.close();
    await this.machine.shutdown();
    await this.removeKeys();
  }
}

/**
 * What is wrong with the edu's config space after a re-attach (dwords as the guest read them), if anything:
 * the IDs 1234:11e8, memory decoding and bus mastering on in COMMAND, BAR0 assigned.
 */
export function restoredConfigProblem(config: number[]): string | undefined {
  const hex = (v: number | undefined, digits: number): string => (v ?? 0).toString(16).padStart(digits, '0');
  const ids = config[0] ?? 0;
  if (ids !== 0x11e81234) return `PCI config space holds IDs ${hex(ids & 0xffff, 4)}:${hex(ids >>> 16, 4)}, not the edu's 1234:11e8`;
  const command = (config[1] ?? 0) & 0xffff;
  const bar0 = (config[4] ?? 0) >>> 0;
  if ((command & 0x6) !== 0x6 || (bar0 & ~0xf) === 0) {
    return `the edu is dead: PCI COMMAND ${hex(command, 4)} (memory and bus-master bits 0x6 must be set), BAR0 ${hex(bar0, 8)}`;
  }
  return undefined;
}

/**
 * The kernel's lines about the module from the tail of dmesg (its name is their prefix: "edudma: Unknown
 * symbol ..."), else the last three, which is where a loader's complaint without the name lands. Without
 * timestamps and repeats, and without the taint notices every unsigned out-of-tree module gets (not a cause).
 */
export function kernelWordsAboutModule(dmesg: string): string[] {
  const lines = dmesg.split('\n').map((l) => l.replace(/^\[\s*\d+\.\d+\]\s*/, '').trim()).filter((l) => l && !/module verification failed|taints kernel/.test(l));
  const about = lines.filter((l) => /\bedudma\b/.test(l));
  return [...new Set(about.length ? about : lines)].slice(-3);
}

/** A socket as a LineStream's command stream: no stderr, close() ends it. */
function asCommandStream(socket: net.Socket): CommandStream {
  return Object.assign(socket, { stderr: new PassThrough(), close: () => socket.destroy() });
}
