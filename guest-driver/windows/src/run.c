/* SPDX-License-Identifier: MIT */
/*
 * The scenario engine, driven at DISPATCH_LEVEL by the DMA allocation
 * callbacks and the completion DPC.
 *
 * A transfer is cut into windows that fit the adapter's map registers; each
 * mapped client buffer is mapped once per window (streaming: one
 * AllocateAdapterChannel, then one MapTransfer per chunk in order;
 * scatter-gather: one GetScatterGatherList), and flushed and unmapped at the
 * window's end (FlushDmaBuffer on the destination when present and sync=full,
 * then FlushAdapterBuffers + FreeMapRegisters, or PutScatterGatherList).
 * A window is cut into chunks of at most 4095 bytes that are device-contiguous
 * in both buffers; each chunk is two edu operations, source -> edu buffer at
 * 0x40000 -> destination, each completed by its interrupt.
 */
#include "edudma.h"

static VOID EduNextWindow(PEDU_RUN Run);
static VOID EduMapNext(PEDU_RUN Run);
static VOID EduNextChunk(PEDU_RUN Run);
static VOID EduRunFinish(PEDU_RUN Run);
static DRIVER_CONTROL EduAdapterControl;
static DRIVER_LIST_CONTROL EduSgControl;

#define EDU_OPS(dev) ((dev)->Adapter->DmaOperations)

/*
 * 64-bit division without libgcc: on i686 gcc would call __udivdi3, and
 * libgcc's copy brings an .eh_frame section into the driver. Shift-subtract;
 * it runs once per edu operation.
 */
static ULONG64 EduDiv64(ULONG64 N, ULONG64 D, ULONG64 *Rem)
{
	ULONG64 q = 0, r = 0;
	int i;

	for (i = 63; i >= 0; i--) {
		r = (r << 1) | ((N >> i) & 1);
		if (r >= D) {
			r -= D;
			q |= 1ull << i;
		}
	}
	*Rem = r;
	return q;
}

static ULONG64 EduTicksToNs(PEDU_DEVICE Dev, LONGLONG Ticks)
{
	ULONG64 f = (ULONG64)Dev->PerfFrequency.QuadPart, rem, whole, frac;

	if (f == 0 || Ticks < 0)
		return 0;
	whole = EduDiv64((ULONG64)Ticks, f, &rem);
	frac = EduDiv64(rem * 1000000000ull, f, &rem);
	return whole * 1000000000ull + frac;
}

static BOOLEAN EduIsStreaming(PEDU_RUN Run)
{
	return Run->Scenario.method == DMAHIL_METHOD_STREAMING;
}

/* DmaOperations->FlushDmaBuffer on the destination, if present and asked for. */
static VOID EduFlushDmaBuffer(PEDU_RUN Run, PEDU_BUFFER B)
{
	PEDU_DEVICE dev = Run->Device;
	NTSTATUS st;

	if (B->Role != DMAHIL_ROLE_DESTINATION || Run->Scenario.sync != DMAHIL_SYNC_FULL ||
	    Run->Scenario.fault == DMAHIL_FAULT_SKIP_FLUSH_DMA_BUFFER || dev->FlushDmaBuffer == NULL)
		return;
	st = dev->FlushDmaBuffer(dev->Adapter, B->Mdl, (BOOLEAN)!B->WriteToDevice);
	EduCall(Run, "FlushDmaBuffer", st);
}

/* FlushAdapterBuffers for the window (streaming), once. */
static VOID EduFlushWindow(PEDU_RUN Run, PEDU_BUFFER B)
{
	PEDU_DEVICE dev = Run->Device;
	BOOLEAN ok;

	if (!B->WindowMapped || B->WindowFlushed || !EduIsStreaming(Run))
		return;
	EduFlushDmaBuffer(Run, B);
	ok = EDU_OPS(dev)->FlushAdapterBuffers(dev->Adapter, B->Mdl, B->MapRegisterBase, B->Data + Run->WindowStart,
					       Run->WindowEnd - Run->WindowStart, B->WriteToDevice);
	EduCall(Run, "FlushAdapterBuffers", ok ? STATUS_SUCCESS : STATUS_UNSUCCESSFUL);
	B->WindowFlushed = TRUE;
}

/*
 * Flush and unmap the current window of every mapped buffer. DISPATCH_LEVEL.
 * Deferred: called at release for what skip-sync (or a failure) left mapped.
 */
