/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/* dmactl backend for Linux: /dev/edudma and the ioctls of guest-driver/linux/edudma_ioctl.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backend.h"
#include "edudma_ioctl.h"

struct dmactl_backend {
	int fd;
};

static int fail_errno(char *err, size_t errlen, const char *what)
{
	int e = errno;

	snprintf(err, errlen, "%s: %s", what, strerror(e));
	return -1;
}

int dmactl_backend_open(const char *device, struct dmactl_backend **out, char *err, size_t errlen)
{
	struct dmactl_backend *b;
	int fd = open(device, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot open %s: %s%s", device, strerror(e),
			 e == ENOENT ? " (is edudma.ko loaded and an edu device present?)" : "");
		return -1;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	b->fd = fd;
	*out = b;
	return 0;
}

int dmactl_backend_info(struct dmactl_backend *b, struct dmahil_info *info, char *err, size_t errlen)
{
	if (ioctl(b->fd, EDUDMA_IOC_INFO, info) < 0)
		return fail_errno(err, errlen, "EDUDMA_IOC_INFO");
	return 0;
}

int dmactl_backend_prepare(struct dmactl_backend *b, const struct dmahil_scenario *s, struct dmahil_result *r,
			   char *err, size_t errlen)
{
	struct edudma_run_args a;

	memset(&a, 0, sizeof(a));
	a.scenario = (uint64_t)(uintptr_t)s;
	a.result = (uint64_t)(uintptr_t)r;
	a.result_size = sizeof(*r);
	if (ioctl(b->fd, EDUDMA_IOC_PREPARE, &a) < 0) {
		if (errno == ENOTTY) {
			snprintf(err, errlen, "EDUDMA_IOC_PREPARE: %s (an edudma.ko older than this dmactl?)", strerror(errno));
			return -1;
		}
		return fail_errno(err, errlen, "EDUDMA_IOC_PREPARE");
	}
	return 0;
}

int dmactl_backend_go(struct dmactl_backend *b, uint32_t handle, struct dmahil_result *r, char *err, size_t errlen)
{
	struct edudma_go_args a;

	memset(&a, 0, sizeof(a));
	a.handle = handle;
	a.result = (uint64_t)(uintptr_t)r;
	a.result_size = sizeof(*r);
	if (ioctl(b->fd, EDUDMA_IOC_GO, &a) < 0)
		return fail_errno(err, errlen, "EDUDMA_IOC_GO");
	return 0;
}

int dmactl_backend_release(struct dmactl_backend *b, uint32_t handle, char *err, size_t errlen)
{
	if (ioctl(b->fd, EDUDMA_IOC_RELEASE, &handle) < 0) {
		if (errno == ENOENT) {
			snprintf(err, errlen, "no held scenario with handle %u", (unsigned)handle);
			return -1;
		}
		return fail_errno(err, errlen, "EDUDMA_IOC_RELEASE");
	}
	return 0;
}

int dmactl_backend_reattach(struct dmactl_backend *b, uint32_t config[16], char *err, size_t errlen)
{
	struct edudma_reattach_args a;
	char path[96];
	struct stat st;
	ssize_t got;
	int fd;

	memset(&a, 0, sizeof(a));
	if (ioctl(b->fd, EDUDMA_IOC_REATTACH, &a) < 0) {
		int e = errno;

		snprintf(err, errlen, "EDUDMA_IOC_REATTACH: %s%s", strerror(e),
			 e == ENOTTY ? " (the driver behind this device does not know reattach: an edudma.ko older than this dmactl?)"
			 : e == ENODEV ? " (no edu device is bound to edudma)" : "");
		return -1;
	}
	if (a.status != DMAHIL_OK) {
		a.message[sizeof(a.message) - 1] = '\0';
		snprintf(err, errlen, "%s", a.message[0] ? a.message : "the driver's device check failed");
		return -1;
	}
	/* The device node's parent is the PCI device: read its config space through sysfs, not the driver. */
	if (fstat(b->fd, &st) < 0)
		return fail_errno(err, errlen, "fstat");
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/device/config", major(st.st_rdev), minor(st.st_rdev));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail_errno(err, errlen, path);
	got = pread(fd, config, 64, 0);
	close(fd);
	if (got != 64) {
		snprintf(err, errlen, "%s: read %d of 64 bytes", path, (int)got);
		return -1;
	}
	return 0;
}

void dmactl_backend_close(struct dmactl_backend *b)
{
	if (b) {
		close(b->fd);
		free(b);
	}
}

const char *dmactl_backend_default_device(void)
{
	return EDUDMA_DEVICE_PATH;
}

const char *dmactl_backend_os(void)
{
	return "linux";
}
