// The reference guest: a small Linux from Debian packages, booted straight from kernel + initramfs,
// with the edudma module and dmactl uploaded over SFTP and loaded like a driver under test.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseDmactlOutput, parseInfoResult, parseRunResult } from '../../contract/result.js';
import { dmactlRunArgs, type Scenario } from '../../contract/scenario.js';
import { DmahilError, GuestContractError } from '../../errors.js';
import { Machine } from '../../machine/index.js';
import { checkRange, openGuestMemory, type GuestMemory } from '../../memory/index.js';
import { SshChannel } from '../channel/ssh-channel.js';
import type { DeviceModelEvent, GuestSession, HeldRun, SessionMemory } from '../session.js';
import { buildReferenceImage } from '../../../images/linux/build.js';
import { makeRunInitrd } from '../../../images/linux/run-keys.js';
import { buildLinuxDriver } from '../../../guest-driver/linux/build.js';

/** The driver failed to load or bind in the guest. */
export class DriverLoadError extends DmahilError {}

export interface LinuxGuestOptions {
  repoRoot: string;
  cacheDir: string;
  artifactsDir: string;
  /** swiotlb=force: every mapping bounces, so a missing sync shows (needs RAM under the 28-bit mask). */
  forceBounce: boolean;
  accel: 'auto' | 'kvm' | 'tcg';
  bootTimeoutMs: number;
  onProgress?: (message: string) => void;
  /** Appended to the kernel command line. */
  extraAppend?: string;
  /** Use these files instead of the built module and tool (a driver under development, or a test's fault). */
  driverOverride?: { module?: string; tool?: string };
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
  const keyDir = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-keys-'));
  const removeKeys = (): Promise<void> => fs.rm(keyDir, { recursive: true, force: true });
  const keys = await makeRunInitrd(image, keyDir).catch(async (e: unknown) => {
    await removeKeys();
    throw e;
  });

  progress('booting QEMU');
  const machine = await Machine.launch(
    {
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
    },
    { artifactsDir: opts.artifactsDir },
  ).catch(async (e: unknown) => {
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
    const memory = sessionMemory(await openGuestMemory(machine));
    const session = new LinuxSession(machine, channel, memory, opts.artifactsDir, removeKeys);
    progress('loading edudma');
    await session.installDriver(opts.driverOverride?.module ?? driver.module, opts.driverOverride?.tool ?? driver.tool);
    return session;
  } catch (e) {
    await machine.shutdown();
    await removeKeys();
    throw e;
  }
}

function sessionMemory(memory: GuestMemory): SessionMemory {
  return {
    kind: memory.kind,
    read: (gpa, length) => memory.read(gpa, length),
    contains: (gpa, length) => {
      try {
        checkRange(memory.layout, gpa, length);
        return true;
      } catch {
        return false;
      }
    },
    close: () => memory.close(),
  };
}

export class LinuxSession implements GuestSession {
  readonly profile = 'linux-reference';

  constructor(
    readonly machine: Machine,
    private readonly channel: SshChannel,
    readonly memory: SessionMemory,
    readonly artifactsDir: string,
    private readonly removeKeys: () => Promise<void>,
  ) {}

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

  async info() {
    const r = await this.channel.exec(`${GUEST_DIR}/dmactl info`, { timeoutMs: COMMAND_TIMEOUT_MS });
    return parseInfoResult(parseDmactlOutput(r.stdout));
  }

  async run(scenario: Scenario): Promise<HeldRun> {
    const command = [`${GUEST_DIR}/dmactl`, ...dmactlRunArgs(scenario, true)].join(' ');
    const held = await this.channel.execHeld(command, RUN_TIMEOUT_MS);
    const release = async (): Promise<void> => {
      await held.release(COMMAND_TIMEOUT_MS);
    };
    try {
      const result = parseRunResult(parseDmactlOutput(held.firstLine), scenario, (gpa, len) => this.memory.contains(gpa, len));
      return { result, raw: held.firstLine, release };
    } catch (e) {
      await release().catch(() => undefined);
      if (e instanceof GuestContractError) throw e;
      throw new GuestContractError(`dmactl output could not be used: ${(e as Error).message}`, { cause: e });
    }
  }

  isHealthy(): boolean {
    return this.machine.isRunning() && this.channel.isOpen;
  }

  deviceModelEvents(sinceMs: number): DeviceModelEvent[] {
    return this.machine.deviceModelMessages(sinceMs).map((m) => ({
      atMs: m.at,
      kind: m.kind,
      line: m.line,
      ...(m.kind === 'edu-clamp' ? { from: Number(m.from), to: Number(m.to) } : {}),
    }));
  }

  async collectLogs(): Promise<void> {
    const dmesg = await this.sh('dmesg').catch((e: Error) => `dmesg unavailable: ${e.message}\n`);
    await fs.writeFile(path.join(this.artifactsDir, 'guest-dmesg.txt'), dmesg);
  }

  async close(): Promise<void> {
    this.channel.close();
    await this.memory.close();
    await this.machine.shutdown();
    await this.removeKeys();
  }
}
