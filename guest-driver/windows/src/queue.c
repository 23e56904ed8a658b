/* SPDX-License-Identifier: MIT */
/*
 * One run at a time. RUN requests wait in a cancel-safe queue (IoCsq); the
 * running one is not in the queue but carries a cancel routine that only
 * raises a flag: the engine stops at the next edu operation boundary (an edu
 * DMA cannot be aborted), unmaps, and completes the request as cancelled.
 */
#include "edudma.h"

/* mingw-w64 10 declares only the pointer types of the CSQ callbacks (except INSERT_IRP_EX). */
static DRIVER_CANCEL EduActiveCancel;

#define EDU_FROM_CSQ(c) CONTAINING_RECORD((c), EDU_DEVICE, Csq)

static NTSTATUS NTAPI EduCsqInsert(PIO_CSQ Csq, PIRP Irp, PVOID InsertContext)
{
	PEDU_DEVICE dev = EDU_FROM_CSQ(Csq);

	UNREFERENCED_PARAMETER(InsertContext);
	/* Checked under the queue lock, so a request cannot slip in after REMOVE flushed the queue. */
	if (dev->State == EduSurpriseRemoved || dev->State == EduDeleted)
		return STATUS_NO_SUCH_DEVICE;
	InsertTailList(&dev->Queue, &Irp->Tail.Overlay.ListEntry);
	return STATUS_SUCCESS;
}

static VOID NTAPI EduCsqRemove(PIO_CSQ Csq, PIRP Irp)
{
	UNREFERENCED_PARAMETER(Csq);
	RemoveEntryList(&Irp->Tail.Overlay.ListEntry);
}

static PIRP NTAPI EduCsqPeek(PIO_CSQ Csq, PIRP Irp, PVOID PeekContext)
{
	PEDU_DEVICE dev = EDU_FROM_CSQ(Csq);
	PLIST_ENTRY e = Irp == NULL ? dev->Queue.Flink : Irp->Tail.Overlay.ListEntry.Flink;

	for (; e != &dev->Queue; e = e->Flink) {
		PIRP next = CONTAINING_RECORD(e, IRP, Tail.Overlay.ListEntry);

		if (PeekContext == NULL || IoGetCurrentIrpStackLocation(next)->FileObject == (PFILE_OBJECT)PeekContext)
			return next;
	}
	return NULL;
}

static VOID NTAPI EduCsqAcquire(PIO_CSQ Csq, PKIRQL Irql)
{
	KeAcquireSpinLock(&EDU_FROM_CSQ(Csq)->QueueLock, Irql);
}

static VOID NTAPI EduCsqRelease(PIO_CSQ Csq, KIRQL Irql)
{
	KeReleaseSpinLock(&EDU_FROM_CSQ(Csq)->QueueLock, Irql);
}

/* A queued run never started: its buffers stay held until release or the handle's cleanup. */
static VOID NTAPI EduCsqCompleteCanceled(PIO_CSQ Csq, PIRP Irp)
{
	PEDU_DEVICE dev = EDU_FROM_CSQ(Csq);
	PEDU_RUN run = (PEDU_RUN)Irp->Tail.Overlay.DriverContext[0];

	run->State = EduRunFinished;
	run->Irp = NULL;
	EduCompleteIrp(Irp, Irp->IoStatus.Status == STATUS_PENDING ? STATUS_CANCELLED : Irp->IoStatus.Status, 0);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
}

VOID EduQueueInit(PEDU_DEVICE Dev)
{
	InitializeListHead(&Dev->Queue);
	KeInitializeSpinLock(&Dev->QueueLock);
	IoCsqInitializeEx(&Dev->Csq, EduCsqInsert, EduCsqRemove, EduCsqPeek, EduCsqAcquire, EduCsqRelease,
			  EduCsqCompleteCanceled);
}

/* Complete every queued request (of one file object, or all) with Status. */
VOID EduQueueFlush(PEDU_DEVICE Dev, PFILE_OBJECT Owner, NTSTATUS Status)
{
	PIRP irp;

	while ((irp = IoCsqRemoveNextIrp(&Dev->Csq, Owner)) != NULL) {
		irp->IoStatus.Status = Status;
		EduCsqCompleteCanceled(&Dev->Csq, irp);
	}
}

static VOID NTAPI EduActiveCancel(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	KIRQL irql;

	IoReleaseCancelSpinLock(Irp->CancelIrql);
	KeAcquireSpinLock(&dev->RunLock, &irql);
	if (dev->ActiveIrp == Irp)
		InterlockedExchange(&dev->CancelActive, 1);
	KeReleaseSpinLock(&dev->RunLock, irql);
}

VOID EduSetActiveCancel(PEDU_DEVICE Dev, PIRP Irp)
{
	IoSetCancelRoutine(Irp, EduActiveCancel);
	if (Irp->Cancel && IoSetCancelRoutine(Irp, NULL) != NULL)
		InterlockedExchange(&Dev->CancelActive, 1); /* cancelled before the routine was set */
}

/* Start the next queued run if the device is idle. Any IRQL <= DISPATCH_LEVEL. */
VOID EduStartNext(PEDU_DEVICE Dev)
{
	PEDU_RUN run;
	KIRQL irql;
	PIRP irp;

	KeAcquireSpinLock(&Dev->RunLock, &irql);
	if (Dev->Active != NULL) {
		KeReleaseSpinLock(&Dev->RunLock, irql);
		return;
	}
	/* Not started (stopping, removed): queued requests wait or get flushed, and the device is idle. */
	irp = Dev->State == EduStarted ? IoCsqRemoveNextIrp(&Dev->Csq, NULL) : NULL;
	if (irp == NULL) {
		KeSetEvent(&Dev->IdleEvent, IO_NO_INCREMENT, FALSE);
		KeReleaseSpinLock(&Dev->RunLock, irql);
		return;
	}
	run = (PEDU_RUN)irp->Tail.Overlay.DriverContext[0];
	Dev->Active = run;
	Dev->ActiveIrp = irp;
	Dev->CancelActive = 0;
	run->State = EduRunActive;
	KeClearEvent(&Dev->IdleEvent);
	KeReleaseSpinLockFromDpcLevel(&Dev->RunLock);
	/* still at DISPATCH_LEVEL, as the DMA routines require */
	EduSetActiveCancel(Dev, irp);
	EduRunBegin(run);
	KeLowerIrql(irql);
}
