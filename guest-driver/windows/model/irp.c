/* SPDX-License-Identifier: MIT */
/*
 * IRPs and the I/O manager around them: sending, completion (completion
 * routines, pending propagation), the end of a request (buffered output
 * copied back, the IRP freed), cancel, the cancel-safe queue (IoCsq*),
 * remove locks, IoBuildSynchronousFsdRequest, IoForwardIrpSynchronously,
 * PoCallDriver. The IoCsq and completion order follow ReactOS
 * (ntoskrnl/io/iomgr/irp.c, lib/drivers/csq) and the WDK docs.
 *
 * A finished IRP is freed at once, as the I/O manager's completion APC may do
 * as soon as the request was marked pending, and left inaccessible: the
 * driver's next touch is reported (irp-touched-after-completion).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"

enum irp_kind { KIND_REQ, KIND_FSD, KIND_FREE };

struct mk_irp {
	PIRP irp;
	size_t bytes;
	enum irp_kind kind;
	struct mk_req *req;
	PKEVENT event;
	PIO_STATUS_BLOCK iosb;
	int completing;
	struct mk_irp *next;
};
static struct mk_irp *irps;

static struct mk_irp *rec_of(PIRP irp)
{
	struct mk_irp *r;

	for (r = irps; r != NULL; r = r->next)
		if (r->irp == irp)
			return r;
	return NULL;
}

int mk_irp_live(PIRP irp)
{
	return rec_of(irp) != NULL;
}

static struct mk_irp *live_irp(PIRP irp, const char *what)
{
	struct mk_irp *r = rec_of(irp);

	if (r == NULL)
		mk_bugcheck("irp-touched-after-completion", "%s with IRP %p, which is not a live IRP (completed and freed?)",
			    what, (void *)irp);
	return r;
}

PIRP mk_irp_alloc_impl(CCHAR stack)
{
	size_t bytes = (sizeof(IRP) + (size_t)stack * sizeof(IO_STACK_LOCATION) + PAGE_SIZE - 1) & ~(size_t)(PAGE_SIZE - 1);
	PIRP irp = os_alloc_private(bytes);
	struct mk_irp *r = calloc(1, sizeof(*r));

	irp->Type = IO_TYPE_IRP;
	irp->Size = (USHORT)(sizeof(IRP) + (size_t)stack * sizeof(IO_STACK_LOCATION));
	irp->StackCount = stack;
	irp->CurrentLocation = (CHAR)(stack + 1);
	irp->Tail.Overlay.CurrentStackLocation = (PIO_STACK_LOCATION)(irp + 1) + stack;
	irp->RequestorMode = KernelMode;
	irp->IoStatus.Status = STATUS_NOT_SUPPORTED;
	r->irp = irp;
	r->bytes = bytes;
	r->kind = KIND_FREE;
	r->next = irps;
	irps = r;
	return irp;
}

static void irp_free(struct mk_irp *r)
{
	struct mk_irp **pp;

	for (pp = &irps; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	if (r->req != NULL && r->req->sysbuf != NULL) {
		os_retire(r->req->sysbuf, r->req->sysbuf_bytes);
		mk_retired_add(r->req->sysbuf, r->req->sysbuf_bytes, "irp-touched-after-completion",
			       "the system buffer of a completed request");
		r->req->sysbuf = NULL;
	}
	if (r->req != NULL) {
		r->req->freed = 1;
		r->req->irp = NULL;
	}
	os_retire(r->irp, r->bytes);
	mk_retired_add(r->irp, r->bytes, "irp-touched-after-completion", "an IRP that was completed and freed");
	free(r);
}

/* ---- sending ---- */

static NTSTATUS call_driver(PDEVICE_OBJECT dev, PIRP irp)
{
	PIO_STACK_LOCATION sp;
	PDRIVER_DISPATCH fn;
	KIRQL irql = mk_cpu->irql;
	int locks = mk_cpu->spinlocks;
	NTSTATUS st;

	if (mk_devobj_of(dev) == NULL)
		mk_bugcheck("invalid-device-object", "IoCallDriver to %p, not a live device object", (void *)dev);
	if (irp->CurrentLocation <= 1)
		mk_bugcheck("irp-stack-overflow", "IoCallDriver with no stack location left (StackCount %d)",
			    (int)irp->StackCount);
	irp->CurrentLocation--;
	irp->Tail.Overlay.CurrentStackLocation--;
	sp = irp->Tail.Overlay.CurrentStackLocation;
	sp->DeviceObject = dev;
	fn = dev->DriverObject->MajorFunction[sp->MajorFunction];
	{
		MK_CALLOUT();
		st = fn(dev, irp);
	}
	if (mk_cpu->irql != irql || mk_cpu->spinlocks != locks)
		mk_bugcheck_at("wrong-irql", "dispatch", (ULONG_PTR)fn,
			       "a dispatch routine (major %u) returned at IRQL %u holding %d spin lock(s); called at %u",
			       (unsigned)sp->MajorFunction, (unsigned)mk_cpu->irql, mk_cpu->spinlocks - locks, (unsigned)irql);
	return st;
}

