// The reference guest: a small Linux from Debian packages, booted straight from kernel + initramfs,
// with the edudma module and dmactl uploaded over SFTP and loaded like a driver under test.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { InfoResult } from '../../contract/result.js';
import type { Scenario } from '../../contract/scenario.js';
import { DmahilError } from '../../errors.js';
import { createPrivateDir, Machine, removePrivateDir, type MachineConfig } from '../../machine/index.js';
import type { IcountConfig } from '../../machine/config.js';
import { openGuestMemory } from '../../memory/index.js';
import { SshChannel } from '../channel/ssh-channel.js';
import { toDeviceModelEvents } from '../device-events.js';
import { DmactlServer } from '../dmactl-server.js';
import type { DebugTarget, DeviceModelEvent, GuestSession, GuestStartOptions, HeldRun, SessionMemory } from '../session.js';
import { buildReferenceImage } from '../../../images/linux/build.js';
import { makeRunInitrd, RUN_FILES } from '../../../images/linux/run-keys.js';
import { buildLinuxDriver } from '../../../guest-driver/linux/build.js';

/** The driver failed to load or bind in the guest. */
export class DriverLoadError extends DmahilError {}

/** forceBounce is swiotlb=force here: every mapping bounces, so a missing sync shows (RAM stays under the 28-bit mask). */
export interface LinuxGuestOptions extends GuestStartOptions {
  cacheDir: string;
  /** Appended to the kernel command line. */
  extraAppend?: string;
  /** Use these files instead of the built module and tool (a driver under development, or a test's fault). */
  driverOverride?: { module?: string; tool?: string };
  /** TCG instruction counting with idle-time warp (edu's 100 ms timers cost no wall time); ignored under KVM. */
  icount?: IcountConfig;
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
}

export interface LinuxRestoreOptions {
  artifactsDir: string;
  /** Seconds to wait for SSH after the state is loaded. */
  readyTimeoutMs: number;
  /**
   * How the edu comes back (QEMU 7.2's edu has no migration state: after a restore its PCI config is
   * zero, MMIO reads 0 and DMA silently moves nothing). 'rescan' (default): PCI rescan in the guest, which
   * re-probes edudma (its probe checks the ID register and liveness), then an independent check of both
   * registers through /dev/mem. 'skip' exists only for the negative-control spec.
   */
  edu?: 'rescan' | 'skip';
  onProgress?: (message: string) => void;
}

/** Where the restore spent its time (ms). */
export interface RestoreTimings {
  launchMs: number;
  loadStateMs: number;
  sshMs: number;
  eduMs: number;
  totalMs: number;
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
  const image = await buildReferenceImage({ cacheDir: path.join(opts.cacheDir, 'images'), onProgress: progress });
  progress(`building the edudma module for ${image.kernelVersion}`);
  const driver = await buildLinuxDriver({ kernelVersion: image.kernelVersion, repoRoot: opts.repoRoot, onProgress: progress });
  await fs.mkdir(opts.artifactsDir, { recursive: true });
  // Per-run keys and the 7 MB initrd that carries them: private, and gone with the session.
  const keyDir = createPrivateDir('keys');
  const removeKeys = async (): Promise<void> => removePrivateDir(keyDir);
  const keys = await makeRunInitrd(image, keyDir).catch(async (e: unknown) => {
    await removeKeys();
    throw e;
  });

  progress('booting QEMU');
  const config: MachineConfig = {
    name: opts.forceBounce ? 'linux-bounce' : 'linux-direct',
    memoryMiB: MEMORY_MIB,
    cpus: 1,
    accel: opts.accel,
    kernel: image.kernel,
    initrd: keys.initrd,
    append: [image.append, opts.forceBounce ? 'swiotlb=force' : '', opts.extraAppend ?? ''].filter(Boolean).join(' '),
    edu: { enabled: true },
    nic: { model: 'virtio-net-pci', guestPort: 22 },
    pvpanic: true,
    panicAction: 'pause', // a panicked guest stays in memory for the host's dump (run-scenario shuts it down)
    ...(opts.icount ? { icount: opts.icount } : {}),
  };
  const machine = await Machine.launch(config, { artifactsDir: opts.artifactsDir }).catch(async (e: unknown) => {
    await removeKeys();
    throw e;
  });
  const serialLog = path.join(opts.artifactsDir, 'serial.log');
  try {
    progress(`waiting for the guest's SSH login (${machine.accel.toUpperCase()})`);
    const channel = await SshChannel.waitReady(
      { host: '127.0.0.1', port: machine.sshPort, username: 'root', privateKey: keys.clientPrivateKey, hostPublicKey: keys.hostPublicKey },
      { timeoutMs: opts.bootTimeoutMs, isAlive: () => machine.isRunning(), logFile: serialLog },
    );
    const memory = await openGuestMemory(machine);
    const session = new LinuxSession(machine, channel, memory, opts.artifactsDir, removeKeys, {
      clientPrivateKey: keys.clientPrivateKey,
      hostPublicKey: keys.hostPublicKey,
      keyDir,
      initrd: keys.initrd,
    });
    progress('loading edudma');
    await session.installDriver(opts.driverOverride?.module ?? driver.module, opts.driverOverride?.tool ?? driver.tool);
    return session;
  } catch (e) {
    await machine.shutdown();
    await removeKeys();
    throw e;
  }
}

