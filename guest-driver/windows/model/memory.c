/* SPDX-License-Identifier: MIT */
/*
 * Guest physical memory, nonpaged pool, common-buffer memory and MDLs.
 *
 * Guest RAM is the file DMAHIL_MODEL_RAM, mapped whole at mk_ram: physical
 * address = file offset, so the host reads what the driver and the edu wrote
 * at the pages the driver reports. Pool and common buffers live in it, in the
 * world's regions (config.c). The driver sees each allocation through its own
 * alias mapping of the same file pages:
 *  - pool pages are physically discontiguous every 64 KiB (frames handed out
 *    from the top of the region down), as pool on Windows may be;
 *  - a small allocation ends at the end of its page, and an inaccessible
 *    page follows every allocation (special pool catches overruns);
 *  - fresh memory is filled with junk (0xC1 pool, 0xC2 common buffers);
 *  - a freed allocation is left inaccessible (quarantine), so a later touch
 *    is reported, and its pages are poisoned (0xDF).
 * Windows maps file views at 64 KiB granularity, hence 64 KiB frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"

uint8_t *mk_ram;

#define FRAME 0x10000u
#define PAGES_PER_FRAME 16u

struct mk_alloc {
	struct mk_alloc *next;
	enum mk_alloc_kind kind;
	int live;
	uint8_t *region;
	size_t region_bytes;
	uint8_t *va;
	size_t bytes;
	ULONG tag;
	ULONG_PTR caller;
	unsigned nframes;
	uint32_t *frames; /* in VA order */
};

static struct mk_alloc *allocs; /* live */
static struct mk_alloc *dead_head, *dead_tail;
static unsigned ndead;
static uint8_t *frame_used;
static uint64_t nframes_total;

int mk_mem_init(char *err, size_t errlen)
{
	if (os_ram_open(mk_cfg.ram_path, mk_cfg.ram_bytes, &mk_ram, err, errlen))
		return -1;
	nframes_total = mk_cfg.ram_bytes / FRAME;
	frame_used = calloc(nframes_total, 1);
	return frame_used != NULL ? 0 : -1;
}

static int frames_take(enum mk_alloc_kind kind, unsigned n, uint32_t *out)
{
	uint64_t lo = (kind == MK_ALLOC_POOL ? mk_cfg.pool_lo : mk_cfg.common_lo) / FRAME;
	uint64_t hi = (kind == MK_ALLOC_POOL ? mk_cfg.pool_hi : mk_cfg.common_hi) / FRAME;
	uint64_t f, run = 0;
	unsigned got = 0;

	if (kind == MK_ALLOC_POOL) {
		for (f = hi; f-- > lo && got < n;)
			if (!frame_used[f])
				out[got++] = (uint32_t)f;
		if (got < n)
			return -1;
	} else {
		for (f = lo; f < hi; f++) {
			run = frame_used[f] ? 0 : run + 1;
			if (run == n)
				break;
		}
		if (f == hi)
			return -1;
		for (got = 0; got < n; got++)
			out[got] = (uint32_t)(f + 1 - n + got);
	}
	for (got = 0; got < n; got++)
		frame_used[out[got]] = 1;
	return 0;
}

static void quarantine(struct mk_alloc *a)
{
	a->next = NULL;
	if (dead_tail != NULL)
		dead_tail->next = a;
	else
		dead_head = a;
	dead_tail = a;
	if (++ndead <= 1024)
		return;
	/* the oldest leaves quarantine: its VA may be reused from now on */
	a = dead_head;
	dead_head = a->next;
	ndead--;
	for (unsigned i = 0; i < a->nframes; i++)
		os_ram_unalias(a->region + (size_t)i * FRAME);
	free(a->frames);
	free(a);
}

