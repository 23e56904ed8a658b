/* SPDX-License-Identifier: MIT */
/*
 * The DMA adapter and a run's buffers.
 *
 * IoGetDmaAdapter is asked for DEVICE_DESCRIPTION_VERSION3 with
 * DmaAddressWidth = 28 (the edu's default mask); Windows 7 returns NULL for
 * v3, and the driver falls back to version 2 with Dma32BitAddresses (v1/v2
 * cannot say 28 bits: on such a guest QEMU needs edu,dma_mask=0xffffffff).
 * FlushDmaBuffer is looked up at run time: DmaOperations->Size must cover it
 * and the pointer must not be NULL.
 *
 * Client buffers are nonpaged pool described by an MDL; staging, readback and
 * common-buffer runs use AllocateCommonBuffer. All stay allocated, untouched,
 * until RELEASE or the handle's cleanup/close, so the host can read them.
 */
#include "edudma.h"

NTSTATUS EduDmaStart(PEDU_DEVICE Dev)
{
	EDU_DD_V3 dd;
	ULONG mapRegs = 0;

	RtlZeroMemory(&dd, sizeof(dd));
	dd.Version = DEVICE_DESCRIPTION_VERSION3;
	dd.Master = TRUE;
	dd.ScatterGather = TRUE;
	dd.InterfaceType = PCIBus;
	dd.MaximumLength = DMAHIL_MAX_SIZE + PAGE_SIZE;
	dd.DmaAddressWidth = DMAHIL_EDU_DMA_BITS;
	Dev->Adapter = IoGetDmaAdapter(Dev->Pdo, (PDEVICE_DESCRIPTION)&dd, &mapRegs);
	if (Dev->Adapter != NULL) {
		Dev->AdapterVersion = 3;
		Dev->DmaMaskBits = DMAHIL_EDU_DMA_BITS;
	} else {
		RtlZeroMemory(&dd, sizeof(dd));
		dd.Version = DEVICE_DESCRIPTION_VERSION2;
		dd.Master = TRUE;
		dd.ScatterGather = TRUE;
		dd.Dma32BitAddresses = TRUE;
		dd.InterfaceType = PCIBus;
		dd.MaximumLength = DMAHIL_MAX_SIZE + PAGE_SIZE;
		mapRegs = 0;
		Dev->Adapter = IoGetDmaAdapter(Dev->Pdo, (PDEVICE_DESCRIPTION)&dd, &mapRegs);
		if (Dev->Adapter == NULL) {
			EDU_LOG("IoGetDmaAdapter failed for version 3 and version 2");
			return STATUS_INSUFFICIENT_RESOURCES;
		}
		Dev->AdapterVersion = 2;
		Dev->DmaMaskBits = 32;
	}
	Dev->MapRegisters = mapRegs;
	Dev->DmaOpsSize = Dev->Adapter->DmaOperations->Size;
	Dev->FlushDmaBuffer = NULL;
	if (Dev->AdapterVersion == 3 && Dev->DmaOpsSize >= EDU_FLUSH_DMA_BUFFER_MIN_SIZE)
		Dev->FlushDmaBuffer = EDU_DMA_OPS_V3(Dev->Adapter->DmaOperations)->FlushDmaBuffer;
	return STATUS_SUCCESS;
}

VOID EduDmaStop(PEDU_DEVICE Dev)
{
	if (Dev->Adapter != NULL) {
		Dev->Adapter->DmaOperations->PutDmaAdapter(Dev->Adapter);
		Dev->Adapter = NULL;
	}
	Dev->FlushDmaBuffer = NULL;
}

ULONG EduFaultsSupported(PEDU_DEVICE Dev)
{
	ULONG f = (1u << DMAHIL_FAULT_NONE) | (1u << DMAHIL_FAULT_SKIP_SYNC) | (1u << DMAHIL_FAULT_WRONG_DIRECTION) |
		  (1u << DMAHIL_FAULT_READ_BEFORE_COMPLETION);

	/* bit 28 is beyond a 28-bit mask only: a v2 adapter says 32 bits, and the edu's registers take no more */
	if (Dev->DmaMaskBits == DMAHIL_EDU_DMA_BITS)
		f |= 1u << DMAHIL_FAULT_ADDR_BEYOND_MASK;

	if (Dev->FlushDmaBuffer != NULL)
		f |= 1u << DMAHIL_FAULT_SKIP_FLUSH_DMA_BUFFER;
	return f;
}