VOID EduRunUnmapWindow(PEDU_RUN Run, BOOLEAN Deferred)
{
	PEDU_DEVICE dev = Run->Device;
	ULONG i;

	UNREFERENCED_PARAMETER(Deferred);
	for (i = 0; i < 2; i++) {
		PEDU_BUFFER b = &Run->Buf[i];

		if (!b->WindowMapped)
			continue;
		if (EduIsStreaming(Run)) {
			EduFlushWindow(Run, b);
			EDU_OPS(dev)->FreeMapRegisters(dev->Adapter, b->MapRegisterBase, b->MapRegisterCount);
			EduCall(Run, "FreeMapRegisters", STATUS_SUCCESS);
			b->MapRegisterBase = NULL;
		} else {
			EduFlushDmaBuffer(Run, b);
			EDU_OPS(dev)->PutScatterGatherList(dev->Adapter, b->Sgl, b->WriteToDevice);
			EduCall(Run, "PutScatterGatherList", STATUS_SUCCESS);
			b->Sgl = NULL;
		}
		b->WindowMapped = FALSE;
		b->WindowFlushed = FALSE;
	}
}

VOID EduRunBegin(PEDU_RUN Run)
{
	PEDU_DEVICE dev = Run->Device;
	const struct dmahil_scenario *s = &Run->Scenario;
	ULONG mapped = (ULONG)Run->Buf[0].Mapped + (ULONG)Run->Buf[1].Mapped;
	ULONG spanPages = ADDRESS_AND_SIZE_TO_SPAN_PAGES((ULONG_PTR)s->offset, s->size);
	ULONG i;

	Run->RunStart = KeQueryPerformanceCounter(NULL);
	if (dev->Regs == NULL || dev->Adapter == NULL) {
		EduRunFail(Run, DMAHIL_E_DEVICE, "device not started");
		EduRunFinish(Run);
		return;
	}
	Run->WindowPages = mapped ? dev->MapRegisters / mapped : spanPages;
	if (mapped && Run->WindowPages == 0) {
		EduRunFail(Run, DMAHIL_E_MAP, "the adapter granted %lu map registers", (unsigned long)dev->MapRegisters);
		EduRunFinish(Run);
		return;
	}
	if (s->fault == DMAHIL_FAULT_SKIP_SYNC && mapped && spanPages > Run->WindowPages) {
		EduRunFail(Run, DMAHIL_E_UNSUPPORTED,
			   "skip-sync keeps the whole buffer mapped: %lu pages, %lu map registers per buffer",
			   (unsigned long)spanPages, (unsigned long)Run->WindowPages);
		EduRunFinish(Run);
		return;
	}
	/* Common buffers: the CPU wrote the source; KeFlushIoBuffers is what the v1/v2 DDI asks for. */
	for (i = 0; i < 2; i++)
		if (Run->Buf[i].Common && Run->Buf[i].Role == DMAHIL_ROLE_SOURCE && s->sync == DMAHIL_SYNC_FULL) {
			KeFlushIoBuffers(Run->Buf[i].Mdl, FALSE, TRUE);
			EduCall(Run, "KeFlushIoBuffers", STATUS_SUCCESS);
		}
	Run->Pos = 0;
	EduNextWindow(Run);
}

static VOID EduNextWindow(PEDU_RUN Run)
{
	const struct dmahil_scenario *s = &Run->Scenario;

	if (Run->Device->CancelActive) {
		Run->Cancelled = TRUE;
		EduRunFinish(Run);
		return;
	}
	if (Run->Pos >= s->size) {
		EduRunFinish(Run);
		return;
	}
	Run->WindowStart = Run->Pos;
	if (Run->Buf[0].Mapped || Run->Buf[1].Mapped) {
		ULONG first = (s->offset + Run->Pos) & (PAGE_SIZE - 1);
		ULONG maxBytes = Run->WindowPages * PAGE_SIZE - first;

		Run->WindowEnd = s->size - Run->Pos > maxBytes ? Run->Pos + maxBytes : s->size;
	} else {
		Run->WindowEnd = s->size;
	}
	Run->MapIndex = 0;
	Run->Phase = EduPhaseMapping;
	EduMapNext(Run);
}

