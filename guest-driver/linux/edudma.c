// SPDX-License-Identifier: GPL-2.0-only
/*
 * edudma - the dmahil test driver for QEMU's "edu" PCI device (1234:11e8).
 *
 * It runs one dmahil scenario through the Linux DMA API (dma_map_single,
 * dma_map_sg or dma_alloc_coherent) in two halves: EDUDMA_IOC_PREPARE allocates
 * and maps the buffers, writes the source pattern with the CPU, fills the
 * destination with the fill byte and reports the pages; EDUDMA_IOC_GO moves the
 * data with the edu's DMA engine in operations of at most 4095 bytes, hands the
 * buffers back to the CPU and reports every device address it used. In between
 * the host reads the buffers, so it sees the destination change from the fill
 * byte to the pattern while the device runs (EDUDMA_IOC_RUN does both at once).
 * It never judges the data: the host reads guest RAM at the reported pages. The
 * buffers stay allocated and untouched until EDUDMA_IOC_RELEASE or until the
 * file that prepared the scenario is closed.
 *
 * After a snapshot restore into a new QEMU, whose edu has no migration state
 * and so comes up with its PCI config reset, EDUDMA_IOC_REATTACH writes back the
 * config the probe left (BAR0, memory decoding, bus mastering, MSI), the way the
 * PCI core restores a device on resume, and checks the device again.
 *
 * The scenario semantics are in docs/contract.md; the ABI in dmahil_abi.h and
 * edudma_ioctl.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/scatterlist.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "edudma_compat.h"
#include "edudma_ioctl.h"
#include "dmahil_abi.h"
#include "dmahil_pattern.h"

#define EDU_VENDOR_ID 0x1234
#define EDU_DEVICE_ID 0x11e8
#define EDU_ID_VALUE 0x010000edu

#define EDU_REG_ID 0x00
#define EDU_REG_LIVENESS 0x04
#define EDU_REG_IRQ_STATUS 0x24
#define EDU_REG_IRQ_ACK 0x64
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98

#define EDU_CMD_START 0x01
#define EDU_CMD_TO_RAM 0x02
#define EDU_CMD_IRQ 0x04
#define EDU_IRQ_DMA 0x100

/*
 * The DMA width the driver declares: the edu's 28 bits by default; a guest whose edu has another
 * dma_mask (dmahil's high-memory variant: 32 bits) loads it with dma_bits= to match.
 */
static unsigned int dma_bits = DMAHIL_EDU_DMA_BITS;
module_param(dma_bits, uint, 0444);
MODULE_PARM_DESC(dma_bits, "DMA address bits the edu reaches (28..63, default 28): match the edu's dma_mask");
#define EDU_BEYOND_MASK_BIT (1ull << dma_bits)

/* The test build says so wherever the driver names its version (dmactl info, modinfo). */
#ifdef EDUDMA_PLANTED
#define EDUDMA_BUILD_VERSION EDUDMA_DRIVER_VERSION "-planted"
#else
#define EDUDMA_BUILD_VERSION EDUDMA_DRIVER_VERSION
#endif

struct edudma_dev {
	struct pci_dev *pdev;
	void __iomem *mmio;
	int irq;
	struct completion done;
	struct miscdevice misc;
	struct pci_saved_state *config; /* as set up by the probe: what EDUDMA_IOC_REATTACH writes back */
};

/* A device-contiguous run of a buffer's data: one mapping, one sg entry, or the coherent buffer. */
struct edudma_chunk {
	u64 dev;
	u32 off;  /* offset in the buffer's data */
	u32 len;
	u32 mapped; /* bytes of it the DMA API mapped: len, except under short-mapping */
	int map;  /* streaming: index in maps[], else -1 */
};

struct edudma_map {
	dma_addr_t addr;
	u32 off;
	u32 len;
};

struct edudma_buf {
	u32 role;
	u32 kind;
	u32 offset;
	u32 length;
	size_t alloc_size;     /* whole pages */
	void *cpu;             /* start of the allocation (page aligned) */
	bool coherent;
	dma_addr_t coherent_dma;
	enum dma_data_direction dir;
	/* streaming */
	struct edudma_map *maps;
	unsigned int nmaps;
	unsigned int nmapped;  /* maps[0..nmapped) are mapped */
	/* scatter-gather */
	struct sg_table sgt;
	unsigned int sg_nents;
	bool sgt_alloc;
	bool sg_mapped;
	struct edudma_chunk *chunks;
	unsigned int nchunks;
};

struct edudma_held {
	struct list_head node;
	struct file *owner;
	struct device *dev;
	u32 handle;
	bool dma_may_run;      /* an operation timed out; the edu may still write */
	bool prepared;         /* PREPARE succeeded and GO has not run yet */
	u64 prepare_ns;        /* time PREPARE took, counted in total_ns */
	struct dmahil_scenario scenario;
	struct dmahil_result *result; /* the run's report, from PREPARE to GO */
	struct edudma_buf buf[2]; /* [0] source, [1] destination */
#ifdef EDUDMA_PLANTED
	bool planted_race;     /* this run loses the planted race */
#endif
};

static DEFINE_MUTEX(edudma_lock); /* the device pointer, the held list, and every run */
static struct edudma_dev *edudma;
static LIST_HEAD(edudma_held_list);
static u32 edudma_held_count;
static u32 edudma_next_handle = 1;

static const char *const fault_names[DMAHIL_FAULT_COUNT] = {
	"none", "skip-sync", "skip-flush-dma-buffer", "wrong-direction",
	"read-before-completion", "addr-beyond-mask", "use-after-unmap", "short-mapping", "other-mapping",
};

static void note_call(struct dmahil_result *r, const char *name, int status)
{
	u32 i;

	if (!r)
		return;
	for (i = 0; i < r->call_count; i++)
		if (!strncmp(r->calls[i].name, name, sizeof(r->calls[i].name)))
			break;
	if (i == r->call_count) {
		if (i >= DMAHIL_MAX_CALLS)
			return;
		strscpy(r->calls[i].name, name, sizeof(r->calls[i].name));
		r->call_count++;
	}
	r->calls[i].count++;
	r->calls[i].status = status;
}