NTSTATUS FASTCALL mk_IofCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	MK_DDI("IofCallDriver");

	mk_irql_le(DISPATCH_LEVEL);
	live_irp(Irp, "IoCallDriver");
	return call_driver(DeviceObject, Irp);
}

NTSTATUS NTAPI mk_PoCallDriver(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	MK_DDI("PoCallDriver");

	mk_irql_le(DISPATCH_LEVEL);
	live_irp(Irp, "PoCallDriver");
	if (IoGetNextIrpStackLocation(Irp)->MajorFunction != IRP_MJ_POWER)
		mk_bugcheck("invalid-parameter", "PoCallDriver with a major function %u IRP",
			    (unsigned)IoGetNextIrpStackLocation(Irp)->MajorFunction);
	return call_driver(DeviceObject, Irp);
}

VOID NTAPI mk_PoStartNextPowerIrp(PIRP Irp)
{
	MK_DDI("PoStartNextPowerIrp");

	mk_irql_le(DISPATCH_LEVEL);
	live_irp(Irp, "PoStartNextPowerIrp");
	if (IoGetCurrentIrpStackLocation(Irp)->MajorFunction != IRP_MJ_POWER)
		mk_bugcheck("invalid-parameter", "PoStartNextPowerIrp on a non-power IRP");
}

/* ---- completion ---- */

static struct {
	PIRP irp;
	PDRIVER_CANCEL routine;
	PDEVICE_OBJECT dev;
	KIRQL irql;
	int armed;
} slow_cancel;

static void cancel_half2(void *arg);

static void finish_top(struct mk_irp *r)
{
	PIRP irp = r->irp;

	if (r->kind == KIND_FSD) {
		*r->iosb = irp->IoStatus;
		mk_event_set_impl(r->event);
		irp_free(r);
	} else if (r->kind == KIND_REQ) {
		struct mk_req *q = r->req;

		q->status = irp->IoStatus.Status;
		q->info = irp->IoStatus.Information;
		q->pending_marked = irp->PendingReturned;
		if (q->sysbuf != NULL && q->out != NULL && !NT_ERROR(q->status)) {
			if (q->info > q->out_len)
				mk_bugcheck("irp-information-too-large",
					    "a buffered request completed with Information %llu, output buffer %lu",
					    (unsigned long long)q->info, (unsigned long)q->out_len);
			memcpy(q->out, q->sysbuf, q->info);
			q->copied = (ULONG)q->info;
		}
		q->done = 1;
		if (q->dispatch_returned || irp->PendingReturned)
			irp_free(r);
	} else {
		mk_bugcheck("irp-invalid", "an IRP the model did not send reached the top of its stack");
	}
	if (slow_cancel.armed && slow_cancel.irp == irp)
		cancel_half2(NULL); /* the stalled canceller wakes up now */
}

