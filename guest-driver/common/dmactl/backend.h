/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * What dmactl needs from the OS: one implementation per OS
 * (backend_linux.c: /dev/edudma + ioctl; backend_windows.c: CreateFile + DeviceIoControl).
 * dmactl.c does argument parsing and JSON; a backend only moves the ABI structs.
 * Each call returns 0 on success, else fills err (NUL-terminated) and returns -1.
 * The held buffers of a run live as long as the open backend (the driver ties
 * them to the open handle) unless released earlier.
 */
#ifndef DMACTL_BACKEND_H
#define DMACTL_BACKEND_H

#include <stddef.h>
#include "../dmahil_abi.h"

struct dmactl_backend;

int dmactl_backend_open(const char *device, struct dmactl_backend **out, char *err, size_t errlen);
int dmactl_backend_info(struct dmactl_backend *b, struct dmahil_info *info, char *err, size_t errlen);
/*
 * A run in two halves. prepare: the driver allocates and maps the buffers, writes the source pattern,
 * fills the destination and reports the pages and the handle in r (r->status says whether it can go on).
 * go: the device runs the prepared handle's DMA; the full result in r.
 */
int dmactl_backend_prepare(struct dmactl_backend *b, const struct dmahil_scenario *s, struct dmahil_result *r,
			   char *err, size_t errlen);
int dmactl_backend_go(struct dmactl_backend *b, uint32_t handle, struct dmahil_result *r, char *err, size_t errlen);
int dmactl_backend_release(struct dmactl_backend *b, uint32_t handle, char *err, size_t errlen);
/*
 * After a snapshot restore (the device came back with its PCI config reset): the driver writes its saved
 * config back and checks the device. config receives the first 64 bytes of the device's PCI config space
 * as the OS reads it, not as the driver reports it. Linux only; the Windows backend refuses.
 */
int dmactl_backend_reattach(struct dmactl_backend *b, uint32_t config[16], char *err, size_t errlen);
void dmactl_backend_close(struct dmactl_backend *b);

/* Default device path for this OS ("/dev/edudma", "\\\\.\\EduDma"). */
const char *dmactl_backend_default_device(void);
/* "linux" or "windows". */
const char *dmactl_backend_os(void);

#endif /* DMACTL_BACKEND_H */
