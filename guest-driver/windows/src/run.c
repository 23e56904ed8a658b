/* SPDX-License-Identifier: MIT */
/*
 * The scenario engine, driven at DISPATCH_LEVEL by the DMA allocation
 * callbacks and the completion DPC.
 *
 * A transfer is cut into windows that fit the adapter's map registers; each
 * mapped client buffer is mapped once per window (streaming: one
 * AllocateAdapterChannel, then MapTransfer over the whole window, one call per
 * device-contiguous piece, CurrentVa advancing by what each returned;
 * scatter-gather: one GetScatterGatherList), and flushed and unmapped at the
 * window's end (FlushDmaBuffer on the destination when present and sync=full,
 * then FlushAdapterBuffers over what was mapped + FreeMapRegisters, or
 * PutScatterGatherList). Each MapTransfer moves the HAL's map-register cursor
 * by the pages it spans, so a page must never be mapped twice in a window.
 * A window is cut into chunks of at most 4095 bytes that lie inside one piece
 * in both buffers; each chunk is two edu operations, source -> edu buffer at
 * 0x40000 -> destination, each completed by its interrupt.
 */
#include "edudma.h"

static VOID EduNextWindow(PEDU_RUN Run);
static VOID EduMapNext(PEDU_RUN Run);
static VOID EduNextChunk(PEDU_RUN Run);
static VOID EduRunFinish(PEDU_RUN Run);
static BOOLEAN EduMapWindow(PEDU_RUN Run, PEDU_BUFFER B);
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

ULONG64 EduTicksToNs(PEDU_DEVICE Dev, LONGLONG Ticks)
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

	if (!B->WindowMapped || B->WindowFlushed || !EduIsStreaming(Run) || B->MappedLength == 0)
		return;
	EduFlushDmaBuffer(Run, B);
	/* CurrentVa and Length of the MapTransfer calls: the window start, and what they mapped */
	ok = EDU_OPS(dev)->FlushAdapterBuffers(dev->Adapter, B->Mdl, B->MapRegisterBase, B->Data + Run->WindowStart,
					       B->MappedLength, B->WriteToDevice);
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
			b->MappedLength = 0;
		} else {
			EduFlushDmaBuffer(Run, b);
			EDU_OPS(dev)->PutScatterGatherList(dev->Adapter, b->Sgl, b->WriteToDevice);
			EduCall(Run, "PutScatterGatherList", STATUS_SUCCESS);
			b->Sgl = NULL;
		}
		b->WindowMapped = FALSE;
		b->WindowFlushed = FALSE;
		b->PieceCount = 0;
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
	/*
	 * A finished run that still holds a mapping (skip-sync defers its flush to release; a timed-out one
	 * waits for the edu) keeps map registers: a request for more could wait in the HAL for ever, where
	 * neither a cancel nor a timeout reaches it. Refuse instead.
	 */
	if (mapped && dev->MappingHolders > 0) {
		EduRunFail(Run, DMAHIL_E_BUSY, "%ld finished run(s) still hold map registers (skip-sync or a timeout keeps "
			   "them until release); release them first", (long)dev->MappingHolders);
		EduRunFinish(Run);
		return;
	}
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
	if (EduIsStreaming(Run) && NT_SUCCESS(Run->MapStatus)) {
		ULONG i;

		for (i = 0; i < 2; i++)
			if (Run->Buf[i].WindowMapped && !EduMapWindow(Run, &Run->Buf[i])) {
				EduRunFinish(Run);
				return;
			}
	}
	Run->Pos = Run->WindowStart;
	EduNextChunk(Run);
}

/*
 * Streaming: map the whole window with MapTransfer, from its first byte on, each call starting where
 * the last one ended. The HAL returns a device-contiguous piece per call (all of it, with map
 * registers; up to a physical discontinuity, without). DISPATCH_LEVEL, with the map registers granted.
 */
static BOOLEAN EduMapWindow(PEDU_RUN Run, PEDU_BUFFER B)
{
	PEDU_DEVICE dev = Run->Device;
	ULONG len = Run->WindowEnd - Run->WindowStart;

	B->MappedLength = 0;
	B->PieceCount = 0;
	B->PieceIndex = 0;
	B->PieceStart = Run->WindowStart;
	while (B->MappedLength < len) {
		ULONG got = len - B->MappedLength;
		PHYSICAL_ADDRESS la;

		if (B->PieceCount == DMAHIL_MAX_PAGES) {
			EduRunFail(Run, DMAHIL_E_MAP, "MapTransfer: more than %u pieces in a window", DMAHIL_MAX_PAGES);
			return FALSE;
		}
		la = EDU_OPS(dev)->MapTransfer(dev->Adapter, B->Mdl, B->MapRegisterBase,
					       B->Data + Run->WindowStart + B->MappedLength, &got, B->WriteToDevice);
		EduCall(Run, "MapTransfer", got != 0 ? STATUS_SUCCESS : STATUS_BUFFER_TOO_SMALL);
		if (got == 0 || got > len - B->MappedLength) {
			EduRunFail(Run, DMAHIL_E_MAP, "MapTransfer mapped %lu bytes at byte %lu of a %lu-byte window",
				   (unsigned long)got, (unsigned long)B->MappedLength, (unsigned long)len);
			return FALSE;
		}
		B->Pieces[B->PieceCount].Address = (ULONG64)la.QuadPart;
		B->Pieces[B->PieceCount].Length = got;
		B->PieceCount++;
		B->MappedLength += got;
	}
	return TRUE;
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
	b->MappedLength = 0; /* MapTransfer comes once both buffers have their registers */
	b->WindowMapped = TRUE;
	b->WindowFlushed = FALSE;
	EduMapped(run);
	return DeallocateObjectKeepRegisters; /* bus master: keep the map registers, free the adapter */
}

