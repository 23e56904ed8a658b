/* SPDX-License-Identifier: MIT */
/*
 * What CreateFileA, DeviceIoControl, CloseHandle and GetLastError do in
 * Windows, for dmactl's own Windows backend (guest-driver/common/dmactl/
 * backend_windows.c, compiled unchanged with those four renamed to mk_*, see
 * model.mk): IRPs built and sent to the driver's dispatch routines in this
 * process. CreateFileA loads the driver and starts the device; CloseHandle
 * removes it, unloads the driver and checks that nothing leaked. So dmactl
 * prints exactly what it prints over the real driver, from the same code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"
#include "../edudma_ioctl.h"

#define WIN_ERROR_FILE_NOT_FOUND 2u

/* An open handle: the file object the driver sees. One at a time (dmactl and the checks open one). */
struct mk_handle {
	PDEVICE_OBJECT dev;
	PFILE_OBJECT fo;
};

static struct mk_handle *open_handle;
static uint32_t last_error;

/* One request from "user mode": the IRP is sent; it may still pend when this returns. */
struct mk_req *mk_backend_submit(UCHAR major, ULONG code, const char *what, const void *in, ULONG inlen, void *out,
				 ULONG outlen)
{
	struct mk_handle *b = open_handle;
	PDEVICE_OBJECT top = mk_attached_top(b->dev);
	PIRP irp = mk_irp_alloc_impl(top->StackSize);
	PIO_STACK_LOCATION sp = IoGetNextIrpStackLocation(irp);
	size_t sysbytes = inlen > outlen ? inlen : outlen;

	irp->RequestorMode = UserMode;
	irp->Tail.Overlay.OriginalFileObject = b->fo;
	irp->IoStatus.Status = STATUS_PENDING;
	sp->MajorFunction = major;
	sp->FileObject = b->fo;
	if (major == IRP_MJ_DEVICE_CONTROL) {
		sysbytes = (sysbytes + PAGE_SIZE - 1) & ~(size_t)(PAGE_SIZE - 1);
		if (sysbytes != 0) {
			irp->AssociatedIrp.SystemBuffer = os_alloc_private(sysbytes);
			memcpy(irp->AssociatedIrp.SystemBuffer, in, inlen);
			irp->Flags = IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER | (outlen != 0 ? IRP_INPUT_OPERATION : 0);
		}
		irp->UserBuffer = out;
		sp->Parameters.DeviceIoControl.OutputBufferLength = outlen;
		sp->Parameters.DeviceIoControl.InputBufferLength = inlen;
		sp->Parameters.DeviceIoControl.IoControlCode = code;
	} else {
		sysbytes = 0;
		if (major == IRP_MJ_CREATE)
			sp->Parameters.Create.Options = ((ULONG)FILE_OPEN << 24) | FILE_NON_DIRECTORY_FILE;
	}
	return mk_req_send(top, irp, what, out, outlen, sysbytes);
}

/* ... and waited for, as a synchronous DeviceIoControl waits. */
static NTSTATUS request(UCHAR major, ULONG code, const char *what, const void *in, ULONG inlen, void *out,
			ULONG outlen, ULONG *got)
{
	struct mk_req *r = mk_backend_submit(major, code, what, in, inlen, out, outlen);
	NTSTATUS st;

	if (!mk_req_wait(r, MK_FOREVER))
		mk_bugcheck_at("irp-never-completes", what, 0,
			       "the request pends forever: nothing left to run (no interrupt, DPC, timer, DMA or map "
			       "registers to come) will complete it, and the driver gave no way out");
	st = r->status;
	if (got != NULL)
		*got = r->copied;
	mk_req_free(r);
	return st;
}

static const char *ioctl_name(ULONG code)
{
	switch (code) {
	case IOCTL_EDUDMA_INFO: return "IOCTL_EDUDMA_INFO";
	case IOCTL_EDUDMA_RUN: return "IOCTL_EDUDMA_RUN";
	case IOCTL_EDUDMA_PREPARE: return "IOCTL_EDUDMA_PREPARE";
	case IOCTL_EDUDMA_GO: return "IOCTL_EDUDMA_GO";
	case IOCTL_EDUDMA_RELEASE: return "IOCTL_EDUDMA_RELEASE";
	default: return "IRP_MJ_DEVICE_CONTROL";
	}
}

/* Why the device cannot open goes to stderr: CreateFile can only say "file not found". */
static void *open_failed(const char *why, uint32_t error)
{
	char line[300];

	snprintf(line, sizeof(line), "MODEL: CreateFile: %s\n", why);
	os_stderr(line);
	last_error = error;
	return (void *)(LONG_PTR)-1; /* INVALID_HANDLE_VALUE */
}

