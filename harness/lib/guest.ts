// Start a guest of a profile: the one way the CLI and library users boot a guest with the test driver.
import { referenceOnly, VARIANTS, windowsOnly, type BuiltinVariantId, type GuestVariant } from '../dma/catalog.js';
import { UsageError } from '../errors.js';
import { startLinuxGuest, type LinuxGuestOptions } from '../guest/linux/profile.js';
import type { GuestSession } from '../guest/session.js';
import { startWindowsGuest, type WindowsGuestOptions } from '../guest/windows/profile.js';
import { checkedLinuxDriver, checkedWindowsDriver } from './driver.js';
import { checkVariant } from './variant-check.js';
import { cacheDir, packageRoot } from './paths.js';

/** What {@link startGuest} needs; only `profile` and `artifactsDir` are required. */
export interface StartGuestOptions {
  /**
   * 'linux': the reference guest (a small Debian Linux built from packages, cached, with the edudma
   * module built for its kernel); 'windows': a Windows golden image, named by `image`.
   */
  profile: 'linux' | 'windows';
  /**
   * 'direct' (default): device addresses are the CPU's pages; 'bounce': every DMA mapping bounces; another
   * built-in one (VARIANTS: 'iommu' on both profiles, 'verifier' on Windows alone, the rest the reference
   * guest's); or a variant of your own for the reference guest, with its `machine` (memory, CPUs, swiotlb,
   * the edu's mask).
   */
  variant?: BuiltinVariantId | GuestVariant;
  /** For profile 'windows': the golden image's manifest (.json) or .qcow2 (default DMAHIL_WINDOWS_IMAGE). */
  image?: string;
  /** Where the guest's logs go (serial log, QEMU logs, QMP transcript, dmesg, dumps). */
  artifactsDir: string;
  /** 'auto' (default), 'kvm' or 'tcg'. The reference guest's auto is TCG with -icount. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** The QEMU binary (default qemu-system-x86_64 on PATH). */
  qemuBinary?: string;
  /** How long to wait for the guest's login (default 120 s). */
  bootTimeoutMs?: number;
  /** Progress lines ("booting QEMU", ...). */
  onProgress?: (message: string) => void;
  /**
   * Your own driver build, as `dmahil run --driver DIR`: for the reference guest a folder with edudma.ko
   * (built for the reference guest's kernel) and a static dmactl; for a golden image a package folder.
   * Checked before the guest boots (file kinds, contract version, the module's kernel): a UsageError.
   */
  driver?: string;
  /** @internal the CLI's -icount for the reference guest and its test builds of the driver. */
  linux?: Pick<LinuxGuestOptions, 'icount' | 'driverOverride' | 'kernelRoot'>;
  /** @internal the CLI's --driver for a golden image: the package folder to install. */
  windows?: Pick<WindowsGuestOptions, 'driverDir'>;
}

/** The variant an option names: a built-in one by id, or the user's own object. */
export function guestVariant(v: StartGuestOptions['variant']): GuestVariant {
  const variant = typeof v === 'object' ? v : VARIANTS[v ?? 'direct'];
  if (!variant) throw new UsageError(`unknown variant ${JSON.stringify(v)}`, { hint: "use 'direct', 'bounce' or a variant object of your own (reference guest)" });
  return variant;
}

/**
 * Boot a guest of a profile with the test driver loaded and return its session: run scenarios on it with
 * `runScenario`, read its RAM with `session.memory.read`, and `close()` it when done (QEMU is killed).
 */
export async function startGuest(opts: StartGuestOptions): Promise<GuestSession> {
  const variant = guestVariant(opts.variant);
  if (typeof opts.variant === 'object') checkVariant(variant);
  // A declared machine is the reference guest's: a golden image's memory and DMA width are its own.
  if (referenceOnly(variant) && opts.profile === 'windows') throw new UsageError(`guest variant "${variant.id}" sets the reference guest's machine, not a Windows golden image's`, { hint: 'run it with --image linux, or use the direct, bounce, iommu and verifier variants on Windows' });
  if (windowsOnly(variant) && opts.profile === 'linux') throw new UsageError(`guest variant "${variant.id}" is a Windows golden image's (${variant.description})`, { hint: 'run it with profile windows (dmahil run --image <golden image>)' });
  const common = {
    repoRoot: packageRoot,
    artifactsDir: opts.artifactsDir,
    forceBounce: variant.forceBounce,
    accel: opts.accel ?? 'auto',
    bootTimeoutMs: opts.bootTimeoutMs ?? 120_000,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.qemuBinary ? { qemuBinary: opts.qemuBinary } : {}),
  };
  if (opts.profile === 'windows') {
    const image = opts.image ?? process.env.DMAHIL_WINDOWS_IMAGE;
    if (!image) throw new Error("profile 'windows' needs image (or DMAHIL_WINDOWS_IMAGE): a golden image's manifest .json or .qcow2");
    const driverDir = opts.driver !== undefined ? checkedWindowsDriver(opts.driver, image).dir : opts.windows?.driverDir;
    return startWindowsGuest({ ...common, image, ...(driverDir ? { driverDir } : {}), ...(variant.windows ? { variant: variant.windows } : {}) });
  }
  const driver = opts.driver !== undefined ? await checkedLinuxDriver(opts.driver, opts.onProgress) : undefined;
  const linux = driver ? { ...opts.linux, driverOverride: { module: driver.module, tool: driver.tool } } : opts.linux;
  return startLinuxGuest({ ...common, cacheDir: cacheDir(), ...linux, ...(variant.machine ? { variant: variant.machine } : {}) });
}
