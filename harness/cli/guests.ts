// What `dmahil run` and `dmahil explore` share before and around their scenarios: the checks before any
// guest boots, and the source of guests (a pristine snapshot restore per scenario for the reference
// guest, a booted guest reused per variant with --boot/--keep or for a Windows golden image).
import fs from 'node:fs/promises';
import fsSync from 'node:fs';
import path from 'node:path';
import type { GuestVariant } from '../dma/catalog.js';
import { SnapshotSessionSource } from '../dma/snapshot-session-source.js';
import { ReusingSessionSource, type SessionSource } from '../dma/session-source.js';
import type { Verdict } from '../dma/verdict.js';
import { EnvironmentError, UsageError } from '../errors.js';
import { restoreLinuxGuest, type LinuxGuestOptions, type LinuxSession } from '../guest/linux/profile.js';
import type { GuestSession } from '../guest/session.js';
import { startGuest } from '../lib/guest.js';
import { cacheDir, packageRoot } from '../lib/paths.js';
import { checkQemu, type QemuInfo } from '../machine/qemu-check.js';
import { DEFAULT_QEMU_BINARY } from '../machine/cmdline.js';
import { CHEAP_WAITS } from '../snapshot/index.js';
import { proveKvm } from './kvm-preflight.js';
import { buildReferenceImage, type ReferenceImage } from '../../images/linux/build.js';
import { buildLinuxDriver } from '../../guest-driver/linux/build.js';
import { checkDriverKernel, checkDriverOption, type CheckedDriver } from './driver-option.js';
import { kernelDriverBuild, type KernelRoot } from '../kernel/kernel-root.js';

/** The package root (a checkout, or node_modules/dmahil): guest-driver/, images/, package.json. */
export const repoRoot = packageRoot;

export type Accel = 'auto' | 'kvm' | 'tcg';