/* Count a DDI call in the result (name, count, last status). */
VOID EduCall(PEDU_RUN Run, const char *Name, NTSTATUS Status)
{
	struct dmahil_result *r = Run->Result;
	ULONG i;

	for (i = 0; i < r->call_count; i++)
		if (strcmp(r->calls[i].name, Name) == 0)
			break;
	if (i == r->call_count) {
		if (i == DMAHIL_MAX_CALLS)
			return;
		EduCopyString(r->calls[i].name, sizeof(r->calls[i].name), Name);
		r->call_count++;
	}
	r->calls[i].count++;
	r->calls[i].status = (int32_t)Status;
}

/* Record the first failure of a run; later ones keep the first message. */
VOID EduRunFail(PEDU_RUN Run, ULONG DmahilStatus, const char *Fmt, ...)
{
	struct dmahil_result *r = Run->Result;
	va_list ap;

	if (r->status != DMAHIL_OK)
		return;
	r->status = DmahilStatus;
	va_start(ap, Fmt);
	EduFormatV(r->message, sizeof(r->message), Fmt, ap);
	va_end(ap);
	EDU_LOG("run %lu: %s", (unsigned long)Run->Handle, r->message);
}

static PHYSICAL_ADDRESS EduPhysOf(PEDU_BUFFER B, ULONG Pos)
{
	PHYSICAL_ADDRESS pa;
	ULONG at = MmGetMdlByteOffset(B->Mdl) + Pos;
	PPFN_NUMBER pfn = MmGetMdlPfnArray(B->Mdl);

	pa.QuadPart = ((LONGLONG)pfn[at >> PAGE_SHIFT] << PAGE_SHIFT) + (at & (PAGE_SIZE - 1));
	return pa;
}

/* Allocate one buffer, fill it, describe it with an MDL and report its pages. */
static NTSTATUS EduBufferAlloc(PEDU_RUN Run, ULONG Index, ULONG Role, ULONG Kind, BOOLEAN Common)
{
	PEDU_DEVICE dev = Run->Device;
	const struct dmahil_scenario *s = &Run->Scenario;
	PEDU_BUFFER b = &Run->Buf[Index];
	struct dmahil_buffer *rep = &Run->Result->buffers[Index];
	PPFN_NUMBER pfn;
	ULONG i, pages;

	b->Role = Role;
	b->Kind = Kind;
	b->Common = Common;
	b->Report = rep;
	b->AllocLength = ROUND_TO_PAGES(s->offset + s->size);
	rep->role = Role;
	rep->kind = Kind;
	rep->offset = s->offset;
	rep->length = s->size;

	if (Common) {
		b->Base = (PUCHAR)dev->Adapter->DmaOperations->AllocateCommonBuffer(dev->Adapter, b->AllocLength,
										   &b->BaseLogical, FALSE);
		EduCall(Run, "AllocateCommonBuffer", b->Base != NULL ? STATUS_SUCCESS : STATUS_INSUFFICIENT_RESOURCES);
	} else {
		/* pool allocations of a page or more are page-aligned */
		b->Base = (PUCHAR)EduAllocateNonPaged(b->AllocLength);
	}
	if (b->Base == NULL) {
		EduRunFail(Run, DMAHIL_E_NOMEM, "%s buffer of %lu bytes: allocation failed",
			   Common ? "common" : "nonpaged", (unsigned long)b->AllocLength);
		return STATUS_INSUFFICIENT_RESOURCES;
	}
	b->Data = b->Base + s->offset;

	/* destination: 0xA5 before the device writes; client source: 0x3C, then the pattern */
	if (Role == DMAHIL_ROLE_DESTINATION) {
		RtlFillMemory(b->Base, b->AllocLength, DMAHIL_FILL_BYTE);
	} else {
		RtlFillMemory(b->Base, b->AllocLength, DMAHIL_STALE_BYTE);
		dmahil_pattern_fill(b->Data, s->seed, 0, s->size);
	}

	b->Mdl = IoAllocateMdl(b->Data, s->size, FALSE, FALSE, NULL);
	if (b->Mdl == NULL) {
		EduRunFail(Run, DMAHIL_E_NOMEM, "IoAllocateMdl failed");
		return STATUS_INSUFFICIENT_RESOURCES;
	}
	MmBuildMdlForNonPagedPool(b->Mdl);

	pages = ADDRESS_AND_SIZE_TO_SPAN_PAGES(b->Data, s->size);
	if (pages > DMAHIL_MAX_PAGES) {
		EduRunFail(Run, DMAHIL_E_INVALID, "%lu pages exceed the ABI's %u", (unsigned long)pages,
			   DMAHIL_MAX_PAGES);
		return STATUS_INVALID_PARAMETER;
	}
	pfn = MmGetMdlPfnArray(b->Mdl);
	for (i = 0; i < pages; i++)
		rep->pages[i] = (uint64_t)pfn[i] << PAGE_SHIFT;
	rep->page_count = pages;
	return STATUS_SUCCESS;
}

