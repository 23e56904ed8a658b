// Whether a catalog entry can mean anything on this QEMU. A negative control that the device model
// cannot produce is reported skipped with the reason, never run into a pass or a silent miss.
import type { EduBehaviour } from '../machine/edu-behaviour.js';
import type { VirtioIommuSupport } from '../../images/linux/build.js';
import { referenceOnly, VARIANTS, windowsOnly, type CatalogEntry, type GuestVariant } from './catalog.js';

/** Does deciding this entry's applicability need the measured edu behaviour? */
export function needsEduBehaviour(c: CatalogEntry): boolean {
  return c.scenario.fault === 'addr-beyond-mask';
}

/** Why the entry does not apply on this QEMU, or undefined when it does. */
export function notApplicable(c: CatalogEntry, edu: EduBehaviour): string | undefined {
  if (c.scenario.fault === 'addr-beyond-mask' && !(edu.clamps && edu.clampMessage)) {
    const what = edu.clamps ? 'clamps out-of-mask DMA without a message' : 'does not clamp out-of-mask DMA';
    return `not applicable on QEMU ${edu.qemuVersion}: its edu ${what}, so there is no clamp for the harness to catch`;
  }
  return undefined;
}

/**
 * Why the entry does not apply to the reference guest's kernel: a virtio-iommu variant on a kernel without
 * the driver would run untranslated (the device bypasses; a use after unmap goes unnoticed), not fail.
 */
export function notOnGuestKernel(c: CatalogEntry, kernelVersion: string, virtioIommu: VirtioIommuSupport, variants: readonly GuestVariant[] = Object.values(VARIANTS)): string | undefined {
  const variant = variants.find((v) => v.id === c.variant);
  return variant ? variantNotOnGuestKernel(variant, kernelVersion, virtioIommu) : undefined;
}

/** Why a guest variant cannot run on the reference guest's kernel, or undefined when it can. */
export function variantNotOnGuestKernel(variant: GuestVariant, kernelVersion: string, virtioIommu: VirtioIommuSupport): string | undefined {
  if (variant.machine?.iommu !== 'virtio-iommu' || virtioIommu.driver !== 'absent') return undefined;
  return `not applicable on guest kernel ${kernelVersion}: it has no virtio-iommu driver (${virtioIommu.evidence}), so the edu's DMA would bypass virtio-iommu-pci untranslated; a kernel with CONFIG_VIRTIO_IOMMU (Debian 13's 6.12) runs it`;
}

/** What the reference guest's own variants are on Windows, where it is another variant or none. */
const ON_WINDOWS: Record<string, string> = {
  'iommu-lazy': 'lazy or strict IOTLB invalidation is a Linux kernel parameter; Windows has no such setting (the iommu variant is the Windows one)',
  'high-memory': 'on Windows the bounce variant is this case: 4 GiB, almost all of it beyond edudma\'s 28-bit DmaAddressWidth, so the HAL uses map registers',
};

/**
 * Why the entry does not apply to this image: a reference guest's machine on a golden image, a Windows
 * variant (Driver Verifier) on the reference guest, or a control edudma.sys refuses or that needs Windows
 * to remap the edu's DMA, which it may not do (docs/windows.md, "Windows variants").
 */
export function notOnImage(c: CatalogEntry, image: string): string | undefined {
  const variant = Object.values(VARIANTS).find((v) => v.id === c.variant);
  if (!variant) return undefined;
  if (image === 'linux') {
    return windowsOnly(variant) ? `not applicable on the reference guest: the ${variant.id} variant is a Windows golden image's (${variant.description}); run it with --image <golden image> --all` : undefined;
  }
  if (referenceOnly(variant)) {
    const why = ON_WINDOWS[variant.id] ?? 'a golden image brings its own';
    return `not applicable on ${image}: the ${variant.id} variant is a machine of the reference guest's (${variant.description}); ${why} (docs/windows.md)`;
  }
  if (variant.windows && (c.scenario.fault === 'use-after-unmap' || c.scenario.fault === 'short-mapping' || c.scenario.fault === 'other-mapping')) {
    return `not applicable on ${image}: edudma.sys refuses the ${c.scenario.fault} fault as unsupported (the Linux module's alone; docs/windows.md)`;
  }
  if (variant.windows?.iommu && c.expectFinding === 'iommu-fault') {
    return `not applicable on ${image}: the control is caught only when Windows remaps the edu's DMA, which it may leave off under QEMU's intel-iommu (its DMAR table has no platform opt-in); the run's windows/dma-remapping.json says what it did (docs/windows.md)`;
  }
  return undefined;
}
