/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * edudma_planted.h - planted coherency bugs, for the test build only.
 *
 * `make edudma-planted` compiles edudma.c with -DEDUDMA_PLANTED into build/linux/edudma-planted.ko;
 * the shipped edudma.ko never includes this file. The explorer's specs use it to prove that
 * `dmahil explore` finds bugs nobody wrote a scenario for: one bug is chosen when the module is loaded
 * (insmod edudma.ko planted=NAME) or later (/sys/module/edudma/parameters/planted); no scenario names it.
 *
 * Each is a mistake real drivers make when they hand the destination back to the CPU after the device
 * wrote it (sync=full, fault none). With a bug planted the driver keeps its streaming mappings until
 * release, as an RX ring does, so only what its own dma_sync_*_for_cpu calls copy reaches the CPU:
 * under swiotlb=force a wrong sync leaves stale bytes, without bouncing every sync is a no-op on x86.
 */
#ifndef EDUDMA_PLANTED_H
#define EDUDMA_PLANTED_H

#include <linux/moduleparam.h>
#include <linux/sizes.h>

enum planted_bug {
	PLANTED_NONE,
	PLANTED_FIRST_PAGE,	/* the sync covers only the first page of each mapping */
	PLANTED_LAST_CHUNK,	/* page-by-page sync, the last piece one byte short */
	PLANTED_SKIP_64K,	/* 64 KiB windows, the last one skipped when the size is a multiple */
	PLANTED_SG_LAST,	/* a list of several entries: the last entry is not synced */
	PLANTED_RACE,		/* one run in N: the CPU reads before the last completion */
	PLANTED_COUNT
};

static const char *const planted_names[PLANTED_COUNT] = {
	"none", "first-page", "last-chunk", "skip-64k", "sg-last", "race",
};

static int planted_bug;
static unsigned int planted_race_every = 5;
static unsigned int planted_race_count;

static int planted_set(const char *val, const struct kernel_param *kp)
{
	int i;

	for (i = 0; i < PLANTED_COUNT; i++) {
		if (sysfs_streq(val, planted_names[i])) {
			planted_bug = i;
			planted_race_count = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int planted_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n", planted_names[planted_bug]);
}

static const struct kernel_param_ops planted_ops = { .set = planted_set, .get = planted_get };
module_param_cb(planted, &planted_ops, NULL, 0644);
MODULE_PARM_DESC(planted, "test build: the coherency bug to plant: none, first-page, last-chunk, skip-64k, sg-last, race");
module_param(planted_race_every, uint, 0644);
MODULE_PARM_DESC(planted_race_every, "test build: race loses one eligible run in this many (a counter, so specs are repeatable)");

/* Does the planted bug own this run's hand-back of the destination? */
static bool planted_active(const struct dmahil_scenario *s, const struct edudma_buf *dst)
{
	return planted_bug != PLANTED_NONE && s->fault == DMAHIL_FAULT_NONE && s->sync == DMAHIL_SYNC_FULL &&
	       dst->kind == DMAHIL_KIND_CLIENT;
}

/* race: decided once per run; a counter stands in for timing, so a pristine guest repeats it exactly. */
static bool planted_race_lost(const struct dmahil_scenario *s, const struct edudma_buf *dst)
{
	if (planted_bug != PLANTED_RACE || !planted_active(s, dst))
		return false;
	return ++planted_race_count % max(planted_race_every, 1u) == 0;
}

static void planted_sync_range(struct device *dev, const struct edudma_map *m, u32 from, u32 len,
			       enum dma_data_direction dir, struct dmahil_result *r)
{
	dma_sync_single_range_for_cpu(dev, m->addr, from, len, dir);
	note_call(r, "dma_sync_single_range_for_cpu", 0);
}

/* first-page: meant for a header it parses first, the sync never grew with the buffer. */
static void planted_first_page(struct device *dev, struct edudma_buf *b, struct dmahil_result *r)
{
	unsigned int i;

	for (i = 0; i < b->nmapped; i++)
		planted_sync_range(dev, &b->maps[i], 0, min_t(u32, b->maps[i].len, PAGE_SIZE), b->dir, r);
}

/* last-chunk: page by page; the last piece's length is taken as the offset of its last byte. */
static void planted_last_chunk(struct device *dev, struct edudma_buf *b, struct dmahil_result *r)
{
	unsigned int i;

	for (i = 0; i < b->nmapped; i++) {
		const struct edudma_map *m = &b->maps[i];
		u32 start = b->offset + m->off, end = start + m->len, pos = start;

		while (pos < end) {
			u32 next = min_t(u32, ALIGN(pos + 1, PAGE_SIZE), end);
			u32 len = next - pos;

			if (next == end && pos != start)
				len = (end - 1) % PAGE_SIZE; /* the bug: should be + 1 */
			planted_sync_range(dev, m, pos - start, len, b->dir, r);
			pos = next;
		}
	}
}

/* skip-64k: 64 KiB windows; the loop stops one window early and the tail code syncs only a partial one. */
static void planted_skip_64k(struct device *dev, struct edudma_buf *b, struct dmahil_result *r)
{
	unsigned int i;

	for (i = 0; i < b->nmapped; i++) {
		const struct edudma_map *m = &b->maps[i];
		u32 off = 0;

		for (; off + SZ_64K < m->len; off += SZ_64K) /* the bug: should be <= */
			planted_sync_range(dev, m, off, SZ_64K, b->dir, r);
		if (m->len % SZ_64K)
			planted_sync_range(dev, m, off, m->len % SZ_64K, b->dir, r);
	}
}

/* sg-last: one entry takes a fast path; the loop for several stops one entry short. */
static void planted_sg_last(struct device *dev, struct edudma_buf *b, struct dmahil_result *r)
{
	struct scatterlist *sg;
	unsigned int i;

	if (b->sg_nents == 1) {
		dma_sync_single_for_cpu(dev, sg_dma_address(b->sgt.sgl), sg_dma_len(b->sgt.sgl), b->dir);
		note_call(r, "dma_sync_single_for_cpu", 0);
		return;
	}
	for_each_sg(b->sgt.sgl, sg, b->sg_nents - 1, i) { /* the bug: should be sg_nents */
		dma_sync_single_for_cpu(dev, sg_dma_address(sg), sg_dma_len(sg), b->dir);
		note_call(r, "dma_sync_single_for_cpu", 0);
	}
}

/*
 * The destination's hand-back when a bug is planted: returns true when it synced (its way) and the
 * mappings stay until release; false leaves the shipped hand-back to run.
 */
static bool planted_hand_back(struct device *dev, struct edudma_held *h, const struct dmahil_scenario *s,
			      struct dmahil_result *r)
{
	struct edudma_buf *dst = &h->buf[1];
	bool streaming = dst->nmapped > 0;

	if (!planted_active(s, dst))
		return false;
	if (planted_bug == PLANTED_FIRST_PAGE && streaming)
		planted_first_page(dev, dst, r);
	else if (planted_bug == PLANTED_LAST_CHUNK && streaming)
		planted_last_chunk(dev, dst, r);
	else if (planted_bug == PLANTED_SKIP_64K && streaming)
		planted_skip_64k(dev, dst, r);
	else if (planted_bug == PLANTED_SG_LAST && dst->sg_mapped)
		planted_sg_last(dev, dst, r);
	else if (!(planted_bug == PLANTED_RACE && h->planted_race))
		sync_for_cpu(dev, dst, r); /* race: the run that lost it believes it synced already */
	return true;
}

#endif /* EDUDMA_PLANTED_H */
