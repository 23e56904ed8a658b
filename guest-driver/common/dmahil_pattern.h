/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * The dmahil test pattern: byte i of a transfer with seed s.
 *
 * Position-addressed (any byte can be computed alone), so the host can check
 * a sub-range and a shifted copy never matches. Pure 32-bit integer math, so
 * the Linux module, the Windows driver, dmactl and the TypeScript host
 * (harness/contract/pattern.ts) produce identical bytes.
 * Test vectors: harness/contract/pattern-vectors.json.
 */
#ifndef DMAHIL_PATTERN_H
#define DMAHIL_PATTERN_H

#include "dmahil_types.h"

static inline uint32_t dmahil_pattern_word(uint32_t seed, uint32_t k)
{
	uint32_t x = seed ^ (k * 0x9E3779B1u);

	x += 0x7F4A7C15u;
	x ^= x >> 16;
	x *= 0x85EBCA6Bu;
	x ^= x >> 13;
	x *= 0xC2B2AE35u;
	x ^= x >> 16;
	return x;
}

static inline uint8_t dmahil_pattern_byte(uint32_t seed, uint32_t i)
{
	return (uint8_t)(dmahil_pattern_word(seed, i >> 2) >> (8 * (i & 3)));
}

/* Fill dst[0..len) with pattern bytes [start, start + len). */
static inline void dmahil_pattern_fill(uint8_t *dst, uint32_t seed, uint32_t start, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		dst[i] = dmahil_pattern_byte(seed, start + i);
}

/* Number of bytes in src[0..len) that differ from pattern bytes [start, ...). */
static inline uint32_t dmahil_pattern_mismatches(const uint8_t *src, uint32_t seed, uint32_t start, uint32_t len)
{
	uint32_t i, bad = 0;

	for (i = 0; i < len; i++)
		bad += src[i] != dmahil_pattern_byte(seed, start + i);
	return bad;
}

#endif /* DMAHIL_PATTERN_H */
