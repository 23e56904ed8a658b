/* SPDX-License-Identifier: MIT */
/*
 * dmactl's backend (guest-driver/common/dmactl/backend.h) over the model: what
 * CreateFile, DeviceIoControl and CloseHandle do in Windows, done by building
 * IRPs and calling the driver's dispatch routines in this process. Opening
 * loads the driver and starts the device; closing removes it, unloads the
 * driver and checks that nothing leaked. The replies, and the errors with
 * their texts, are those of backend_windows.c, so dmactl prints exactly what
 * it prints over the real driver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"
#include "../../common/dmactl/backend.h"
#include "../edudma_ioctl.h"

#define WIN_ERROR_FILE_NOT_FOUND 2u
#define WIN_ERROR_INVALID_FUNCTION 1u
#define WIN_ERROR_INVALID_PARAMETER 87u
#define WIN_ERROR_NOT_FOUND 1168u

struct dmactl_backend {
	PDEVICE_OBJECT dev;
	PFILE_OBJECT fo;
};

static void win_error(char *err, size_t errlen, const char *what, uint32_t code)
{
	char text[160] = "";
	size_t n;

	os_win32_message(code, text, sizeof(text));
	n = strlen(text);
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

/* One request from "user mode": the IRP is sent; it may still pend when this returns. */
struct mk_req *mk_backend_submit(struct dmactl_backend *b, UCHAR major, ULONG code, const char *what,
				 const void *in, ULONG inlen, void *out, ULONG outlen)
{
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
static NTSTATUS request(struct dmactl_backend *b, UCHAR major, ULONG code, const char *what, const void *in,
			ULONG inlen, void *out, ULONG outlen, ULONG *got)
{
	struct mk_req *r = mk_backend_submit(b, major, code, what, in, inlen, out, outlen);
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

int dmactl_backend_open(const char *device, struct dmactl_backend **out, char *err, size_t errlen)
{
	struct dmactl_backend *b;
	char why[200] = "";
	NTSTATUS st;

	*out = NULL;
	if (mk_init(why, sizeof(why))) {
		snprintf(err, errlen, "the NT model cannot start: %s", why);
		return -1;
	}
	if (mk_lifecycle_up(why, sizeof(why))) {
		char what[300];

		snprintf(what, sizeof(what), "CreateFile(%s) (the driver did not start: %s)", device, why);
		win_error(err, errlen, what, WIN_ERROR_FILE_NOT_FOUND);
		return -1;
	}
	b = calloc(1, sizeof(*b));
	b->dev = mk_symlink_resolve(device);
	if (b->dev == NULL) {
		char what[300];

		mk_lifecycle_down();
		free(b);
		snprintf(what, sizeof(what), "CreateFile(%s)", device);
		win_error(err, errlen, what, WIN_ERROR_FILE_NOT_FOUND);
		return -1;
	}
	b->fo = os_alloc_private(sizeof(FILE_OBJECT));
	b->fo->Type = IO_TYPE_FILE;
	b->fo->Size = sizeof(FILE_OBJECT);
	b->fo->DeviceObject = b->dev;
	st = request(b, IRP_MJ_CREATE, 0, "IRP_MJ_CREATE", NULL, 0, NULL, 0, NULL);
	if (!NT_SUCCESS(st)) {
		char what[300];

		mk_lifecycle_down();
		free(b);
		snprintf(what, sizeof(what), "CreateFile(%s)", device);
		win_error(err, errlen, what, os_ntstatus_to_win32(st));
		return -1;
	}
	*out = b;
	return 0;
}

static int ioctl_call(struct dmactl_backend *b, ULONG code, const char *name, const void *in, ULONG inlen,
		      void *out, ULONG outlen, ULONG *got, uint32_t *error)
{
	NTSTATUS st = request(b, IRP_MJ_DEVICE_CONTROL, code, name, in, inlen, out, outlen, got);

	*error = 0;
	if (!NT_SUCCESS(st)) {
		*error = os_ntstatus_to_win32(st);
		return -1;
	}
	return 0;
}

static int wrong_size(const char *ioctl, ULONG got, size_t want, char *err, size_t errlen)
{
	if (got == want)
		return 0;
	snprintf(err, errlen, "%s returned %lu bytes, expected %u", ioctl, (unsigned long)got, (unsigned)want);
	return -1;
}

int dmactl_backend_info(struct dmactl_backend *b, struct dmahil_info *info, char *err, size_t errlen)
{
	ULONG got = 0;
	uint32_t e;

	if (ioctl_call(b, IOCTL_EDUDMA_INFO, "IOCTL_EDUDMA_INFO", NULL, 0, info, sizeof(*info), &got, &e)) {
		win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_INFO)", e);
		return -1;
	}
	return wrong_size("IOCTL_EDUDMA_INFO", got, sizeof(*info), err, errlen);
}

int dmactl_backend_prepare(struct dmactl_backend *b, const struct dmahil_scenario *s, struct dmahil_result *r,
			   char *err, size_t errlen)
{
	ULONG got = 0;
	uint32_t e;

	if (ioctl_call(b, IOCTL_EDUDMA_PREPARE, "IOCTL_EDUDMA_PREPARE", s, sizeof(*s), r, sizeof(*r), &got, &e)) {
		if (e == WIN_ERROR_INVALID_PARAMETER) {
			memset(r, 0, sizeof(*r));
			r->contract_version = DMAHIL_CONTRACT_VERSION;
			r->status = DMAHIL_E_INVALID;
			r->scenario = *s;
			snprintf(r->message, sizeof(r->message),
				 "the driver refused the scenario (STATUS_INVALID_PARAMETER): a field is out of range");
			return 0;
		}
		if (e == WIN_ERROR_INVALID_FUNCTION) {
			win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_PREPARE) (an edudma.sys older than this dmactl?)", e);
			return -1;
		}
		win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_PREPARE)", e);
		return -1;
	}
	return wrong_size("IOCTL_EDUDMA_PREPARE", got, sizeof(*r), err, errlen);
}

