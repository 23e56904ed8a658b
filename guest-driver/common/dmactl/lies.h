/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/* Lie modes of the test build of dmactl (lies.c); the shipped dmactl has none. */
#ifndef DMACTL_LIES_H
#define DMACTL_LIES_H
#include <stddef.h>
#include "../dmahil_abi.h"

/* Changes r as the mode in the lie file says. 0: honest (no file or mode "honest"), 1: lied, -1: unknown mode. */
int dmactl_apply_lie(struct dmahil_result *r, char *mode, size_t mode_size);
#endif