void *mk_mem_alloc(enum mk_alloc_kind kind, size_t bytes, ULONG tag, ULONG_PTR caller, uint64_t *first_pa)
{
	size_t pages = (bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	unsigned nframes = (unsigned)((pages + 1 + PAGES_PER_FRAME - 1) / PAGES_PER_FRAME);
	struct mk_alloc *a = calloc(1, sizeof(*a));
	unsigned i;

	if (a == NULL || bytes == 0)
		return NULL;
	a->frames = calloc(nframes, sizeof(uint32_t));
	if (a->frames == NULL || frames_take(kind, nframes, a->frames)) {
		free(a->frames);
		free(a);
		return NULL;
	}
	a->kind = kind;
	a->nframes = nframes;
	a->region_bytes = (size_t)nframes * FRAME;
	a->region = os_va_probe(a->region_bytes);
	for (i = 0; i < nframes; i++)
		if (a->region == NULL || os_ram_alias(a->region + (size_t)i * FRAME, (uint64_t)a->frames[i] * FRAME, FRAME))
			mk_bugcheck("model-limit", "cannot map pool frame %u", i);
	/* the guard page and the rest of the last frame */
	os_protect(a->region + pages * PAGE_SIZE, a->region_bytes - pages * PAGE_SIZE, OS_NOACCESS);
	a->bytes = bytes;
	a->va = bytes >= PAGE_SIZE ? a->region : a->region + PAGE_SIZE - ((bytes + 15) & ~(size_t)15);
	memset(a->region, kind == MK_ALLOC_POOL ? 0xC1 : 0xC2, pages * PAGE_SIZE);
	a->tag = tag;
	a->caller = caller;
	a->live = 1;
	a->next = allocs;
	allocs = a;
	if (first_pa != NULL)
		mk_va_to_pa(a->va, first_pa);
	return a->va;
}

static struct mk_alloc *find_live(const void *va)
{
	struct mk_alloc *a;

	for (a = allocs; a != NULL; a = a->next)
		if ((const uint8_t *)va >= a->region && (const uint8_t *)va < a->region + a->region_bytes)
			return a;
	return NULL;
}

int mk_mem_free(enum mk_alloc_kind kind, void *va, ULONG *tag)
{
	struct mk_alloc *a, **pp;
	size_t pages;
	unsigned i;
	char what[96];

	for (pp = &allocs; (a = *pp) != NULL; pp = &a->next)
		if (a->va == va)
			break;
	if (a == NULL || a->kind != kind)
		return 0;
	if (tag != NULL)
		*tag = a->tag;
	snprintf(what, sizeof(what), "%s of %llu bytes (allocated at 0x%llx)",
		 kind == MK_ALLOC_POOL ? "pool" : "a common buffer", (unsigned long long)a->bytes,
		 (unsigned long long)mk_rva(a->caller));
	mk_check_no_dpc_in(a->region, a->region_bytes, "dpc-in-freed-memory", what);
	mk_dma_check_unmapped(a->region, a->region_bytes, what);
	*pp = a->next;
	a->live = 0;
	pages = (a->bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	memset(a->region, 0xDF, pages * PAGE_SIZE);
	os_protect(a->region, a->region_bytes, OS_NOACCESS);
	mk_retired_add(a->region, a->region_bytes, kind == MK_ALLOC_POOL ? "pool-touched-after-free"
									 : "common-buffer-touched-after-free",
		       what);
	for (i = 0; i < a->nframes; i++)
		frame_used[a->frames[i]] = 0;
	quarantine(a);
	return 1;
}

int mk_va_to_pa(const void *va, uint64_t *pa)
{
	const struct mk_alloc *a = find_live(va);
	size_t off;

	if (a == NULL)
		return -1;
	off = (size_t)((const uint8_t *)va - a->region);
	*pa = (uint64_t)a->frames[off / FRAME] * FRAME + off % FRAME;
	return 0;
}

/* Is the page of pa part of a live pool allocation or common buffer? */
int mk_pa_live(uint64_t pa)
{
	const struct mk_alloc *a;
	uint32_t frame = (uint32_t)(pa / FRAME);
	unsigned i;

	for (a = allocs; a != NULL; a = a->next)
		for (i = 0; i < a->nframes; i++)
			if (a->frames[i] == frame) {
				size_t off = (size_t)i * FRAME + (size_t)(pa % FRAME);

				return off < ((a->bytes + PAGE_SIZE - 1) & ~(size_t)(PAGE_SIZE - 1));
			}
	return 0;
}

int mk_va_is_mem(const void *va, size_t bytes)
{
	const struct mk_alloc *a = find_live(va);
	size_t pages;

	if (a == NULL)
		return 0;
	pages = (a->bytes + PAGE_SIZE - 1) / PAGE_SIZE;
	return (const uint8_t *)va + bytes <= a->region + pages * PAGE_SIZE;
}

void mk_mem_check_leaks(void)
{
	const struct mk_alloc *a = allocs;

	if (a != NULL)
		mk_bugcheck_at(a->kind == MK_ALLOC_POOL ? "pool-leak" : "common-buffer-leak", "DriverUnload", a->caller,
			       "%s of %llu bytes (tag 0x%08lx) still allocated after the driver unloaded",
			       a->kind == MK_ALLOC_POOL ? "pool" : "a common buffer", (unsigned long long)a->bytes,
			       (unsigned long)a->tag);
}

/* ---- pool DDIs ---- */

static int paged(POOL_TYPE t)
{
	return (t & 1) != 0; /* PagedPool, PagedPoolCacheAligned, ... */
}

PVOID NTAPI mk_ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)
{
	MK_DDI("ExAllocatePoolWithTag");

	mk_irql_le(paged(PoolType) ? APC_LEVEL : DISPATCH_LEVEL);
	if (NumberOfBytes == 0)
		mk_bugcheck("pool-zero-size", "a pool allocation of 0 bytes");
	if (Tag == 0)
		mk_bugcheck("pool-tag-zero", "a pool allocation without a tag");
	if ((PoolType & ~(ULONG)512) == NonPagedPoolMustSucceed)
		mk_bugcheck("pool-must-succeed", "NonPagedPoolMustSucceed is not allowed");
	return mk_mem_alloc(MK_ALLOC_POOL, NumberOfBytes, Tag, mk_ddi_top->caller, NULL);
}

#define POOL_FLAG_USE_QUOTA 0x1ull
#define POOL_FLAG_UNINITIALIZED 0x2ull
#define POOL_FLAG_CACHE_ALIGNED 0x8ull
#define POOL_FLAG_RAISE_ON_FAILURE 0x20ull
#define POOL_FLAG_NON_PAGED 0x40ull
#define POOL_FLAG_NON_PAGED_EXECUTE 0x80ull
#define POOL_FLAG_PAGED 0x100ull

/* Windows 10 2004+; reached only through MmGetSystemRoutineAddress (imports.c). */
PVOID NTAPI mk_ExAllocatePool2(ULONG64 Flags, SIZE_T NumberOfBytes, ULONG Tag)
{
	ULONG64 kinds = Flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED);
	PVOID p;
	MK_DDI("ExAllocatePool2");

	if (kinds != POOL_FLAG_NON_PAGED && kinds != POOL_FLAG_NON_PAGED_EXECUTE && kinds != POOL_FLAG_PAGED)
		mk_bugcheck("invalid-parameter", "ExAllocatePool2 flags 0x%llx: exactly one pool type",
			    (unsigned long long)Flags);
	if (Flags & ~(POOL_FLAG_USE_QUOTA | POOL_FLAG_UNINITIALIZED | POOL_FLAG_CACHE_ALIGNED |
		      POOL_FLAG_RAISE_ON_FAILURE | kinds))
		mk_bugcheck("invalid-parameter", "ExAllocatePool2 flags 0x%llx unknown to the model",
			    (unsigned long long)Flags);
	mk_irql_le(kinds == POOL_FLAG_PAGED ? APC_LEVEL : DISPATCH_LEVEL);
	if (NumberOfBytes == 0)
		mk_bugcheck("pool-zero-size", "a pool allocation of 0 bytes");
	if (Tag == 0)
		mk_bugcheck("pool-tag-zero", "a pool allocation without a tag");
	p = mk_mem_alloc(MK_ALLOC_POOL, NumberOfBytes, Tag, mk_ddi_top->caller, NULL);
	if (p != NULL && !(Flags & POOL_FLAG_UNINITIALIZED))
		memset(p, 0, NumberOfBytes);
	return p;
}