/* Free one buffer. PASSIVE_LEVEL (FreeCommonBuffer). Mappings must be gone. */
static VOID EduBufferFree(PEDU_DEVICE Dev, PEDU_BUFFER B)
{
	if (B->Mdl != NULL) {
		IoFreeMdl(B->Mdl);
		B->Mdl = NULL;
	}
	if (B->Base != NULL) {
		if (B->Common)
			Dev->Adapter->DmaOperations->FreeCommonBuffer(Dev->Adapter, B->AllocLength, B->BaseLogical,
								      B->Base, FALSE);
		else
			ExFreePoolWithTag(B->Base, EDU_TAG);
		B->Base = NULL;
	}
}

/* The physical address behind a transfer position (for "bounced"). */
BOOLEAN EduIsBounced(PEDU_BUFFER B, ULONG Pos, ULONG64 DeviceAddr)
{
	return (ULONG64)EduPhysOf(B, Pos).QuadPart != DeviceAddr;
}

/*
 * Create a run at PASSIVE_LEVEL: the result, both buffers filled, held under a
 * new handle. Refusals (unsupported, busy, nomem) come back in the result.
 */
NTSTATUS EduRunCreate(PEDU_DEVICE Dev, const struct dmahil_scenario *S, PFILE_OBJECT Owner, PEDU_RUN *Out)
{
	BOOLEAN clientSrc, clientDst, common = S->method == DMAHIL_METHOD_COMMON_BUFFER;
	PEDU_RUN run;
	NTSTATUS status = STATUS_SUCCESS;

	run = (PEDU_RUN)EduAllocateNonPaged(sizeof(*run));
	if (run == NULL)
		return STATUS_INSUFFICIENT_RESOURCES;
	RtlZeroMemory(run, sizeof(*run));
	run->Result = (struct dmahil_result *)EduAllocateNonPaged(sizeof(*run->Result));
	if (run->Result == NULL) {
		ExFreePoolWithTag(run, EDU_TAG);
		return STATUS_INSUFFICIENT_RESOURCES;
	}
	RtlZeroMemory(run->Result, sizeof(*run->Result));
	run->Device = Dev;
	run->Owner = Owner;
	run->Scenario = *S;
	run->TimeoutMs = S->timeout_ms != 0 ? S->timeout_ms : EDUDMA_DEFAULT_TIMEOUT_MS;
	run->Result->contract_version = DMAHIL_CONTRACT_VERSION;
	run->Result->scenario = *S;
	KeInitializeDpc(&run->ContinueDpc, EduContinueDpc, run);
	*Out = run;

	ExAcquireFastMutex(&Dev->HeldMutex);
	if (Dev->HeldCount >= EDUDMA_MAX_HELD) {
		ExReleaseFastMutex(&Dev->HeldMutex);
		EduRunFail(run, DMAHIL_E_BUSY, "%u scenarios already held; release one", EDUDMA_MAX_HELD);
		run->State = EduRunFinished;
		return STATUS_SUCCESS; /* not held: the caller frees it after reporting */
	}
	run->Handle = Dev->NextHandle++;
	if (Dev->NextHandle == 0)
		Dev->NextHandle = 1;
	InsertTailList(&Dev->Held, &run->Link);
	Dev->HeldCount++;
	ExReleaseFastMutex(&Dev->HeldMutex);
	run->Result->handle = run->Handle;

	/* Which fault makes sense with which method and direction (docs/contract.md). */
	clientSrc = S->direction != DMAHIL_DIR_FROM_DEVICE;
	clientDst = S->direction != DMAHIL_DIR_TO_DEVICE;
	switch (S->fault) {
	case DMAHIL_FAULT_SKIP_SYNC:
		if (common)
			EduRunFail(run, DMAHIL_E_UNSUPPORTED, "skip-sync: a common buffer has no FlushAdapterBuffers to skip");
		else if (!clientDst)
			/* the HAL copies to the map registers in MapTransfer (ReactOS IoMapTransfer; the NT model) */
			EduRunFail(run, DMAHIL_E_UNSUPPORTED,
				   "skip-sync to the device: MapTransfer copies the data into the map registers when it maps, so "
				   "no FlushAdapterBuffers can be missing before the device reads");
		break;
	case DMAHIL_FAULT_SKIP_FLUSH_DMA_BUFFER:
		if (Dev->FlushDmaBuffer == NULL)
			EduRunFail(run, DMAHIL_E_UNSUPPORTED,
				   "skip-flush-dma-buffer: FlushDmaBuffer absent (DMA v%lu, DmaOperations->Size %lu)",
				   (unsigned long)Dev->AdapterVersion, (unsigned long)Dev->DmaOpsSize);
		else if (common || !clientDst)
			EduRunFail(run, DMAHIL_E_UNSUPPORTED,
				   "skip-flush-dma-buffer needs a destination mapped by MapTransfer or GetScatterGatherList");
		break;
	case DMAHIL_FAULT_WRONG_DIRECTION:
		if (common || !clientDst)
			EduRunFail(run, DMAHIL_E_UNSUPPORTED,
				   "wrong-direction needs a destination mapped by MapTransfer or GetScatterGatherList");
		break;
	case DMAHIL_FAULT_READ_BEFORE_COMPLETION:
		if (S->method != DMAHIL_METHOD_STREAMING || !clientDst)
			EduRunFail(run, DMAHIL_E_UNSUPPORTED,
				   "read-before-completion needs a streaming destination (PutScatterGatherList would free "
				   "the mapping under the device)");
		break;
	case DMAHIL_FAULT_ADDR_BEYOND_MASK:
		if (Dev->DmaMaskBits != DMAHIL_EDU_DMA_BITS)
			EduRunFail(run, DMAHIL_E_UNSUPPORTED,
				   "addr-beyond-mask: the adapter declares %lu-bit addressing (DMA v%lu), so bit 28 is not beyond it",
				   (unsigned long)Dev->DmaMaskBits, (unsigned long)Dev->AdapterVersion);
		break;
	case DMAHIL_FAULT_USE_AFTER_UNMAP:
	case DMAHIL_FAULT_SHORT_MAPPING:
	case DMAHIL_FAULT_OTHER_MAPPING:
		/* Linux only for now: the IOMMU variants that make them visible are Linux guests (docs/contract.md). */
		EduRunFail(run, DMAHIL_E_UNSUPPORTED, "this fault is implemented by the Linux driver only");
		break;
	default:
		break;
	}
	if (run->Result->status != DMAHIL_OK) {
		run->State = EduRunFinished;
		return STATUS_SUCCESS;
	}

	run->Result->buffer_count = 2;
	status = EduBufferAlloc(run, 0, DMAHIL_ROLE_SOURCE,
				common ? DMAHIL_KIND_COMMON : clientSrc ? DMAHIL_KIND_CLIENT : DMAHIL_KIND_STAGING,
				common || !clientSrc);
	if (NT_SUCCESS(status))
		status = EduBufferAlloc(run, 1, DMAHIL_ROLE_DESTINATION,
					common ? DMAHIL_KIND_COMMON : clientDst ? DMAHIL_KIND_CLIENT : DMAHIL_KIND_READBACK,
					common || !clientDst);
	if (!NT_SUCCESS(status)) {
		run->State = EduRunFinished;
		return STATUS_SUCCESS;
	}
	run->Buf[0].Mapped = !run->Buf[0].Common;
	run->Buf[1].Mapped = !run->Buf[1].Common;
	run->Buf[0].WriteToDevice = TRUE;
	run->Buf[1].WriteToDevice = S->fault == DMAHIL_FAULT_WRONG_DIRECTION; /* inverted on purpose */
	return STATUS_SUCCESS;
}

