/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * dmactl backend for Windows: CreateFile on \\.\EduDma, DeviceIoControl with
 * the METHOD_BUFFERED codes of guest-driver/windows/edudma_ioctl.h.
 *
 * The driver answers a scenario it cannot accept (a field out of range) with
 * STATUS_INVALID_PARAMETER, which reaches user mode as ERROR_INVALID_PARAMETER
 * with no output; that becomes a result with status DMAHIL_E_INVALID, as the
 * Linux driver reports it, so both print the same JSON ("invalid", exit 3).
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "../../windows/edudma_ioctl.h"

struct dmactl_backend {
	HANDLE h;
};

static void win_error(char *err, size_t errlen, const char *what, DWORD code)
{
	char text[160] = "";
	DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, text,
				 sizeof(text), NULL);

	while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '.'))
		text[--n] = '\0';
	snprintf(err, errlen, "%s failed: win32 error %lu%s%s", what, (unsigned long)code, n ? ": " : "", text);
}

const char *dmactl_backend_default_device(void)
{
	return EDUDMA_USER_PATH;
}

const char *dmactl_backend_os(void)
{
	return "windows";
}

int dmactl_backend_open(const char *device, struct dmactl_backend **out, char *err, size_t errlen)
{
	struct dmactl_backend *b;
	HANDLE h;

	*out = NULL;
	h = CreateFileA(device, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		DWORD code = GetLastError();
		char what[300];

		snprintf(what, sizeof(what), "CreateFile(%s)", device);
		win_error(err, errlen, what, code);
		return -1;
	}
	b = (struct dmactl_backend *)calloc(1, sizeof(*b));
	if (!b) {
		CloseHandle(h);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	b->h = h;
	*out = b;
	return 0;
}

static int ioctl_call(struct dmactl_backend *b, DWORD code, const char *name, void *in, DWORD inlen, void *out,
		      DWORD outlen, DWORD *got, DWORD *error)
{
	DWORD n = 0;

	*error = 0;
	if (!DeviceIoControl(b->h, code, in, inlen, out, outlen, &n, NULL)) {
		*error = GetLastError();
		(void)name;
		return -1;
	}
	if (got)
		*got = n;
	return 0;
}

/* A reply of another size than the struct it fills: a driver built from another contract. */
static int wrong_size(const char *ioctl, DWORD got, size_t want, char *err, size_t errlen)
{
	if (got == want)
		return 0;
	snprintf(err, errlen, "%s returned %lu bytes, expected %u", ioctl, (unsigned long)got, (unsigned)want);
	return -1;
}

int dmactl_backend_info(struct dmactl_backend *b, struct dmahil_info *info, char *err, size_t errlen)
{
	DWORD got = 0, e;

	if (ioctl_call(b, IOCTL_EDUDMA_INFO, "info", NULL, 0, info, sizeof(*info), &got, &e)) {
		win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_INFO)", e);
		return -1;
	}
	if (wrong_size("IOCTL_EDUDMA_INFO", got, sizeof(*info), err, errlen))
		return -1;
	return 0;
}

int dmactl_backend_prepare(struct dmactl_backend *b, const struct dmahil_scenario *s, struct dmahil_result *r,
			   char *err, size_t errlen)
{
	struct dmahil_scenario in = *s;
	DWORD got = 0, e;

	if (ioctl_call(b, IOCTL_EDUDMA_PREPARE, "prepare", &in, sizeof(in), r, sizeof(*r), &got, &e)) {
		if (e == ERROR_INVALID_PARAMETER) {
			memset(r, 0, sizeof(*r));
			r->contract_version = DMAHIL_CONTRACT_VERSION;
			r->status = DMAHIL_E_INVALID;
			r->scenario = *s;
			snprintf(r->message, sizeof(r->message),
				 "the driver refused the scenario (STATUS_INVALID_PARAMETER): a field is out of range");
			return 0;
		}
		if (e == ERROR_INVALID_FUNCTION) {
			win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_PREPARE) (an edudma.sys older than this dmactl?)", e);
			return -1;
		}
		win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_PREPARE)", e);
		return -1;
	}
	if (wrong_size("IOCTL_EDUDMA_PREPARE", got, sizeof(*r), err, errlen))
		return -1;
	return 0;
}

int dmactl_backend_go(struct dmactl_backend *b, uint32_t handle, struct dmahil_result *r, char *err, size_t errlen)
{
	struct edudma_go go;
	DWORD got = 0, e;

	memset(&go, 0, sizeof(go));
	go.handle = handle;
	if (ioctl_call(b, IOCTL_EDUDMA_GO, "go", &go, sizeof(go), r, sizeof(*r), &got, &e)) {
		win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_GO)", e);
		return -1;
	}
	if (wrong_size("IOCTL_EDUDMA_GO", got, sizeof(*r), err, errlen))
		return -1;
	return 0;
}

int dmactl_backend_release(struct dmactl_backend *b, uint32_t handle, char *err, size_t errlen)
{
	struct edudma_release rel;
	DWORD e;

	memset(&rel, 0, sizeof(rel));
	rel.handle = handle;
	if (ioctl_call(b, IOCTL_EDUDMA_RELEASE, "release", &rel, sizeof(rel), NULL, 0, NULL, &e)) {
		if (e == ERROR_NOT_FOUND)
			snprintf(err, errlen, "no held scenario with handle %lu", (unsigned long)handle);
		else
			win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_RELEASE)", e);
		return -1;
	}
	return 0;
}

int dmactl_backend_reattach(struct dmactl_backend *b, uint32_t config[16], char *err, size_t errlen)
{
	(void)b;
	(void)config;
	snprintf(err, errlen, "reattach is for a Linux guest restored from a snapshot; dmahil does not snapshot Windows guests");
	return -1;
}

void dmactl_backend_close(struct dmactl_backend *b)
{
	if (!b)
		return;
	CloseHandle(b->h);
	free(b);
}