void mk_irp_complete_impl(PIRP irp)
{
	struct mk_irp *r = rec_of(irp);
	PIO_STACK_LOCATION sp;

	if (r == NULL)
		mk_bugcheck("irp-completed-twice", "IoCompleteRequest(%p): not a live IRP (completed before?)", (void *)irp);
	if (r->completing)
		mk_bugcheck("irp-completed-twice", "IoCompleteRequest(%p) while its completion is running", (void *)irp);
	if (irp->CurrentLocation > irp->StackCount)
		mk_bugcheck("irp-completed-twice", "IoCompleteRequest(%p): the IRP is already back at its top", (void *)irp);
	if (irp->IoStatus.Status == STATUS_PENDING)
		mk_bugcheck("irp-completed-pending", "IoCompleteRequest with IoStatus.Status == STATUS_PENDING");
	if (irp->CancelRoutine != NULL)
		mk_bugcheck("irp-completed-with-cancel-routine",
			    "IoCompleteRequest(%p) while a cancel routine (0x%llx) is set", (void *)irp,
			    (unsigned long long)mk_rva((ULONG_PTR)irp->CancelRoutine));
	r->completing = 1;
	for (sp = IoGetCurrentIrpStackLocation(irp); irp->CurrentLocation <= irp->StackCount; sp++) {
		PIO_COMPLETION_ROUTINE routine = sp->CompletionRoutine;
		PVOID context = sp->Context;
		UCHAR control = sp->Control;
		NTSTATUS st = irp->IoStatus.Status;

		irp->PendingReturned = (control & SL_PENDING_RETURNED) != 0;
		memset(sp, 0, sizeof(*sp));
		irp->CurrentLocation++;
		irp->Tail.Overlay.CurrentStackLocation++;
		if (routine != NULL && ((NT_SUCCESS(st) && (control & SL_INVOKE_ON_SUCCESS)) ||
					(!NT_SUCCESS(st) && (control & SL_INVOKE_ON_ERROR)) ||
					(irp->Cancel && (control & SL_INVOKE_ON_CANCEL)))) {
			PDEVICE_OBJECT dev = irp->CurrentLocation <= irp->StackCount
						     ? IoGetCurrentIrpStackLocation(irp)->DeviceObject
						     : NULL;
			NTSTATUS rs;

			{
				MK_CALLOUT();
				rs = routine(dev, irp, context);
			}
			if (rs == STATUS_MORE_PROCESSING_REQUIRED) {
				r->completing = 0;
				return;
			}
		} else if (irp->PendingReturned && irp->CurrentLocation <= irp->StackCount) {
			IoMarkIrpPending(irp);
		}
	}
	r->completing = 0;
	finish_top(r);
}

VOID FASTCALL mk_IofCompleteRequest(PIRP Irp, CCHAR PriorityBoost)
{
	MK_DDI("IofCompleteRequest");

	(void)PriorityBoost;
	mk_irql_le(DISPATCH_LEVEL);
	mk_irp_complete_impl(Irp);
}

/* ---- requests the model sends (user I/O, the PnP manager) ---- */

struct mk_req *mk_req_sending; /* the latest request sent, from before its dispatch routine runs */

struct mk_req *mk_req_send(PDEVICE_OBJECT top, PIRP irp, const char *what, void *out, ULONG out_len,
			   size_t sysbuf_bytes)
{
	struct mk_irp *r = rec_of(irp);
	struct mk_req *q = calloc(1, sizeof(*q));
	PIO_STACK_LOCATION topsp = (PIO_STACK_LOCATION)(irp + 1) + (irp->StackCount - 1);
	PDRIVER_DISPATCH fn = top->DriverObject->MajorFunction[topsp->MajorFunction];
	int marked;
	NTSTATUS st;

	q->irp = irp;
	q->what = what;
	mk_req_sending = q;
	r->kind = KIND_REQ;
	r->req = q;
	if (irp->AssociatedIrp.SystemBuffer != NULL && (irp->Flags & IRP_BUFFERED_IO)) {
		q->sysbuf = irp->AssociatedIrp.SystemBuffer;
		q->sysbuf_bytes = sysbuf_bytes;
	}
	q->out = out;
	q->out_len = out_len;
	st = call_driver(top, irp);
	q->dispatch_returned = 1;
	q->dispatch_status = st;
	marked = q->done ? q->pending_marked : (topsp->Control & SL_PENDING_RETURNED) != 0;
	if (st == STATUS_PENDING) {
		if (!marked)
			mk_bugcheck_at("pending-not-marked", "dispatch", (ULONG_PTR)fn,
				       "%s: the dispatch routine returned STATUS_PENDING without IoMarkIrpPending", what);
	} else {
		if (marked)
			mk_bugcheck_at("pending-marked-not-returned", "dispatch", (ULONG_PTR)fn,
				       "%s: IoMarkIrpPending, then the dispatch routine returned 0x%08lx, not STATUS_PENDING",
				       what, (unsigned long)st);
		if (!q->done)
			mk_bugcheck_at("irp-not-completed", "dispatch", (ULONG_PTR)fn,
				       "%s: the dispatch routine returned 0x%08lx without completing the IRP or pending it",
				       what, (unsigned long)st);
		if (st != q->status)
			mk_bugcheck_at("status-mismatch", "dispatch", (ULONG_PTR)fn,
				       "%s: the dispatch routine returned 0x%08lx, the IRP completed with 0x%08lx", what,
				       (unsigned long)st, (unsigned long)q->status);
	}
	if (q->done && !q->freed) {
		struct mk_irp *still = rec_of(irp);

		if (still != NULL)
			irp_free(still);
	}
	return q;
}

