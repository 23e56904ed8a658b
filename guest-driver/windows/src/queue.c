/* SPDX-License-Identifier: MIT */
/*
 * One run at a time. RUN requests wait in a cancel-safe queue (IoCsq). The
 * running one moves to a one-slot cancel-safe queue of its own (the pattern
 * of Windows-driver-samples general/cancel): a cancel takes it out of the
 * slot, raises CancelActive and completes it; the engine stops at the next edu
 * operation boundary (an edu DMA cannot be aborted) and unmaps. Whoever takes
 * the IRP out of the slot completes it, so a cancel never reads an IRP that
 * completion freed.
 */
#include "edudma.h"

#define EDU_FROM_CSQ(c) CONTAINING_RECORD((c), EDU_DEVICE, Csq)
#define EDU_FROM_ACTIVE_CSQ(c) CONTAINING_RECORD((c), EDU_DEVICE, ActiveCsq)

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

	run->Irp = NULL;
	run->State = EduRunFinished; /* from here a release may free the run */
	EduCompleteIrp(Irp, Irp->IoStatus.Status == STATUS_PENDING ? STATUS_CANCELLED : Irp->IoStatus.Status, 0);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
}

/* The active slot, under RunLock. */
static NTSTATUS NTAPI EduActiveInsert(PIO_CSQ Csq, PIRP Irp, PVOID InsertContext)
{
	UNREFERENCED_PARAMETER(InsertContext);
	EDU_FROM_ACTIVE_CSQ(Csq)->ActiveIrp = Irp;
	return STATUS_SUCCESS;
}

static VOID NTAPI EduActiveRemove(PIO_CSQ Csq, PIRP Irp)
{
	UNREFERENCED_PARAMETER(Irp);
	EDU_FROM_ACTIVE_CSQ(Csq)->ActiveIrp = NULL;
}

static PIRP NTAPI EduActivePeek(PIO_CSQ Csq, PIRP Irp, PVOID PeekContext)
{
	PIRP active = EDU_FROM_ACTIVE_CSQ(Csq)->ActiveIrp;

	if (Irp != NULL || active == NULL)
		return NULL;
	if (PeekContext != NULL && IoGetCurrentIrpStackLocation(active)->FileObject != (PFILE_OBJECT)PeekContext)
		return NULL;
	return active;
}

static VOID NTAPI EduActiveAcquire(PIO_CSQ Csq, PKIRQL Irql)
{
	KeAcquireSpinLock(&EDU_FROM_ACTIVE_CSQ(Csq)->RunLock, Irql);
}

static VOID NTAPI EduActiveRelease(PIO_CSQ Csq, KIRQL Irql)
{
	KeReleaseSpinLock(&EDU_FROM_ACTIVE_CSQ(Csq)->RunLock, Irql);
}

/* Cancelled while running: the engine sees the flag at its next boundary; the request ends now. */
static VOID NTAPI EduActiveCompleteCanceled(PIO_CSQ Csq, PIRP Irp)
{
	PEDU_DEVICE dev = EDU_FROM_ACTIVE_CSQ(Csq);

	InterlockedExchange(&dev->CancelActive, 1);
	EduCompleteIrp(Irp, STATUS_CANCELLED, 0);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
}

VOID EduQueueInit(PEDU_DEVICE Dev)
{
	InitializeListHead(&Dev->Queue);
	KeInitializeSpinLock(&Dev->QueueLock);
	IoCsqInitializeEx(&Dev->Csq, EduCsqInsert, EduCsqRemove, EduCsqPeek, EduCsqAcquire, EduCsqRelease,
			  EduCsqCompleteCanceled);
	IoCsqInitializeEx(&Dev->ActiveCsq, EduActiveInsert, EduActiveRemove, EduActivePeek, EduActiveAcquire,
			  EduActiveRelease, EduActiveCompleteCanceled);
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

/* The running request goes into the active slot. DISPATCH_LEVEL. */
NTSTATUS EduSetActive(PEDU_DEVICE Dev, PIRP Irp)
{
	return IoCsqInsertIrpEx(&Dev->ActiveCsq, Irp, &Dev->ActiveCsqContext, NULL);
}

/* The running request back from the slot, or NULL when a cancel completed it. */
PIRP EduTakeActive(PEDU_DEVICE Dev)
{
	return IoCsqRemoveIrp(&Dev->ActiveCsq, &Dev->ActiveCsqContext);
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
	Dev->CancelActive = 0;
	run->State = EduRunActive;
	KeClearEvent(&Dev->IdleEvent);
	KeReleaseSpinLockFromDpcLevel(&Dev->RunLock);
	/* still at DISPATCH_LEVEL, as the DMA routines require; a request cancelled already is completed
	 * by the slot, and the engine stops at its first boundary */
	EduSetActive(Dev, irp);
	EduRunBegin(run);
	KeLowerIrql(irql);
}