VOID NTAPI mk_ExFreePoolWithTag(PVOID P, ULONG Tag)
{
	ULONG had;
	MK_DDI("ExFreePoolWithTag");

	mk_irql_le(DISPATCH_LEVEL);
	if (P == NULL)
		mk_bugcheck("pool-free-invalid", "ExFreePoolWithTag(NULL)");
	if (!mk_mem_free(MK_ALLOC_POOL, P, &had))
		mk_bugcheck("pool-free-invalid", "ExFreePoolWithTag(%p): not the start of a live pool allocation "
			    "(freed twice, or never allocated)", P);
	if (had != Tag && Tag != 0)
		mk_bugcheck("pool-tag-mismatch", "freed with tag 0x%08lx, allocated with 0x%08lx", (unsigned long)Tag,
			    (unsigned long)had);
}

VOID NTAPI mk_ExFreePool(PVOID P)
{
	MK_DDI("ExFreePool");

	mk_irql_le(DISPATCH_LEVEL);
	if (P == NULL || !mk_mem_free(MK_ALLOC_POOL, P, NULL))
		mk_bugcheck("pool-free-invalid", "ExFreePool(%p): not the start of a live pool allocation", P);
}

/* ---- MDLs ---- */

struct mk_mdl {
	PMDL mdl;
	size_t bytes;
	ULONG_PTR caller;
	struct mk_mdl *next;
};
static struct mk_mdl *mdls;

int mk_mdl_live(PMDL mdl)
{
	const struct mk_mdl *m;

	for (m = mdls; m != NULL; m = m->next)
		if (m->mdl == mdl)
			return 1;
	return 0;
}