int mk_req_done(void *req)
{
	return ((struct mk_req *)req)->done;
}

int mk_req_wait(struct mk_req *r, uint64_t deadline)
{
	return mk_world_run(mk_req_done, r, deadline);
}

void mk_req_free(struct mk_req *r)
{
	free(r);
}

void mk_irp_check_leaks(void)
{
	struct mk_irp *r;

	for (r = irps; r != NULL; r = r->next)
		mk_bugcheck_at("irp-leak", "DriverUnload", 0, "IRP %p (%s) was never completed", (void *)r->irp,
			       r->req != NULL ? r->req->what : "built by the driver");
}

/* ---- cancel ---- */

static void cancel_call(PIRP irp, PDRIVER_CANCEL routine, PDEVICE_OBJECT dev)
{
	{
		MK_CALLOUT();
		routine(dev, irp);
	}
	if (!mk_cancel_lock_free())
		mk_bugcheck_at("cancel-lock-not-released", "CancelRoutine", (ULONG_PTR)routine,
			       "the cancel routine returned holding the cancel spin lock");
}

static void cancel_half2(void *arg)
{
	struct mk_cpu c;
	PIRP irp = slow_cancel.irp;
	PDRIVER_CANCEL routine = slow_cancel.routine;

	(void)arg;
	if (!slow_cancel.armed)
		return;
	slow_cancel.armed = 0;
	mk_trace("slow canceller: cancel routine 0x%llx for IRP %p runs now", (unsigned long long)mk_rva((ULONG_PTR)routine),
		 (void *)irp);
	mk_cpu_push(&c, slow_cancel.irql, "the cancelling CPU");
	c.irql = DISPATCH_LEVEL; /* it holds the cancel spin lock */
	mk_cancel_lock_unpark();
	cancel_call(irp, routine, slow_cancel.dev);
	mk_cpu_pop(&c, "CancelRoutine", (ULONG_PTR)routine);
}

int mk_slow_cancel_pending(void)
{
	return slow_cancel.armed;
}

void mk_slow_cancel_run(void)
{
	cancel_half2(NULL);
}

void mk_irp_cancel(PIRP irp, int slow)
{
	PDRIVER_CANCEL routine;
	KIRQL old;

	live_irp(irp, "IoCancelIrp");
	mk_cancel_lock_acquire(&old);
	irp->Cancel = TRUE;
	routine = (PDRIVER_CANCEL)InterlockedExchangePointer((PVOID *)&irp->CancelRoutine, NULL);
	if (routine == NULL) {
		mk_cancel_lock_release(old);
		return;
	}
	irp->CancelIrql = old;
	if (!slow) {
		cancel_call(irp, routine, IoGetCurrentIrpStackLocation(irp)->DeviceObject);
		if (mk_cpu->irql != old)
			mk_bugcheck_at("wrong-irql", "CancelRoutine", (ULONG_PTR)routine,
				       "the cancel routine returned at IRQL %u, IoCancelIrp was called at %u",
				       (unsigned)mk_cpu->irql, (unsigned)old);
		return;
	}
	/* the cancelling CPU stalls between taking the routine and calling it */
	slow_cancel.irp = irp;
	slow_cancel.routine = routine;
	slow_cancel.dev = IoGetCurrentIrpStackLocation(irp)->DeviceObject;
	slow_cancel.irql = old;
	slow_cancel.armed = 1;
	mk_cancel_lock_park();
	mk_cpu->irql = old;
}

/* ---- the cancel-safe queue ---- */

static PIO_CSQ csq_of(PIRP irp)
{
	PVOID c = irp->Tail.Overlay.DriverContext[3];

	if (c != NULL && ((PIO_CSQ_IRP_CONTEXT)c)->Type == IO_TYPE_CSQ_IRP_CONTEXT)
		return ((PIO_CSQ_IRP_CONTEXT)c)->Csq;
	return (PIO_CSQ)c;
}

static void csq_lock(PIO_CSQ csq, PKIRQL irql)
{
	MK_CALLOUT();
	csq->CsqAcquireLock(csq, irql);
}

static void csq_unlock(PIO_CSQ csq, KIRQL irql)
{
	MK_CALLOUT();
	csq->CsqReleaseLock(csq, irql);
}

static void csq_remove(PIO_CSQ csq, PIRP irp)
{
	MK_CALLOUT();
	csq->CsqRemoveIrp(csq, irp);
}

