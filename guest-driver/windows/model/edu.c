/* SPDX-License-Identifier: MIT */
/*
 * QEMU 7.2's edu (hw/misc/edu.c as shipped in 7.2, docs/specs/edu.txt), the
 * parts the driver uses: identification, liveness, interrupt status, raise and
 * acknowledge, and the DMA engine with its 4 KiB buffer at 0x40000.
 *
 * Register accesses are trapped: the BAR mapping is guard pages; a guard-page
 * fault tells read or write and the address, the model puts the register's
 * value in place for a read, single-steps the driver's instruction, then
 * applies a write and re-arms the guard. 4-byte writes to the 64-bit DMA
 * registers zero-extend, as in QEMU.
 *
 * The DMA completes edu_latency_ms (QEMU: a 100 ms virtual-time timer) after
 * the command is written, when the world runs (sched.c). As QEMU 7.2 does:
 *  - a device-side range outside 0x40000..0x40fff, including a count of 4096
 *    or 0 (7.2's off-by-one), is a hardware error: QEMU prints it and aborts;
 *    the model prints the same line on stderr and exits 134;
 *  - a RAM address outside the DMA mask is clamped (addr & mask) and the
 *    "EDU: clamping DMA" line is printed (on stderr here: stdout is dmactl's);
 *  - with Bus Master Enable clear in the PCI command register the DMA moves
 *    nothing (the model reads zeros and drops writes; QEMU's bus-master
 *    address space is then empty).
 */
#include <stdio.h>
#include <string.h>
#include "mk.h"

#define EDU_DMA_START 0x40000u
#define EDU_DMA_SIZE 4096u
#define RUN 0x1u
#define DIR_TO_RAM 0x2u
#define IRQ 0x4u

static struct {
	uint32_t addr4, fact, status, irq_status;
	uint64_t src, dst, cnt, cmd;
	uint8_t buf[EDU_DMA_SIZE];
	uint64_t due;          /* virtual time the DMA completes; MK_FOREVER: none */
	unsigned msi_pending;  /* MSI messages not yet taken */
} edu;

struct bar_map {
	uint8_t *va;       /* page-aligned start of the mapping */
	size_t bytes;
	uint64_t pa;       /* the physical address of va */
	int live;
	ULONG_PTR caller;
};
static struct bar_map maps[8];
static int nmaps;

/* the access in flight between the guard-page fault and the single step */
static struct {
	int active, write;
	uint8_t *addr, *page;
	uint32_t off;
} step;

void mk_edu_reset(void)
{
	memset(&edu, 0, sizeof(edu));
	edu.due = MK_FOREVER;
}

