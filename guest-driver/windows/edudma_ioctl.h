/* SPDX-License-Identifier: MIT */
/*
 * How the dmahil ABI (guest-driver/common/dmahil_abi.h) travels between
 * dmactl.exe and edudma.sys on Windows: METHOD_BUFFERED control codes on the
 * device \\.\EduDma. Shared by the driver and backend_windows.c.
 *
 *   IOCTL_EDUDMA_INFO     in: nothing                  out: struct dmahil_info
 *   IOCTL_EDUDMA_PREPARE  in: struct dmahil_scenario   out: struct dmahil_result
 *   IOCTL_EDUDMA_GO       in: struct edudma_go         out: struct dmahil_result
 *   IOCTL_EDUDMA_RUN      in: struct dmahil_scenario   out: struct dmahil_result
 *   IOCTL_EDUDMA_RELEASE  in: struct edudma_release    out: nothing
 *
 * A run in two halves, as on Linux: PREPARE allocates both buffers, writes the
 * source pattern with the CPU, fills the destination with DMAHIL_FILL_BYTE and
 * reports the handle and the pages (no segments: nothing is mapped yet); the
 * buffers are held. GO queues the prepared handle's DMA like a RUN and completes
 * with the full result; STATUS_NOT_FOUND if no such handle is held,
 * STATUS_INVALID_DEVICE_STATE if it is not prepared (it ran, or is running).
 * RUN is PREPARE and GO in one request.
 *
 * Buffer lengths must match exactly (RUN's output at least sizeof result);
 * anything else, and any field out of range, completes the request with
 * STATUS_INVALID_PARAMETER before the driver touches memory. A scenario the
 * driver understands but cannot run completes with STATUS_SUCCESS and
 * dmahil_result.status != DMAHIL_OK, so the buffers it got are reported.
 */
#ifndef EDUDMA_IOCTL_H
#define EDUDMA_IOCTL_H

#include "../common/dmahil_abi.h"

#define EDUDMA_DEVICE_TYPE 0x8000u /* vendor range */

/* CTL_CODE(EDUDMA_DEVICE_TYPE, fn, METHOD_BUFFERED, FILE_READ_ACCESS | FILE_WRITE_ACCESS) */
#define EDUDMA_CTL(fn) ((EDUDMA_DEVICE_TYPE << 16) | (3u << 14) | ((fn) << 2) | 0u)

#define IOCTL_EDUDMA_INFO    EDUDMA_CTL(0x800u) /* 0x8000E000 */
#define IOCTL_EDUDMA_RUN     EDUDMA_CTL(0x801u) /* 0x8000E004 */
#define IOCTL_EDUDMA_RELEASE EDUDMA_CTL(0x802u) /* 0x8000E008 */
#define IOCTL_EDUDMA_PREPARE EDUDMA_CTL(0x803u) /* 0x8000E00C */
#define IOCTL_EDUDMA_GO      EDUDMA_CTL(0x804u) /* 0x8000E010 */

/* The user-visible name; the kernel name is \Device\EduDma0, linked as \DosDevices\EduDma. */
#define EDUDMA_USER_PATH "\\\\.\\EduDma"

struct edudma_release {
	uint32_t handle;   /* dmahil_result.handle of the run */
	uint32_t reserved; /* must be 0 */
};
DMAHIL_STATIC_ASSERT(sizeof(struct edudma_release) == 8, "edudma_release layout");

struct edudma_go {
	uint32_t handle;   /* dmahil_result.handle from PREPARE */
	uint32_t reserved; /* must be 0 */
};
DMAHIL_STATIC_ASSERT(sizeof(struct edudma_go) == 8, "edudma_go layout");

#define EDUDMA_DRIVER_VERSION "0.1.0"
#define EDUDMA_MAX_HELD 8u                /* held runs per device */
#define EDUDMA_DEFAULT_TIMEOUT_MS 5000u   /* per edu operation when the scenario says 0 */
#define EDUDMA_MAX_TIMEOUT_MS 600000u

#endif /* EDUDMA_IOCTL_H */
