// Save a booted, driver-loaded guest once and restore it many times. A snapshot is a private directory
// (named like a machine run directory, so a later harness sweeps it if this one is SIGKILLed):
//   device-state  QEMU's migration stream with x-ignore-shared: device state only, a few hundred KiB
//   guest-ram     a copy of the shared RAM file, taken while the VM was stopped
//   initrd        the boot's initrd (QEMU needs the file at launch; the guest never reads it again)
//   manifest.json written last: its presence means the snapshot is complete
// Measurements and the choice of method: README.md in this folder.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { Socket } from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { DmahilError } from '../errors.js';
import type { MachineConfig } from '../machine/index.js';
import { chooseRunDirBase, createRunDir, removeAtLastMoment, removePrivateDir } from '../machine/run-dir.js';
import type { LinuxRestorePoint, LinuxSession } from '../guest/linux/profile.js';

/** A snapshot cannot be made or cannot be used (corrupt, mismatched, no room). */
export class SnapshotError extends DmahilError {}

export const MANIFEST_VERSION = 2; // 2: saved with the edu attached, restored by `dmactl reattach`
const FILES = { state: 'device-state', ram: 'guest-ram', initrd: 'initrd', manifest: 'manifest.json' } as const;

export interface SnapshotManifest {
  version: number;
  /** The machine as booted, with `initrd` pointing into the snapshot. */
  config: MachineConfig;
  /** What the snapshot is of (variant, image hash, icount…): a restore for another key is refused. */
  key: string;
  qemuVersion: string;
  deviceStateSha256: string;
  deviceStateBytes: number;
  ramBytes: number;
  clientPrivateKey: string;
  hostPublicKey: string;
  /** True when a `dmactl serve` waits on the agent port in the saved guest (restores need no SSH login). */
  agentArmed: boolean;
  savedAt: string;
  saveMs: number;
}

export interface Snapshot {
  dir: string;
  manifest: SnapshotManifest;
  /** What restoreLinuxGuest needs. */
  point: LinuxRestorePoint;
  /** Remove the directory. */
  discard(): Promise<void>;
}

export interface SaveOptions {
  /** Identifies what was booted; loadSnapshot refuses a snapshot whose key differs. */
  key: string;
  /** Where the snapshot directory goes; default /dev/shm when it has room (as machine run dirs). */
  base?: string;
  /** Keep the source machine running after the save (default: it stays stopped; close it). */
  resume?: boolean;
}

/**
 * Write a guest RAM image into `to`: a new file, or an existing all-zero RAM file of the same size that QEMU
 * may have mapped already (so never truncate it). dd skips all-zero blocks, so holes stay holes: the tmpfs
 * RAM file of a freshly booted 256 MiB guest holds ~76 MB of data.
 */
