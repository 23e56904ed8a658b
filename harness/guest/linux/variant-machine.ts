// A guest variant of the user's own (dmahil.config.json "variants"): how the reference guest's machine
// differs from the built-in one (256 MiB, one CPU, the edu's 28-bit default mask, swiotlb as the kernel
// chooses, or forced for the bounce variant). Pure: the profile merges it into its machine config.
import type { MachineConfig } from '../../machine/config.js';

export interface VariantMachine {
  /** Guest RAM in MiB. More than 256 puts RAM above the edu's default 28-bit reach: the kernel bounces what the driver maps there, or fails to. */
  memoryMiB?: number;
  cpus?: number;
  /** 'force': every mapping bounces (swiotlb=force); 'off': no bouncing (swiotlb=noforce); 'default': the kernel's choice. */
  swiotlb?: 'default' | 'force' | 'off';
  /** The edu's dma_mask property in hex, e.g. "0xffffffff" (QEMU's default is 0x0fffffff, 28 bits). */
  eduDmaMask?: string;
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

/** The machine-config fields a variant overrides (memory, CPUs, the edu's mask). */
export function variantMachineConfig(m: VariantMachine | undefined, base: Pick<MachineConfig, 'memoryMiB' | 'cpus' | 'edu'>): Pick<MachineConfig, 'memoryMiB' | 'cpus' | 'edu'> {
  return {
    memoryMiB: m?.memoryMiB ?? base.memoryMiB,
    cpus: m?.cpus ?? base.cpus,
    edu: m?.eduDmaMask !== undefined ? { ...base.edu, dmaMask: BigInt(m.eduDmaMask) } : base.edu,
  };
}