static __printf(3, 4) int fail(struct dmahil_result *r, u32 status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- scenario checks ---- */

static int validate(const struct dmahil_scenario *s, struct dmahil_result *r)
{
	unsigned int i;

	if (s->contract_version != DMAHIL_CONTRACT_VERSION)
		return fail(r, DMAHIL_E_INVALID, "contract version %u; this driver speaks %u",
			    s->contract_version, DMAHIL_CONTRACT_VERSION);
	if (s->direction < DMAHIL_DIR_TO_DEVICE || s->direction > DMAHIL_DIR_ROUND_TRIP)
		return fail(r, DMAHIL_E_INVALID, "direction %u out of range", s->direction);
	if (s->method < DMAHIL_METHOD_STREAMING || s->method > DMAHIL_METHOD_COMMON_BUFFER)
		return fail(r, DMAHIL_E_INVALID, "method %u out of range", s->method);
	if (s->sync < DMAHIL_SYNC_FULL || s->sync > DMAHIL_SYNC_MINIMAL)
		return fail(r, DMAHIL_E_INVALID, "sync %u out of range", s->sync);
	if (s->fault >= DMAHIL_FAULT_COUNT)
		return fail(r, DMAHIL_E_INVALID, "fault %u out of range", s->fault);
	if (s->size < 1 || s->size > DMAHIL_MAX_SIZE)
		return fail(r, DMAHIL_E_INVALID, "size %u not in 1..%u", s->size, DMAHIL_MAX_SIZE);
	if (s->offset >= DMAHIL_PAGE_SIZE)
		return fail(r, DMAHIL_E_INVALID, "offset %u not in 0..%u", s->offset, DMAHIL_PAGE_SIZE - 1);
	if (s->timeout_ms > EDUDMA_MAX_TIMEOUT_MS)
		return fail(r, DMAHIL_E_INVALID, "timeout_ms %u above %u", s->timeout_ms, EDUDMA_MAX_TIMEOUT_MS);
	for (i = 0; i < ARRAY_SIZE(s->reserved); i++)
		if (s->reserved[i])
			return fail(r, DMAHIL_E_INVALID, "reserved[%u] is %u, must be 0", i, s->reserved[i]);
	if (s->test_flags & ~DMAHIL_TEST_PRECOPY)
		return fail(r, DMAHIL_E_INVALID, "test_flags 0x%x: unknown flags", s->test_flags);

	if (s->fault == DMAHIL_FAULT_SKIP_FLUSH_DMA_BUFFER)
		return fail(r, DMAHIL_E_UNSUPPORTED, "skip-flush-dma-buffer is a Windows fault; Linux has no FlushDmaBuffer");
	if (s->method == DMAHIL_METHOD_COMMON_BUFFER &&
	    (s->fault == DMAHIL_FAULT_SKIP_SYNC || s->fault == DMAHIL_FAULT_WRONG_DIRECTION ||
	     s->fault == DMAHIL_FAULT_READ_BEFORE_COMPLETION))
		return fail(r, DMAHIL_E_UNSUPPORTED, "fault %s needs a streaming or scatter-gather buffer; a common buffer has no sync or direction",
			    fault_names[s->fault]);
	if (s->method == DMAHIL_METHOD_COMMON_BUFFER &&
	    (s->fault == DMAHIL_FAULT_USE_AFTER_UNMAP || s->fault == DMAHIL_FAULT_SHORT_MAPPING))
		return fail(r, DMAHIL_E_UNSUPPORTED, "fault %s needs a streaming or scatter-gather buffer; a common buffer has no mapping of its own",
			    fault_names[s->fault]);
	if (s->direction == DMAHIL_DIR_TO_DEVICE &&
	    (s->fault == DMAHIL_FAULT_WRONG_DIRECTION || s->fault == DMAHIL_FAULT_READ_BEFORE_COMPLETION ||
	     s->fault == DMAHIL_FAULT_USE_AFTER_UNMAP || s->fault == DMAHIL_FAULT_SHORT_MAPPING))
		return fail(r, DMAHIL_E_UNSUPPORTED, "fault %s concerns the client destination; to-device has none",
			    fault_names[s->fault]);
	if (s->fault == DMAHIL_FAULT_OTHER_MAPPING &&
	    (s->direction != DMAHIL_DIR_ROUND_TRIP || s->method == DMAHIL_METHOD_COMMON_BUFFER))
		return fail(r, DMAHIL_E_UNSUPPORTED, "other-mapping needs a round trip through streaming or scatter-gather buffers: the device is sent to the client source's mapping");
	if (s->fault == DMAHIL_FAULT_SHORT_MAPPING && s->offset + s->size <= PAGE_SIZE)
		return fail(r, DMAHIL_E_UNSUPPORTED, "short-mapping needs data beyond its first page (offset %u + size %u <= %lu): nothing would be short",
			    s->offset, s->size, PAGE_SIZE);
	return 0;
}

static int check_device(struct edudma_dev *d, u32 probe_value, struct dmahil_result *r)
{
	u32 id = readl(d->mmio + EDU_REG_ID), live;

	if (id != EDU_ID_VALUE)
		return fail(r, DMAHIL_E_DEVICE, "edu ID register reads 0x%08x, expected 0x%08x (device reset, e.g. after a snapshot restore?)",
			    id, EDU_ID_VALUE);
	writel(probe_value, d->mmio + EDU_REG_LIVENESS);
	live = readl(d->mmio + EDU_REG_LIVENESS);
	if (live != ~probe_value)
		return fail(r, DMAHIL_E_DEVICE, "edu liveness: wrote 0x%08x, read 0x%08x, expected 0x%08x",
			    probe_value, live, ~probe_value);
	return 0;
}

/* ---- buffers ---- */

/*
 * The device's DMA-API domain when an IOMMU translates its device addresses (DMA or DMA-FQ), else NULL:
 * no IOMMU, or an identity (passthrough) or blocking domain, where a device address is a CPU address.
 */
static struct iommu_domain *edudma_dma_domain(struct device *dev)
{
	struct iommu_domain *dom = iommu_get_domain_for_dev(dev);
	const unsigned int dma = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API;

	return dom && (dom->type & dma) == dma ? dom : NULL;
}

static phys_addr_t buf_page_phys(const struct edudma_buf *b, unsigned int i)
{
	void *va = (u8 *)b->cpu + (size_t)i * PAGE_SIZE;

	if (is_vmalloc_addr(va))
		return page_to_phys(vmalloc_to_page(va));
	return virt_to_phys(va);
}

static phys_addr_t buf_phys_at(const struct edudma_buf *b, u32 pos)
{
	size_t at = (size_t)b->offset + pos;

	return buf_page_phys(b, at / PAGE_SIZE) + at % PAGE_SIZE;
}

static u8 *buf_data(const struct edudma_buf *b)
{
	return (u8 *)b->cpu + b->offset;
}

static int buf_alloc(struct device *dev, struct edudma_buf *b, u32 role, u32 kind,
		     const struct dmahil_scenario *s, struct dmahil_result *r, struct dmahil_buffer *rb)
{
	unsigned int i;

	b->role = role;
	b->kind = kind;
	b->offset = s->offset;
	b->length = s->size;
	b->alloc_size = PAGE_ALIGN((size_t)s->offset + s->size);
	b->dir = DMA_NONE;

	if (kind != DMAHIL_KIND_CLIENT) {
		b->cpu = dma_alloc_coherent(dev, b->alloc_size, &b->coherent_dma, GFP_KERNEL);
		note_call(r, "dma_alloc_coherent", b->cpu ? 0 : -ENOMEM);
		if (!b->cpu)
			return fail(r, DMAHIL_E_NOMEM, "dma_alloc_coherent of %zu bytes failed", b->alloc_size);
		b->coherent = true;
	} else {
		b->cpu = alloc_pages_exact(b->alloc_size, GFP_KERNEL | __GFP_NOWARN);
		/* Without swiotlb or an IOMMU nothing can map a page the device cannot reach: take low memory. */
		if (b->cpu && !edudma_swiotlb_in_use(dev) && !edudma_dma_domain(dev) &&
		    virt_to_phys(b->cpu) + b->alloc_size - 1 > dma_get_mask(dev)) {
			free_pages_exact(b->cpu, b->alloc_size);
			b->cpu = alloc_pages_exact(b->alloc_size, GFP_KERNEL | GFP_DMA | __GFP_NOWARN);
		}
		if (!b->cpu)
			return fail(r, DMAHIL_E_NOMEM, "alloc_pages_exact of %zu contiguous bytes failed", b->alloc_size);
	}

	rb->role = role;
	rb->kind = kind;
	rb->offset = b->offset;
	rb->length = b->length;
	rb->page_count = b->alloc_size / PAGE_SIZE;
	for (i = 0; i < rb->page_count; i++)
		rb->pages[i] = buf_page_phys(b, i);
	return 0;
}

/* The bytes of the data in its first page: all a short-mapping maps. */
static u32 first_page_bytes(const struct edudma_buf *b)
{
	return min_t(u32, b->length, PAGE_SIZE - b->offset);
}

/* want: bytes to map from the start of the data (b->length, or less for short-mapping). */
static int map_streaming(struct device *dev, struct edudma_buf *b, enum dma_data_direction dir, u32 want,
			 struct dmahil_result *r)
{
	size_t max = dma_max_mapping_size(dev);
	u32 piece, off;
	unsigned int i;

	if (max < PAGE_SIZE)
		return fail(r, DMAHIL_E_MAP, "dma_max_mapping_size is only %zu bytes", max);
	piece = max >= want ? want : (u32)(max & PAGE_MASK);
	b->nmaps = DIV_ROUND_UP(want, piece);
	b->maps = kcalloc(b->nmaps, sizeof(*b->maps), GFP_KERNEL);
	b->chunks = kcalloc(b->nmaps, sizeof(*b->chunks), GFP_KERNEL);
	if (!b->maps || !b->chunks)
		return fail(r, DMAHIL_E_NOMEM, "no memory for %u mapping records", b->nmaps);
	b->dir = dir;
	for (i = 0, off = 0; i < b->nmaps; i++, off += piece) {
		u32 len = min(piece, want - off);
		dma_addr_t a = dma_map_single(dev, buf_data(b) + off, len, dir);
		int err = dma_mapping_error(dev, a);

		note_call(r, "dma_map_single", err);
		if (err)
			return fail(r, DMAHIL_E_MAP, "dma_map_single of %u bytes at data offset %u (phys 0x%llx) failed: %d (mask %u bits, swiotlb %s)",
				    len, off, (u64)buf_phys_at(b, off), err, dma_bits,
				    edudma_swiotlb_in_use(dev) ? "active" : "inactive");
		b->maps[i] = (struct edudma_map){ .addr = a, .off = off, .len = len };
		b->nmapped = i + 1;
		b->chunks[i] = (struct edudma_chunk){ .dev = a, .off = off, .len = len, .mapped = len, .map = i };
	}
	b->nchunks = b->nmaps;
	/* short-mapping: the device is given the rest too, beyond the mapping's end. */
	b->chunks[b->nchunks - 1].len += b->length - want;
	return 0;
}

/* short_map: map only the first entry (the first page's bytes); the device is still given all the data. */
static int map_sg(struct device *dev, struct edudma_buf *b, enum dma_data_direction dir, bool short_map,
		  struct dmahil_result *r)
{
	unsigned int npages = DIV_ROUND_UP(b->offset + b->length, PAGE_SIZE), i;
	struct scatterlist *sg;
	u32 pos = 0;
	int n, rc;

	rc = sg_alloc_table(&b->sgt, npages, GFP_KERNEL);
	if (rc)
		return fail(r, DMAHIL_E_NOMEM, "sg_alloc_table(%u) failed: %d", npages, rc);
	b->sgt_alloc = true;
	b->sg_nents = short_map ? 1 : npages; /* what dma_map_sg is given, and so unmap and sync */
	/* One entry per page: a real scatter/gather list, not one merged run. */
	for_each_sg(b->sgt.sgl, sg, npages, i) {
		u32 in_page = i == 0 ? b->offset : 0;
		u32 len = min_t(u32, PAGE_SIZE - in_page, b->length - pos);

		sg_set_page(sg, virt_to_page((u8 *)b->cpu + (size_t)i * PAGE_SIZE), len, in_page);
		pos += len;
	}
	b->dir = dir;
	n = dma_map_sg(dev, b->sgt.sgl, b->sg_nents, dir);
	note_call(r, "dma_map_sg", n > 0 ? 0 : -EIO);
	if (n <= 0)
		return fail(r, DMAHIL_E_MAP, "dma_map_sg of %u entries failed (mask %u bits, swiotlb %s)",
			    b->sg_nents, dma_bits, edudma_swiotlb_in_use(dev) ? "active" : "inactive");
	b->sg_mapped = true;
	b->chunks = kcalloc(n, sizeof(*b->chunks), GFP_KERNEL);
	if (!b->chunks)
		return fail(r, DMAHIL_E_NOMEM, "no memory for %d chunk records", n);
	/* Merge entries whose device addresses are contiguous; an edu operation may span them. */
	pos = 0;
	for_each_sg(b->sgt.sgl, sg, n, i) {
		u64 a = sg_dma_address(sg);
		u32 len = sg_dma_len(sg);
		struct edudma_chunk *last = b->nchunks ? &b->chunks[b->nchunks - 1] : NULL;

		if (last && last->dev + last->len == a) {
			last->len += len;
			last->mapped += len;
		} else {
			b->chunks[b->nchunks++] = (struct edudma_chunk){ .dev = a, .off = pos, .len = len, .mapped = len, .map = -1 };
		}
		pos += len;
	}
	if (short_map && pos == first_page_bytes(b)) {
		b->chunks[b->nchunks - 1].len += b->length - pos;
		pos = b->length;
	}
	if (pos != b->length)
		return fail(r, DMAHIL_E_MAP, "dma_map_sg mapped %u of %u bytes", pos, b->length);
	return 0;
}

static int chunk_coherent(struct edudma_buf *b, struct dmahil_result *r)
{
	b->chunks = kcalloc(1, sizeof(*b->chunks), GFP_KERNEL);
	if (!b->chunks)
		return fail(r, DMAHIL_E_NOMEM, "no memory for a chunk record");
	b->chunks[0] = (struct edudma_chunk){ .dev = b->coherent_dma + b->offset, .off = 0, .len = b->length,
					      .mapped = b->length, .map = -1 };
	b->nchunks = 1;
	return 0;
}

static int map_client(struct device *dev, const struct dmahil_scenario *s, struct edudma_buf *b,
		      enum dma_data_direction dir, struct dmahil_result *r)
{
	bool short_map = s->fault == DMAHIL_FAULT_SHORT_MAPPING && b->role == DMAHIL_ROLE_DESTINATION;

	if (s->method == DMAHIL_METHOD_SCATTER_GATHER)
		return map_sg(dev, b, dir, short_map, r);
	return map_streaming(dev, b, dir, short_map ? first_page_bytes(b) : b->length, r);
}

static void sync_for_cpu(struct device *dev, struct edudma_buf *b, struct dmahil_result *r)
{
	unsigned int i;

	if (b->sg_mapped) {
		dma_sync_sg_for_cpu(dev, b->sgt.sgl, b->sg_nents, b->dir);
		note_call(r, "dma_sync_sg_for_cpu", 0);
	}
	for (i = 0; i < b->nmapped; i++) {
		dma_sync_single_for_cpu(dev, b->maps[i].addr, b->maps[i].len, b->dir);
		note_call(r, "dma_sync_single_for_cpu", 0);
	}
}

static void sync_for_device(struct device *dev, struct edudma_buf *b, struct dmahil_result *r)
{
	unsigned int i;

	if (b->sg_mapped) {
		dma_sync_sg_for_device(dev, b->sgt.sgl, b->sg_nents, b->dir);
		note_call(r, "dma_sync_sg_for_device", 0);
	}
	for (i = 0; i < b->nmapped; i++) {
		dma_sync_single_for_device(dev, b->maps[i].addr, b->maps[i].len, b->dir);
		note_call(r, "dma_sync_single_for_device", 0);
	}
}

#ifdef EDUDMA_PLANTED
#include "edudma_planted.h" /* the test build's planted bugs; never in the shipped module */
#endif

/* r is NULL when called from release: those calls are not part of any reported run. */
static void unmap(struct device *dev, struct edudma_buf *b, struct dmahil_result *r)
{
	if (b->sg_mapped) {
		dma_unmap_sg(dev, b->sgt.sgl, b->sg_nents, b->dir);
		note_call(r, "dma_unmap_sg", 0);
		b->sg_mapped = false;
	}
	while (b->nmapped) {
		struct edudma_map *m = &b->maps[--b->nmapped];

		dma_unmap_single(dev, m->addr, m->len, b->dir);
		note_call(r, "dma_unmap_single", 0);
	}
}

static void buf_free(struct device *dev, struct edudma_buf *b)
{
	unmap(dev, b, NULL);
	if (b->sgt_alloc)
		sg_free_table(&b->sgt);
	if (b->cpu) {
		if (b->coherent)
			dma_free_coherent(dev, b->alloc_size, b->cpu, b->coherent_dma);
		else
			free_pages_exact(b->cpu, b->alloc_size);
	}
	kfree(b->maps);
	kfree(b->chunks);
	memset(b, 0, sizeof(*b));
}

/*
 * bounced: the device reaches other pages than the CPU's. Behind a translating IOMMU (dom) every device
 * address is an IOVA, so compare what each mapped page of it translates to, not the IOVA itself.
 */
static void buf_note_bounced(const struct edudma_buf *b, struct dmahil_buffer *rb, struct iommu_domain *dom)
{
	unsigned int i;
	u32 x, step;

	rb->translated = dom ? 1 : 0;
	for (i = 0; i < b->nchunks; i++) {
		const struct edudma_chunk *c = &b->chunks[i];

		if (!dom) {
			if (c->dev != buf_phys_at(b, c->off))
				rb->bounced = 1;
			continue;
		}
		for (x = 0; x < c->mapped; x += step) {
			step = min_t(u32, c->mapped - x, PAGE_SIZE - (b->offset + c->off + x) % PAGE_SIZE);
			if (iommu_iova_to_phys(dom, c->dev + x) != buf_phys_at(b, c->off + x))
				rb->bounced = 1;
		}
	}
}

/* ---- held scenarios ---- */

static void held_free(struct edudma_dev *d, struct edudma_held *h)
{
	int i;

	list_del(&h->node);
	edudma_held_count--;
	if (h->dma_may_run && d) {
		for (i = 0; i < 250 && (readl(d->mmio + EDU_REG_DMA_CMD) & EDU_CMD_START); i++)
			msleep(20);
		if (readl(d->mmio + EDU_REG_DMA_CMD) & EDU_CMD_START) {
			dev_warn(h->dev, "handle %u: edu DMA still running; leaking its buffers rather than freeing them under the device\n",
				 h->handle);
			kvfree(h->result);
			kfree(h);
			return;
		}
	}
	buf_free(h->dev, &h->buf[1]);
	buf_free(h->dev, &h->buf[0]);
	kvfree(h->result);
	kfree(h);
}

/* ---- the edu DMA engine ---- */

static irqreturn_t edudma_irq(int irq, void *data)
{
	struct edudma_dev *d = data;
	u32 st = readl(d->mmio + EDU_REG_IRQ_STATUS);

	if (!st || st == 0xffffffffu)
		return IRQ_NONE;
	writel(st, d->mmio + EDU_REG_IRQ_ACK);
	if (st & EDU_IRQ_DMA)
		complete(&d->done);
	return IRQ_HANDLED;
}

static int edu_start(struct edudma_dev *d, u64 src, u64 dst, u32 cnt, bool to_ram, struct dmahil_result *r)
{
	u32 cmd = readl(d->mmio + EDU_REG_DMA_CMD);

	if (cmd & EDU_CMD_START)
		return fail(r, DMAHIL_E_DEVICE, "edu DMA engine busy before an operation (cmd 0x%x)", cmd);
	if (cnt < 1 || cnt > DMAHIL_EDU_MAX_OP || src >> 32 || dst >> 32)
		return fail(r, DMAHIL_E_DEVICE, "refusing edu operation src 0x%llx dst 0x%llx cnt %u",
			    src, dst, cnt);
	reinit_completion(&d->done);
	/* A 4-byte write sets the whole 64-bit register, zero-extended. */
	writel(lower_32_bits(src), d->mmio + EDU_REG_DMA_SRC);
	writel(lower_32_bits(dst), d->mmio + EDU_REG_DMA_DST);
	writel(cnt, d->mmio + EDU_REG_DMA_CNT);
	writel(EDU_CMD_START | EDU_CMD_IRQ | (to_ram ? EDU_CMD_TO_RAM : 0), d->mmio + EDU_REG_DMA_CMD);
	return 0;
}

static int edu_wait(struct edudma_dev *d, u32 timeout_ms, bool to_ram, u32 cnt, struct dmahil_result *r)
{
	if (!wait_for_completion_timeout(&d->done, msecs_to_jiffies(timeout_ms)))
		return fail(r, DMAHIL_E_TIMEOUT, "no completion interrupt within %u ms (%s, %u bytes, cmd 0x%x, irq status 0x%x)",
			    timeout_ms, to_ram ? "edu->RAM" : "RAM->edu", cnt,
			    readl(d->mmio + EDU_REG_DMA_CMD), readl(d->mmio + EDU_REG_IRQ_STATUS));
	return 0;
}

static int add_segment(struct dmahil_buffer *rb, u32 pos, u32 cnt, u64 dev, struct dmahil_result *r)
{
	if (rb->segment_count >= DMAHIL_MAX_SEGMENTS)
		return fail(r, DMAHIL_E_MAP, "more than %u edu operations for one buffer", DMAHIL_MAX_SEGMENTS);
	rb->segments[rb->segment_count++] = (struct dmahil_segment){ .buf_offset = pos, .length = cnt, .device_addr = dev };
	return 0;
}

/* Both legs, operation by operation: src -> edu buffer -> dst. */
static int run_ops(struct edudma_dev *d, struct edudma_held *h, const struct dmahil_scenario *s,
		   struct dmahil_result *r)
{
	struct device *dev = &d->pdev->dev;
	struct edudma_buf *src = &h->buf[0], *dst = &h->buf[1];
	u32 timeout = s->timeout_ms ? s->timeout_ms : EDUDMA_DEFAULT_TIMEOUT_MS;
	bool rbc = s->fault == DMAHIL_FAULT_READ_BEFORE_COMPLETION;
	unsigned int si = 0, di = 0;
	u32 pos = 0;

	while (pos < s->size) {
		const struct edudma_chunk *sc = &src->chunks[si], *dc = &dst->chunks[di];
		u32 s_in = pos - sc->off, d_in = pos - dc->off;
		u32 cnt = min3((u32)DMAHIL_EDU_MAX_OP, sc->len - s_in, dc->len - d_in);
		u64 sdev = sc->dev + s_in, ddev = dc->dev + d_in;
		/* other-mapping: the bug sends the device to the source's mapping, which it may only read. */
		u64 dprog = s->fault == DMAHIL_FAULT_ADDR_BEYOND_MASK ? ddev | EDU_BEYOND_MASK_BIT :
			    s->fault == DMAHIL_FAULT_OTHER_MAPPING ? sdev : ddev;
		u64 t0;

		if (fatal_signal_pending(current))
			return fail(r, DMAHIL_E_DEVICE, "interrupted by a fatal signal after %u of %u bytes", pos, s->size);
		if (add_segment(&r->buffers[0], pos, cnt, sdev, r))
			return -1;

		t0 = ktime_get_ns();
		if (edu_start(d, sdev, DMAHIL_EDU_BUF_ADDR, cnt, false, r))
			return -1;
		r->edu_ops++;
		if (edu_wait(d, timeout, false, cnt, r)) {
			h->dma_may_run = true;
			r->to_device_ns += ktime_get_ns() - t0;
			return -1;
		}
		r->to_device_ns += ktime_get_ns() - t0;

		if (add_segment(&r->buffers[1], pos, cnt, dprog, r))
			return -1;
		t0 = ktime_get_ns();
		if (edu_start(d, DMAHIL_EDU_BUF_ADDR, dprog, cnt, true, r))
			return -1;
		r->edu_ops++;
		if (rbc) {
			/* The bug: hand the range back to the CPU while the device has yet to write it. */
			if (dst->sg_mapped) {
				dma_sync_sg_for_cpu(dev, dst->sgt.sgl, dst->sg_nents, dst->dir);
				note_call(r, "dma_sync_sg_for_cpu", 0);
			} else if (dc->map >= 0) {
				const struct edudma_map *m = &dst->maps[dc->map];

				dma_sync_single_range_for_cpu(dev, m->addr, pos - m->off, cnt, dst->dir);
				note_call(r, "dma_sync_single_range_for_cpu", 0);
			}
		}
#ifdef EDUDMA_PLANTED
		if (h->planted_race && pos + cnt == s->size)
			sync_for_cpu(dev, dst, r); /* the planted race: the last operation is still in flight */
#endif
		if (edu_wait(d, timeout, true, cnt, r)) {
			h->dma_may_run = true;
			r->from_device_ns += ktime_get_ns() - t0;
			return -1;
		}
		r->from_device_ns += ktime_get_ns() - t0;

		pos += cnt;
		if (pos == sc->off + sc->len)
			si++;
		if (pos == dc->off + dc->len)
			di++;
	}
	return 0;
}

/*
 * skip-sync leaves out exactly one hand-over: for to-device the source's sync_for_device after a
 * late CPU write (the device reads a stale bounce buffer); otherwise the destination's sync_for_cpu
 * (the CPU reads a stale client buffer while the bounce buffer holds the data). The skipped
 * buffer's unmap waits for release, so the bounce buffer stays as the device left it.
 */
static bool skip_source_sync(const struct dmahil_scenario *s)
{
	return s->fault == DMAHIL_FAULT_SKIP_SYNC && s->direction == DMAHIL_DIR_TO_DEVICE;
}

/* Source: stale bytes first, then the pattern written by the CPU; mapped or chunked for the device. */
static int prepare_source(struct device *dev, const struct dmahil_scenario *s, struct edudma_buf *src,
			  struct dmahil_result *r)
{
	memset(src->cpu, DMAHIL_STALE_BYTE, src->alloc_size);
	if (src->kind == DMAHIL_KIND_CLIENT) {
		/* full: map, late CPU write, sync_for_device. skip-sync: the same without the sync. minimal: write, map. */
		bool skip = skip_source_sync(s);
		bool late = s->sync == DMAHIL_SYNC_FULL || skip;

		if (!late)
			dmahil_pattern_fill(buf_data(src), s->seed, 0, s->size);
		if (map_client(dev, s, src, DMA_TO_DEVICE, r))
			return -1;
		if (late) {
			dmahil_pattern_fill(buf_data(src), s->seed, 0, s->size);
			if (!skip)
				sync_for_device(dev, src, r);
		}
		return 0;
	}
	dmahil_pattern_fill(buf_data(src), s->seed, 0, s->size);
	wmb();
	return chunk_coherent(src, r);
}

/* Destination: the fill byte before the device writes; mapped or chunked for the device. */
static int prepare_destination(struct device *dev, const struct dmahil_scenario *s, struct edudma_buf *dst,
			       struct dmahil_result *r)
{
	memset(dst->cpu, DMAHIL_FILL_BYTE, dst->alloc_size);
	/* Test build only (lies.c): the bug of a driver that copies with the CPU; the DMA still runs. */
	if (s->test_flags & DMAHIL_TEST_PRECOPY)
		dmahil_pattern_fill(buf_data(dst), s->seed, 0, s->size);
	if (dst->kind == DMAHIL_KIND_CLIENT) {
		enum dma_data_direction dir = s->fault == DMAHIL_FAULT_WRONG_DIRECTION ? DMA_TO_DEVICE : DMA_FROM_DEVICE;

		return map_client(dev, s, dst, dir, r);
	}
	wmb();
	return chunk_coherent(dst, r);
}

static int prepare_buffers(struct edudma_dev *d, struct edudma_held *h, const struct dmahil_scenario *s,
			   struct dmahil_result *r)
{
	struct device *dev = &d->pdev->dev;
	struct edudma_buf *src = &h->buf[0], *dst = &h->buf[1];
	bool common = s->method == DMAHIL_METHOD_COMMON_BUFFER;
	u32 src_kind = s->direction == DMAHIL_DIR_FROM_DEVICE ? DMAHIL_KIND_STAGING :
		       common ? DMAHIL_KIND_COMMON : DMAHIL_KIND_CLIENT;
	u32 dst_kind = s->direction == DMAHIL_DIR_TO_DEVICE ? DMAHIL_KIND_READBACK :
		       common ? DMAHIL_KIND_COMMON : DMAHIL_KIND_CLIENT;

	if (s->fault == DMAHIL_FAULT_SHORT_MAPPING && src_kind == DMAHIL_KIND_STAGING) {
		/*
		 * IOVAs are allocated top-down: a staging buffer allocated first would sit just above the short
		 * mapping, where the device's overrun writes it unnoticed. Allocated after, it lies below.
		 */
		if (buf_alloc(dev, dst, DMAHIL_ROLE_DESTINATION, dst_kind, s, r, &r->buffers[1]) ||
		    prepare_destination(dev, s, dst, r) ||
		    buf_alloc(dev, src, DMAHIL_ROLE_SOURCE, src_kind, s, r, &r->buffers[0]))
			return -1;
		r->buffer_count = 2;
		if (prepare_source(dev, s, src, r))
			return -1;
	} else {
		if (buf_alloc(dev, src, DMAHIL_ROLE_SOURCE, src_kind, s, r, &r->buffers[0]))
			return -1;
		r->buffer_count = 1;
		if (buf_alloc(dev, dst, DMAHIL_ROLE_DESTINATION, dst_kind, s, r, &r->buffers[1]))
			return -1;
		r->buffer_count = 2;
		if (prepare_source(dev, s, src, r) || prepare_destination(dev, s, dst, r))
			return -1;
	}
	buf_note_bounced(src, &r->buffers[0], edudma_dma_domain(dev));
	buf_note_bounced(dst, &r->buffers[1], edudma_dma_domain(dev));
	return 0;
}

/* Give the buffers back to the CPU as the scenario says; a deferred unmap happens at release. */
static void hand_back(struct device *dev, struct edudma_held *h, const struct dmahil_scenario *s,
		      struct dmahil_result *r)
{
	struct edudma_buf *src = &h->buf[0], *dst = &h->buf[1];

	if (!dst->coherent) {
		switch (s->fault) {
		case DMAHIL_FAULT_SKIP_SYNC:
		case DMAHIL_FAULT_READ_BEFORE_COMPLETION:
			break;
		case DMAHIL_FAULT_WRONG_DIRECTION:
			if (s->sync == DMAHIL_SYNC_FULL)
				sync_for_cpu(dev, dst, r);
			break;
		default:
#ifdef EDUDMA_PLANTED
			if (planted_hand_back(dev, h, s, r))
				break;
#endif
			if (s->sync == DMAHIL_SYNC_FULL)
				sync_for_cpu(dev, dst, r);
			unmap(dev, dst, r);
			break;
		}
	} else {
		rmb();
	}
	if (!src->coherent && !skip_source_sync(s))
		unmap(dev, src, r);
}

/*
 * The first half of a run: check, allocate, fill and map, and report the pages into *out. Returns the
 * held record, ready for edudma_go, or NULL when the run cannot go on (out says why; the buffers it got
 * are held for the host to read, as after any failure).
 */
static struct edudma_held *edudma_prepare(struct edudma_dev *d, struct file *owner, const struct dmahil_scenario *s,
					  struct dmahil_result *out)
{
	u64 t_start = ktime_get_ns();
	struct dmahil_result *r;
	struct edudma_held *h;

	out->contract_version = DMAHIL_CONTRACT_VERSION;
	out->scenario = *s;
	if (validate(s, out))
		return NULL;
	if (check_device(d, 0x5a5a0000u ^ edudma_next_handle, out))
		return NULL;
	if (edudma_held_count >= EDUDMA_MAX_HELD) {
		fail(out, DMAHIL_E_BUSY, "%u scenarios held; release one (or close its file) first", edudma_held_count);
		return NULL;
	}
	h = kzalloc(sizeof(*h), GFP_KERNEL);
	r = kvzalloc(sizeof(*r), GFP_KERNEL);
	if (!h || !r) {
		kfree(h);
		kvfree(r);
		fail(out, DMAHIL_E_NOMEM, "no memory for the scenario record");
		return NULL;
	}
	r->contract_version = DMAHIL_CONTRACT_VERSION;
	r->scenario = *s;
	h->result = r;
	h->scenario = *s;
	h->owner = owner;
	h->dev = &d->pdev->dev;
	h->handle = edudma_next_handle++;
	if (!edudma_next_handle)
		edudma_next_handle = 1;
	list_add_tail(&h->node, &edudma_held_list);
	edudma_held_count++;

	h->prepared = !prepare_buffers(d, h, &h->scenario, r);
	/* Held, even after a failure: the host may still read what was reported. */
	if (r->buffer_count)
		r->handle = h->handle;
	h->prepare_ns = ktime_get_ns() - t_start;
	r->total_ns = h->prepare_ns;
	memcpy(out, r, sizeof(*r));
	if (r->buffer_count == 0) {
		held_free(d, h);
		return NULL;
	}
	return h->prepared ? h : NULL;
}

/* The second half: the device moves the data, the CPU gets the buffers back; the full report into *out. */
static void edudma_go(struct edudma_dev *d, struct edudma_held *h, struct dmahil_result *out)
{
	u64 t_start = ktime_get_ns();
	struct dmahil_result *r = h->result;

	h->prepared = false;
#ifdef EDUDMA_PLANTED
	h->planted_race = planted_race_lost(&h->scenario, &h->buf[1]);
#endif
	/* The bug: the destination's mappings go before the device writes it; it still gets their addresses. */
	if (h->scenario.fault == DMAHIL_FAULT_USE_AFTER_UNMAP)
		unmap(h->dev, &h->buf[1], r);
	if (!run_ops(d, h, &h->scenario, r))
		hand_back(h->dev, h, &h->scenario, r);
	r->total_ns = h->prepare_ns + (ktime_get_ns() - t_start);
	memcpy(out, r, sizeof(*r));
}

/* ---- file interface ---- */

static long do_info(void __user *arg)
{
	struct dmahil_info info;
	struct edudma_dev *d;

	memset(&info, 0, sizeof(info));
	if (mutex_lock_interruptible(&edudma_lock))
		return -EINTR;
	d = edudma;
	if (!d) {
		mutex_unlock(&edudma_lock);
		return -ENODEV;
	}
	info.contract_version = DMAHIL_CONTRACT_VERSION;
	info.device_id = readl(d->mmio + EDU_REG_ID);
	info.dma_mask_bits = dma_bits;
	info.faults_supported = BIT(DMAHIL_FAULT_NONE) | BIT(DMAHIL_FAULT_SKIP_SYNC) |
				BIT(DMAHIL_FAULT_WRONG_DIRECTION) | BIT(DMAHIL_FAULT_READ_BEFORE_COMPLETION) |
				BIT(DMAHIL_FAULT_ADDR_BEYOND_MASK) | BIT(DMAHIL_FAULT_USE_AFTER_UNMAP) |
				BIT(DMAHIL_FAULT_SHORT_MAPPING) | BIT(DMAHIL_FAULT_OTHER_MAPPING);
	info.methods_supported = BIT(DMAHIL_METHOD_STREAMING) | BIT(DMAHIL_METHOD_SCATTER_GATHER) |
				 BIT(DMAHIL_METHOD_COMMON_BUFFER);
	info.max_size = DMAHIL_MAX_SIZE;
	info.held = edudma_held_count;
	strscpy(info.driver_version, EDUDMA_BUILD_VERSION, sizeof(info.driver_version));
	strscpy(info.api, EDUDMA_API, sizeof(info.api));
	strscpy(info.os, "linux", sizeof(info.os));
	strscpy(info.device, pci_name(d->pdev), sizeof(info.device));
	mutex_unlock(&edudma_lock);
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

/* PREPARE (go = false) or RUN (go = true: PREPARE, then GO at once). */
/* A zeroed result for one ioctl, with edudma_lock held: the caller unlocks and frees it. */
static struct dmahil_result *result_locked(void)
{
	struct dmahil_result *r = kvzalloc(sizeof(*r), GFP_KERNEL);

	if (!r)
		return ERR_PTR(-ENOMEM);
	if (mutex_lock_interruptible(&edudma_lock)) {
		kvfree(r);
		return ERR_PTR(-EINTR);
	}
	return r;
}

static long do_prepare(struct file *f, void __user *arg, bool go)
{
	struct edudma_run_args a;
	struct dmahil_scenario s;
	struct dmahil_result *r;
	struct edudma_held *h;
	long rc = 0;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.reserved || a.result_size < sizeof(*r))
		return -EINVAL;
	if (copy_from_user(&s, u64_to_user_ptr(a.scenario), sizeof(s)))
		return -EFAULT;
	r = result_locked();
	if (IS_ERR(r))
		return PTR_ERR(r);
	if (edudma) {
		h = edudma_prepare(edudma, f, &s, r);
		if (h && go)
			edudma_go(edudma, h, r);
	} else {
		r->contract_version = DMAHIL_CONTRACT_VERSION;
		r->scenario = s;
		fail(r, DMAHIL_E_DEVICE, "no edu device is bound to edudma");
	}
	mutex_unlock(&edudma_lock);
	if (copy_to_user(u64_to_user_ptr(a.result), r, sizeof(*r)))
		rc = -EFAULT;
	kvfree(r);
	return rc;
}

static long do_go(void __user *arg)
{
	struct edudma_held *h, *found = NULL;
	struct edudma_go_args a;
	struct dmahil_result *r;
	long rc = 0;

	if (copy_from_user(&a, arg, sizeof(a)))
		return -EFAULT;
	if (a.result_size < sizeof(*r))
		return -EINVAL;
	r = result_locked();
	if (IS_ERR(r))
		return PTR_ERR(r);
	list_for_each_entry(h, &edudma_held_list, node) {
		if (h->handle == a.handle) {
			found = h;
			break;
		}
	}
	if (!edudma)
		rc = -ENODEV;
	else if (!found)
		rc = -ENOENT;
	else if (!found->prepared)
		rc = -EALREADY;
	else
		edudma_go(edudma, found, r);
	mutex_unlock(&edudma_lock);
	if (!rc && copy_to_user(u64_to_user_ptr(a.result), r, sizeof(*r)))
		rc = -EFAULT;
	kvfree(r);
	return rc;
}

static long do_release(void __user *arg)
{
	struct edudma_held *h, *tmp;
	long rc = -ENOENT;
	u32 handle;

	if (get_user(handle, (u32 __user *)arg))
		return -EFAULT;
	if (mutex_lock_interruptible(&edudma_lock))
		return -EINTR;
	list_for_each_entry_safe(h, tmp, &edudma_held_list, node) {
		if (h->handle == handle) {
			held_free(edudma, h);
			rc = 0;
			break;
		}
	}
	mutex_unlock(&edudma_lock);
	return rc;
}

/*
 * The edu lost its state under a bound driver (a restore into a QEMU whose edu has no VMState): write back
 * the PCI config saved at probe, then the same ID and liveness check as a run. The status and message go
 * back in the args; the ioctl itself fails only for a bad pointer or no bound device.
 */
static long do_reattach(void __user *arg)
{
	struct edudma_reattach_args a;
	struct dmahil_result *r;
	struct edudma_dev *d;
	long rc = 0;

	r = kvzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	memset(&a, 0, sizeof(a));
	if (mutex_lock_interruptible(&edudma_lock)) {
		kvfree(r);
		return -EINTR;
	}
	d = edudma;
	if (!d) {
		rc = -ENODEV;
	} else {
		/* pci_restore_state() consumes the saved state: load the probe's copy each time. */
		pci_load_saved_state(d->pdev, d->config);
		pci_restore_state(d->pdev);
		check_device(d, 0xa5a50000u ^ edudma_next_handle, r);
		a.status = r->status;
		memcpy(a.message, r->message, sizeof(a.message));
	}
	mutex_unlock(&edudma_lock);
	kvfree(r);
	if (!rc && copy_to_user(arg, &a, sizeof(a)))
		rc = -EFAULT;
	return rc;
}

static long edudma_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	void __user *p = (void __user *)arg;

	switch (cmd) {
	case EDUDMA_IOC_INFO:
		return do_info(p);
	case EDUDMA_IOC_RUN:
		return do_prepare(f, p, true);
	case EDUDMA_IOC_PREPARE:
		return do_prepare(f, p, false);
	case EDUDMA_IOC_GO:
		return do_go(p);
	case EDUDMA_IOC_RELEASE:
		return do_release(p);
	case EDUDMA_IOC_REATTACH:
		return do_reattach(p);
	default:
		return -ENOTTY;
	}
}

