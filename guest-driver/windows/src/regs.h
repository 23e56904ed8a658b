/* SPDX-License-Identifier: MIT */
/* QEMU edu registers (BAR0, 1 MiB): QEMU docs/specs/edu.txt (7.2) / edu.rst. */
#ifndef EDUDMA_REGS_H
#define EDUDMA_REGS_H

#define EDU_REG_ID          0x00 /* RO: 0xRRrr00ed, 0x010000ed for version 1.0 */
#define EDU_REG_LIVENESS    0x04 /* RW: reads back the bitwise NOT of what was written */
#define EDU_REG_STATUS      0x20
#define EDU_REG_IRQ_STATUS  0x24 /* RO: OR of the raised interrupt values */
#define EDU_REG_IRQ_RAISE   0x60
#define EDU_REG_IRQ_ACK     0x64 /* WO: clears the bits written */
#define EDU_REG_DMA_SRC     0x80 /* a 4-byte write sets the whole 64-bit register, zero-extended */
#define EDU_REG_DMA_DST     0x88
#define EDU_REG_DMA_COUNT   0x90
#define EDU_REG_DMA_CMD     0x98

#define EDU_ID_MASK         0xFF00FFFFu /* major and the 0xed signature; any minor */
#define EDU_ID_VALUE        0x010000EDu
#define EDU_MIN_BAR_LENGTH  0x100000u

#define EDU_DMA_CMD_START   0x1u
#define EDU_DMA_CMD_FROM_DEVICE 0x2u /* 0: RAM -> edu, 1: edu -> RAM */
#define EDU_DMA_CMD_IRQ     0x4u     /* raise EDU_IRQ_DMA on completion */
#define EDU_IRQ_DMA         0x100u

#define EDU_PCI_COMMAND_OFFSET 0x04
#define EDU_PCI_COMMAND_BUS_MASTER 0x0004

#define EDU_RD(dev, off) READ_REGISTER_ULONG((PULONG)((dev)->Regs + (off)))
#define EDU_WR(dev, off, v) WRITE_REGISTER_ULONG((PULONG)((dev)->Regs + (off)), (v))

#endif /* EDUDMA_REGS_H */