/* Map the window in each mapped buffer, one allocation at a time. */
static VOID EduMapNext(PEDU_RUN Run)
{
	PEDU_DEVICE dev = Run->Device;

	while (Run->MapIndex < 2) {
		PEDU_BUFFER b = &Run->Buf[Run->MapIndex++];
		PVOID va = b->Data + Run->WindowStart;
		ULONG len = Run->WindowEnd - Run->WindowStart;
		NTSTATUS st;

		if (!b->Mapped)
			continue;
		if (!NT_SUCCESS(Run->MapStatus))
			break;
		InterlockedExchange(&Run->Pending, 2);
		if (EduIsStreaming(Run)) {
			b->MapRegisterCount = ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, len);
			st = EDU_OPS(dev)->AllocateAdapterChannel(dev->Adapter, dev->Self, b->MapRegisterCount,
								  EduAdapterControl, Run);
			EduCall(Run, "AllocateAdapterChannel", st);
		} else {
			st = EDU_OPS(dev)->GetScatterGatherList(dev->Adapter, dev->Self, b->Mdl, va, len, EduSgControl,
								Run, b->WriteToDevice);
			EduCall(Run, "GetScatterGatherList", st);
		}
		if (!NT_SUCCESS(st)) {
			EduRunFail(Run, DMAHIL_E_MAP, "%s failed 0x%08lx for %lu bytes",
				   EduIsStreaming(Run) ? "AllocateAdapterChannel" : "GetScatterGatherList",
				   (unsigned long)st, (unsigned long)len);
			EduRunFinish(Run);
			return;
		}
		if (InterlockedDecrement(&Run->Pending) != 0)
			return; /* the callback has not run yet; it resumes the engine */
	}
	Run->Pos = Run->WindowStart;
	EduNextChunk(Run);
}

/* Called by the DMA routines; resumes the engine later unless the caller is still waiting. */
static VOID EduMapped(PEDU_RUN Run)
{
	if (InterlockedDecrement(&Run->Pending) == 0)
		KeInsertQueueDpc(&Run->ContinueDpc, NULL, NULL);
}

VOID NTAPI EduContinueDpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2)
{
	UNREFERENCED_PARAMETER(Dpc);
	UNREFERENCED_PARAMETER(Arg1);
	UNREFERENCED_PARAMETER(Arg2);
	EduMapNext((PEDU_RUN)Context);
}

static IO_ALLOCATION_ACTION NTAPI EduAdapterControl(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID MapRegisterBase,
						    PVOID Context)
{
	PEDU_RUN run = (PEDU_RUN)Context;
	PEDU_BUFFER b = &run->Buf[run->MapIndex - 1];

	UNREFERENCED_PARAMETER(DeviceObject);
	UNREFERENCED_PARAMETER(Irp);
	b->MapRegisterBase = MapRegisterBase;
	b->WindowMapped = TRUE;
	b->WindowFlushed = FALSE;
	EduMapped(run);
	return DeallocateObjectKeepRegisters; /* bus master: keep the map registers, free the adapter */
}

static VOID NTAPI EduSgControl(PDEVICE_OBJECT DeviceObject, PIRP Irp, PSCATTER_GATHER_LIST Sgl, PVOID Context)
{
	PEDU_RUN run = (PEDU_RUN)Context;
	PEDU_BUFFER b = &run->Buf[run->MapIndex - 1];

	UNREFERENCED_PARAMETER(DeviceObject);
	UNREFERENCED_PARAMETER(Irp);
	b->Sgl = Sgl;
	b->SgIndex = 0;
	b->SgElementStart = run->WindowStart;
	b->WindowMapped = TRUE;
	b->WindowFlushed = FALSE;
	EduMapped(run);
}

/* Bytes from Pos on that are contiguous for the device in this buffer; 0 = mapping too short. */
static ULONG EduContiguous(PEDU_RUN Run, PEDU_BUFFER B, ULONG Pos)
{
	PSCATTER_GATHER_LIST sgl = B->Sgl;

	if (B->Common)
		return MAXULONG;
	if (EduIsStreaming(Run)) /* one page is always one MapTransfer */
		return PAGE_SIZE - ((Run->Scenario.offset + Pos) & (PAGE_SIZE - 1));
	while (B->SgIndex < sgl->NumberOfElements && Pos >= B->SgElementStart + sgl->Elements[B->SgIndex].Length) {
		B->SgElementStart += sgl->Elements[B->SgIndex].Length;
		B->SgIndex++;
	}
	if (B->SgIndex >= sgl->NumberOfElements)
		return 0;
	return B->SgElementStart + sgl->Elements[B->SgIndex].Length - Pos;
}