static VOID NTAPI EduSgControl(PDEVICE_OBJECT DeviceObject, PIRP Irp, PSCATTER_GATHER_LIST Sgl, PVOID Context)
{
	PEDU_RUN run = (PEDU_RUN)Context;
	PEDU_BUFFER b = &run->Buf[run->MapIndex - 1];
	ULONG i;

	UNREFERENCED_PARAMETER(DeviceObject);
	UNREFERENCED_PARAMETER(Irp);
	b->Sgl = Sgl;
	b->PieceIndex = 0;
	b->PieceStart = run->WindowStart;
	for (i = 0; i < Sgl->NumberOfElements && i < DMAHIL_MAX_PAGES; i++) {
		b->Pieces[i].Address = (ULONG64)Sgl->Elements[i].Address.QuadPart;
		b->Pieces[i].Length = Sgl->Elements[i].Length;
	}
	b->PieceCount = i; /* a longer list ends the run at the first byte it cannot place */
	b->WindowMapped = TRUE;
	b->WindowFlushed = FALSE;
	EduMapped(run);
}

/* Bytes from Pos on that are contiguous for the device in this buffer; 0 = the mapping ends before Pos. */
static ULONG EduContiguous(PEDU_BUFFER B, ULONG Pos)
{
	if (B->Common)
		return MAXULONG;
	while (B->PieceIndex < B->PieceCount && Pos >= B->PieceStart + B->Pieces[B->PieceIndex].Length) {
		B->PieceStart += B->Pieces[B->PieceIndex].Length;
		B->PieceIndex++;
	}
	if (B->PieceIndex >= B->PieceCount)
		return 0;
	return B->PieceStart + B->Pieces[B->PieceIndex].Length - Pos;
}

/* The device address of Pos (EduContiguous placed the cursor on its piece). */
static ULONG64 EduDeviceAddress(PEDU_RUN Run, PEDU_BUFFER B, ULONG Pos)
{
	if (B->Common)
		return (ULONG64)B->BaseLogical.QuadPart + Run->Scenario.offset + Pos;
	return B->Pieces[B->PieceIndex].Address + (Pos - B->PieceStart);
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
		ULONG c = EduContiguous(&Run->Buf[i], Run->Pos);

		if (c == 0) {
			EduRunFail(Run, DMAHIL_E_MAP, "the mapping ends before byte %lu", (unsigned long)Run->Pos);
			EduRunFinish(Run);
			return;
		}
		if (c < len)
			len = c;
	}
	for (i = 0; i < 2; i++) {
		PEDU_BUFFER b = &Run->Buf[i];
		struct dmahil_buffer *rep = b->Report;
		ULONG64 addr = EduDeviceAddress(Run, b, Run->Pos);

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
	BOOLEAN cancelled;
	PIRP irp;
	ULONG i;

	Run->Phase = EduPhaseIdle;
	/* A failure or cancel between operations: unmap now (skip-sync and timeouts leave it to release). */
	if (!Run->DeviceMayBeBusy && Run->Scenario.fault != DMAHIL_FAULT_SKIP_SYNC)
		EduRunUnmapWindow(Run, FALSE);
	if (Run->Buf[0].WindowMapped || Run->Buf[1].WindowMapped) {
		Run->HoldsMapping = TRUE; /* until EduRunFree unmaps it */
		InterlockedIncrement(&dev->MappingHolders);
	}
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
	dev->OpInFlight = FALSE;
	KeReleaseSpinLockFromDpcLevel(&dev->RunLock);

	/* NULL: a cancel took the request from the active slot and completed it already */
	irp = Run->Irp != NULL ? EduTakeActive(dev) : NULL;
	cancelled = Run->Cancelled;
	if (irp != NULL && !cancelled)
		RtlCopyMemory(irp->AssociatedIrp.SystemBuffer, r, sizeof(*r));
	Run->Irp = NULL;
	/* The last use of the run (a full barrier): from here a RELEASE or the handle's cleanup may free it. */
	InterlockedExchange((volatile LONG *)&Run->State, EduRunFinished);

	if (irp != NULL) {
		EduCompleteIrp(irp, cancelled ? STATUS_CANCELLED : STATUS_SUCCESS, cancelled ? 0 : sizeof(struct dmahil_result));
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
