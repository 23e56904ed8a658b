/* SPDX-License-Identifier: MIT */
/*
 * IRP_MJ_CREATE / CLEANUP / CLOSE / DEVICE_CONTROL.
 * Every control code is METHOD_BUFFERED; each buffer length and each scenario
 * field is checked before anything is allocated or written.
 */
#include "edudma.h"

NTSTATUS NTAPI EduDispatchCreate(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	NTSTATUS status = IoAcquireRemoveLock(&dev->RemoveLock, Irp);

	if (!NT_SUCCESS(status))
		return EduCompleteIrp(Irp, status, 0);
	status = dev->State == EduSurpriseRemoved || dev->State == EduDeleted ? STATUS_NO_SUCH_DEVICE : STATUS_SUCCESS;
	EduCompleteIrp(Irp, status, 0);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
	return status;
}

/* The last handle to a file object is closed: drop its queued runs and free its held buffers. */
NTSTATUS NTAPI EduDispatchCleanup(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	PFILE_OBJECT fo = IoGetCurrentIrpStackLocation(Irp)->FileObject;
	NTSTATUS status = IoAcquireRemoveLock(&dev->RemoveLock, Irp);

	if (!NT_SUCCESS(status))
		return EduCompleteIrp(Irp, status, 0);
	EduQueueFlush(dev, fo, STATUS_CANCELLED);
	EduReleaseOwner(dev, fo, FALSE);
	EduCompleteIrp(Irp, STATUS_SUCCESS, 0);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
	return STATUS_SUCCESS;
}

/* No request of this file object is left: free what a run finished after cleanup. */
NTSTATUS NTAPI EduDispatchClose(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	PFILE_OBJECT fo = IoGetCurrentIrpStackLocation(Irp)->FileObject;

	EduReleaseOwner(dev, fo, FALSE);
	return EduCompleteIrp(Irp, STATUS_SUCCESS, 0);
}

NTSTATUS EduValidateScenario(const struct dmahil_scenario *S)
{
	ULONG i;

	if (S->contract_version != DMAHIL_CONTRACT_VERSION)
		return STATUS_INVALID_PARAMETER;
	if (S->direction < DMAHIL_DIR_TO_DEVICE || S->direction > DMAHIL_DIR_ROUND_TRIP)
		return STATUS_INVALID_PARAMETER;
	if (S->method < DMAHIL_METHOD_STREAMING || S->method > DMAHIL_METHOD_COMMON_BUFFER)
		return STATUS_INVALID_PARAMETER;
	if (S->sync < DMAHIL_SYNC_FULL || S->sync > DMAHIL_SYNC_MINIMAL)
		return STATUS_INVALID_PARAMETER;
	if (S->fault >= DMAHIL_FAULT_COUNT)
		return STATUS_INVALID_PARAMETER;
	if (S->size < 1 || S->size > DMAHIL_MAX_SIZE)
		return STATUS_INVALID_PARAMETER;
	if (S->offset >= DMAHIL_PAGE_SIZE)
		return STATUS_INVALID_PARAMETER;
	if (S->timeout_ms > EDUDMA_MAX_TIMEOUT_MS)
		return STATUS_INVALID_PARAMETER;
	for (i = 0; i < ARRAYSIZE(S->reserved); i++)
		if (S->reserved[i] != 0)
			return STATUS_INVALID_PARAMETER;
	if (S->test_flags != 0) /* the test build's driver-side lies are Linux only */
		return STATUS_INVALID_PARAMETER;
	return STATUS_SUCCESS;
}

static VOID EduFillInfo(PEDU_DEVICE Dev, struct dmahil_info *Info)
{
	RtlZeroMemory(Info, sizeof(*Info));
	Info->contract_version = DMAHIL_CONTRACT_VERSION;
	Info->device_id = Dev->DeviceId;
	Info->dma_mask_bits = Dev->DmaMaskBits;
	Info->faults_supported = EduFaultsSupported(Dev);
	Info->methods_supported = (1u << DMAHIL_METHOD_STREAMING) | (1u << DMAHIL_METHOD_SCATTER_GATHER) |
				  (1u << DMAHIL_METHOD_COMMON_BUFFER);
	Info->max_size = DMAHIL_MAX_SIZE;
	ExAcquireFastMutex(&Dev->HeldMutex);
	Info->held = Dev->HeldCount;
	ExReleaseFastMutex(&Dev->HeldMutex);
	Info->adapter_version = Dev->AdapterVersion;
	Info->dma_ops_size = Dev->DmaOpsSize;
	Info->flush_dma_buffer = Dev->FlushDmaBuffer != NULL;
	EduCopyString(Info->driver_version, sizeof(Info->driver_version), EDUDMA_DRIVER_VERSION);
	EduCopyString(Info->api, sizeof(Info->api), Dev->AdapterVersion == 3 ? "wdm-dma-v3" : "wdm-dma-v2");
	EduCopyString(Info->os, sizeof(Info->os), "windows");
	EduCopyString(Info->device, sizeof(Info->device), Dev->Location);
}