export async function version(): Promise<string> {
  const pkg = JSON.parse(await fs.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/**
 * Before any guest boots: a supported QEMU, and where a guest may run under KVM, proof that KVM runs a
 * Linux kernel (the reference kernel, booted through early boot: firmware alone proves too little).
 * --accel kvm without it is one line with the fix and exit 2, within seconds; with 'auto' the verdict
 * is remembered, so a Windows guest then gets TCG and one warning instead of a boot into a broken KVM.
 * --driver DIR: the user's driver build, checked (kinds, contract version, the module's kernel) instead
 * of building ours. Returns the QEMU, for the reference guest its image (the guest kernel's version), and
 * the checked driver.
 */
export async function preflight(
  accel: Accel,
  image: string,
  progress: (m: string) => void = () => undefined,
  qemuBinary?: string,
  driverDir?: string,
  kernelRoot?: KernelRoot,
): Promise<{ qemu: QemuInfo; reference?: ReferenceImage; driver?: CheckedDriver }> {
  if (kernelRoot && image !== 'linux') throw new UsageError(`--kernel is the reference guest's kernel; ${image} boots its own`, { hint: 'leave --kernel out with a golden image, or run --image linux' });
  // The driver's own files first: a contract mismatch costs no image build and no QEMU.
  const driver = driverDir !== undefined ? checkDriverOption(driverDir, image) : undefined;
  const qemu = await checkQemuOption(qemuBinary);
  let reference: ReferenceImage | undefined;
  if (image === 'linux') {
    // Both cached; a missing package or a kernel edudma cannot build for is bad input, not a failed scenario.
    reference = await buildReferenceImage({ cacheDir: path.join(cacheDir(), 'images'), onProgress: progress, ...(kernelRoot ? { kernelRoot } : {}) });
    if (driver) checkDriverKernel(driver, reference.kernelVersion);
    else await buildLinuxDriver({ kernelVersion: reference.kernelVersion, repoRoot, onProgress: progress, ...(kernelRoot ? { kernel: kernelDriverBuild(kernelRoot, cacheDir()) } : {}) });
  }
  // The reference guest's auto is TCG; any other guest that may get KVM first sees KVM run a kernel.
  if (accel === 'kvm' || (accel === 'auto' && image !== 'linux')) await proveKvm({ repoRoot, qemuBinary: qemu.binary, accel, reference, onProgress: progress });
  return { qemu, reference, ...(driver ? { driver } : {}) };
}

/**
 * The QEMU a command uses: --qemu's binary, or qemu-system-x86_64 on PATH, checked by checkQemu (version,
 * edu device). What --qemu names and is not a QEMU dmahil can use is bad input: the message says which
 * binary and what is wrong with it, the hint how to fix the option (exit 2, nothing built or booted).
 */
export async function checkQemuOption(qemuBinary?: string): Promise<QemuInfo> {
  if (qemuBinary === undefined) return checkQemu(DEFAULT_QEMU_BINARY);
  try {
    return await checkQemu(qemuBinary);
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    throw new UsageError(`--qemu ${qemuBinary} is not a QEMU dmahil can use: ${e.message}`, {
      hint: 'pass --qemu a qemu-system-x86_64 of QEMU 7.2 or newer built with the edu device (CONFIG_EDU, on in the default x86_64-softmmu build), or leave it out for the one on PATH',
    });
  }
}

/**
 * The least free space a run's artifacts need: serial logs, QEMU logs, QMP transcripts, dmesg, memory
 * excerpts and the reports of a full catalog come to a few MiB (a memory dump of a hung guest needs more).
 */
const ARTIFACTS_MIN_FREE_BYTES = 32 * 1024 * 1024;

/** Refuse, before anything is created or booted, an artifacts folder on a file system without room. */
export function checkArtifactsRoom(artifacts: string): void {
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

export interface GuestSourceOptions {
  image: string;
  accel: Accel;
  bootTimeoutMs: number;
  artifacts: string;
  progress: (m: string) => void;
  /** Boot one guest per variant and reuse it (--boot, --keep) instead of restoring per scenario. */
  reuse: boolean;
  /** --keep: asked after each scenario of a reused guest. */
  keep?: (session: GuestSession, verdict: Verdict) => boolean;
  /** The reference guest with another module or tool (specs: the planted-bug test build). */
  driverOverride?: LinuxGuestOptions['driverOverride'];
  /** --qemu: the QEMU binary every guest runs on (default qemu-system-x86_64 on PATH). */
  qemuBinary?: string;
  /** --driver for a Windows golden image: the package folder to install instead of build/windows/<arch>. */
  windowsDriverDir?: string;
  /** --kernel: the reference guest's kernel root (default the installed kernel). */
  kernelRoot?: KernelRoot;
}

export function guestSource(o: GuestSourceOptions): SessionSource {
  // A variant's first boot logs to <artifacts>/<variant>; a later one (the fallback after a failed snapshot,
  // the replacement of a broken guest) to <variant>/boot-N, so it cannot overwrite the evidence of the first.
  const boots = new Map<string, number>();
  const bootDir = (variant: GuestVariant): string => {
    const n = (boots.get(variant.id) ?? 0) + 1;
    boots.set(variant.id, n);
    return n === 1 ? path.join(o.artifacts, variant.id) : path.join(o.artifacts, variant.id, `boot-${n}`);
  };
  // Windows guests restore through their own overlay per boot; snapshots are the reference guest's.
  if (o.image !== 'linux') {
    const windows = (variant: GuestVariant): Promise<GuestSession> =>
      startGuest({ profile: 'windows', image: o.image, variant, artifactsDir: bootDir(variant), accel: o.accel, bootTimeoutMs: o.bootTimeoutMs, onProgress: o.progress, ...(o.qemuBinary ? { qemuBinary: o.qemuBinary } : {}), ...(o.windowsDriverDir ? { windows: { driverDir: o.windowsDriverDir } } : {}) });
    return new ReusingSessionSource(windows);
  }
  // The reference profile's session is a LinuxSession (snapshots save it).
  const boot = (variant: GuestVariant): Promise<LinuxSession> =>
    startGuest({
      profile: 'linux',
      variant,
      artifactsDir: bootDir(variant),
      accel: o.accel,
      bootTimeoutMs: o.bootTimeoutMs,
      onProgress: o.progress,
      ...(o.qemuBinary ? { qemuBinary: o.qemuBinary } : {}),
      linux: { icount: CHEAP_WAITS, ...(o.driverOverride ? { driverOverride: o.driverOverride } : {}), ...(o.kernelRoot ? { kernelRoot: o.kernelRoot } : {}) },
    }) as Promise<LinuxSession>;
  if (o.reuse) return new ReusingSessionSource(boot, { keep: o.keep });
  return new SnapshotSessionSource({
    boot,
    restore: (snapshot, variant, n) => restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(o.artifacts, variant.id, `restore-${n}`), readyTimeoutMs: o.bootTimeoutMs }),
    // A declared variant's machine is part of what was saved: another machine is another snapshot.
    key: (variant) => `linux ${variant.id}${variant.machine ? ` machine=${JSON.stringify(variant.machine)}` : ''} accel=${o.accel} icount=${JSON.stringify(CHEAP_WAITS)}${o.driverOverride ? ` driver=${JSON.stringify(o.driverOverride)}` : ''}${o.qemuBinary ? ` qemu=${o.qemuBinary}` : ''}${o.kernelRoot ? ` kernel=${o.kernelRoot.root}` : ''}`,
    onProgress: o.progress,
  });
}