PMDL NTAPI mk_IoAllocateMdl(PVOID VirtualAddress, ULONG Length, BOOLEAN SecondaryBuffer, BOOLEAN ChargeQuota, PIRP Irp)
{
	ULONG pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(VirtualAddress, Length);
	size_t bytes = sizeof(MDL) + pages * sizeof(PFN_NUMBER);
	struct mk_mdl *m;
	PMDL mdl;
	MK_DDI("IoAllocateMdl");

	(void)ChargeQuota;
	mk_irql_le(DISPATCH_LEVEL);
	if (Length == 0)
		mk_bugcheck("invalid-parameter", "IoAllocateMdl of 0 bytes");
	if (SecondaryBuffer || Irp != NULL)
		mk_bugcheck("unmodelled-ddi", "IoAllocateMdl with an IRP or a secondary buffer");
	mdl = os_alloc_private(bytes);
	m = calloc(1, sizeof(*m));
	if (mdl == NULL || m == NULL)
		return NULL;
	mdl->Size = (CSHORT)bytes;
	mdl->StartVa = PAGE_ALIGN(VirtualAddress);
	mdl->ByteOffset = BYTE_OFFSET(VirtualAddress);
	mdl->ByteCount = Length;
	memset(mdl + 1, 0xEE, pages * sizeof(PFN_NUMBER)); /* no PFNs until built */
	m->mdl = mdl;
	m->bytes = bytes;
	m->caller = mk_ddi_top->caller;
	m->next = mdls;
	mdls = m;
	return mdl;
}

VOID NTAPI mk_MmBuildMdlForNonPagedPool(PMDL Mdl)
{
	PPFN_NUMBER pfn = MmGetMdlPfnArray(Mdl);
	uint8_t *va = (uint8_t *)Mdl->StartVa;
	ULONG i, pages;
	MK_DDI("MmBuildMdlForNonPagedPool");

	mk_irql_le(DISPATCH_LEVEL);
	if (!mk_mdl_live(Mdl))
		mk_bugcheck("mdl-invalid", "MDL %p is not a live MDL", (void *)Mdl);
	pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(va + Mdl->ByteOffset, Mdl->ByteCount);
	if (!mk_va_is_mem(va + Mdl->ByteOffset, Mdl->ByteCount))
		mk_bugcheck("mdl-not-nonpaged", "MmBuildMdlForNonPagedPool for %p+%lu: not (all) nonpaged pool",
			    (void *)(va + Mdl->ByteOffset), (unsigned long)Mdl->ByteCount);
	for (i = 0; i < pages; i++) {
		uint64_t pa;

		mk_va_to_pa(va + (size_t)i * PAGE_SIZE + (i == 0 ? Mdl->ByteOffset : 0), &pa);
		pfn[i] = (PFN_NUMBER)(pa >> PAGE_SHIFT);
	}
	Mdl->MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
	Mdl->MappedSystemVa = va + Mdl->ByteOffset;
}

VOID NTAPI mk_IoFreeMdl(PMDL Mdl)
{
	struct mk_mdl *m, **pp;
	MK_DDI("IoFreeMdl");

	mk_irql_le(DISPATCH_LEVEL);
	for (pp = &mdls; (m = *pp) != NULL; pp = &m->next)
		if (m->mdl == Mdl)
			break;
	if (m == NULL)
		mk_bugcheck("mdl-invalid", "IoFreeMdl(%p): not a live MDL (freed twice?)", (void *)Mdl);
	mk_dma_check_mdl_unused(Mdl);
	*pp = m->next;
	os_retire(Mdl, m->bytes);
	mk_retired_add(Mdl, m->bytes, "mdl-touched-after-free", "an MDL freed by IoFreeMdl");
	free(m);
}

void mk_mdl_check_leaks(void)
{
	if (mdls != NULL)
		mk_bugcheck_at("mdl-leak", "DriverUnload", mdls->caller, "an MDL of %lu bytes still allocated",
			       (unsigned long)mdls->mdl->ByteCount);
}

/* ---- device memory ---- */

PVOID NTAPI mk_MmMapIoSpace(PHYSICAL_ADDRESS PhysicalAddress, SIZE_T NumberOfBytes, MEMORY_CACHING_TYPE CacheType)
{
	void *va;
	MK_DDI("MmMapIoSpace");

	(void)CacheType;
	mk_irql_le(DISPATCH_LEVEL);
	va = mk_edu_map((uint64_t)PhysicalAddress.QuadPart, NumberOfBytes);
	if (va == NULL)
		mk_bugcheck("map-io-space-not-device", "MmMapIoSpace(0x%llx, %llu): not device memory of this device",
			    (unsigned long long)PhysicalAddress.QuadPart, (unsigned long long)NumberOfBytes);
	return va;
}

VOID NTAPI mk_MmUnmapIoSpace(PVOID BaseAddress, SIZE_T NumberOfBytes)
{
	MK_DDI("MmUnmapIoSpace");

	mk_irql_le(DISPATCH_LEVEL);
	if (mk_edu_unmap(BaseAddress, NumberOfBytes))
		mk_bugcheck("unmap-io-space-invalid", "MmUnmapIoSpace(%p, %llu) does not match a mapping", BaseAddress,
			    (unsigned long long)NumberOfBytes);
}