/**
 * A guest from a restore point: a new QEMU started paused (-incoming defer) on a copy of the saved RAM,
 * the device state loaded, SSH with the saved identity, then the edu brought back and checked.
 */
export async function restoreLinuxGuest(point: LinuxRestorePoint, opts: LinuxRestoreOptions): Promise<LinuxSession> {
  const progress = opts.onProgress ?? (() => undefined);
  const t0 = performance.now();
  await fs.mkdir(opts.artifactsDir, { recursive: true });
  const machine = await Machine.launch({ ...point.config, incoming: 'defer' }, { artifactsDir: opts.artifactsDir, fillRamFile: point.fillRam });
  const t1 = performance.now();
  try {
    // The login starts while the state loads: its TCP connect and ssh2's setup need no running guest.
    const login = SshChannel.login(
      { host: '127.0.0.1', port: machine.sshPort, username: 'root', privateKey: point.clientPrivateKey, hostPublicKey: point.hostPublicKey },
      { timeoutMs: opts.readyTimeoutMs, isAlive: () => machine.isRunning(), logFile: path.join(opts.artifactsDir, 'serial.log') },
    );
    const loadStateMs = await machine.migrateIncoming(point.deviceState).catch((e: unknown) => {
      login.then((c) => c.close(), () => undefined);
      throw e;
    });
    const t2 = performance.now();
    const channel = await login;
    const t3 = performance.now();
    const memory = await openGuestMemory(machine);
    const session = new LinuxSession(machine, channel, memory, opts.artifactsDir, async () => undefined);
    if ((opts.edu ?? 'rescan') === 'rescan') {
      progress('re-attaching the edu (PCI rescan)');
      await session.reattachDevice();
    }
    const t4 = performance.now();
    session.restoreTimings = { launchMs: t1 - t0, loadStateMs, sshMs: t3 - t2, eduMs: t4 - t3, totalMs: t4 - t0 };
    return session;
  } catch (e) {
    await machine.shutdown();
    throw e;
  }
}

/** Finds the edu (1234:11e8) in sysfs; `$d` is its directory. Shell builtins only: a fork costs ms under TCG. */
const FIND_EDU = 'd=; for x in /sys/bus/pci/devices/*; do read v < $x/vendor; read i < $x/device; [ "$v:$i" = 0x1234:0x11e8 ] && d=$x && break; done';

const DMACTL = `${GUEST_DIR}/dmactl`;

export class LinuxSession implements GuestSession {
  readonly profile = 'linux-reference';
  /** One `dmactl serve` answers every info and run (a process per scenario costs ~60 ms under TCG). */
  private readonly dmactl: DmactlServer;

  constructor(
    readonly machine: Machine,
    private readonly channel: SshChannel,
    readonly memory: SessionMemory,
    readonly artifactsDir: string,
    private readonly removeKeys: () => Promise<void>,
    /** The boot's SSH identity and key initrd: what a snapshot of this guest needs to be restored. */
    readonly identity?: { clientPrivateKey: string; hostPublicKey: string; keyDir: string; initrd: string },
  ) {
    this.dmactl = new DmactlServer({
      open: () => channel.openLineStream(`exec ${DMACTL} serve`),
      contains: (gpa, len) => memory.contains(gpa, len),
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      runTimeoutMs: RUN_TIMEOUT_MS,
    });
  }

  debugTarget(): DebugTarget {
    const t = this.channel.target;
    const privateKeyFile = this.identity ? path.join(this.identity.keyDir, RUN_FILES.clientKey) : '';
    return { machine: this.machine, ssh: { host: t.host, port: t.port, user: t.username, privateKeyFile, privateKey: t.privateKey, hostPublicKey: t.hostPublicKey } };
  }

  /** Set by restoreLinuxGuest. */
  restoreTimings?: RestoreTimings;

  /**
   * Before a save: take the edu out of the guest's PCI tree (edudma unbinds; the module stays loaded), so
   * the saved guest holds no stale view of a device whose state a restore loses.
   */
  async detachDevice(): Promise<void> {
    await this.dmactl.close(); // a restored guest starts its own
    await this.sh(`${FIND_EDU}; [ -n "$d" ] || { echo no edu >&2; exit 1; }; echo 1 > $d/remove`);
  }