static void csq_complete_canceled(PIO_CSQ csq, PIRP irp)
{
	MK_CALLOUT();
	csq->CsqCompleteCanceledIrp(csq, irp);
}

static PIRP csq_peek(PIO_CSQ csq, PIRP irp, PVOID ctx)
{
	MK_CALLOUT();
	return csq->CsqPeekNextIrp(csq, irp, ctx);
}

/*
 * Out of the queue, and every tie to it cut: the driver's CsqRemoveIrp, the context's pointer (so a later
 * IoCsqRemoveIrp finds nothing) and DriverContext[3], as the WRK's cancelapi.c does on each way out.
 * Under the queue's lock.
 */
static void csq_detach(PIO_CSQ csq, PIRP irp)
{
	PVOID c = irp->Tail.Overlay.DriverContext[3];

	csq_remove(csq, irp);
	if (c != NULL && ((PIO_CSQ_IRP_CONTEXT)c)->Type == IO_TYPE_CSQ_IRP_CONTEXT)
		((PIO_CSQ_IRP_CONTEXT)c)->Irp = NULL;
	irp->Tail.Overlay.DriverContext[3] = NULL;
}

static VOID NTAPI csq_cancel_routine(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PIO_CSQ csq = csq_of(Irp);
	KIRQL irql;

	(void)DeviceObject;
	mk_cancel_lock_release(Irp->CancelIrql);
	csq_lock(csq, &irql);
	csq_detach(csq, Irp);
	csq_unlock(csq, irql);
	csq_complete_canceled(csq, Irp);
}

NTSTATUS NTAPI mk_IoCsqInitializeEx(PIO_CSQ Csq, PIO_CSQ_INSERT_IRP_EX CsqInsertIrp, PIO_CSQ_REMOVE_IRP CsqRemoveIrp,
				    PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp, PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock,
				    PIO_CSQ_RELEASE_LOCK CsqReleaseLock,
				    PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp)
{
	MK_DDI("IoCsqInitializeEx");

	mk_irql_le(DISPATCH_LEVEL);
	Csq->Type = IO_TYPE_CSQ_EX;
	Csq->CsqInsertIrp = (PIO_CSQ_INSERT_IRP)(void (*)(void))CsqInsertIrp;
	Csq->CsqRemoveIrp = CsqRemoveIrp;
	Csq->CsqPeekNextIrp = CsqPeekNextIrp;
	Csq->CsqAcquireLock = CsqAcquireLock;
	Csq->CsqReleaseLock = CsqReleaseLock;
	Csq->CsqCompleteCanceledIrp = CsqCompleteCanceledIrp;
	Csq->ReservePointer = NULL;
	return STATUS_SUCCESS;
}

NTSTATUS NTAPI mk_IoCsqInitialize(PIO_CSQ Csq, PIO_CSQ_INSERT_IRP CsqInsertIrp, PIO_CSQ_REMOVE_IRP CsqRemoveIrp,
				  PIO_CSQ_PEEK_NEXT_IRP CsqPeekNextIrp, PIO_CSQ_ACQUIRE_LOCK CsqAcquireLock,
				  PIO_CSQ_RELEASE_LOCK CsqReleaseLock, PIO_CSQ_COMPLETE_CANCELED_IRP CsqCompleteCanceledIrp)
{
	MK_DDI("IoCsqInitialize");

	mk_irql_le(DISPATCH_LEVEL);
	Csq->Type = IO_TYPE_CSQ;
	Csq->CsqInsertIrp = CsqInsertIrp;
	Csq->CsqRemoveIrp = CsqRemoveIrp;
	Csq->CsqPeekNextIrp = CsqPeekNextIrp;
	Csq->CsqAcquireLock = CsqAcquireLock;
	Csq->CsqReleaseLock = CsqReleaseLock;
	Csq->CsqCompleteCanceledIrp = CsqCompleteCanceledIrp;
	Csq->ReservePointer = NULL;
	return STATUS_SUCCESS;
}

static void csq_check(PIO_CSQ Csq, const char *ddi)
{
	if (Csq->Type != IO_TYPE_CSQ_EX && Csq->Type != IO_TYPE_CSQ)
		mk_bugcheck("csq-not-initialized", "%s on a queue not set up by IoCsqInitialize(Ex)", ddi);
}

static NTSTATUS csq_insert(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context, PVOID InsertContext);

