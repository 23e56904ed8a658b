/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * How dmactl talks to the Linux edudma driver: ioctls on /dev/edudma.
 * The structs they carry are the OS-independent ABI in dmahil_abi.h.
 *
 *   EDUDMA_IOC_INFO     fills struct dmahil_info.
 *   EDUDMA_IOC_PREPARE  arg: struct edudma_run_args. The first half of a run:
 *                       allocate and map both buffers, write the source pattern
 *                       with the CPU (and sync it for the device as the scenario
 *                       says), fill the destination with DMAHIL_FILL_BYTE, and
 *                       report the handle and every buffer's pages (no segments
 *                       yet: the device runs nothing). The result (~25 KB) is
 *                       too big for the ioctl size field, so it travels by
 *                       pointer. Returns 0 whenever the driver looked at the
 *                       scenario; the outcome is in dmahil_result.status. A
 *                       negative errno means the request itself was unusable
 *                       (EFAULT, EINVAL for a short result_size, ENODEV, EINTR).
 *   EDUDMA_IOC_GO       arg: struct edudma_go_args. The second half: run the
 *                       prepared scenario's DMA on the device and hand the
 *                       buffers back to the CPU; the full result (the same
 *                       pages, the segments, calls, timings) as for PREPARE.
 *                       ENOENT if no such handle is held, EALREADY if it already
 *                       ran or its prepare failed.
 *   EDUDMA_IOC_RUN      arg: struct edudma_run_args. PREPARE and GO in one call.
 *   EDUDMA_IOC_RELEASE  arg: pointer to the uint32_t handle of a held scenario.
 *                       Frees its buffers (unmapping first where a fault
 *                       deferred the unmap). ENOENT if no such handle is held.
 *   EDUDMA_IOC_REATTACH arg: struct edudma_reattach_args (out). For a device
 *                       that lost its state under the bound driver (a snapshot
 *                       restore: QEMU 7.2's edu has no migration state): writes
 *                       back the PCI config saved at probe (BAR0, COMMAND, MSI)
 *                       and checks the ID and liveness registers. The outcome
 *                       is in status/message; ENODEV if no device is bound.
 *
 * A run's buffers are held, allocated and untouched, until RELEASE or until
 * the file that ran it is closed. Handles are global, so any open file may
 * release any handle.
 */
#ifndef EDUDMA_IOCTL_H
#define EDUDMA_IOCTL_H

#if defined(__KERNEL__)
#include <linux/ioctl.h>
#else
#include <sys/ioctl.h>
#endif
#include "dmahil_abi.h"

#define EDUDMA_DEVICE_PATH "/dev/edudma"
#define EDUDMA_DRIVER_VERSION "0.1.0"
#define EDUDMA_API "linux-dma-api"
#define EDUDMA_MAX_HELD 8u                  /* held scenarios, E_BUSY beyond */
#define EDUDMA_DEFAULT_TIMEOUT_MS 5000u     /* per edu operation when timeout_ms = 0 */
#define EDUDMA_MAX_TIMEOUT_MS 600000u       /* larger timeout_ms is E_INVALID */

struct edudma_run_args {
	uint64_t scenario;    /* user pointer to struct dmahil_scenario (in) */
	uint64_t result;      /* user pointer to struct dmahil_result (out) */
	uint32_t result_size; /* sizeof(struct dmahil_result) as the caller knows it */
	uint32_t reserved;    /* 0 */
};
DMAHIL_STATIC_ASSERT(sizeof(struct edudma_run_args) == 24, "edudma_run_args layout");

struct edudma_go_args {
	uint32_t handle;      /* dmahil_result.handle from PREPARE (in) */
	uint32_t result_size; /* sizeof(struct dmahil_result) as the caller knows it */
	uint64_t result;      /* user pointer to struct dmahil_result (out) */
};
DMAHIL_STATIC_ASSERT(sizeof(struct edudma_go_args) == 16, "edudma_go_args layout");

struct edudma_reattach_args {
	uint32_t status;      /* DMAHIL_OK, or DMAHIL_E_DEVICE when the device check fails (out) */
	uint32_t reserved;
	char message[128];    /* why, when status != DMAHIL_OK (out) */
};
DMAHIL_STATIC_ASSERT(sizeof(struct edudma_reattach_args) == 136, "edudma_reattach_args layout");

#define EDUDMA_IOC_MAGIC 0xED
#define EDUDMA_IOC_INFO _IOR(EDUDMA_IOC_MAGIC, 1, struct dmahil_info)
#define EDUDMA_IOC_RUN _IOW(EDUDMA_IOC_MAGIC, 2, struct edudma_run_args)
#define EDUDMA_IOC_RELEASE _IOW(EDUDMA_IOC_MAGIC, 3, uint32_t)
#define EDUDMA_IOC_REATTACH _IOR(EDUDMA_IOC_MAGIC, 4, struct edudma_reattach_args)
#define EDUDMA_IOC_PREPARE _IOW(EDUDMA_IOC_MAGIC, 5, struct edudma_run_args)
#define EDUDMA_IOC_GO _IOW(EDUDMA_IOC_MAGIC, 6, struct edudma_go_args)

#endif /* EDUDMA_IOCTL_H */
