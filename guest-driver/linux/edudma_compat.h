/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * edudma_compat.h - the kernel API differences edudma meets, all in one place.
 *
 * edudma builds for every kernel a supported host boots: Debian 12's 6.1, Debian 13's 6.12 and the
 * newest kernel in trixie-backports. The tests below ask the headers what exists rather than compare
 * LINUX_VERSION_CODE, so a distribution kernel with a backported change also builds.
 */
#ifndef EDUDMA_COMPAT_H
#define EDUDMA_COMPAT_H

#include <linux/dma-mapping.h>
#include <linux/limits.h>
#include <linux/pci.h>

/* pci_alloc_irq_vectors' INTx flag: PCI_IRQ_INTX since 6.8; 6.1 has only PCI_IRQ_LEGACY, 6.12 only INTX. */
#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX PCI_IRQ_LEGACY
#endif

/*
 * Does the DMA layer send this device's streaming mappings through swiotlb (bounce buffers)?
 *
 * is_swiotlb_active() answered this until modules lost it (not exported on 6.12). What a driver can
 * still observe is dma_max_mapping_size(): dma-direct limits it to swiotlb's largest mapping (256 KiB)
 * exactly when swiotlb is active for the device and either bounces every mapping (swiotlb=force) or
 * the device cannot reach all RAM (dma_addressing_limited), and returns SIZE_MAX otherwise
 * (dma_direct_max_mapping_size() reads the same on 6.1 and 6.12). It differs from is_swiotlb_active()
 * only when a pool exists but this device never bounces (not forced, its mask covers all RAM: e.g. a
 * 64-bit device in a guest with more than 4 GiB); there it says "not in use", which is the truth for
 * this device. For the 28-bit edu the two agree whenever a buffer can lie beyond its mask. Through an
 * IOMMU (not in the reference guest), dma_max_mapping_size() is limited only for untrusted devices,
 * whose mappings bounce through swiotlb too.
 */
static inline bool edudma_swiotlb_in_use(struct device *dev)
{
	return dma_max_mapping_size(dev) != SIZE_MAX;
}

#endif /* EDUDMA_COMPAT_H */