/* A refused run: report it without holding anything. */
static NTSTATUS EduReportRefused(PEDU_DEVICE Dev, PEDU_RUN Run, PIRP Irp)
{
	RtlCopyMemory(Irp->AssociatedIrp.SystemBuffer, Run->Result, sizeof(*Run->Result));
	((struct dmahil_result *)Irp->AssociatedIrp.SystemBuffer)->handle = 0;
	if (Run->Handle != 0) {
		ExAcquireFastMutex(&Dev->HeldMutex);
		RemoveEntryList(&Run->Link);
		Dev->HeldCount--;
		ExReleaseFastMutex(&Dev->HeldMutex);
	}
	EduRunFree(Run);
	return STATUS_SUCCESS;
}

/* Queue a created run's DMA on this request; it completes with the result. */
static NTSTATUS EduQueueRun(PEDU_DEVICE Dev, PEDU_RUN Run, PIRP Irp, PBOOLEAN Pending)
{
	NTSTATUS status;

	/* Queued: the remove lock is held until the request completes. */
	status = IoAcquireRemoveLock(&Dev->RemoveLock, Irp);
	if (!NT_SUCCESS(status)) {
		EduReportRefused(Dev, Run, Irp);
		return status;
	}
	Run->State = EduRunQueued;
	Run->Irp = Irp;
	Irp->Tail.Overlay.DriverContext[0] = Run;
	status = IoCsqInsertIrpEx(&Dev->Csq, Irp, NULL, NULL);
	if (!NT_SUCCESS(status)) {
		/* not queued (the device is going away); the request may be marked pending already */
		IoReleaseRemoveLock(&Dev->RemoveLock, Irp);
		Run->Irp = NULL;
		EduReportRefused(Dev, Run, Irp);
		IoMarkIrpPending(Irp);
		EduCompleteIrp(Irp, status, 0);
		*Pending = TRUE;
		return STATUS_PENDING;
	}
	*Pending = TRUE;
	EduStartNext(Dev);
	return STATUS_PENDING;
}

/*
 * RUN (Prepare FALSE): create the run and queue its DMA. PREPARE (Prepare TRUE): create the run, hold
 * it and complete at once with its pages; IOCTL_EDUDMA_GO queues it later.
 */
static NTSTATUS EduIoctlRun(PEDU_DEVICE Dev, PIRP Irp, PIO_STACK_LOCATION Sp, BOOLEAN Prepare, PBOOLEAN Pending)
{
	struct dmahil_scenario s;
	PEDU_RUN run = NULL;
	NTSTATUS status;

	if (Sp->Parameters.DeviceIoControl.InputBufferLength != sizeof(struct dmahil_scenario) ||
	    Sp->Parameters.DeviceIoControl.OutputBufferLength != sizeof(struct dmahil_result))
		return STATUS_INVALID_PARAMETER;
	RtlCopyMemory(&s, Irp->AssociatedIrp.SystemBuffer, sizeof(s));
	status = EduValidateScenario(&s);
	if (!NT_SUCCESS(status))
		return status;
	if (Dev->State != EduStarted || Dev->Adapter == NULL) {
		struct dmahil_result *r = (struct dmahil_result *)Irp->AssociatedIrp.SystemBuffer;

		RtlZeroMemory(r, sizeof(*r));
		r->contract_version = DMAHIL_CONTRACT_VERSION;
		r->status = DMAHIL_E_DEVICE;
		r->scenario = s;
		EduCopyString(r->message, sizeof(r->message), "device not started");
		Irp->IoStatus.Information = sizeof(*r);
		return STATUS_SUCCESS;
	}

	status = EduRunCreate(Dev, &s, Sp->FileObject, &run);
	if (!NT_SUCCESS(status))
		return status;
	if (run->State == EduRunFinished) {
		Irp->IoStatus.Information = sizeof(struct dmahil_result);
		return EduReportRefused(Dev, run, Irp);
	}
	if (Prepare) {
		/* Held until GO or release; nothing is mapped and the device has not run. */
		ExAcquireFastMutex(&Dev->HeldMutex);
		run->State = EduRunPrepared;
		ExReleaseFastMutex(&Dev->HeldMutex);
		RtlCopyMemory(Irp->AssociatedIrp.SystemBuffer, run->Result, sizeof(*run->Result));
		Irp->IoStatus.Information = sizeof(struct dmahil_result);
		return STATUS_SUCCESS;
	}
	return EduQueueRun(Dev, run, Irp, Pending);
}