static int edudma_release(struct inode *inode, struct file *f)
{
	struct edudma_held *h, *tmp;

	mutex_lock(&edudma_lock);
	list_for_each_entry_safe(h, tmp, &edudma_held_list, node)
		if (h->owner == f)
			held_free(edudma, h);
	mutex_unlock(&edudma_lock);
	return 0;
}

static const struct file_operations edudma_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = edudma_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = edudma_release,
	.llseek = noop_llseek,
};

/* ---- PCI ---- */

static int edudma_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct dmahil_result *probe_r;
	struct edudma_dev *d;
	int rc, nvec;

	mutex_lock(&edudma_lock);
	rc = edudma ? -EBUSY : 0;
	mutex_unlock(&edudma_lock);
	if (rc) {
		dev_info(&pdev->dev, "another edu is already bound; edudma drives one\n");
		return rc;
	}

	d = devm_kzalloc(&pdev->dev, sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->pdev = pdev;
	init_completion(&d->done);

	rc = pcim_enable_device(pdev);
	if (rc)
		return dev_err_probe(&pdev->dev, rc, "pcim_enable_device\n");
	rc = pcim_iomap_regions(pdev, BIT(0), KBUILD_MODNAME);
	if (rc)
		return dev_err_probe(&pdev->dev, rc, "BAR0\n");
	d->mmio = pcim_iomap_table(pdev)[0];
	pci_set_master(pdev);
	if (dma_bits < DMAHIL_EDU_DMA_BITS || dma_bits > 63)
		return dev_err_probe(&pdev->dev, -EINVAL, "dma_bits=%u: use 28 to 63\n", dma_bits);
	rc = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(dma_bits));
	if (rc)
		return dev_err_probe(&pdev->dev, rc, "dma_set_mask_and_coherent(%u bits)\n", dma_bits);

	probe_r = kvzalloc(sizeof(*probe_r), GFP_KERNEL);
	if (!probe_r)
		return -ENOMEM;
	rc = check_device(d, 0x12345678u, probe_r) ? -ENODEV : 0;
	if (rc)
		dev_err(&pdev->dev, "%s\n", probe_r->message);
	kvfree(probe_r);
	if (rc)
		return rc;

	nvec = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI | PCI_IRQ_INTX);
	if (nvec < 0)
		return dev_err_probe(&pdev->dev, nvec, "pci_alloc_irq_vectors\n");
	d->irq = pci_irq_vector(pdev, 0);
	writel(0xffffffffu, d->mmio + EDU_REG_IRQ_ACK);
	rc = request_irq(d->irq, edudma_irq, pdev->msi_enabled ? 0 : IRQF_SHARED, KBUILD_MODNAME, d);
	if (rc) {
		pci_free_irq_vectors(pdev);
		return dev_err_probe(&pdev->dev, rc, "request_irq(%d)\n", d->irq);
	}
	/* The config as set up now (BAR0, COMMAND with bus mastering, MSI): what a re-attach writes back. */
	pci_save_state(pdev);
	d->config = pci_store_saved_state(pdev);
	if (!d->config) {
		free_irq(d->irq, d);
		pci_free_irq_vectors(pdev);
		return -ENOMEM;
	}

	d->misc.minor = MISC_DYNAMIC_MINOR;
	d->misc.name = "edudma";
	d->misc.fops = &edudma_fops;
	d->misc.mode = 0600;
	d->misc.parent = &pdev->dev;
	pci_set_drvdata(pdev, d);

	mutex_lock(&edudma_lock);
	edudma = d;
	mutex_unlock(&edudma_lock);

	rc = misc_register(&d->misc);
	if (rc) {
		mutex_lock(&edudma_lock);
		edudma = NULL;
		mutex_unlock(&edudma_lock);
		kfree(d->config);
		free_irq(d->irq, d);
		pci_free_irq_vectors(pdev);
		return dev_err_probe(&pdev->dev, rc, "misc_register\n");
	}
	dev_info(&pdev->dev, "edu ready: %s irq %d, DMA mask %u bits, swiotlb %s, max mapping %zu bytes, IOMMU %s\n",
		 pdev->msi_enabled ? "MSI" : "INTx", d->irq, dma_bits,
		 edudma_swiotlb_in_use(&pdev->dev) ? "active" : "inactive", dma_max_mapping_size(&pdev->dev),
		 edudma_dma_domain(&pdev->dev) ? "translating" : "none or passthrough");
	return 0;
}