export async function writeRamImage(from: string, to: string, roomIn: string): Promise<void> {
  const r = await execa('dd', [`if=${from}`, `of=${to}`, 'bs=64K', 'conv=notrunc,sparse', 'status=none'], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    throw new SnapshotError(`writing guest RAM ${from} into ${to} failed: ${String(r.stderr).trim() || `dd exited ${r.exitCode}`}`, {
      hint: /No space/i.test(String(r.stderr)) ? `free space in ${roomIn} (the RAM image takes up to ${Math.ceil(fs.statSync(from).size / 2 ** 20)} MiB)` : undefined,
    });
  }
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Save a driver-loaded guest. The source machine is left stopped unless `resume`. Nothing is left behind on failure. */
export async function saveSnapshot(session: LinuxSession, opts: SaveOptions): Promise<Snapshot> {
  const started = performance.now();
  const machine = session.machine;
  if (!machine.ramFile) throw new SnapshotError('the guest has no shared RAM file to snapshot');
  if (!session.identity) throw new SnapshotError('this session was not booted by startLinuxGuest (no SSH identity to save)');
  const ramBytes = machine.config.memoryMiB * 1024 * 1024;
  const base = opts.base ?? chooseRunDirBase(ramBytes).base;
  let dir: string;
  try {
    dir = createRunDir(path.resolve(base), `snap-${machine.name}`);
    removeAtLastMoment(dir); // a snapshot lives as long as this process at most
  } catch (e) {
    throw new SnapshotError(`cannot create a snapshot directory under ${base}: ${(e as Error).message}`, { cause: e, hint: 'check that the directory exists and is writable' });
  }
  let agentHost: Socket | undefined;
  try {
    // The agent serves the restored guest without an SSH login (LinuxSession.prepareForSave).
    agentHost = await session.prepareForSave();
    const qemuVersion = await machine.qmp.execute<{ qemu: { major: number; minor: number; micro: number }; package: string }>('query-version');
    const stateFile = path.join(dir, FILES.state);
    const saved = await machine.saveDeviceState(stateFile);
    await writeRamImage(machine.ramFile, path.join(dir, FILES.ram), path.dirname(dir));
    // Only now may the host end go: its hang-up is a message QEMU writes into guest RAM.
    agentHost?.destroy();
    await fsp.copyFile(session.identity.initrd, path.join(dir, FILES.initrd));
    // The source's edu kept its state (only a new QEMU loses it): no re-attach.
    if (opts.resume) await machine.resume();
    const manifest: SnapshotManifest = {
      version: MANIFEST_VERSION,
      config: { ...machine.config, initrd: path.join(dir, FILES.initrd) },
      key: opts.key,
      qemuVersion: `${qemuVersion.qemu.major}.${qemuVersion.qemu.minor}.${qemuVersion.qemu.micro} ${qemuVersion.package}`.trim(),
      deviceStateSha256: sha256(stateFile),
      deviceStateBytes: saved.bytes,
      ramBytes: fs.statSync(path.join(dir, FILES.ram)).size,
      clientPrivateKey: session.identity.clientPrivateKey,
      hostPublicKey: session.identity.hostPublicKey,
      agentArmed: agentHost !== undefined,
      savedAt: new Date().toISOString(),
      saveMs: Math.round(performance.now() - started),
    };
    const tmp = path.join(dir, `${FILES.manifest}.part`);
    // The edu's dma_mask is a bigint, which JSON has no word for: written as hex, read back by loadSnapshot.
    const json = JSON.stringify(manifest, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2);
    await fsp.writeFile(tmp, json + '\n', { mode: 0o600 });
    await fsp.rename(tmp, path.join(dir, FILES.manifest));
    return snapshotFrom(dir, manifest);
  } catch (e) {
    agentHost?.destroy();
    removePrivateDir(dir);
    if (e instanceof DmahilError) throw e;
    throw new SnapshotError(`saving a snapshot failed: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Open a snapshot directory and check it before any QEMU sees it: complete, same manifest version, the key
 * the caller expects, the RAM image of the configured size, the device state with its recorded hash.
 */
export async function loadSnapshot(dir: string, expect: { key: string }): Promise<Snapshot> {
  const bad = (why: string): SnapshotError => new SnapshotError(`snapshot ${dir} is unusable: ${why}`, { hint: 'discard it and save a new one (a cold boot does)' });
  let manifest: SnapshotManifest;
  try {
    manifest = JSON.parse(await fsp.readFile(path.join(dir, FILES.manifest), 'utf8')) as SnapshotManifest;
  } catch (e) {
    throw bad(`no readable manifest (${(e as Error).message}); an interrupted save leaves none`);
  }
  if (manifest.version !== MANIFEST_VERSION) throw bad(`manifest version ${manifest.version}, expected ${MANIFEST_VERSION}`);
  const mask = manifest.config.edu.dmaMask as unknown;
  if (typeof mask === 'string') manifest.config.edu = { ...manifest.config.edu, dmaMask: BigInt(mask) };
  if (manifest.key !== expect.key) throw bad(`it was saved for ${manifest.key}, not ${expect.key}`);
  const ramFile = path.join(dir, FILES.ram);
  const ramSize = fs.existsSync(ramFile) ? fs.statSync(ramFile).size : -1;
  if (ramSize !== manifest.config.memoryMiB * 1024 * 1024) throw bad(`guest-ram is ${ramSize} bytes, the machine has ${manifest.config.memoryMiB} MiB`);
  const stateFile = path.join(dir, FILES.state);
  if (!fs.existsSync(stateFile) || sha256(stateFile) !== manifest.deviceStateSha256) throw bad('device-state is missing or does not match its recorded hash');
  return snapshotFrom(dir, manifest);
}

function snapshotFrom(dir: string, manifest: SnapshotManifest): Snapshot {
  return {
    dir,
    manifest,
    point: {
      config: manifest.config,
      deviceState: path.join(dir, FILES.state),
      fillRam: (ramFile) => writeRamImage(path.join(dir, FILES.ram), ramFile, path.dirname(path.dirname(ramFile))),
      clientPrivateKey: manifest.clientPrivateKey,
      hostPublicKey: manifest.hostPublicKey,
      agentArmed: manifest.agentArmed,
    },
    discard: async () => removePrivateDir(dir),
  };
}