static ULONG64 EduDeviceAddress(PEDU_RUN Run, PEDU_BUFFER B, ULONG Pos, PULONG Length)
{
	PEDU_DEVICE dev = Run->Device;
	PHYSICAL_ADDRESS la;
	ULONG want = *Length;

	if (B->Common)
		return (ULONG64)B->BaseLogical.QuadPart + Run->Scenario.offset + Pos;
	if (!EduIsStreaming(Run))
		return (ULONG64)B->Sgl->Elements[B->SgIndex].Address.QuadPart + (Pos - B->SgElementStart);
	la = EDU_OPS(dev)->MapTransfer(dev->Adapter, B->Mdl, B->MapRegisterBase, B->Data + Pos, Length,
				       B->WriteToDevice);
	EduCall(Run, "MapTransfer", *Length == want ? STATUS_SUCCESS : STATUS_BUFFER_TOO_SMALL);
	return (ULONG64)la.QuadPart;
}

static VOID EduNextChunk(PEDU_RUN Run)
{
	PEDU_DEVICE dev = Run->Device;
	const struct dmahil_scenario *s = &Run->Scenario;
	ULONG len, i;

	if (dev->CancelActive) {
		Run->Cancelled = TRUE;
		EduRunFinish(Run);
		return;
	}
	if (Run->Pos >= Run->WindowEnd) {
		/* window done: flush and unmap, unless skip-sync defers that to release */
		if (s->fault != DMAHIL_FAULT_SKIP_SYNC)
			EduRunUnmapWindow(Run, FALSE);
		EduNextWindow(Run);
		return;
	}
	len = Run->WindowEnd - Run->Pos;
	if (len > DMAHIL_EDU_MAX_OP)
		len = DMAHIL_EDU_MAX_OP;
	for (i = 0; i < 2; i++) {
		ULONG c = EduContiguous(Run, &Run->Buf[i], Run->Pos);

		if (c == 0) {
			EduRunFail(Run, DMAHIL_E_MAP, "scatter/gather list ends before byte %lu", (unsigned long)Run->Pos);
			EduRunFinish(Run);
			return;
		}
		if (c < len)
			len = c;
	}
	for (i = 0; i < 2; i++) {
		PEDU_BUFFER b = &Run->Buf[i];
		struct dmahil_buffer *rep = b->Report;
		ULONG got = len;
		ULONG64 addr = EduDeviceAddress(Run, b, Run->Pos, &got);

		if (got != len) {
			EduRunFail(Run, DMAHIL_E_MAP, "MapTransfer mapped %lu of %lu bytes at %lu", (unsigned long)got,
				   (unsigned long)len, (unsigned long)Run->Pos);
			EduRunFinish(Run);
			return;
		}
		if (EduIsBounced(b, Run->Pos, addr))
			Run->Bounced[i] = TRUE;
		if (b->Role == DMAHIL_ROLE_DESTINATION && s->fault == DMAHIL_FAULT_ADDR_BEYOND_MASK)
			addr |= 1ull << DMAHIL_EDU_DMA_BITS; /* bit 28: beyond the edu's default mask */
		if (addr + len > 0x100000000ull) {
			EduRunFail(Run, DMAHIL_E_MAP, "device address 0x%I64x does not fit the edu's 32-bit writes",
				   (unsigned long long)addr);
			EduRunFinish(Run);
			return;
		}
		if (rep->segment_count >= DMAHIL_MAX_SEGMENTS) {
			EduRunFail(Run, DMAHIL_E_MAP, "more than %u segments", DMAHIL_MAX_SEGMENTS);
			EduRunFinish(Run);
			return;
		}
		rep->segments[rep->segment_count].buf_offset = Run->Pos;
		rep->segments[rep->segment_count].length = len;
		rep->segments[rep->segment_count].device_addr = addr;
		rep->segment_count++;
		Run->ChunkAddr[i] = addr;
	}
	if (EDU_RD(dev, EDU_REG_DMA_CMD) & EDU_DMA_CMD_START) {
		EduRunFail(Run, DMAHIL_E_DEVICE, "the edu is still running an earlier DMA");
		Run->DeviceMayBeBusy = TRUE;
		EduRunFinish(Run);
		return;
	}
	Run->ChunkLength = len;
	Run->Phase = EduPhaseToDevice;
	EduProgramOp(dev, Run, Run->ChunkAddr[0], DMAHIL_EDU_BUF_ADDR, len, FALSE);
}

