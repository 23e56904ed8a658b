// The DMA scenarios dmahil runs, for every guest. Each guest variant is booted once and runs its list.
// A negative control names the finding the harness must report; it passes only when caught for that reason.
import { makeScenario, type Scenario } from '../contract/scenario.js';
import type { VariantMachine } from '../guest/linux/variant-machine.js';
import type { WindowsVariantMachine } from '../guest/windows/variant.js';
import type { ScenarioCase } from './run-scenario.js';

/** direct and bounce: every guest profile has them; the others are the reference guest's own machines. */
export type BuiltinVariantId = 'direct' | 'bounce' | 'iommu' | 'iommu-lazy' | 'amd-iommu' | 'virtio-iommu' | 'high-memory' | 'verifier';

/** The variants `dmahil explore` searches (a seed's sequence of scenarios is fixed on them). */
export const EXPLORED_VARIANTS = ['direct', 'bounce'] as const;

export interface GuestVariant {
  /** Short id used in names and artifact folders: a built-in one, or a variant declared in dmahil.config.json. */
  id: string;
  /**
   * bounce: every DMA goes through a bounce buffer (Linux swiotlb=force; Windows a DMA address width
   * below the guest's RAM, so map registers) — the only way a missing sync or flush shows on x86.
   */
  forceBounce: boolean;
  description: string;
  /** A declared variant's reference-guest machine (memory, CPUs, swiotlb, the edu's mask). */
  machine?: VariantMachine;
  /** What the variant is on a Windows golden image (docs/windows.md, "Windows variants"). */
  windows?: WindowsVariantMachine;
}

export const VARIANTS: Record<BuiltinVariantId, GuestVariant> = {
  direct: { id: 'direct', forceBounce: false, description: 'device addresses are the CPU pages' },
  bounce: { id: 'bounce', forceBounce: true, description: 'every mapping bounced (swiotlb=force / map registers)' },
  // Not with swiotlb=force: under an IOMMU Linux 6.1 ignores it (iommu-notes.md), so bounce stays untranslated.
  iommu: {
    id: 'iommu', forceBounce: false, description: 'intel-iommu, strict invalidation: device addresses are IOVAs',
    machine: { iommu: 'intel-iommu', iommuMode: 'strict' },
    windows: { iommu: 'intel-iommu' },
  },
  'iommu-lazy': {
    id: 'iommu-lazy', forceBounce: false, description: 'intel-iommu, lazy (batched) invalidation: device addresses are IOVAs',
    machine: { iommu: 'intel-iommu', iommuMode: 'lazy' },
  },
  // QEMU's amd-iommu blocks migration: no snapshot, so its scenarios share one booted guest.
  'amd-iommu': {
    id: 'amd-iommu', forceBounce: false, description: 'amd-iommu, strict invalidation: device addresses are IOVAs',
    machine: { iommu: 'amd-iommu', iommuMode: 'strict' },
  },
  // Needs the guest kernel's virtio-iommu driver (Debian 13's 6.12 has it, 12's 6.1 not: skipped there).
  'virtio-iommu': {
    id: 'virtio-iommu', forceBounce: false, description: 'virtio-iommu, strict invalidation: device addresses are IOVAs',
    machine: { iommu: 'virtio-iommu', iommuMode: 'strict' },
  },
  // 4.5 GiB: 2 GiB below the PCI hole, 2.5 GiB from 4 GiB up, where the kernel places the driver's buffers
  // first. The edu reaches 32 bits, so those bounce through swiotlb (below 4 GiB) because of the mask.
  'high-memory': {
    id: 'high-memory', forceBounce: false, description: '4.5 GiB of RAM, the edu reaches 4 GiB: buffers above it bounce',
    machine: { memoryMiB: 4608, eduDmaMask: '0xffffffff' },
  },
  // Windows only: bounce's 4 GiB (map registers) with Driver Verifier's DMA checking on edudma.sys.
  verifier: {
    id: 'verifier', forceBounce: true, description: 'Driver Verifier DMA checking on edudma.sys, map registers (Windows)',
    windows: { verifier: true },
  },
};

/** The built-in variants, then those declared under "variants" in dmahil.config.json. */
export function knownVariants(declared: readonly GuestVariant[] = []): GuestVariant[] {
  return [...Object.values(VARIANTS), ...declared];
}

/** Variants that set the reference guest's machine: a golden image (Windows) brings its own. */
export function referenceOnly(variant: GuestVariant): boolean {
  return variant.machine !== undefined && variant.windows === undefined;
}

/** Variants of a Windows golden image alone (Driver Verifier): the reference guest has no such thing. */
export function windowsOnly(variant: GuestVariant): boolean {
  return variant.windows !== undefined && variant.machine === undefined;
}

