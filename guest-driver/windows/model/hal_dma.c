/* SPDX-License-Identifier: MIT */
/*
 * The HAL's DMA: IoGetDmaAdapter and the DMA_OPERATIONS table, map registers,
 * MapTransfer / FlushAdapterBuffers, scatter/gather lists, common buffers,
 * FlushDmaBuffer; strict like Driver Verifier's DMA checks (bug check 0xE6).
 *
 * Map registers follow the NT HAL as ReactOS reimplements it
 * (hal/halx86/generic/dma.c, IoMapTransfer / IoFlushAdapterBuffers /
 * HalpCopyBufferMap), which is what the model relies on:
 *  - AllocateAdapterChannel hands a MapRegisterBase for N contiguous
 *    registers (one bounce page each) from the HAL's pool, calls the execution
 *    routine at once when they are free, otherwise queues the request (FIFO)
 *    and calls it from the FreeMapRegisters / PutScatterGatherList that frees
 *    enough;
 *  - each MapTransfer takes registers from a cursor that advances by the
 *    pages the mapped piece spans (BYTES_TO_PAGES(byte offset + length)), and
 *    maps no further than the physically contiguous pages of the MDL;
 *  - for a write to the device it copies the data into the bounce pages now;
 *  - FlushAdapterBuffers copies bounce -> buffer for a read, page by page,
 *    from register 0 of the base, walking CurrentVa .. CurrentVa + Length, and
 *    resets the cursor.
 * So a driver that maps a page twice gets the wrong pages back: the model does
 * what the HAL does, and its rules also stop the run where Verifier would.
 *
 * Worlds (config.c): map-registers (28-bit v3 adapter, pool beyond 256 MiB:
 * every mapping bounces), direct (no bouncing), v2-null-flush (v3 refused, v2
 * granted, DmaOperations->Size covers FlushDmaBuffer but it is NULL). In the v3
 * worlds DMAHIL_MODEL_V3_FLUSH=null or short offers a v3 table without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"

/* DMA_OPERATIONS of the current WDK (dma-and-qemu-facts.md 1.2): mingw's v2 table, then 24 v3/Win10 members. */
struct mk_dma_ops {
	DMA_OPERATIONS v2;
	PVOID v3[24];
};
_Static_assert(sizeof(DMA_OPERATIONS) == 0x80, "v2 table");
_Static_assert(offsetof(struct mk_dma_ops, v3[14]) == 0xF0, "FlushDmaBuffer at 0xF0");
_Static_assert(sizeof(struct mk_dma_ops) == 0x140, "the FE table");
#define V3_FLUSH_DMA_BUFFER 14

struct mk_adapter {
	DMA_ADAPTER hdr; /* what the driver holds */
	struct mk_dma_ops ops;
	int version;
	unsigned width;
	ULONG nregs;
	int bounce; /* memory the HAL hands out lies beyond the device: map registers bounce */
	int live;
	int channel_held; /* the execution routine returned KeepObject */
	struct mk_mrb *channel_base;
	ULONG_PTR caller;
	struct mk_adapter *next;
};

struct mk_mrb {
	struct mk_adapter *ad;
	ULONG count;
	long first; /* first register in the HAL's pool; -1: no bounce pages */
	int live;
	ULONG_PTR caller;
	PMDL mdl;   /* the run mapped since the grant or the last flush */
	uint8_t *first_va, *next_va;
	ULONG cursor;
	BOOLEAN write;
	int mapped, bounced;
	struct mk_mrb *next;
};

struct mk_sgl {
	PSCATTER_GATHER_LIST list;
	size_t bytes;
	struct mk_adapter *ad;
	PMDL mdl;
	uint8_t *va;
	ULONG len;
	BOOLEAN write;
	long first;
	ULONG nregs;
	int live;
	ULONG_PTR caller;
	struct mk_sgl *next;
};

struct mk_wait {
	int sg;
	struct mk_adapter *ad;
	PDEVICE_OBJECT dev;
	ULONG nregs;
	PDRIVER_CONTROL exec;
	PDRIVER_LIST_CONTROL list;
	PVOID ctx;
	PMDL mdl;
	uint8_t *va;
	ULONG len;
	BOOLEAN write;
	ULONG_PTR caller;
	struct mk_wait *next;
};

struct mk_common {
	struct mk_adapter *ad;
	PVOID va;
	ULONG len;
	LONGLONG logical;
	ULONG_PTR caller;
	struct mk_common *next;
};

static struct mk_adapter *adapters;
static struct mk_mrb *bases;
static struct mk_sgl *sgls;
static struct mk_wait *waits;
static struct mk_common *commons;
static uint8_t *reg_used; /* the HAL's map-register pool */

static uint64_t reg_pa(long reg)
{
	return mk_cfg.mapreg_lo + (uint64_t)reg * PAGE_SIZE;
}

unsigned mk_dma_map_registers_free(void)
{
	unsigned i, n = 0;

	if (reg_used == NULL)
		return 0;
	for (i = 0; i < mk_cfg.map_pool; i++)
		n += !reg_used[i];
	return n;
}

/* Is pa inside a map-register page that is granted now? */
int mk_dma_pa_granted(uint64_t pa)
{
	uint64_t reg;

	if (reg_used == NULL || pa < mk_cfg.mapreg_lo)
		return 0;
	reg = (pa - mk_cfg.mapreg_lo) / PAGE_SIZE;
	return reg < mk_cfg.map_pool && reg_used[reg];
}

int mk_dma_waiting(void)
{
	const struct mk_wait *w;
	int n = 0;

	for (w = waits; w != NULL; w = w->next)
		n++;
	return n;
}

void mk_dma_reset(void)
{
	if (reg_used == NULL && mk_cfg.world == MK_WORLD_MAP_REGISTERS)
		reg_used = calloc(mk_cfg.map_pool, 1);
}

