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

#include <linux/pci.h>

/* pci_alloc_irq_vectors' INTx flag: PCI_IRQ_INTX since 6.8; 6.1 has only PCI_IRQ_LEGACY, 6.12 only INTX. */
#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX PCI_IRQ_LEGACY
#endif

#endif /* EDUDMA_COMPAT_H */