/* Free a run that is not active. PASSIVE_LEVEL. */
VOID EduRunFree(PEDU_RUN Run)
{
	PEDU_DEVICE dev = Run->Device;
	KIRQL irql;
	ULONG i;

	if (Run->DeviceMayBeBusy && !EduWaitDeviceIdle(dev, 10000))
		EDU_LOG("run %lu: edu still busy after 10 s; freeing anyway", (unsigned long)Run->Handle);
	/* mappings a fault (skip-sync) or a failure left behind: flush and unmap them now */
	KeRaiseIrql(DISPATCH_LEVEL, &irql);
	EduRunUnmapWindow(Run, TRUE);
	KeLowerIrql(irql);
	if (Run->HoldsMapping)
		InterlockedDecrement(&dev->MappingHolders);
	for (i = 0; i < 2; i++)
		EduBufferFree(dev, &Run->Buf[i]);
	ExFreePoolWithTag(Run->Result, EDU_TAG);
	ExFreePoolWithTag(Run, EDU_TAG);
}

static VOID EduUnlinkRun(PEDU_DEVICE Dev, PEDU_RUN Run)
{
	RemoveEntryList(&Run->Link);
	Dev->HeldCount--;
}

NTSTATUS EduReleaseHandle(PEDU_DEVICE Dev, ULONG Handle)
{
	PEDU_RUN found = NULL;
	PLIST_ENTRY e;

	ExAcquireFastMutex(&Dev->HeldMutex);
	for (e = Dev->Held.Flink; e != &Dev->Held; e = e->Flink) {
		PEDU_RUN run = CONTAINING_RECORD(e, EDU_RUN, Link);

		if (run->Handle == Handle) {
			found = run;
			break;
		}
	}
	/* a prepared run never started: nothing maps it, it can go */
	if (found != NULL && found->State != EduRunFinished && found->State != EduRunPrepared) {
		ExReleaseFastMutex(&Dev->HeldMutex);
		return STATUS_DEVICE_BUSY;
	}
	if (found != NULL)
		EduUnlinkRun(Dev, found);
	ExReleaseFastMutex(&Dev->HeldMutex);
	if (found == NULL)
		return STATUS_NOT_FOUND;
	EduRunFree(found);
	return STATUS_SUCCESS;
}

/* Free the finished runs of one file object (All: of every file object). PASSIVE_LEVEL. */
VOID EduReleaseOwner(PEDU_DEVICE Dev, PFILE_OBJECT Owner, BOOLEAN All)
{
	for (;;) {
		PEDU_RUN found = NULL;
		PLIST_ENTRY e;

		ExAcquireFastMutex(&Dev->HeldMutex);
		for (e = Dev->Held.Flink; e != &Dev->Held; e = e->Flink) {
			PEDU_RUN run = CONTAINING_RECORD(e, EDU_RUN, Link);

			if ((All || run->Owner == Owner) &&
			    (run->State == EduRunFinished || run->State == EduRunPrepared)) {
				found = run;
				break;
			}
		}
		if (found != NULL)
			EduUnlinkRun(Dev, found);
		ExReleaseFastMutex(&Dev->HeldMutex);
		if (found == NULL)
			return;
		EduRunFree(found);
	}
}