VOID EduRunOpDone(PEDU_RUN Run)
{
	PEDU_DEVICE dev = Run->Device;
	struct dmahil_result *r = Run->Result;
	ULONG64 ns = EduTicksToNs(dev, KeQueryPerformanceCounter(NULL).QuadPart - Run->OpStart.QuadPart);

	r->edu_ops++;
	if (Run->Phase == EduPhaseToDevice) {
		r->to_device_ns += ns;
		Run->Phase = EduPhaseFromDevice;
		EduProgramOp(dev, Run, DMAHIL_EDU_BUF_ADDR, Run->ChunkAddr[1], Run->ChunkLength, TRUE);
		/* read-before-completion: flush the destination's window while its last write is in flight */
		if (Run->Scenario.fault == DMAHIL_FAULT_READ_BEFORE_COMPLETION &&
		    Run->Pos + Run->ChunkLength >= Run->WindowEnd)
			EduFlushWindow(Run, &Run->Buf[1]);
		return;
	}
	r->from_device_ns += ns;
	Run->Phase = EduPhaseIdle;
	Run->Pos += Run->ChunkLength;
	EduNextChunk(Run);
}

VOID EduRunTimedOut(PEDU_RUN Run)
{
	EduRunFail(Run, DMAHIL_E_TIMEOUT, "no completion interrupt for %s operation at byte %lu (%lu bytes) in %lu ms",
		   Run->Phase == EduPhaseToDevice ? "a RAM->edu" : "an edu->RAM", (unsigned long)Run->Pos,
		   (unsigned long)Run->ChunkLength, (unsigned long)Run->TimeoutMs);
	Run->DeviceMayBeBusy = TRUE; /* its mappings stay until release, which waits for the edu */
	EduRunFinish(Run);
}

/* Report, complete the request and start the next one. DISPATCH_LEVEL. */
static VOID EduRunFinish(PEDU_RUN Run)
{
	PEDU_DEVICE dev = Run->Device;
	struct dmahil_result *r = Run->Result;
	PIRP irp = Run->Irp;
	ULONG i;

	Run->Phase = EduPhaseIdle;
	/* A failure or cancel between operations: unmap now (skip-sync and timeouts leave it to release). */
	if (!Run->DeviceMayBeBusy && Run->Scenario.fault != DMAHIL_FAULT_SKIP_SYNC)
		EduRunUnmapWindow(Run, FALSE);
	for (i = 0; i < 2; i++) {
		if (Run->Buf[i].Common && Run->Buf[i].Role == DMAHIL_ROLE_DESTINATION &&
		    Run->Scenario.sync == DMAHIL_SYNC_FULL && r->status == DMAHIL_OK) {
			KeFlushIoBuffers(Run->Buf[i].Mdl, TRUE, TRUE);
			EduCall(Run, "KeFlushIoBuffers", STATUS_SUCCESS);
		}
		r->buffers[i].bounced = Run->Bounced[i];
	}
	if (dev->BusMasterSetByDriver)
		EduCall(Run, "SetBusData(BusMaster)", STATUS_SUCCESS);
	r->total_ns = EduTicksToNs(dev, KeQueryPerformanceCounter(NULL).QuadPart - Run->RunStart.QuadPart);

	KeAcquireSpinLockAtDpcLevel(&dev->RunLock);
	dev->Active = NULL;
	dev->ActiveIrp = NULL;
	dev->OpInFlight = FALSE;
	KeReleaseSpinLockFromDpcLevel(&dev->RunLock);
	Run->State = EduRunFinished;
	Run->Irp = NULL;

	if (irp != NULL) {
		IoSetCancelRoutine(irp, NULL); /* the cancel routine, if it ran, only raised a flag */
		if (Run->Cancelled) {
			EduCompleteIrp(irp, STATUS_CANCELLED, 0);
		} else {
			RtlCopyMemory(irp->AssociatedIrp.SystemBuffer, r, sizeof(*r));
			EduCompleteIrp(irp, STATUS_SUCCESS, sizeof(*r));
		}
		IoReleaseRemoveLock(&dev->RemoveLock, irp);
	}
	EduStartNext(dev);
}

/* Wait until the edu's DMA engine is idle. PASSIVE_LEVEL. */
BOOLEAN EduWaitDeviceIdle(PEDU_DEVICE Dev, ULONG Ms)
{
	LARGE_INTEGER step;
	ULONG waited = 0;

	step.QuadPart = -10 * 1000 * 10; /* 10 ms */
	while (Dev->Regs != NULL && (EDU_RD(Dev, EDU_REG_DMA_CMD) & EDU_DMA_CMD_START)) {
		if (waited >= Ms)
			return FALSE;
		KeDelayExecutionThread(KernelMode, FALSE, &step);
		waited += 10;
	}
	return TRUE;
}