void *mk_CreateFileA(const char *device, ULONG access, ULONG share, void *security, ULONG disposition, ULONG flags,
		     void *template_file)
{
	struct mk_handle *b;
	char why[200] = "";
	char what[300];
	NTSTATUS st;

	(void)access, (void)share, (void)security, (void)disposition, (void)flags, (void)template_file;
	if (open_handle != NULL)
		return open_failed("the model opens one handle at a time", WIN_ERROR_FILE_NOT_FOUND);
	if (mk_init(why, sizeof(why))) {
		snprintf(what, sizeof(what), "the NT model cannot start: %s", why);
		return open_failed(what, WIN_ERROR_FILE_NOT_FOUND);
	}
	if (mk_lifecycle_up(why, sizeof(why))) {
		snprintf(what, sizeof(what), "the driver did not start: %s", why);
		return open_failed(what, WIN_ERROR_FILE_NOT_FOUND);
	}
	b = calloc(1, sizeof(*b));
	b->dev = mk_symlink_resolve(device);
	if (b->dev == NULL) {
		mk_lifecycle_down();
		free(b);
		snprintf(what, sizeof(what), "no symbolic link %s", device);
		return open_failed(what, WIN_ERROR_FILE_NOT_FOUND);
	}
	b->fo = os_alloc_private(sizeof(FILE_OBJECT));
	b->fo->Type = IO_TYPE_FILE;
	b->fo->Size = sizeof(FILE_OBJECT);
	b->fo->DeviceObject = b->dev;
	open_handle = b;
	st = request(IRP_MJ_CREATE, 0, "IRP_MJ_CREATE", NULL, 0, NULL, 0, NULL);
	if (!NT_SUCCESS(st)) {
		open_handle = NULL;
		mk_lifecycle_down();
		free(b);
		snprintf(what, sizeof(what), "IRP_MJ_CREATE failed 0x%08lx", (unsigned long)st);
		return open_failed(what, os_ntstatus_to_win32(st));
	}
	return b;
}

int mk_DeviceIoControl(void *handle, ULONG code, void *in, ULONG inlen, void *out, ULONG outlen, ULONG *got,
		       void *overlapped)
{
	ULONG n = 0;
	NTSTATUS st;

	(void)overlapped;
	if (handle != open_handle || open_handle == NULL)
		mk_bugcheck_at("invalid-handle", "DeviceIoControl", 0, "a handle the model did not open: %p", handle);
	st = request(IRP_MJ_DEVICE_CONTROL, code, ioctl_name(code), in, inlen, out, outlen, &n);
	if (code == IOCTL_EDUDMA_GO && inlen >= sizeof(uint32_t)) {
		/* Everything the edu printed for this run is on stderr before dmactl prints its result: the host
		 * reads the two pipes apart and waits for this line before it judges the run (harness/guest/nt-model). */
		char done[64];

		snprintf(done, sizeof(done), "MODEL: go done handle=%lu\n", (unsigned long)((const struct edudma_go *)in)->handle);
		os_stderr(done);
	}
	if (!NT_SUCCESS(st)) {
		last_error = os_ntstatus_to_win32(st);
		return 0;
	}
	if (got != NULL)
		*got = n;
	return 1;
}

int mk_CloseHandle(void *handle)
{
	struct mk_handle *b = open_handle;

	if (handle != b || b == NULL)
		mk_bugcheck_at("invalid-handle", "CloseHandle", 0, "a handle the model did not open: %p", handle);
	request(IRP_MJ_CLEANUP, 0, "IRP_MJ_CLEANUP", NULL, 0, NULL, 0, NULL);
	request(IRP_MJ_CLOSE, 0, "IRP_MJ_CLOSE", NULL, 0, NULL, 0, NULL);
	os_retire(b->fo, sizeof(FILE_OBJECT));
	mk_retired_add(b->fo, sizeof(FILE_OBJECT), "file-object-touched-after-close", "a closed file object");
	open_handle = NULL;
	mk_lifecycle_down();
	free(b);
	return 1;
}

ULONG mk_GetLastError(void)
{
	return last_error;
}

/* backend_windows.c calls these through windows.h's dllimport declarations. */
const void *__imp_mk_CreateFileA = (const void *)(ULONG_PTR)mk_CreateFileA;
const void *__imp_mk_DeviceIoControl = (const void *)(ULONG_PTR)mk_DeviceIoControl;
const void *__imp_mk_CloseHandle = (const void *)(ULONG_PTR)mk_CloseHandle;
const void *__imp_mk_GetLastError = (const void *)(ULONG_PTR)mk_GetLastError;
