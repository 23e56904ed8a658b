/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/* Lie modes of the test build of dmactl (lies.c); the shipped dmactl has none. */
#ifndef DMACTL_LIES_H
#define DMACTL_LIES_H
#include <stddef.h>
#include "../dmahil_abi.h"

/* Reads the mode from the lie file into mode ("" when there is none): once per run. */
void dmactl_read_lie(char *mode, size_t mode_size);
/*
 * Before the driver prepares the run: lies that need the driver's help set a test flag (precopied:
 * DMAHIL_TEST_PRECOPY, the destination gets the pattern from the CPU before the DMA).
 */
void dmactl_lie_scenario(const char *mode, struct dmahil_scenario *s);
/*
 * Changes r (the armed report, or the final result) as the mode says, the same way both times.
 * 0: honest (no mode, "honest", or a lie the driver tells itself), 1: lied, -1: unknown mode or not
 * applicable to this result's shape.
 */
int dmactl_apply_lie(struct dmahil_result *r, const char *mode);
#endif