static void edudma_remove(struct pci_dev *pdev)
{
	struct edudma_dev *d = pci_get_drvdata(pdev);
	struct edudma_held *h, *tmp;

	misc_deregister(&d->misc);
	mutex_lock(&edudma_lock);
	list_for_each_entry_safe(h, tmp, &edudma_held_list, node)
		held_free(d, h);
	edudma = NULL;
	mutex_unlock(&edudma_lock);
	free_irq(d->irq, d);
	pci_free_irq_vectors(pdev);
	kfree(d->config);
}

static const struct pci_device_id edudma_ids[] = {
	{ PCI_DEVICE(EDU_VENDOR_ID, EDU_DEVICE_ID) },
	{ 0 }
};
MODULE_DEVICE_TABLE(pci, edudma_ids);

static struct pci_driver edudma_driver = {
	.name = KBUILD_MODNAME,
	.id_table = edudma_ids,
	.probe = edudma_probe,
	.remove = edudma_remove,
};
module_pci_driver(edudma_driver);

MODULE_LICENSE("GPL");
MODULE_VERSION(EDUDMA_BUILD_VERSION);
/* The contract this module speaks, read on the host before any guest boots (dmahil run --driver). */
MODULE_INFO(dmahil_contract, DMAHIL_CONTRACT_TEXT);
MODULE_DESCRIPTION("dmahil test driver for the QEMU edu device");