NTSTATUS NTAPI mk_IoCsqInsertIrpEx(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context, PVOID InsertContext)
{
	MK_DDI("IoCsqInsertIrpEx");

	mk_irql_le(DISPATCH_LEVEL);
	return csq_insert(Csq, Irp, Context, InsertContext);
}

VOID NTAPI mk_IoCsqInsertIrp(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context)
{
	MK_DDI("IoCsqInsertIrp");

	mk_irql_le(DISPATCH_LEVEL);
	csq_insert(Csq, Irp, Context, NULL);
}

static NTSTATUS csq_insert(PIO_CSQ Csq, PIRP Irp, PIO_CSQ_IRP_CONTEXT Context, PVOID InsertContext)
{
	KIRQL irql;
	NTSTATUS st = STATUS_SUCCESS;

	live_irp(Irp, "IoCsqInsertIrp(Ex)");
	csq_check(Csq, "IoCsqInsertIrp(Ex)");
	csq_lock(Csq, &irql);
	{
		MK_CALLOUT();
		if (Csq->Type == IO_TYPE_CSQ_EX)
			st = ((PIO_CSQ_INSERT_IRP_EX)(void (*)(void))Csq->CsqInsertIrp)(Csq, Irp, InsertContext);
		else
			Csq->CsqInsertIrp(Csq, Irp);
	}
	if (!NT_SUCCESS(st)) {
		csq_unlock(Csq, irql);
		return st;
	}
	if (Context != NULL) {
		Context->Type = IO_TYPE_CSQ_IRP_CONTEXT;
		Context->Irp = Irp;
		Context->Csq = Csq;
		Irp->Tail.Overlay.DriverContext[3] = Context;
	} else {
		Irp->Tail.Overlay.DriverContext[3] = Csq;
	}
	IoMarkIrpPending(Irp);
	IoSetCancelRoutine(Irp, csq_cancel_routine);
	if (Irp->Cancel && IoSetCancelRoutine(Irp, NULL) != NULL) {
		/* cancelled before it was queued: it leaves again, completed as cancelled */
		csq_detach(Csq, Irp);
		csq_unlock(Csq, irql);
		csq_complete_canceled(Csq, Irp);
		return st;
	}
	csq_unlock(Csq, irql);
	return st;
}

PIRP NTAPI mk_IoCsqRemoveNextIrp(PIO_CSQ Csq, PVOID PeekContext)
{
	KIRQL irql;
	PIRP irp;
	MK_DDI("IoCsqRemoveNextIrp");

	mk_irql_le(DISPATCH_LEVEL);
	csq_check(Csq, "IoCsqRemoveNextIrp");
	csq_lock(Csq, &irql);
	for (irp = csq_peek(Csq, NULL, PeekContext); irp != NULL; irp = csq_peek(Csq, irp, PeekContext)) {
		live_irp(irp, "CsqPeekNextIrp returned");
		if (IoSetCancelRoutine(irp, NULL) != NULL) {
			csq_detach(Csq, irp);
			break;
		}
		/* its cancel routine is running: that removes it */
	}
	csq_unlock(Csq, irql);
	return irp;
}

PIRP NTAPI mk_IoCsqRemoveIrp(PIO_CSQ Csq, PIO_CSQ_IRP_CONTEXT Context)
{
	KIRQL irql;
	PIRP irp;
	MK_DDI("IoCsqRemoveIrp");

	mk_irql_le(DISPATCH_LEVEL);
	csq_check(Csq, "IoCsqRemoveIrp");
	csq_lock(Csq, &irql);
	irp = Context->Irp;
	if (irp != NULL) {
		live_irp(irp, "IoCsqRemoveIrp");
		if (IoSetCancelRoutine(irp, NULL) != NULL) {
			csq_detach(Csq, irp);
		} else {
			irp = NULL; /* its cancel routine is running: that removes it */
		}
	}
	csq_unlock(Csq, irql);
	return irp;
}

VOID NTAPI mk_IoAcquireCancelSpinLock(PKIRQL Irql)
{
	MK_DDI("IoAcquireCancelSpinLock");

	mk_cancel_lock_acquire(Irql);
}

/* ---- remove locks ---- */

struct rlock {
	PIO_REMOVE_LOCK lock;
	int waited;
	struct {
		PVOID tag;
		int n;
		ULONG_PTR caller;
	} held[64];
	struct rlock *next;
};
static struct rlock *rlocks;

static struct rlock *rlock_of(PIO_REMOVE_LOCK l, int create)
{
	struct rlock *r;