int dmactl_backend_go(struct dmactl_backend *b, uint32_t handle, struct dmahil_result *r, char *err, size_t errlen)
{
	struct edudma_go go;
	ULONG got = 0;
	uint32_t e;

	char done[64];
	int rc = 0;

	memset(&go, 0, sizeof(go));
	go.handle = handle;
	if (ioctl_call(b, IOCTL_EDUDMA_GO, "IOCTL_EDUDMA_GO", &go, sizeof(go), r, sizeof(*r), &got, &e)) {
		win_error(err, errlen, "DeviceIoControl(IOCTL_EDUDMA_GO)", e);
		rc = -1;
	} else {
		rc = wrong_size("IOCTL_EDUDMA_GO", got, sizeof(*r), err, errlen);
	}
	/* Everything the edu printed for this run is on stderr before dmactl prints its result: the host reads
	 * the two pipes apart and waits for this line before it judges the run (harness/guest/nt-model). */
	snprintf(done, sizeof(done), "MODEL: go done handle=%lu\n", (unsigned long)handle);
	os_stderr(done);
	return rc;
}

int dmactl_backend_release(struct dmactl_backend *b, uint32_t handle, char *err, size_t errlen)
{
	struct edudma_release rel;
	uint32_t e;

	memset(&rel, 0, sizeof(rel));
	rel.handle = handle;
	if (ioctl_call(b, IOCTL_EDUDMA_RELEASE, "IOCTL_EDUDMA_RELEASE", &rel, sizeof(rel), NULL, 0, NULL, &e)) {
		if (e == WIN_ERROR_NOT_FOUND)
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
	request(b, IRP_MJ_CLEANUP, 0, "IRP_MJ_CLEANUP", NULL, 0, NULL, 0, NULL);
	request(b, IRP_MJ_CLOSE, 0, "IRP_MJ_CLOSE", NULL, 0, NULL, 0, NULL);
	os_retire(b->fo, sizeof(FILE_OBJECT));
	mk_retired_add(b->fo, sizeof(FILE_OBJECT), "file-object-touched-after-close", "a closed file object");
	mk_lifecycle_down();
	free(b);
}
