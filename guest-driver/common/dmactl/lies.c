/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * Lie modes, for the host's own tests only: compiled into the test build of dmactl (-DDMACTL_LIES,
 * build/linux/dmactl-lying), never into the dmactl that ships. After an honest run, the result is
 * changed the way a buggy or hostile driver would report it; the host must fail every one of them with
 * the right reason (specs/dma/lying-guest.e2e.spec.ts). The mode is read from the file LIE_FILE before
 * each run, so one guest serves every mode; no file, or "honest", changes nothing. A held run reports
 * twice (armed, then the result): a lie changes both reports the same way, so that the pages do not
 * simply change between them. "precopied" is told by the driver itself, on the test flag
 * DMAHIL_TEST_PRECOPY: it writes the pattern into its destination with the CPU before the DMA.
 */
#include <stdio.h>
#include <string.h>

#include "lies.h"

#define LIE_FILE "/tmp/dmahil/lie"
#define PAGE 4096u

static struct dmahil_buffer *role(struct dmahil_result *r, uint32_t which)
{
	uint32_t i;

	for (i = 0; i < r->buffer_count && i < 2; i++)
		if (r->buffers[i].role == which)
			return &r->buffers[i];
	return NULL;
}

/* The first page touched by a buffer's first bounce segment, or its first client page. */
static uint64_t device_page(const struct dmahil_buffer *b)
{
	return b->segment_count ? b->segments[0].device_addr & ~(uint64_t)(PAGE - 1) : b->pages[0];
}

void dmactl_read_lie(char *mode, size_t mode_size)
{
	FILE *f = fopen(LIE_FILE, "r");

	mode[0] = '\0';
	if (!f)
		return;
	if (!fgets(mode, (int)mode_size, f))
		mode[0] = '\0';
	fclose(f);
	mode[strcspn(mode, "\r\n")] = '\0';
}

void dmactl_lie_scenario(const char *mode, struct dmahil_scenario *s)
{
	if (!strcmp(mode, "precopied"))
		s->test_flags |= DMAHIL_TEST_PRECOPY;
}

int dmactl_apply_lie(struct dmahil_result *r, const char *mode)
{
	struct dmahil_buffer *src = role(r, DMAHIL_ROLE_SOURCE), *dst = role(r, DMAHIL_ROLE_DESTINATION);
	uint32_t i, n;

	if (!mode[0] || !strcmp(mode, "honest") || !strcmp(mode, "precopied") || r->status != DMAHIL_OK || !dst)
		return 0;
	n = dst->page_count;

	if (!strcmp(mode, "dst-as-src") && src) {
		/* The destination's pages reported as the source's: the host would read the CPU's pattern. */
		dst->page_count = src->page_count;
		memcpy(dst->pages, src->pages, sizeof(dst->pages));
	} else if (!strcmp(mode, "dst-as-bounce") && src) {
		/* The destination reported at the source's device (bounce) pages. */
		for (i = 0; i < n; i++)
			dst->pages[i] = device_page(src) + (uint64_t)i * PAGE;
	} else if (!strcmp(mode, "shift")) {
		for (i = 0; i < n; i++)
			dst->pages[i] += PAGE;
	} else if (!strcmp(mode, "duplicate") && n >= 2) {
		dst->pages[n - 1] = dst->pages[0];
	} else if (!strcmp(mode, "reverse") && n >= 2) {
		for (i = 0; i < n / 2; i++) {
			uint64_t t = dst->pages[i];

			dst->pages[i] = dst->pages[n - 1 - i];
			dst->pages[n - 1 - i] = t;
		}
	} else if (!strcmp(mode, "extra-page") && n < DMAHIL_MAX_PAGES) {
		dst->pages[n] = dst->pages[n - 1] + PAGE;
		dst->page_count = n + 1;
	} else if (!strcmp(mode, "missing-page") && n >= 2) {
		dst->page_count = n - 1;
	} else if (!strcmp(mode, "wrong-offset")) {
		dst->offset += 1;
	} else if (!strcmp(mode, "wrong-length")) {
		dst->length -= 1;
	} else if (!strcmp(mode, "segments-overlap") && dst->segment_count >= 2) {
		dst->segments[1].buf_offset -= 1;
	} else if (!strcmp(mode, "segments-gap") && dst->segment_count >= 2) {
		dst->segments[1].buf_offset += 1;
	} else if (!strcmp(mode, "segment-in-other-buffer") && src) {
		dst->segments[0].device_addr = src->pages[0] + src->offset;
	} else if (!strcmp(mode, "ok-over-failed-call") && r->call_count) {
		r->calls[0].status = -5; /* -EIO / a failed NTSTATUS, while the run claims success */
	} else {
		return -1; /* unknown, or not applicable to this result's shape */
	}
	return 1;
}