void *mk_edu_map(uint64_t pa, size_t bytes)
{
	uint64_t pa0 = pa & ~(uint64_t)(PAGE_SIZE - 1);
	size_t span = (size_t)((pa + bytes + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE - pa0);
	struct bar_map *m;

	if (bytes == 0 || pa < MK_EDU_BAR_PA || pa + bytes > MK_EDU_BAR_PA + MK_EDU_BAR_LEN)
		return NULL;
	if (nmaps == (int)(sizeof(maps) / sizeof(maps[0])))
		mk_bugcheck("model-limit", "too many MmMapIoSpace mappings");
	m = &maps[nmaps++];
	m->va = os_alloc_private(span);
	m->bytes = span;
	m->pa = pa0;
	m->live = 1;
	m->caller = mk_ddi_top->caller;
	memset(m->va, 0xFF, span);
	os_protect(m->va, span, OS_RW_GUARD);
	return m->va + (pa - pa0);
}

int mk_edu_unmap(void *va, size_t bytes)
{
	uint8_t *p = (uint8_t *)((uintptr_t)va & ~(uintptr_t)(PAGE_SIZE - 1));
	int i;

	for (i = 0; i < nmaps; i++) {
		struct bar_map *m = &maps[i];

		if (m->live && m->va == p && (uint8_t *)va + bytes <= m->va + m->bytes) {
			m->live = 0;
			os_retire(m->va, m->bytes);
			mk_retired_add(m->va, m->bytes, "mmio-after-unmap", "the edu's BAR, unmapped by MmUnmapIoSpace");
			return 0;
		}
	}
	return -1;
}

void mk_edu_check_leaks(void)
{
	int i;

	for (i = 0; i < nmaps; i++)
		if (maps[i].live)
			mk_bugcheck_at("io-space-leak", "DriverUnload", maps[i].caller,
				       "the edu's BAR is still mapped (MmMapIoSpace without MmUnmapIoSpace)");
	nmaps = 0;
}

static struct bar_map *map_of(const uint8_t *a)
{
	int i;

	for (i = 0; i < nmaps; i++)
		if (maps[i].live && a >= maps[i].va && a < maps[i].va + maps[i].bytes)
			return &maps[i];
	return NULL;
}

/* ---- interrupts ---- */

static void raise_irq(uint32_t v)
{
	edu.irq_status |= v;
	if (edu.irq_status && mk_cfg.msi)
		edu.msi_pending++;
}

static void lower_irq(uint32_t v)
{
	edu.irq_status &= ~v;
}

int mk_edu_irq_pending(void)
{
	return mk_cfg.msi ? edu.msi_pending > 0 : edu.irq_status != 0;
}

void mk_edu_irq_taken(void)
{
	if (mk_cfg.msi && edu.msi_pending > 0)
		edu.msi_pending--;
}

int mk_edu_busy(void)
{
	return (edu.cmd & RUN) != 0;
}

/* ---- registers ---- */

static uint64_t reg_read(uint32_t off)
{
	switch (off) {
	case 0x00: return 0x010000EDu;
	case 0x04: return edu.addr4;
	case 0x08: return edu.fact;
	case 0x20: return edu.status;
	case 0x24: return edu.irq_status;
	case 0x80: return edu.src;
	case 0x88: return edu.dst;
	case 0x90: return edu.cnt;
	case 0x98: return edu.cmd;
	default: return ~0ull;
	}
}

static void reg_write(uint32_t off, uint64_t v)
{
	switch (off) {
	case 0x04:
		edu.addr4 = ~(uint32_t)v;
		break;
	case 0x08:
		if (!(edu.status & 0x01)) {
			uint32_t n = (uint32_t)v, r = 1;

			while (n > 0)
				r *= n--;
			edu.fact = r;
			if (edu.status & 0x80)
				raise_irq(0x1);
		}
		break;
	case 0x20:
		edu.status = (v & 0x80) ? (edu.status | 0x80) : (edu.status & ~0x80u);
		break;
	case 0x60:
		raise_irq((uint32_t)v);
		break;
	case 0x64:
		lower_irq((uint32_t)v);
		break;
	case 0x80:
	case 0x88:
	case 0x90:
		if (!(edu.cmd & RUN))
			*(off == 0x80 ? &edu.src : off == 0x88 ? &edu.dst : &edu.cnt) = v;
		break;
	case 0x98:
		if (!(v & RUN) || (edu.cmd & RUN))
			break;
		edu.cmd = v;
		edu.due = mk_now + MK_MS(mk_cfg.edu_latency_ms);
		mk_trace("edu: DMA cmd 0x%llx src 0x%llx dst 0x%llx cnt %llu", (unsigned long long)v,
			 (unsigned long long)edu.src, (unsigned long long)edu.dst, (unsigned long long)edu.cnt);
		break;
	default:
		break;
	}
}

static int dma_reg(uint32_t off)
{
	return off >= 0x80 && off < 0xA0;
}

int mk_edu_exception(struct os_exc *x)
{
	if (x->code == OS_EXC_GUARD_PAGE) {
		uint8_t *a = (uint8_t *)x->addr;
		struct bar_map *m = map_of(a);
		uint32_t off;

		if (m == NULL)
			return 0;
		off = (uint32_t)(m->pa + (uint64_t)(a - m->va) - MK_EDU_BAR_PA);
		step.active = 1;
		step.write = x->rw == 1;
		step.addr = a;
		step.page = (uint8_t *)((uintptr_t)a & ~(uintptr_t)(PAGE_SIZE - 1));
		step.off = off;
		if (dma_reg(off) && (off & 7) == 0) {
			uint64_t v = step.write ? 0 : reg_read(off); /* a write: upper half 0, so a 4-byte write zero-extends */

			memcpy(a, &v, 8);
		} else if (!step.write) {
			uint32_t v = (off & 3) == 0 && !dma_reg(off) ? (uint32_t)reg_read(off) : 0xFFFFFFFFu;

			if (dma_reg(off) && (off & 7) == 4)
				v = 0xFFFFFFFFu; /* no register at the upper halves */
			memcpy(a, &v, 4);
		}
		x->single_step_next = 1;
		return 1;
	}
	if (x->code == OS_EXC_SINGLE_STEP && step.active) {
		step.active = 0;
		if (step.write && (step.off & 3) == 0) {
			if (dma_reg(step.off) && (step.off & 7) == 0) {
				uint64_t v;

				memcpy(&v, step.addr, 8);
				reg_write(step.off, v);
			} else if (!dma_reg(step.off)) {
				uint32_t v;

				memcpy(&v, step.addr, 4);
				reg_write(step.off, v);
			}
		}
		os_protect(step.page, PAGE_SIZE, OS_RW_GUARD);
		return 1;
	}
	return 0;
}

/* ---- the DMA engine ---- */

static void hash16(char *out, size_t n, uint64_t v)
{
	/* glibc's "%#.16"PRIx64: no 0x for zero */
	if (v == 0)
		snprintf(out, n, "0000000000000000");
	else
		snprintf(out, n, "0x%016llx", (unsigned long long)v);
}

static uint64_t clamp(uint64_t addr)
{
	uint64_t mask = mk_cfg.edu_dma_bits >= 64 ? ~0ull : (1ull << mk_cfg.edu_dma_bits) - 1;
	uint64_t res = addr & mask;

	if (addr != res) {
		char a[24], b[24], line[96];

		hash16(a, sizeof(a), addr);
		hash16(b, sizeof(b), res);
		snprintf(line, sizeof(line), "EDU: clamping DMA %s to %s!\n", a, b);
		os_stderr(line);
		mk_log_raw(line, strlen(line));
	}
	return res;
}

static int within(uint64_t x, uint64_t start, uint64_t end)
{
	return start <= x && x < end;
}

static void check_range(uint64_t addr, uint64_t size1, uint64_t start, uint64_t size2)
{
	uint64_t end1 = addr + size1, end2 = start + size2;
	char line[200];

	if (within(addr, start, end2) && end1 > addr && within(end1, start, end2))
		return;
	snprintf(line, sizeof(line),
		 "qemu: hardware error: EDU: DMA range 0x%016llx-0x%016llx out of bounds (0x%016llx-0x%016llx)!\n",
		 (unsigned long long)addr, (unsigned long long)(end1 - 1), (unsigned long long)start,
		 (unsigned long long)(end2 - 1));
	os_stderr(line);
	mk_log_raw(line, strlen(line));
	os_stderr("MODEL: QEMU 7.2 aborts here (SIGABRT); the model exits 134\n");
	os_exit(134);
}

/*
 * Stricter than the edu (and like an IOMMU, Verifier's 0xE6 code 0x26): the device may reach only memory
 * the system gave out for DMA that is still given out: granted map-register pages, live common buffers,
 * live pool (a mapped client buffer). A clamped address is exempt: its line on stderr tells, and the host
 * judges the bytes (the v2 world's wrong pages, the addr-beyond-mask control).
 */
static void check_target(uint64_t pa, uint64_t len, int to_ram, int clamped)
{
	uint64_t p;

	if (clamped || len == 0 || !mk_bus_master_enabled())
		return;
	for (p = pa & ~(uint64_t)(PAGE_SIZE - 1); p < pa + len; p += PAGE_SIZE)
		if (p >= mk_cfg.ram_bytes || !(mk_dma_pa_granted(p) || mk_pa_live(p)))
			mk_bugcheck_at("device-dma-unmapped", "edu-DMA", 0,
				       "the edu %s %llu bytes at 0x%llx: page 0x%llx is no map register, common buffer or "
				       "pool given out now (freed, or never allocated)",
				       to_ram ? "writes" : "reads", (unsigned long long)len, (unsigned long long)pa,
				       (unsigned long long)p);
}

static void ram_rw(uint64_t pa, uint8_t *buf, uint64_t len, int to_ram)
{
	uint64_t i;
	int bm = mk_bus_master_enabled();

	for (i = 0; i < len; i++) {
		uint64_t a = pa + i;
		int in = bm && a >= pa && a < mk_cfg.ram_bytes;

		if (to_ram) {
			if (in)
				mk_ram[a] = buf[i];
		} else {
			buf[i] = in ? mk_ram[a] : 0;
		}
	}
}

uint64_t mk_edu_next_due(void)
{
	return edu.due;
}

void mk_edu_fire(uint64_t now)
{
	if (edu.due > now)
		return;
	edu.due = MK_FOREVER;
	if (!(edu.cmd & RUN))
		return;
	if (!(edu.cmd & DIR_TO_RAM)) {
		uint64_t a;

		check_range(edu.dst, edu.cnt, EDU_DMA_START, EDU_DMA_SIZE);
		a = clamp(edu.src);
		check_target(a, edu.cnt, 0, a != edu.src);
		ram_rw(a, edu.buf + (edu.dst - EDU_DMA_START), edu.cnt, 0);
	} else {
		uint64_t a;

		check_range(edu.src, edu.cnt, EDU_DMA_START, EDU_DMA_SIZE);
		a = clamp(edu.dst);
		check_target(a, edu.cnt, 1, a != edu.dst);
		ram_rw(a, edu.buf + (edu.src - EDU_DMA_START), edu.cnt, 1);
	}
	mk_trace("edu: DMA done, %s %llu bytes", (edu.cmd & DIR_TO_RAM) ? "edu->RAM" : "RAM->edu",
		 (unsigned long long)edu.cnt);
	edu.cmd &= ~(uint64_t)RUN;
	if (edu.cmd & IRQ)
		raise_irq(0x100);
}