export interface CatalogEntry extends ScenarioCase {
  variant: GuestVariant['id'];
  /** Part of the quick default set that `dmahil run` uses. */
  quick: boolean;
  /** The command that runs it alone, when not `dmahil run --grep '^name$'` (Verdict.rerun). */
  rerun?: string;
}

function entry(variant: BuiltinVariantId, quick: boolean, name: string, s: Partial<Scenario>, extra: Partial<ScenarioCase> = {}): CatalogEntry {
  return { variant, quick, name, scenario: makeScenario(s), ...extra };
}

const KiB = 1024;

export const CATALOG: CatalogEntry[] = [
  // Round trips of every size that matters to the edu's 4095-byte operations.
  entry('direct', true, 'round-trip 1 B', { size: 1, seed: 11 }),
  entry('direct', false, 'round-trip 512 B', { size: 512, seed: 12 }),
  entry('direct', true, 'round-trip 4095 B', { size: 4095, seed: 13 }),
  entry('direct', true, 'round-trip 4096 B', { size: 4096, seed: 14 }),
  entry('direct', false, 'round-trip 64 KiB', { size: 64 * KiB, seed: 15 }),
  entry('direct', false, 'round-trip 1 MiB', { size: 1024 * KiB, seed: 16 }),
  // Unaligned data.
  entry('direct', true, 'round-trip 4095 B at offset 1', { size: 4095, offset: 1, seed: 17 }),
  entry('direct', false, 'round-trip 8 KiB at offset 4095', { size: 8 * KiB, offset: 4095, seed: 18 }),
  // Each direction and method.
  entry('direct', true, 'to-device 4096 B', { direction: 'to-device', size: 4096, seed: 21 }),
  entry('direct', true, 'from-device 4096 B at offset 100', { direction: 'from-device', size: 4096, offset: 100, seed: 22 }),
  entry('direct', false, 'scatter-gather round-trip 12 KiB', { method: 'scatter-gather', size: 12 * KiB, offset: 7, seed: 23 }),
  entry('direct', false, 'common-buffer round-trip 8 KiB', { method: 'common-buffer', size: 8 * KiB, seed: 24 }),
  // Negative controls the host catches on its own.
  entry('direct', true, 'control: wrong seed', { size: 4096, seed: 31 }, { expectSeed: 32, expectFinding: 'wrong-seed' }),
  entry('direct', true, 'control: address beyond the 28-bit mask', { size: 4096, seed: 33, fault: 'addr-beyond-mask' }, { expectFinding: 'device-model-clamp' }),

  // Bounce buffers: correct drivers still pass ...
  entry('bounce', true, 'bounced round-trip 4096 B', { size: 4096, seed: 41 }),
  entry('bounce', false, 'bounced round-trip 64 KiB, minimal sync', { size: 64 * KiB, sync: 'minimal', seed: 42 }),
  entry('bounce', false, 'bounced from-device 5000 B at offset 3', { direction: 'from-device', size: 5000, offset: 3, seed: 43 }),
  entry('bounce', false, 'bounced to-device 4096 B', { direction: 'to-device', size: 4096, seed: 44 }),
  entry('bounce', false, 'bounced scatter-gather 12 KiB', { method: 'scatter-gather', size: 12 * KiB, offset: 5, seed: 45 }),
  // ... and the coherency bugs they hide without bouncing become visible.
  entry('bounce', true, 'control: skipped sync after the device wrote', { direction: 'from-device', size: 4095, seed: 51, fault: 'skip-sync' }, { expectFinding: 'stale-client-buffer' }),
  entry('bounce', false, 'control: skipped sync before the device read', { direction: 'to-device', size: 4096, seed: 52, fault: 'skip-sync' }, { expectFinding: 'stale-source-bounce' }),
  entry('bounce', false, 'control: destination mapped in the wrong direction', { size: 4096, seed: 53, fault: 'wrong-direction' }, { expectFinding: 'stale-client-buffer' }),
  entry('bounce', false, 'control: CPU read before completion', { direction: 'from-device', size: 4096, seed: 54, fault: 'read-before-completion' }, { expectFinding: 'stale-client-buffer' }),

  // Through a vIOMMU (strict): correct drivers pass with IOVAs ...
  entry('iommu', true, 'translated round-trip 4096 B', { size: 4096, seed: 61 }),
  entry('iommu', false, 'translated round-trip 1 MiB', { size: 1024 * KiB, seed: 62 }),
  entry('iommu', false, 'translated round-trip 8 KiB at offset 4095', { size: 8 * KiB, offset: 4095, seed: 63 }),
  entry('iommu', false, 'translated scatter-gather round-trip 12 KiB', { method: 'scatter-gather', size: 12 * KiB, offset: 7, seed: 64 }),
  entry('iommu', false, 'translated common-buffer round-trip 8 KiB', { method: 'common-buffer', size: 8 * KiB, seed: 65 }),
  // ... and the mapping bugs only an IOMMU stops fault there, caught from QEMU's fault reports.
  entry('iommu', true, 'control: device writes after the unmap', { direction: 'from-device', size: 4096, seed: 71, fault: 'use-after-unmap' }, { expectFinding: 'iommu-fault' }),
  entry('iommu', false, 'control: mapping shorter than the transfer', { direction: 'from-device', size: 12 * KiB, seed: 72, fault: 'short-mapping' }, { expectFinding: 'iommu-fault' }),
  entry('iommu', false, 'control: device given the address of another mapping', { size: 8 * KiB, seed: 74, fault: 'other-mapping' }, { expectFinding: 'iommu-fault' }),
  entry('iommu', false, 'control: destination mapped read-only for the device', { size: 4096, seed: 73, fault: 'wrong-direction' }, { expectFinding: 'iommu-fault' }),
  // Lazy invalidation: the same driver passes; an unmapped IOVA the device never used still faults.
  entry('iommu-lazy', false, 'lazy-translated round-trip 64 KiB', { size: 64 * KiB, seed: 81 }),
  entry('iommu-lazy', false, 'control: device writes after the unmap (lazy)', { direction: 'from-device', size: 4096, seed: 82, fault: 'use-after-unmap' }, { expectFinding: 'iommu-fault' }),
  // The other vIOMMU models: the same driver translated, the same use after unmap refused.
  entry('amd-iommu', false, 'amd-iommu translated round-trip 4096 B', { size: 4096, seed: 111 }),
  entry('amd-iommu', false, 'amd-iommu control: device writes after the unmap', { direction: 'from-device', size: 4096, seed: 112, fault: 'use-after-unmap' }, { expectFinding: 'iommu-fault' }),
  // 4095 B, one edu operation per buffer: QEMU's virtio-iommu (10.0.13 measured) looks an IOVA up as [a, a+1],
  // so 4096 B's second operation, 1 byte at the destination's last address, matches the next mapping too
  // (the source, read-only) and faults: a device-model bug, not the driver's.
  entry('virtio-iommu', false, 'virtio-iommu translated round-trip 4095 B', { size: 4095, seed: 121 }),
  entry('virtio-iommu', false, 'virtio-iommu control: device writes after the unmap', { direction: 'from-device', size: 4096, seed: 122, fault: 'use-after-unmap' }, { expectFinding: 'iommu-fault' }),
  entry('virtio-iommu', false, 'virtio-iommu control: destination mapped read-only for the device', { size: 4096, seed: 123, fault: 'wrong-direction' }, { expectFinding: 'iommu-fault' }),

  // RAM above 4 GiB and a 32-bit edu: the mask, not swiotlb=force, makes the bounce.
  entry('high-memory', false, 'high-memory round-trip 64 KiB', { size: 64 * KiB, seed: 91 }),
  entry('high-memory', false, 'high-memory from-device 5000 B at offset 3', { direction: 'from-device', size: 5000, offset: 3, seed: 92 }),
  entry('high-memory', false, 'high-memory control: skipped sync after the device wrote', { direction: 'from-device', size: 4095, seed: 93, fault: 'skip-sync' }, { expectFinding: 'stale-client-buffer' }),

  // Driver Verifier's DMA checking (Windows): every DMA path of a correct driver passes without bug check 0xE6.
  entry('verifier', false, 'verified round-trip 4096 B', { size: 4096, seed: 101 }),
  entry('verifier', false, 'verified round-trip 64 KiB, minimal sync', { size: 64 * KiB, sync: 'minimal', seed: 102 }),
  entry('verifier', false, 'verified from-device 5000 B at offset 3', { direction: 'from-device', size: 5000, offset: 3, seed: 103 }),
  entry('verifier', false, 'verified to-device 8 KiB at offset 4095', { direction: 'to-device', size: 8 * KiB, offset: 4095, seed: 104 }),
  entry('verifier', false, 'verified scatter-gather 12 KiB', { method: 'scatter-gather', size: 12 * KiB, offset: 5, seed: 105 }),
  entry('verifier', false, 'verified common-buffer round-trip 8 KiB', { method: 'common-buffer', size: 8 * KiB, seed: 106 }),
];

export function selectCatalog(opts: { all: boolean; grep?: RegExp }): CatalogEntry[] {
  return CATALOG.filter((e) => (opts.all || e.quick) && (!opts.grep || opts.grep.test(e.name)));
}