  /**
   * After a restore: rescan, so the fresh edu is enumerated, gets its BAR and bus mastering, and edudma
   * probes it (the probe fails unless the ID register reads 0x010000ed and the liveness register inverts).
   * Then check, from PCI config space rather than the driver's word, that BAR0 is assigned and memory
   * decoding and bus mastering are on (a restore leaves both zero), and that dmactl sees the device.
   * Any failure throws, and this guest is not used. (/dev/mem is closed to claimed BARs: IO_STRICT_DEVMEM.)
   */
  async reattachDevice(): Promise<void> {
    const failed = (why: string): DriverLoadError =>
      new DriverLoadError(`the edu did not come back after the restore: ${why}`, { logFile: path.join(this.artifactsDir, 'serial.log') });
    // A guest saved with the edu attached holds a stale device: remove it first, then rescan. One exec
    // does it all and then becomes the session's dmactl server (each exec costs ~60 ms under TCG).
    const stream = await this.channel.openLineStream(
      `${FIND_EDU}; [ -n "$d" ] && echo 1 > $d/remove; echo 1 > /sys/bus/pci/rescan; ${FIND_EDU}; ` +
        '[ -n "$d" ] || { echo "no edu after rescan" >&2; exit 1; }; [ -e $d/driver ] || { echo "edudma did not bind $d (its probe checks ID and liveness)" >&2; exit 1; }; ' +
        `echo config $(od -An -tx4 -N20 $d/config); exec ${DMACTL} serve`,
    );
    const out = await stream.readLine(COMMAND_TIMEOUT_MS, 'the PCI rescan').catch((e: unknown) => {
      throw failed((e as Error).message);
    });
    this.dmactl.adopt(stream);
    // The first 20 bytes of config space as little-endian dwords: [1] holds COMMAND in its low half, [4] is BAR0.
    const dwords = /^config((?:\s+[0-9a-f]{8}){5})\s*$/.exec(out)?.[1]?.trim().split(/\s+/);
    const cmd = dwords ? (parseInt(dwords[1]!, 16) & 0xffff).toString(16) : undefined;
    const bar0 = dwords?.[4];
    const command = cmd === undefined ? 0 : parseInt(cmd, 16);
    if ((command & 0x6) !== 0x6 || bar0 === undefined || (parseInt(bar0, 16) & ~0xf) === 0) {
      throw new DriverLoadError(`the edu is dead after the restore: PCI COMMAND ${cmd ?? '?'} (memory and bus-master bits must be set), BAR0 ${bar0 ?? '?'}`, {
        logFile: path.join(this.artifactsDir, 'serial.log'),
      });
    }
    const info = await this.info();
    if (!info.ok) throw new DriverLoadError(`edudma is not usable after the restore: ${info.error?.code}: ${info.error?.message}`);
  }

  private async sh(command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const r = await this.channel.exec(command, { timeoutMs });
    if (r.code !== 0) throw new DmahilError(`guest command "${command}" exited with ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
    return r.stdout;
  }

  async installDriver(modulePath: string, toolPath: string): Promise<void> {
    await this.sh(`mkdir -p ${GUEST_DIR}`);
    await this.channel.upload(modulePath, `${GUEST_DIR}/edudma.ko`);
    await this.channel.upload(toolPath, `${GUEST_DIR}/dmactl`, 0o755);
    const r = await this.channel.exec(`insmod ${GUEST_DIR}/edudma.ko`, { timeoutMs: COMMAND_TIMEOUT_MS });
    if (r.code !== 0) {
      const dmesg = await this.sh('dmesg | tail -n 20').catch(() => '');
      throw new DriverLoadError(`insmod edudma.ko failed: ${r.stderr.trim() || `exit ${r.code}`}`, {
        hint: `the module does not load into this kernel; last kernel messages: ${dmesg.trim().split('\n').slice(-3).join(' | ')}`,
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

  run(scenario: Scenario): Promise<HeldRun> {
    return this.dmactl.run(scenario);
  }

  isHealthy(): boolean {
    return this.machine.isRunning() && this.channel.isOpen;
  }

  deviceModelEvents(sinceMs: number): DeviceModelEvent[] {
    return toDeviceModelEvents(this.machine.deviceModelMessages(sinceMs));
  }

  async collectLogs(): Promise<void> {
    const dmesg = await this.sh('dmesg').catch((e: Error) => `dmesg unavailable: ${e.message}\n`);
    await fs.writeFile(path.join(this.artifactsDir, 'guest-dmesg.txt'), dmesg);
  }

  async close(): Promise<void> {
    await this.dmactl.close();
    this.channel.close();
    await this.memory.close();
    await this.machine.shutdown();
    await this.removeKeys();
  }
}
