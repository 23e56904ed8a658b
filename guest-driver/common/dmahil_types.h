/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/* Fixed-width integer types for every build of the contract headers. */
#ifndef DMAHIL_TYPES_H
#define DMAHIL_TYPES_H

#if defined(__KERNEL__)
#include <linux/types.h>
#else
#include <stdint.h>
#endif

#if defined(__cplusplus)
#define DMAHIL_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define DMAHIL_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#endif /* DMAHIL_TYPES_H */