static struct mk_adapter *live_adapter(PDMA_ADAPTER a)
{
	struct mk_adapter *ad;

	for (ad = adapters; ad != NULL; ad = ad->next)
		if (&ad->hdr == a)
			return ad;
	mk_bugcheck("adapter-invalid", "DMA adapter %p is not a live adapter (PutDmaAdapter already?)", (void *)a);
}

static struct mk_mrb *live_base(struct mk_adapter *ad, PVOID base)
{
	struct mk_mrb *b;

	for (b = bases; b != NULL; b = b->next)
		if (b == (struct mk_mrb *)base) {
			if (!b->live)
				mk_bugcheck("map-register-base-invalid",
					    "MapRegisterBase %p was freed (FreeMapRegisters, DeallocateObject or FreeAdapterChannel)",
					    base);
			if (b->ad != ad)
				mk_bugcheck("map-register-base-invalid", "MapRegisterBase %p belongs to another adapter", base);
			return b;
		}
	mk_bugcheck("map-register-base-invalid", "%p is not a MapRegisterBase an execution routine received", base);
}

static void check_mdl(PMDL mdl)
{
	if (!mk_mdl_live(mdl))
		mk_bugcheck("mdl-invalid", "MDL %p is not a live MDL", (void *)mdl);
	if (!(mdl->MdlFlags & (MDL_SOURCE_IS_NONPAGED_POOL | MDL_PAGES_LOCKED)))
		mk_bugcheck("mdl-not-locked", "MDL %p has no physical pages (MmBuildMdlForNonPagedPool not called)", (void *)mdl);
}

static uint8_t *mdl_va(PMDL mdl)
{
	return (uint8_t *)mdl->StartVa + mdl->ByteOffset;
}

/* The physical address of va (inside mdl) and how many bytes from there are physically contiguous. */
static uint64_t mdl_run(PMDL mdl, const uint8_t *va, ULONG want, ULONG *run)
{
	PPFN_NUMBER pfn = MmGetMdlPfnArray(mdl);
	size_t idx = (size_t)(va - (uint8_t *)mdl->StartVa) >> PAGE_SHIFT;
	ULONG off = BYTE_OFFSET(va), tl = PAGE_SIZE - off;

	while (tl < want && pfn[idx] + 1 == pfn[idx + 1] && ((pfn[idx] ^ pfn[idx + 1]) >> 20) == 0) {
		tl += PAGE_SIZE;
		idx++;
	}
	*run = tl < want ? tl : want;
	return ((uint64_t)pfn[(size_t)(va - (uint8_t *)mdl->StartVa) >> PAGE_SHIFT] << PAGE_SHIFT) + off;
}

/* HalpCopyBufferMap: page by page from register reg on, the same byte offset in each bounce page. */
static void copy_bounce(long reg, uint8_t *va, ULONG len, int to_bounce)
{
	while (len > 0) {
		ULONG off = BYTE_OFFSET(va), n = PAGE_SIZE - off;

		if (n > len)
			n = len;
		if (to_bounce)
			memcpy(mk_pa(reg_pa(reg) + off), va, n);
		else
			memcpy(va, mk_pa(reg_pa(reg) + off), n);
		va += n;
		len -= n;
		reg++;
	}
}

static int counting(struct mk_adapter *ad)
{
	return ad->bounce || mk_cfg.count_map_registers;
}

/* ---- granting map registers and channels ---- */

static long regs_take(ULONG n)
{
	unsigned i, run = 0;

	if (n == 0)
		return -1;
	for (i = 0; i < mk_cfg.map_pool; i++) {
		run = reg_used[i] ? 0 : run + 1;
		if (run == n) {
			memset(reg_used + i + 1 - n, 1, n);
			return (long)(i + 1 - n);
		}
	}
	return -2; /* not now */
}

static void regs_give(long first, ULONG n)
{
	if (first >= 0)
		memset(reg_used + first, 0, n);
}

static void service_waits(void);

static void build_and_call_sg(struct mk_wait *w, long first);

static struct mk_mrb *base_new(struct mk_adapter *ad, ULONG count, long first, ULONG_PTR caller)
{
	struct mk_mrb *b = calloc(1, sizeof(*b));

	b->ad = ad;
	b->count = count;
	b->first = first;
	b->live = 1;
	b->caller = caller;
	b->next = bases;
	bases = b;
	return b;
}

static void base_free(struct mk_mrb *b)
{
	if (b->mapped)
		mk_bugcheck("free-map-registers-still-mapped",
			    "map registers freed while %llu bytes at +%llu of the MDL are mapped: FlushAdapterBuffers first",
			    (unsigned long long)(b->next_va - b->first_va),
			    (unsigned long long)(b->first_va - mdl_va(b->mdl)));
	regs_give(b->first, b->count);
	b->live = 0;
}

/* Try to grant w now: 1 done, 0 must wait. */
static int grant(struct mk_wait *w)
{
	struct mk_adapter *ad = w->ad;
	long first = -1;
	IO_ALLOCATION_ACTION act;
	struct mk_mrb *b;

	if (!w->sg && ad->channel_held)
		return 0;
	if (ad->bounce) {
		first = regs_take(w->nregs);
		if (first == -2)
			return 0;
	}
	if (w->sg) {
		build_and_call_sg(w, first);
		return 1;
	}
	b = base_new(ad, w->nregs, first, w->caller);
	{
		MK_CALLOUT();
		act = w->exec(w->dev, w->dev->CurrentIrp, b, w->ctx);
	}
	switch (act) {
	case KeepObject:
		ad->channel_held = 1;
		ad->channel_base = b;
		break;
	case DeallocateObject:
		base_free(b);
		break;
	case DeallocateObjectKeepRegisters:
		break;
	default:
		mk_bugcheck_at("invalid-parameter", "ExecutionRoutine", (ULONG_PTR)w->exec,
			       "the execution routine returned %d, not an IO_ALLOCATION_ACTION", (int)act);
	}
	return 1;
}

