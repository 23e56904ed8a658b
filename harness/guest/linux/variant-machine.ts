// A guest variant of the user's own (dmahil.config.json "variants"): how the reference guest's machine
// differs from the built-in one (256 MiB, one CPU, the edu's 28-bit default mask, swiotlb as the kernel
// chooses, or forced for the bounce variant). Pure: the profile merges it into its machine config.
import { EDU_DMA_BITS } from '../../contract/scenario.js';
import type { IommuModel, MachineConfig } from '../../machine/config.js';

export interface VariantMachine {
  /** Guest RAM in MiB. More than 256 puts RAM above the edu's default 28-bit reach: the kernel bounces what the driver maps there, or fails to. */
  memoryMiB?: number;
  cpus?: number;
  /** 'force': every mapping bounces (swiotlb=force); 'off': no bouncing (swiotlb=noforce); 'default': the kernel's choice. */
  swiotlb?: 'default' | 'force' | 'off';
  /** The edu's dma_mask property in hex, e.g. "0xffffffff" (QEMU's default is 0x0fffffff, 28 bits). */
  eduDmaMask?: string;
  /** A vIOMMU between the edu and RAM: device addresses become IOVAs. */
  iommu?: IommuModel;
  /** How the guest invalidates unmapped IOVAs: at once (strict, the default) or batched later (lazy). */
  iommuMode?: 'strict' | 'lazy';
}

/**
 * Whether the guest may run with -icount. Measured (QEMU 7.2, TCG): with -icount (shift=3 or auto, sleep
 * on or off) a 2-CPU reference guest stops at "x86: Booting SMP configuration" and never brings up the
 * second CPU; without it, it boots in about 4 s. So a variant of more than one CPU runs without -icount,
 * and the edu's 100 ms DMA timer then costs real time.
 */
export function icountFits(m: VariantMachine | undefined): boolean {
  return (m?.cpus ?? 1) === 1;
}

/** The kernel command-line word for a swiotlb setting. */
export function swiotlbAppend(swiotlb: VariantMachine['swiotlb'] | undefined, forceBounce: boolean): string {
  if (swiotlb === 'force' || (swiotlb === undefined && forceBounce)) return 'swiotlb=force';
  if (swiotlb === 'off') return 'swiotlb=noforce';
  return '';
}

/**
 * The kernel command-line words for a vIOMMU: on (Debian's config leaves intel's off by default),
 * translating (no passthrough), strict or lazy invalidation. Under it Linux 6.1 ignores swiotlb=force.
 */
export function iommuAppend(m: VariantMachine | undefined): string {
  if (!m?.iommu) return '';
  const on = m.iommu === 'intel-iommu' ? 'intel_iommu=on ' : '';
  return `${on}iommu.passthrough=0 iommu.strict=${m.iommuMode === 'lazy' ? 0 : 1}`;
}

/** Bits of the edu's dma_mask (0xffffffff: 32); undefined up to 28, which edudma declares anyway. */
export function eduDmaBits(m: VariantMachine | undefined): number | undefined {
  if (m?.eduDmaMask === undefined) return undefined;
  const bits = BigInt(m.eduDmaMask).toString(2).replace(/^0+/, '').length;
  return bits <= EDU_DMA_BITS ? undefined : bits;
}

/** edudma's parameters for the variant: the edu's DMA width when it is not the default. */
export function driverParams(m: VariantMachine | undefined): string {
  const bits = eduDmaBits(m);
  return bits === undefined ? '' : `dma_bits=${bits}`;
}

/** The machine-config fields a variant overrides (memory, CPUs, the edu's mask, the vIOMMU). */
export function variantMachineConfig(m: VariantMachine | undefined, base: Pick<MachineConfig, 'memoryMiB' | 'cpus' | 'edu'>): Pick<MachineConfig, 'memoryMiB' | 'cpus' | 'edu' | 'iommu'> {
  return {
    memoryMiB: m?.memoryMiB ?? base.memoryMiB,
    cpus: m?.cpus ?? base.cpus,
    edu: m?.eduDmaMask !== undefined ? { ...base.edu, dmaMask: BigInt(m.eduDmaMask) } : base.edu,
    ...(m?.iommu ? { iommu: m.iommu } : {}),
  };
}