/* GO: the prepared run's DMA, queued on this request. */
static NTSTATUS EduIoctlGo(PEDU_DEVICE Dev, PIRP Irp, PIO_STACK_LOCATION Sp, PBOOLEAN Pending)
{
	struct edudma_go go;
	PEDU_RUN found = NULL;
	BOOLEAN prepared = FALSE;
	PLIST_ENTRY e;

	if (Sp->Parameters.DeviceIoControl.InputBufferLength != sizeof(go) ||
	    Sp->Parameters.DeviceIoControl.OutputBufferLength != sizeof(struct dmahil_result))
		return STATUS_INVALID_PARAMETER;
	RtlCopyMemory(&go, Irp->AssociatedIrp.SystemBuffer, sizeof(go));
	if (go.handle == 0 || go.reserved != 0)
		return STATUS_INVALID_PARAMETER;
	if (Dev->State != EduStarted || Dev->Adapter == NULL)
		return STATUS_DEVICE_NOT_READY;
	ExAcquireFastMutex(&Dev->HeldMutex);
	for (e = Dev->Held.Flink; e != &Dev->Held; e = e->Flink) {
		PEDU_RUN run = CONTAINING_RECORD(e, EDU_RUN, Link);

		if (run->Handle == go.handle) {
			found = run;
			break;
		}
	}
	/* Claimed under the mutex: a release of the same handle now sees it busy. */
	if (found != NULL && found->State == EduRunPrepared) {
		found->State = EduRunQueued;
		prepared = TRUE;
	}
	ExReleaseFastMutex(&Dev->HeldMutex);
	if (found == NULL)
		return STATUS_NOT_FOUND;
	if (!prepared)
		return STATUS_INVALID_DEVICE_STATE; /* it ran, or is running */
	return EduQueueRun(Dev, found, Irp, Pending);
}

NTSTATUS NTAPI EduDispatchDeviceControl(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
	ULONG inLen = sp->Parameters.DeviceIoControl.InputBufferLength;
	ULONG outLen = sp->Parameters.DeviceIoControl.OutputBufferLength;
	BOOLEAN pending = FALSE;
	NTSTATUS status;

	status = IoAcquireRemoveLock(&dev->RemoveLock, Irp);
	if (!NT_SUCCESS(status))
		return EduCompleteIrp(Irp, status, 0);
	Irp->IoStatus.Information = 0;

	switch (sp->Parameters.DeviceIoControl.IoControlCode) {
	case IOCTL_EDUDMA_INFO:
		if (inLen != 0 || outLen != sizeof(struct dmahil_info)) {
			status = STATUS_INVALID_PARAMETER;
		} else if (dev->State != EduStarted) {
			status = STATUS_DEVICE_NOT_READY;
		} else {
			EduFillInfo(dev, (struct dmahil_info *)Irp->AssociatedIrp.SystemBuffer);
			Irp->IoStatus.Information = sizeof(struct dmahil_info);
			status = STATUS_SUCCESS;
		}
		break;

	case IOCTL_EDUDMA_RUN:
		status = EduIoctlRun(dev, Irp, sp, FALSE, &pending);
		break;

	case IOCTL_EDUDMA_PREPARE:
		status = EduIoctlRun(dev, Irp, sp, TRUE, &pending);
		break;

	case IOCTL_EDUDMA_GO:
		status = EduIoctlGo(dev, Irp, sp, &pending);
		break;

	case IOCTL_EDUDMA_RELEASE: {
		struct edudma_release rel;

		if (inLen != sizeof(rel) || outLen != 0) {
			status = STATUS_INVALID_PARAMETER;
			break;
		}
		RtlCopyMemory(&rel, Irp->AssociatedIrp.SystemBuffer, sizeof(rel));
		status = rel.handle == 0 || rel.reserved != 0 ? STATUS_INVALID_PARAMETER
							       : EduReleaseHandle(dev, rel.handle);
		break;
	}

	default:
		status = STATUS_INVALID_DEVICE_REQUEST;
		break;
	}

	if (pending) {
		IoReleaseRemoveLock(&dev->RemoveLock, Irp);
		return STATUS_PENDING;
	}
	if (!NT_SUCCESS(status))
		Irp->IoStatus.Information = 0;
	EduCompleteIrp(Irp, status, Irp->IoStatus.Information);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
	return status;
}