	for (r = rlocks; r != NULL; r = r->next)
		if (r->lock == l)
			return r;
	if (!create)
		mk_bugcheck("remove-lock-misuse", "remove lock %p was never initialized", (void *)l);
	r = calloc(1, sizeof(*r));
	r->lock = l;
	r->next = rlocks;
	rlocks = r;
	return r;
}

static void rlock_size(ULONG size)
{
	if (size != sizeof(IO_REMOVE_LOCK))
		mk_bugcheck("remove-lock-misuse", "remove lock size %lu, expected %u", (unsigned long)size,
			    (unsigned)sizeof(IO_REMOVE_LOCK));
}

VOID NTAPI mk_IoInitializeRemoveLockEx(PIO_REMOVE_LOCK Lock, ULONG AllocateTag, ULONG MaxLockedMinutes,
				       ULONG HighWatermark, ULONG RemlockSize)
{
	struct rlock *r;
	MK_DDI("IoInitializeRemoveLockEx");

	(void)AllocateTag, (void)MaxLockedMinutes, (void)HighWatermark;
	mk_irql_eq(PASSIVE_LEVEL);
	rlock_size(RemlockSize);
	r = rlock_of(Lock, 1);
	memset(r->held, 0, sizeof(r->held));
	r->waited = 0;
	memset(Lock, 0, sizeof(*Lock));
	Lock->Common.IoCount = 1;
	Lock->Common.RemoveEvent.Header.Type = NotificationEvent;
	InitializeListHead(&Lock->Common.RemoveEvent.Header.WaitListHead);
}

NTSTATUS NTAPI mk_IoAcquireRemoveLockEx(PIO_REMOVE_LOCK RemoveLock, PVOID Tag, PCSTR File, ULONG Line,
					ULONG RemlockSize)
{
	struct rlock *r;
	int i, freei = -1;
	MK_DDI("IoAcquireRemoveLockEx");

	(void)File, (void)Line;
	mk_irql_le(DISPATCH_LEVEL);
	rlock_size(RemlockSize);
	r = rlock_of(RemoveLock, 0);
	if (RemoveLock->Common.Removed)
		return STATUS_DELETE_PENDING;
	for (i = 0; i < 64; i++) {
		if (r->held[i].n > 0 && r->held[i].tag == Tag)
			break;
		if (r->held[i].n == 0 && freei < 0)
			freei = i;
	}
	if (i == 64) {
		if (freei < 0)
			mk_bugcheck("model-limit", "more than 64 remove lock holders");
		i = freei;
		r->held[i].tag = Tag;
		r->held[i].caller = mk_ddi_top->caller;
	}
	r->held[i].n++;
	RemoveLock->Common.IoCount++;
	return STATUS_SUCCESS;
}

static void rlock_drop(struct rlock *r, PVOID Tag, const char *ddi)
{
	int i;

	for (i = 0; i < 64; i++)
		if (r->held[i].n > 0 && r->held[i].tag == Tag)
			break;
	if (i == 64)
		mk_bugcheck("remove-lock-misuse", "%s with tag %p, which does not hold the remove lock", ddi, Tag);
	r->held[i].n--;
	if (--r->lock->Common.IoCount == 0) {
		if (!r->lock->Common.Removed)
			mk_bugcheck("remove-lock-misuse", "%s dropped the count to 0 before IoReleaseRemoveLockAndWait", ddi);
		r->lock->Common.RemoveEvent.Header.SignalState = 1;
	}
}

VOID NTAPI mk_IoReleaseRemoveLockEx(PIO_REMOVE_LOCK RemoveLock, PVOID Tag, ULONG RemlockSize)
{
	MK_DDI("IoReleaseRemoveLockEx");

	mk_irql_le(DISPATCH_LEVEL);
	rlock_size(RemlockSize);
	rlock_drop(rlock_of(RemoveLock, 0), Tag, "IoReleaseRemoveLock");
}

static int rlock_idle(void *arg)
{
	return ((PIO_REMOVE_LOCK)arg)->Common.IoCount == 0;
}

