/* SPDX-License-Identifier: MIT */
/* The model's settings: environment variables only (dmactl's argv stays dmactl's). README.md lists them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"

struct mk_config mk_cfg;

static int env_u64(const char *name, uint64_t def, uint64_t min, uint64_t max, uint64_t *out, char *err,
		   size_t errlen)
{
	const char *v = os_getenv(name);
	char *end;
	unsigned long long x;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	x = strtoull(v, &end, 0);
	if (*end != '\0' || x < min || x > max) {
		snprintf(err, errlen, "%s=%s: want a number in %llu..%llu", name, v, (unsigned long long)min,
			 (unsigned long long)max);
		return -1;
	}
	*out = x;
	return 0;
}

#define MiB (1024ull * 1024ull)

int mk_config_read(char *err, size_t errlen)
{
	const char *w = os_getenv("DMAHIL_MODEL_WORLD"), *irq = os_getenv("DMAHIL_MODEL_INTERRUPT");
	const char *flush = os_getenv("DMAHIL_MODEL_V3_FLUSH");
	uint64_t v;

	memset(&mk_cfg, 0, sizeof(mk_cfg));
	if (w == NULL || strcmp(w, "direct") == 0)
		mk_cfg.world = MK_WORLD_DIRECT;
	else if (strcmp(w, "map-registers") == 0)
		mk_cfg.world = MK_WORLD_MAP_REGISTERS;
	else if (strcmp(w, "v2-null-flush") == 0)
		mk_cfg.world = MK_WORLD_V2_NULL_FLUSH;
	else {
		snprintf(err, errlen, "DMAHIL_MODEL_WORLD=%s: want map-registers, direct or v2-null-flush", w);
		return -1;
	}
	mk_cfg.world_name = w != NULL ? w : "direct";
	mk_cfg.ram_path = os_getenv("DMAHIL_MODEL_RAM");
	if (env_u64("DMAHIL_MODEL_RAM_BYTES", 512 * MiB, 256 * MiB, 2048 * MiB, &mk_cfg.ram_bytes, err, errlen))
		return -1;
	if (mk_cfg.ram_bytes % (64 * 1024) != 0) {
		snprintf(err, errlen, "DMAHIL_MODEL_RAM_BYTES must be a multiple of 64 KiB");
		return -1;
	}
	if (env_u64("DMAHIL_MODEL_EDU_DMA_BITS", 28, 24, 64, &v, err, errlen))
		return -1;
	mk_cfg.edu_dma_bits = (unsigned)v;
	if (env_u64("DMAHIL_MODEL_EDU_LATENCY_MS", 100, 1, 60000, &v, err, errlen))
		return -1;
	mk_cfg.edu_latency_ms = (unsigned)v;
	if (env_u64("DMAHIL_MODEL_DPC_LATENCY_US", 0, 0, 3600000000ull, &v, err, errlen))
		return -1;
	mk_cfg.dpc_latency = v * 10;
	/*
	 * 32 map registers per adapter, 64 in the HAL's pool: ReactOS's HAL keeps one
	 * master adapter of at most 64 map registers (MAX_MAP_REGISTERS in
	 * hal/halx86/generic/dma.c) and grows it from 16; a 28-bit adapter on x64
	 * Windows draws on a separate, small 24/28-bit pool (dma-and-qemu-facts.md
	 * section 7). 32 per adapter lets the driver cut 16-page windows per
	 * buffer, and two held runs can exhaust the pool, as on a real HAL.
	 */
	if (env_u64("DMAHIL_MODEL_MAP_REGISTERS", 32, 1, 4096, &v, err, errlen))
		return -1;
	mk_cfg.map_registers = (unsigned)v;
	if (env_u64("DMAHIL_MODEL_MAP_POOL", 64, 1, 16384, &v, err, errlen))
		return -1;
	mk_cfg.map_pool = (unsigned)v;
	if (irq == NULL || strcmp(irq, "msi") == 0)
		mk_cfg.msi = 1;
	else if (strcmp(irq, "line") == 0)
		mk_cfg.msi = 0;
	else {
		snprintf(err, errlen, "DMAHIL_MODEL_INTERRUPT=%s: want msi or line", irq);
		return -1;
	}
	if (env_u64("DMAHIL_MODEL_BUS_MASTER", 0, 0, 1, &v, err, errlen))
		return -1;
	mk_cfg.bus_master_on = (int)v;
	if (env_u64("DMAHIL_MODEL_STRICT_MAP_REGISTERS", mk_cfg.world == MK_WORLD_MAP_REGISTERS, 0, 1, &v, err,
		    errlen))
		return -1;
	mk_cfg.count_map_registers = (int)v;
	if (flush == NULL || strcmp(flush, "present") == 0)
		mk_cfg.v3_flush = MK_V3_FLUSH_PRESENT;
	else if (strcmp(flush, "null") == 0)
		mk_cfg.v3_flush = MK_V3_FLUSH_NULL;
	else if (strcmp(flush, "short") == 0)
		mk_cfg.v3_flush = MK_V3_FLUSH_SHORT;
	else {
		snprintf(err, errlen, "DMAHIL_MODEL_V3_FLUSH=%s: want present, null or short", flush);
		return -1;
	}
	if (mk_cfg.v3_flush != MK_V3_FLUSH_PRESENT && mk_cfg.world == MK_WORLD_V2_NULL_FLUSH) {
		snprintf(err, errlen, "DMAHIL_MODEL_V3_FLUSH=%s: the v2-null-flush world grants no v3 adapter", flush);
		return -1;
	}
	mk_cfg.log_path = os_getenv("DMAHIL_MODEL_LOG");
	if (env_u64("DMAHIL_MODEL_TRACE", 0, 0, 1, &v, err, errlen))
		return -1;
	mk_cfg.trace = (int)v;

	/* The physical layout: where pool, common buffers and map-register pages live. */
	switch (mk_cfg.world) {
	case MK_WORLD_MAP_REGISTERS:
		/* pool beyond the 28-bit device; common buffers and bounce pages within its reach */
		if (mk_cfg.ram_bytes < 512 * MiB) {
			snprintf(err, errlen, "the map-registers world needs DMAHIL_MODEL_RAM_BYTES >= 512 MiB");
			return -1;
		}
		mk_cfg.mapreg_lo = 1 * MiB;
		mk_cfg.common_lo = 16 * MiB;
		mk_cfg.common_hi = 256 * MiB;
		mk_cfg.pool_lo = 256 * MiB;
		mk_cfg.pool_hi = mk_cfg.ram_bytes;
		if ((uint64_t)mk_cfg.map_pool * 4096 > 15 * MiB) {
			snprintf(err, errlen, "DMAHIL_MODEL_MAP_POOL: at most %llu", 15 * MiB / 4096);
			return -1;
		}
		break;
	case MK_WORLD_DIRECT:
		mk_cfg.common_lo = 16 * MiB;
		mk_cfg.common_hi = 128 * MiB;
		mk_cfg.pool_lo = 128 * MiB;
		mk_cfg.pool_hi = 256 * MiB;
		break;
	case MK_WORLD_V2_NULL_FLUSH:
		/* a 32-bit adapter: the HAL may hand out anything below 4 GiB, here all of it above 256 MiB */
		if (mk_cfg.ram_bytes < 512 * MiB) {
			snprintf(err, errlen, "the v2-null-flush world needs DMAHIL_MODEL_RAM_BYTES >= 512 MiB");
			return -1;
		}
		mk_cfg.common_lo = 256 * MiB;
		mk_cfg.common_hi = 320 * MiB;
		mk_cfg.pool_lo = 320 * MiB;
		mk_cfg.pool_hi = mk_cfg.ram_bytes;
		break;
	}
	return 0;
}

int mk_init(char *err, size_t errlen)
{
	static int done;

	if (done)
		return 0;
	if (mk_config_read(err, errlen) || mk_mem_init(err, errlen))
		return -1;
	os_install_exception_handler(mk_exception);
	mk_edu_reset();
	mk_dma_reset();
	done = 1;
	return 0;
}