static void service_waits(void)
{
	while (waits != NULL) {
		struct mk_wait *w = waits;

		if (!grant(w))
			return;
		waits = w->next;
		free(w);
		if (waits == NULL)
			return;
	}
}

static void wait_or_grant(struct mk_wait *w)
{
	struct mk_wait **pp;

	if (waits == NULL && grant(w)) {
		free(w);
		return;
	}
	for (pp = &waits; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = w;
	mk_trace("%s waits for %lu map registers (%u free)", w->sg ? "GetScatterGatherList" : "AllocateAdapterChannel",
		 (unsigned long)w->nregs, mk_dma_map_registers_free());
}

static NTSTATUS NTAPI AllocateAdapterChannel(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject,
					     ULONG NumberOfMapRegisters, PDRIVER_CONTROL ExecutionRoutine, PVOID Context)
{
	struct mk_adapter *ad;
	struct mk_wait *w, *q;
	MK_DDI("AllocateAdapterChannel");

	mk_irql_eq(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	if (mk_devobj_of(DeviceObject) == NULL)
		mk_bugcheck("invalid-device-object", "AllocateAdapterChannel for %p", (void *)DeviceObject);
	if (NumberOfMapRegisters > ad->nregs)
		mk_bugcheck("map-register-overrun", "AllocateAdapterChannel asks for %lu map registers; IoGetDmaAdapter granted %lu",
			    (unsigned long)NumberOfMapRegisters, (unsigned long)ad->nregs);
	for (q = waits; q != NULL; q = q->next)
		if (!q->sg && q->dev == DeviceObject)
			mk_bugcheck("adapter-channel-twice",
				    "AllocateAdapterChannel for a device object whose earlier request still waits");
	w = calloc(1, sizeof(*w));
	w->ad = ad;
	w->dev = DeviceObject;
	w->nregs = NumberOfMapRegisters;
	w->exec = ExecutionRoutine;
	w->ctx = Context;
	w->caller = mk_ddi_top->caller;
	wait_or_grant(w);
	return STATUS_SUCCESS;
}

static VOID NTAPI FreeAdapterChannel(PDMA_ADAPTER DmaAdapter)
{
	struct mk_adapter *ad;
	MK_DDI("FreeAdapterChannel");

	mk_irql_eq(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	if (!ad->channel_held)
		mk_bugcheck("free-adapter-channel-not-held", "FreeAdapterChannel without a channel kept by KeepObject");
	ad->channel_held = 0;
	base_free(ad->channel_base);
	ad->channel_base = NULL;
	service_waits();
}

static VOID NTAPI FreeMapRegisters(PDMA_ADAPTER DmaAdapter, PVOID MapRegisterBase, ULONG NumberOfMapRegisters)
{
	struct mk_adapter *ad;
	struct mk_mrb *b;
	MK_DDI("FreeMapRegisters");

	mk_irql_eq(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	b = live_base(ad, MapRegisterBase);
	if (NumberOfMapRegisters != b->count)
		mk_bugcheck("free-map-registers-count", "FreeMapRegisters of %lu; AllocateAdapterChannel granted %lu",
			    (unsigned long)NumberOfMapRegisters, (unsigned long)b->count);
	if (ad->channel_held && ad->channel_base == b)
		mk_bugcheck("invalid-parameter", "FreeMapRegisters on a channel kept by KeepObject: FreeAdapterChannel");
	base_free(b);
	service_waits();
}

static PHYSICAL_ADDRESS NTAPI MapTransfer(PDMA_ADAPTER DmaAdapter, PMDL Mdl, PVOID MapRegisterBase, PVOID CurrentVa,
					  PULONG Length, BOOLEAN WriteToDevice)
{
	uint8_t *va = CurrentVa, *mva;
	struct mk_adapter *ad;
	struct mk_mrb *b;
	PHYSICAL_ADDRESS la;
	ULONG run, pages;
	uint64_t pa;
	MK_DDI("MapTransfer");

	mk_irql_eq(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	b = live_base(ad, MapRegisterBase);
	check_mdl(Mdl);
	mva = mdl_va(Mdl);
	if (*Length == 0 || va < mva || va + *Length > mva + Mdl->ByteCount)
		mk_bugcheck("map-transfer-outside-mdl", "MapTransfer of %lu bytes at %+lld: the MDL covers 0..%lu",
			    (unsigned long)*Length, (long long)(va - mva), (unsigned long)Mdl->ByteCount);
	if (b->mapped) {
		if (Mdl != b->mdl || va != b->next_va)
			mk_bugcheck("map-transfer-not-contiguous",
				    "MapTransfer at +%lld; the run mapped on this base since the last flush ends at +%lld",
				    (long long)(va - mva), Mdl == b->mdl ? (long long)(b->next_va - mva) : -1ll);
		if (WriteToDevice != b->write)
			mk_bugcheck("map-transfer-direction-mixed", "MapTransfer WriteToDevice %u after %u on the same run",
				    (unsigned)WriteToDevice, (unsigned)b->write);
	}
	pa = mdl_run(Mdl, va, *Length, &run);
	pages = BYTES_TO_PAGES(BYTE_OFFSET(va) + run);
	if (counting(ad) && b->cursor + pages > b->count)
		mk_bugcheck("map-register-overrun",
			    "MapTransfer of %lu bytes at +%lld needs map registers %lu..%lu; AllocateAdapterChannel granted %lu "
			    "to this base, and the run mapped since the last flush (+%lld..+%lld) already took %lu",
			    (unsigned long)run, (long long)(va - mva), (unsigned long)b->cursor,
			    (unsigned long)(b->cursor + pages - 1), (unsigned long)b->count,
			    b->mapped ? (long long)(b->first_va - mva) : 0ll, b->mapped ? (long long)(b->next_va - mva) : 0ll,
			    (unsigned long)b->cursor);
	if (ad->bounce && b->first >= 0 && b->cursor + pages <= b->count) {
		la.QuadPart = (LONGLONG)(reg_pa(b->first + (long)b->cursor) + BYTE_OFFSET(va));
		if (WriteToDevice)
			copy_bounce(b->first + (long)b->cursor, va, run, 1);
		b->bounced = 1;
	} else {
		la.QuadPart = (LONGLONG)pa;
	}
	if (!b->mapped) {
		b->mapped = 1;
		b->mdl = Mdl;
		b->first_va = va;
		b->write = WriteToDevice;
	}
	b->next_va = va + run;
	b->cursor += pages;
	*Length = run;
	return la;
}

static BOOLEAN NTAPI FlushAdapterBuffers(PDMA_ADAPTER DmaAdapter, PMDL Mdl, PVOID MapRegisterBase, PVOID CurrentVa,
					 ULONG Length, BOOLEAN WriteToDevice)
{
	uint8_t *va = CurrentVa;
	struct mk_adapter *ad;
	struct mk_mrb *b;
	MK_DDI("FlushAdapterBuffers");

	mk_irql_eq(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	b = live_base(ad, MapRegisterBase);
	check_mdl(Mdl);
	if (!b->mapped)
		mk_bugcheck("flush-without-map",
			    "FlushAdapterBuffers of %lu bytes at +%lld: nothing was mapped on this base since it was granted or "
			    "last flushed",
			    (unsigned long)Length, (long long)(va - mdl_va(Mdl)));
	if (Mdl != b->mdl || va != b->first_va)
		mk_bugcheck("flush-wrong-va", "FlushAdapterBuffers at +%lld; the first MapTransfer of the run was at +%lld%s",
			    (long long)(va - mdl_va(Mdl)), (long long)(b->first_va - mdl_va(b->mdl)),
			    Mdl != b->mdl ? " of another MDL" : "");
	if (Length != (ULONG)(b->next_va - b->first_va))
		mk_bugcheck("flush-length", "FlushAdapterBuffers of %lu bytes; the mapped run is %llu bytes (+%lld..+%lld)",
			    (unsigned long)Length, (unsigned long long)(b->next_va - b->first_va),
			    (long long)(b->first_va - mdl_va(Mdl)), (long long)(b->next_va - mdl_va(Mdl)));
	if (WriteToDevice != b->write)
		mk_bugcheck("flush-direction-mismatch", "FlushAdapterBuffers WriteToDevice %u; the run was mapped with %u",
			    (unsigned)WriteToDevice, (unsigned)b->write);
	if (!WriteToDevice && b->bounced)
		copy_bounce(b->first, va, Length, 0);
	b->mapped = 0;
	b->bounced = 0;
	b->cursor = 0;
	return TRUE;
}

/* ---- scatter/gather ---- */

static void build_and_call_sg(struct mk_wait *w, long first)
{
	ULONG n = 0, pos, cap = ADDRESS_AND_SIZE_TO_SPAN_PAGES(w->va, w->len);
	size_t bytes = sizeof(SCATTER_GATHER_LIST) + cap * sizeof(SCATTER_GATHER_ELEMENT);
	PSCATTER_GATHER_LIST l = os_alloc_private(bytes);
	struct mk_sgl *s = calloc(1, sizeof(*s));
	long reg = first;

	for (pos = 0; pos < w->len;) {
		ULONG run;
		uint64_t pa = mdl_run(w->mdl, w->va + pos, w->len - pos, &run);

		if (first >= 0) {
			l->Elements[n].Address.QuadPart = (LONGLONG)(reg_pa(reg) + BYTE_OFFSET(w->va + pos));
			if (w->write)
				copy_bounce(reg, w->va + pos, run, 1);
			reg += (long)BYTES_TO_PAGES(BYTE_OFFSET(w->va + pos) + run);
		} else {
			l->Elements[n].Address.QuadPart = (LONGLONG)pa;
		}
		l->Elements[n].Length = run;
		n++;
		pos += run;
	}
	l->NumberOfElements = n;
	s->list = l;
	s->bytes = bytes;
	s->ad = w->ad;
	s->mdl = w->mdl;
	s->va = w->va;
	s->len = w->len;
	s->write = w->write;
	s->first = first;
	s->nregs = w->nregs;
	s->live = 1;
	s->caller = w->caller;
	s->next = sgls;
	sgls = s;
	{
		MK_CALLOUT();
		w->list(w->dev, w->dev->CurrentIrp, l, w->ctx);
	}
}

static NTSTATUS NTAPI GetScatterGatherList(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject, PMDL Mdl,
					   PVOID CurrentVa, ULONG Length, PDRIVER_LIST_CONTROL ExecutionRoutine,
					   PVOID Context, BOOLEAN WriteToDevice)
{
	uint8_t *va = CurrentVa, *mva;
	struct mk_adapter *ad;
	struct mk_wait *w;
	ULONG pages;
	MK_DDI("GetScatterGatherList");

	mk_irql_eq(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	check_mdl(Mdl);
	mva = mdl_va(Mdl);
	if (Length == 0 || va < mva || va + Length > mva + Mdl->ByteCount)
		mk_bugcheck("map-transfer-outside-mdl", "GetScatterGatherList of %lu bytes at %+lld: the MDL covers 0..%lu",
			    (unsigned long)Length, (long long)(va - mva), (unsigned long)Mdl->ByteCount);
	pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, Length);
	if (ad->bounce && pages > ad->nregs)
		return STATUS_INSUFFICIENT_RESOURCES;
	w = calloc(1, sizeof(*w));
	w->sg = 1;
	w->ad = ad;
	w->dev = DeviceObject;
	w->nregs = ad->bounce ? pages : 0;
	w->list = ExecutionRoutine;
	w->ctx = Context;
	w->mdl = Mdl;
	w->va = va;
	w->len = Length;
	w->write = WriteToDevice;
	w->caller = mk_ddi_top->caller;
	wait_or_grant(w);
	return STATUS_SUCCESS;
}

static VOID NTAPI PutScatterGatherList(PDMA_ADAPTER DmaAdapter, PSCATTER_GATHER_LIST ScatterGather,
				       BOOLEAN WriteToDevice)
{
	struct mk_adapter *ad;
	struct mk_sgl *s;
	MK_DDI("PutScatterGatherList");

	mk_irql_eq(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	for (s = sgls; s != NULL && s->list != ScatterGather; s = s->next)
		;
	if (s == NULL)
		mk_bugcheck("put-sg-invalid", "PutScatterGatherList(%p): not a list GetScatterGatherList gave", (void *)ScatterGather);
	if (!s->live)
		mk_bugcheck("put-sg-twice", "PutScatterGatherList(%p) twice", (void *)ScatterGather);
	if (s->ad != ad)
		mk_bugcheck("put-sg-invalid", "PutScatterGatherList on another adapter");
	if (WriteToDevice != s->write)
		mk_bugcheck("sg-direction-mismatch", "PutScatterGatherList WriteToDevice %u; the list was built with %u",
			    (unsigned)WriteToDevice, (unsigned)s->write);
	if (!WriteToDevice && s->first >= 0) {
		ULONG pos = 0, i;
		long reg = s->first;

		for (i = 0; i < ScatterGather->NumberOfElements; i++) {
			ULONG len = ScatterGather->Elements[i].Length;

			copy_bounce(reg, s->va + pos, len, 0);
			reg += (long)BYTES_TO_PAGES(BYTE_OFFSET(s->va + pos) + len);
			pos += len;
		}
	}
	regs_give(s->first, s->nregs);
	s->live = 0;
	os_retire(s->list, s->bytes);
	mk_retired_add(s->list, s->bytes, "sg-list-touched-after-put", "a scatter/gather list after PutScatterGatherList");
	service_waits();
}

static NTSTATUS NTAPI CalculateScatterGatherList(PDMA_ADAPTER DmaAdapter, PMDL Mdl, PVOID CurrentVa, ULONG Length,
						 PULONG ScatterGatherListSize, PULONG NumberOfMapRegisters)
{
	struct mk_adapter *ad;
	ULONG pages;
	MK_DDI("CalculateScatterGatherList");

	(void)Mdl;
	mk_irql_le(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(CurrentVa, Length);
	*ScatterGatherListSize = (ULONG)(sizeof(SCATTER_GATHER_LIST) + pages * sizeof(SCATTER_GATHER_ELEMENT));
	if (NumberOfMapRegisters != NULL)
		*NumberOfMapRegisters = ad->bounce ? pages : 0;
	return STATUS_SUCCESS;
}

/* ---- common buffers ---- */

static PVOID NTAPI AllocateCommonBuffer(PDMA_ADAPTER DmaAdapter, ULONG Length, PPHYSICAL_ADDRESS LogicalAddress,
					BOOLEAN CacheEnabled)
{
	struct mk_adapter *ad;
	struct mk_common *c;
	uint64_t pa;
	PVOID va;
	MK_DDI("AllocateCommonBuffer");

	(void)CacheEnabled;
	mk_irql_eq(PASSIVE_LEVEL);
	ad = live_adapter(DmaAdapter);
	if (Length == 0)
		return NULL;
	va = mk_mem_alloc(MK_ALLOC_COMMON, Length, 'fBmC', mk_ddi_top->caller, &pa);
	if (va == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	c->ad = ad;
	c->va = va;
	c->len = Length;
	c->logical = (LONGLONG)pa;
	c->caller = mk_ddi_top->caller;
	c->next = commons;
	commons = c;
	LogicalAddress->QuadPart = (LONGLONG)pa;
	return va;
}

static VOID NTAPI FreeCommonBuffer(PDMA_ADAPTER DmaAdapter, ULONG Length, PHYSICAL_ADDRESS LogicalAddress,
				   PVOID VirtualAddress, BOOLEAN CacheEnabled)
{
	struct mk_adapter *ad;
	struct mk_common *c, **pp;
	MK_DDI("FreeCommonBuffer");

	(void)CacheEnabled;
	mk_irql_eq(PASSIVE_LEVEL);
	ad = live_adapter(DmaAdapter);
	for (pp = &commons; (c = *pp) != NULL; pp = &c->next)
		if (c->va == VirtualAddress)
			break;
	if (c == NULL)
		mk_bugcheck("free-common-buffer-invalid", "FreeCommonBuffer(%p): not a live common buffer", VirtualAddress);
	if (c->ad != ad || c->len != Length || c->logical != LogicalAddress.QuadPart)
		mk_bugcheck("free-common-buffer-mismatch",
			    "FreeCommonBuffer(%lu bytes, logical 0x%llx); it was allocated as %lu bytes at 0x%llx%s",
			    (unsigned long)Length, (unsigned long long)LogicalAddress.QuadPart, (unsigned long)c->len,
			    (unsigned long long)c->logical, c->ad != ad ? " on another adapter" : "");
	*pp = c->next;
	free(c);
	mk_mem_free(MK_ALLOC_COMMON, VirtualAddress, NULL);
}

/* ---- the rest of the table ---- */

static ULONG NTAPI GetDmaAlignment(PDMA_ADAPTER DmaAdapter)
{
	MK_DDI("GetDmaAlignment");

	live_adapter(DmaAdapter);
	return 1;
}

/*
 * FlushDmaBuffer: no IRQL is documented. Its documented siblings (FlushAdapterBuffers,
 * KeFlushIoBuffers, MapTransfer) all say <= DISPATCH_LEVEL, and decompiled
 * HalFlushDmaBuffer only calls KeFlushIoBuffers: the model wants <= DISPATCH_LEVEL.
 * The MDL must be one the adapter maps now (the docs: "previously passed to MapTransfer").
 */
static NTSTATUS NTAPI FlushDmaBuffer(PDMA_ADAPTER DmaAdapter, PMDL Mdl, BOOLEAN ReadOperation)
{
	struct mk_adapter *ad;
	struct mk_mrb *b;
	struct mk_sgl *s;
	int found = 0, write = 0;
	MK_DDI("FlushDmaBuffer");

	mk_irql_le(DISPATCH_LEVEL);
	ad = live_adapter(DmaAdapter);
	check_mdl(Mdl);
	for (b = bases; b != NULL; b = b->next)
		if (b->live && b->ad == ad && b->mapped && b->mdl == Mdl)
			found = 1, write = b->write;
	for (s = sgls; s != NULL; s = s->next)
		if (s->live && s->ad == ad && s->mdl == Mdl)
			found = 1, write = s->write;
	if (!found)
		mk_bugcheck("flush-dma-buffer-unmapped", "FlushDmaBuffer on an MDL the adapter does not map now");
	if ((ReadOperation != 0) == (write != 0))
		mk_bugcheck("flush-dma-buffer-direction", "FlushDmaBuffer ReadOperation %u for a mapping with WriteToDevice %u",
			    (unsigned)ReadOperation, (unsigned)write);
	return STATUS_SUCCESS;
}

static VOID NTAPI PutDmaAdapter(PDMA_ADAPTER DmaAdapter)
{
	struct mk_adapter *ad, **pp;
	struct mk_mrb *b;
	struct mk_sgl *s;
	struct mk_common *c;
	struct mk_wait *w;
	MK_DDI("PutDmaAdapter");

	mk_irql_eq(PASSIVE_LEVEL);
	ad = live_adapter(DmaAdapter);
	for (c = commons; c != NULL; c = c->next)
		if (c->ad == ad)
			mk_bugcheck("common-buffer-leak", "PutDmaAdapter with a common buffer of %lu bytes (allocated at 0x%llx) "
				    "not freed", (unsigned long)c->len, (unsigned long long)mk_rva(c->caller));
	for (w = waits; w != NULL; w = w->next)
		if (w->ad == ad)
			mk_bugcheck("adapter-channel-leak", "PutDmaAdapter while a request for %lu map registers (at 0x%llx) waits",
				    (unsigned long)w->nregs, (unsigned long long)mk_rva(w->caller));
	if (ad->channel_held)
		mk_bugcheck("adapter-channel-leak", "PutDmaAdapter while the adapter channel is held (KeepObject)");
	for (b = bases; b != NULL; b = b->next)
		if (b->live && b->ad == ad)
			mk_bugcheck("map-register-leak", "PutDmaAdapter with %lu map registers (granted at 0x%llx) not freed",
				    (unsigned long)b->count, (unsigned long long)mk_rva(b->caller));
	for (s = sgls; s != NULL; s = s->next)
		if (s->live && s->ad == ad)
			mk_bugcheck("sg-list-leak", "PutDmaAdapter with a scatter/gather list (built at 0x%llx) not put",
				    (unsigned long long)mk_rva(s->caller));
	for (pp = &adapters; *pp != ad; pp = &(*pp)->next)
		;
	*pp = ad->next;
	ad->live = 0;
	os_retire(ad, sizeof(*ad));
	mk_retired_add(ad, sizeof(*ad), "adapter-touched-after-put", "a DMA adapter after PutDmaAdapter");
}

#define UNMODELLED(name)                                                                                        \
	static VOID NTAPI unmodelled_##name(VOID)                                                              \
	{                                                                                                       \
		MK_DDI(#name);                                                                                  \
		mk_bugcheck("unmodelled-ddi", "DmaOperations->" #name " is not modelled");                     \
	}
UNMODELLED(ReadDmaCounter)
UNMODELLED(BuildScatterGatherList)
UNMODELLED(BuildMdlFromScatterGatherList)
UNMODELLED(GetDmaAdapterInfo)
UNMODELLED(GetDmaTransferInfo)
UNMODELLED(InitializeDmaTransferContext)
UNMODELLED(AllocateCommonBufferEx)
UNMODELLED(AllocateAdapterChannelEx)
UNMODELLED(ConfigureAdapterChannel)
UNMODELLED(CancelAdapterChannel)
UNMODELLED(MapTransferEx)
UNMODELLED(GetScatterGatherListEx)
UNMODELLED(BuildScatterGatherListEx)
UNMODELLED(FlushAdapterBuffersEx)
UNMODELLED(FreeAdapterObject)
UNMODELLED(CancelMappedTransfer)
UNMODELLED(AllocateDomainCommonBuffer)
UNMODELLED(JoinDmaDomain)
UNMODELLED(LeaveDmaDomain)
UNMODELLED(GetDmaDomain)
UNMODELLED(AllocateCommonBufferWithBounds)
UNMODELLED(AllocateCommonBufferVector)
UNMODELLED(GetCommonBufferFromVectorByIndex)
UNMODELLED(FreeCommonBufferFromVector)
UNMODELLED(FreeCommonBufferVector)
UNMODELLED(CreateCommonBufferFromMdl)

/*
 * DMAHIL_MODEL_V3_FLUSH=short: the v3 table ends before FlushDmaBuffer, at CancelMappedTransfer (Size 0xE8:
 * the members Windows 8 brought with DMA v3; AllocateDomainCommonBuffer and FlushDmaBuffer came with
 * Windows 10). What lies past Size is not the driver's to call: each slot there is this trap.
 */
#define V3_SHORT_SIZE 0xE8
_Static_assert(offsetof(struct mk_dma_ops, v3[13]) == V3_SHORT_SIZE, "the short table ends after CancelMappedTransfer");
static VOID NTAPI beyond_size(VOID)
{
	MK_DDI("DmaOperations-past-Size");
	mk_bugcheck("dma-ops-beyond-size", "a DmaOperations member at or past DmaOperations->Size (0x%x) was called: "
		    "the table ends before it", V3_SHORT_SIZE);
}

#define FN(x) ((PVOID)(ULONG_PTR)(x))

static void fill_ops(struct mk_dma_ops *o, int v3, int flush_present)
{
	unsigned i;

	o->v2.Size = v3 || mk_cfg.world == MK_WORLD_V2_NULL_FLUSH ? sizeof(*o) : sizeof(DMA_OPERATIONS);
	o->v2.PutDmaAdapter = PutDmaAdapter;
	o->v2.AllocateCommonBuffer = AllocateCommonBuffer;
	o->v2.FreeCommonBuffer = FreeCommonBuffer;
	o->v2.AllocateAdapterChannel = AllocateAdapterChannel;
	o->v2.FlushAdapterBuffers = FlushAdapterBuffers;
	o->v2.FreeAdapterChannel = FreeAdapterChannel;
	o->v2.FreeMapRegisters = FreeMapRegisters;
	o->v2.MapTransfer = MapTransfer;
	o->v2.GetDmaAlignment = GetDmaAlignment;
	o->v2.ReadDmaCounter = (PREAD_DMA_COUNTER)FN(unmodelled_ReadDmaCounter);
	o->v2.GetScatterGatherList = GetScatterGatherList;
	o->v2.PutScatterGatherList = PutScatterGatherList;
	o->v2.CalculateScatterGatherList = CalculateScatterGatherList;
	o->v2.BuildScatterGatherList = (PBUILD_SCATTER_GATHER_LIST)FN(unmodelled_BuildScatterGatherList);
	o->v2.BuildMdlFromScatterGatherList = (PBUILD_MDL_FROM_SCATTER_GATHER_LIST)FN(unmodelled_BuildMdlFromScatterGatherList);
	if (o->v2.Size == sizeof(DMA_OPERATIONS))
		return;
	o->v3[0] = FN(unmodelled_GetDmaAdapterInfo);
	o->v3[1] = FN(unmodelled_GetDmaTransferInfo);
	o->v3[2] = FN(unmodelled_InitializeDmaTransferContext);
	o->v3[3] = FN(unmodelled_AllocateCommonBufferEx);
	o->v3[4] = FN(unmodelled_AllocateAdapterChannelEx);
	o->v3[5] = FN(unmodelled_ConfigureAdapterChannel);
	o->v3[6] = FN(unmodelled_CancelAdapterChannel);
	o->v3[7] = FN(unmodelled_MapTransferEx);
	o->v3[8] = FN(unmodelled_GetScatterGatherListEx);
	o->v3[9] = FN(unmodelled_BuildScatterGatherListEx);
	o->v3[10] = FN(unmodelled_FlushAdapterBuffersEx);
	o->v3[11] = FN(unmodelled_FreeAdapterObject);
	o->v3[12] = FN(unmodelled_CancelMappedTransfer);
	o->v3[13] = FN(unmodelled_AllocateDomainCommonBuffer);
	o->v3[V3_FLUSH_DMA_BUFFER] = flush_present ? FN(FlushDmaBuffer) : NULL;
	o->v3[15] = FN(unmodelled_JoinDmaDomain);
	o->v3[16] = FN(unmodelled_LeaveDmaDomain);
	o->v3[17] = FN(unmodelled_GetDmaDomain);
	o->v3[18] = FN(unmodelled_AllocateCommonBufferWithBounds);
	o->v3[19] = FN(unmodelled_AllocateCommonBufferVector);
	o->v3[20] = FN(unmodelled_GetCommonBufferFromVectorByIndex);
	o->v3[21] = FN(unmodelled_FreeCommonBufferFromVector);
	o->v3[22] = FN(unmodelled_FreeCommonBufferVector);
	o->v3[23] = FN(unmodelled_CreateCommonBufferFromMdl);
	if (v3 && mk_cfg.v3_flush == MK_V3_FLUSH_SHORT) {
		o->v2.Size = V3_SHORT_SIZE;
		for (i = (V3_SHORT_SIZE - sizeof(DMA_OPERATIONS)) / sizeof(PVOID); i < 24; i++)
			o->v3[i] = FN(beyond_size);
	}
}

/* ---- IoGetDmaAdapter ---- */

PDMA_ADAPTER mk_get_dma_adapter_impl(PDEVICE_OBJECT pdo, PDEVICE_DESCRIPTION dd, PULONG nregs)
{
	struct mk_adapter *ad;
	unsigned width;
	uint64_t reach, highest;
	ULONG want;

	if (pdo != mk_pdo)
		mk_bugcheck("not-a-pdo", "IoGetDmaAdapter(%p): not the physical device object", (void *)pdo);
	if (dd->Version > 3)
		mk_bugcheck("invalid-device-description", "DEVICE_DESCRIPTION version %lu", (unsigned long)dd->Version);
	if (dd->Reserved1)
		mk_bugcheck("invalid-device-description", "DEVICE_DESCRIPTION.Reserved1 must be FALSE");
	if (!dd->Master || dd->InterfaceType != PCIBus)
		mk_bugcheck("unmodelled-ddi", "IoGetDmaAdapter for a system-DMA (slave) or non-PCI device");
	if (dd->Version == 3) {
		if (mk_cfg.world == MK_WORLD_V2_NULL_FLUSH)
			return NULL; /* as ReactOS: "if (DeviceDescription->Version > DEVICE_DESCRIPTION_VERSION2) return NULL" */
		width = *(const ULONG *)((const uint8_t *)dd + 40); /* DmaAddressWidth (dma-and-qemu-facts.md 2.1) */
		if (width == 0 || width > 64)
			mk_bugcheck("invalid-device-description", "DmaAddressWidth %u: must be 1..64", width);
		if (width < 24)
			return NULL; /* KMDF: widths below 24 fail in DMA v2 and v3 */
	} else {
		width = dd->Dma64BitAddresses ? 64 : dd->Dma32BitAddresses ? 32 : 24;
		if (width == 24)
			mk_bugcheck("unmodelled-ddi", "a 24-bit bus-master adapter");
	}
	reach = width >= 64 ? ~0ull : (1ull << width);
	highest = mk_cfg.pool_hi > mk_cfg.common_hi ? mk_cfg.pool_hi : mk_cfg.common_hi;
	ad = os_alloc_private(sizeof(*ad));
	ad->hdr.Version = 1; /* always 1, whatever the description's version (IoGetDmaAdapter docs) */
	ad->hdr.Size = sizeof(DMA_ADAPTER);
	ad->hdr.DmaOperations = &ad->ops.v2;
	ad->version = (int)dd->Version;
	ad->width = width;
	ad->bounce = highest > reach;
	if (ad->bounce && mk_cfg.world != MK_WORLD_MAP_REGISTERS)
		mk_bugcheck("model-limit", "a %u-bit adapter needs map registers; only the map-registers world has them", width);
	want = BYTES_TO_PAGES(dd->MaximumLength) + 1;
	ad->nregs = ad->bounce && want > mk_cfg.map_registers ? mk_cfg.map_registers : want;
	ad->live = 1;
	ad->caller = mk_ddi_caller();
	fill_ops(&ad->ops, dd->Version == 3, mk_cfg.world != MK_WORLD_V2_NULL_FLUSH && mk_cfg.v3_flush == MK_V3_FLUSH_PRESENT);
	ad->next = adapters;
	adapters = ad;
	*nregs = ad->nregs;
	mk_trace("IoGetDmaAdapter: v%lu, %u-bit, %s, %lu map registers, ops size %lu", (unsigned long)dd->Version, width,
		 ad->bounce ? "bouncing" : "direct", (unsigned long)ad->nregs, (unsigned long)ad->ops.v2.Size);
	return &ad->hdr;
}

PDMA_ADAPTER NTAPI mk_IoGetDmaAdapter(PDEVICE_OBJECT PhysicalDeviceObject, PDEVICE_DESCRIPTION DeviceDescription,
				      PULONG NumberOfMapRegisters)
{
	MK_DDI("IoGetDmaAdapter");

	mk_irql_eq(PASSIVE_LEVEL);
	return mk_get_dma_adapter_impl(PhysicalDeviceObject, DeviceDescription, NumberOfMapRegisters);
}

/* ---- checks from elsewhere ---- */

void mk_dma_check_unmapped(const void *va, size_t bytes, const char *what)
{
	const uint8_t *lo = va, *hi = lo + bytes;
	struct mk_mrb *b;
	struct mk_sgl *s;

	for (b = bases; b != NULL; b = b->next)
		if (b->live && b->mapped && b->first_va < hi && b->next_va > lo)
			mk_bugcheck("free-mapped-buffer", "%s is freed while MapTransfer still maps %llu bytes of it",
				    what, (unsigned long long)(b->next_va - b->first_va));
	for (s = sgls; s != NULL; s = s->next)
		if (s->live && s->va < hi && s->va + s->len > lo)
			mk_bugcheck("free-mapped-buffer", "%s is freed while a scatter/gather list still maps it", what);
}

void mk_dma_check_mdl_unused(PMDL mdl)
{
	struct mk_mrb *b;
	struct mk_sgl *s;

	for (b = bases; b != NULL; b = b->next)
		if (b->live && b->mapped && b->mdl == mdl)
			mk_bugcheck("free-mapped-buffer", "IoFreeMdl of an MDL MapTransfer still maps");
	for (s = sgls; s != NULL; s = s->next)
		if (s->live && s->mdl == mdl)
			mk_bugcheck("free-mapped-buffer", "IoFreeMdl of an MDL a scatter/gather list still maps");
}

void mk_dma_check_leaks(void)
{
	struct mk_mrb *b;
	struct mk_sgl *s;

	if (adapters != NULL)
		mk_bugcheck_at("dma-adapter-leak", "DriverUnload", adapters->caller, "a DMA adapter was never put (PutDmaAdapter)");
	if (waits != NULL)
		mk_bugcheck_at("adapter-channel-leak", "DriverUnload", waits->caller,
			       "a request for %lu map registers still waits after unload", (unsigned long)waits->nregs);
	for (b = bases; b != NULL; b = b->next)
		if (b->live)
			mk_bugcheck_at("map-register-leak", "DriverUnload", b->caller, "%lu map registers never freed",
				       (unsigned long)b->count);
	for (s = sgls; s != NULL; s = s->next)
		if (s->live)
			mk_bugcheck_at("sg-list-leak", "DriverUnload", s->caller, "a scatter/gather list never put");
	if (commons != NULL)
		mk_bugcheck_at("common-buffer-leak", "DriverUnload", commons->caller, "a common buffer of %lu bytes never freed",
			       (unsigned long)commons->len);
	while (bases != NULL) {
		b = bases;
		bases = b->next;
		free(b);
	}
	while (sgls != NULL) {
		s = sgls;
		sgls = s->next;
		free(s);
	}
}