VOID NTAPI mk_IoReleaseRemoveLockAndWaitEx(PIO_REMOVE_LOCK RemoveLock, PVOID Tag, ULONG RemlockSize)
{
	struct rlock *r;
	int i;
	MK_DDI("IoReleaseRemoveLockAndWaitEx");

	mk_irql_eq(PASSIVE_LEVEL);
	rlock_size(RemlockSize);
	r = rlock_of(RemoveLock, 0);
	if (r->waited)
		mk_bugcheck("remove-lock-misuse", "IoReleaseRemoveLockAndWait called twice");
	r->waited = 1;
	RemoveLock->Common.Removed = TRUE;
	rlock_drop(r, Tag, "IoReleaseRemoveLockAndWait");
	if (--RemoveLock->Common.IoCount == 0)
		RemoveLock->Common.RemoveEvent.Header.SignalState = 1;
	if (!mk_world_run(rlock_idle, RemoveLock, MK_FOREVER)) {
		for (i = 0; i < 64 && r->held[i].n == 0; i++)
			;
		mk_bugcheck("wait-forever", "IoReleaseRemoveLockAndWait: %ld holder(s) will never release (tag %p, "
			    "taken at 0x%llx)", (long)RemoveLock->Common.IoCount, i < 64 ? r->held[i].tag : NULL,
			    i < 64 ? (unsigned long long)mk_rva(r->held[i].caller) : 0ull);
	}
}

void mk_remove_locks_check_in(const void *lo, size_t bytes)
{
	struct rlock *r, **pp;

	for (pp = &rlocks; (r = *pp) != NULL;) {
		if ((uintptr_t)r->lock >= (uintptr_t)lo && (uintptr_t)r->lock < (uintptr_t)lo + bytes) {
			int i;

			for (i = 0; i < 64; i++)
				if (r->held[i].n > 0)
					mk_bugcheck("remove-lock-misuse",
						    "the device is deleted while its remove lock is held (tag %p, taken at 0x%llx)",
						    r->held[i].tag, (unsigned long long)mk_rva(r->held[i].caller));
			*pp = r->next;
			free(r);
			continue;
		}
		pp = &r->next;
	}
}

/* ---- IRPs the driver builds or forwards ---- */

PIRP NTAPI mk_IoBuildSynchronousFsdRequest(ULONG MajorFunction, PDEVICE_OBJECT DeviceObject, PVOID Buffer,
					   ULONG Length, PLARGE_INTEGER StartingOffset, PKEVENT Event,
					   PIO_STATUS_BLOCK IoStatusBlock)
{
	struct mk_irp *r;
	PIRP irp;
	MK_DDI("IoBuildSynchronousFsdRequest");

	mk_irql_eq(PASSIVE_LEVEL);
	if (mk_devobj_of(DeviceObject) == NULL)
		mk_bugcheck("invalid-device-object", "IoBuildSynchronousFsdRequest to %p", (void *)DeviceObject);
	if (MajorFunction != IRP_MJ_PNP && MajorFunction != IRP_MJ_FLUSH_BUFFERS && MajorFunction != IRP_MJ_SHUTDOWN)
		mk_bugcheck("unmodelled-ddi", "IoBuildSynchronousFsdRequest major %lu", (unsigned long)MajorFunction);
	(void)Buffer, (void)Length, (void)StartingOffset;
	irp = mk_irp_alloc_impl(DeviceObject->StackSize);
	r = rec_of(irp);
	r->kind = KIND_FSD;
	r->event = Event;
	r->iosb = IoStatusBlock;
	irp->UserEvent = Event;
	irp->UserIosb = IoStatusBlock;
	IoGetNextIrpStackLocation(irp)->MajorFunction = (UCHAR)MajorFunction;
	return irp;
}

static int event_signaled(void *e)
{
	return mk_event_signaled((PKEVENT)e);
}

static NTSTATUS NTAPI forward_done(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
	(void)DeviceObject, (void)Irp;
	mk_event_set_impl((PKEVENT)Context);
	return STATUS_MORE_PROCESSING_REQUIRED;
}

BOOLEAN NTAPI mk_IoForwardIrpSynchronously(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	KEVENT done;
	PIO_STACK_LOCATION next;
	NTSTATUS st;
	MK_DDI("IoForwardIrpSynchronously");

	mk_irql_eq(PASSIVE_LEVEL);
	live_irp(Irp, "IoForwardIrpSynchronously");
	memset(&done, 0, sizeof(done));
	done.Header.Type = NotificationEvent;
	InitializeListHead(&done.Header.WaitListHead);
	IoCopyCurrentIrpStackLocationToNext(Irp);
	next = IoGetNextIrpStackLocation(Irp);
	next->CompletionRoutine = forward_done;
	next->Context = &done;
	next->Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
	st = call_driver(DeviceObject, Irp);
	if (st == STATUS_PENDING && !mk_world_run(event_signaled, &done, MK_FOREVER))
		mk_bugcheck("wait-forever", "IoForwardIrpSynchronously: the lower driver never completes the IRP");
	return TRUE;
}
