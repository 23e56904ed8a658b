/* SPDX-License-Identifier: MIT */
/*
 * Interrupts. The ISR reads the edu interrupt status (0x24), acknowledges
 * exactly those bits (0x64, required for MSI as well) and queues the DPC; the
 * DPC hands a finished DMA operation to the engine. A per-operation timer
 * catches an interrupt that never comes.
 */
#include "edudma.h"

static BOOLEAN EduIsrCommon(PEDU_DEVICE Dev, BOOLEAN Exclusive)
{
	ULONG status = EDU_RD(Dev, EDU_REG_IRQ_STATUS);

	if (status == 0 || status == 0xFFFFFFFFu)
		return Exclusive; /* a shared line raised by someone else, or the device is gone */
	EDU_WR(Dev, EDU_REG_IRQ_ACK, status);
	InterlockedOr(&Dev->IrqStatus, (LONG)status);
	IoRequestDpc(Dev->Self, NULL, Dev);
	return TRUE;
}

BOOLEAN NTAPI EduIsrLine(PKINTERRUPT Interrupt, PVOID Context)
{
	UNREFERENCED_PARAMETER(Interrupt);
	return EduIsrCommon((PEDU_DEVICE)Context, FALSE);
}

BOOLEAN NTAPI EduIsrMessage(PKINTERRUPT Interrupt, PVOID Context, ULONG MessageId)
{
	UNREFERENCED_PARAMETER(Interrupt);
	UNREFERENCED_PARAMETER(MessageId);
	return EduIsrCommon((PEDU_DEVICE)Context, TRUE);
}

VOID NTAPI EduDpc(PKDPC Dpc, PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)Context;
	ULONG status = (ULONG)InterlockedExchange(&dev->IrqStatus, 0);
	PEDU_RUN run = NULL;

	UNREFERENCED_PARAMETER(Dpc);
	UNREFERENCED_PARAMETER(DeviceObject);
	UNREFERENCED_PARAMETER(Irp);
	if (!(status & EDU_IRQ_DMA))
		return;
	KeAcquireSpinLockAtDpcLevel(&dev->RunLock);
	if (dev->OpInFlight && dev->Active != NULL) {
		dev->OpInFlight = FALSE;
		run = dev->Active;
	}
	KeReleaseSpinLockFromDpcLevel(&dev->RunLock);
	if (run == NULL)
		return; /* late: the operation already timed out */
	KeCancelTimer(&dev->Timer);
	EduRunOpDone(run);
}

VOID NTAPI EduTimerDpc(PKDPC Dpc, PVOID Context, PVOID Arg1, PVOID Arg2)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)Context;
	PEDU_RUN run = NULL;

	UNREFERENCED_PARAMETER(Dpc);
	UNREFERENCED_PARAMETER(Arg1);
	UNREFERENCED_PARAMETER(Arg2);
	KeAcquireSpinLockAtDpcLevel(&dev->RunLock);
	/*
	 * KeCancelTimer does not take back a timer DPC that is already queued: one left from the last
	 * operation (its interrupt came right at expiry) would time out this one. Only an operation that
	 * has run for at least half its time can time out; the timer, re-armed for it, comes back later.
	 */
	if (dev->OpInFlight && dev->Active != NULL &&
	    EduTicksToNs(dev, KeQueryPerformanceCounter(NULL).QuadPart - dev->OpStart.QuadPart) >=
		    (ULONG64)dev->OpTimeoutMs * 500000ull) {
		dev->OpInFlight = FALSE;
		run = dev->Active;
	}
	KeReleaseSpinLockFromDpcLevel(&dev->RunLock);
	if (run != NULL)
		EduRunTimedOut(run);
}

/*
 * Start one edu DMA operation (1 .. 4095 bytes, one side at 0x40000) and arm
 * its timeout. DISPATCH_LEVEL. The addresses fit in 32 bits (checked by the
 * caller): 4-byte register writes zero-extend.
 */
VOID EduProgramOp(PEDU_DEVICE Dev, PEDU_RUN Run, ULONG64 Src, ULONG64 Dst, ULONG Count, BOOLEAN FromDevice)
{
	LARGE_INTEGER due;

	Run->OpStart = KeQueryPerformanceCounter(NULL);
	KeAcquireSpinLockAtDpcLevel(&Dev->RunLock);
	Dev->OpInFlight = TRUE;
	Dev->OpStart = Run->OpStart;
	Dev->OpTimeoutMs = Run->TimeoutMs;
	KeReleaseSpinLockFromDpcLevel(&Dev->RunLock);
	due.QuadPart = -(LONGLONG)Run->TimeoutMs * 10000;
	KeSetTimer(&Dev->Timer, due, &Dev->TimerDpc);
	EDU_WR(Dev, EDU_REG_DMA_SRC, (ULONG)Src);
	EDU_WR(Dev, EDU_REG_DMA_DST, (ULONG)Dst);
	EDU_WR(Dev, EDU_REG_DMA_COUNT, Count);
	EDU_WR(Dev, EDU_REG_DMA_CMD,
	       EDU_DMA_CMD_START | EDU_DMA_CMD_IRQ | (FromDevice ? EDU_DMA_CMD_FROM_DEVICE : 0));
}

/*
 * IoConnectInterruptEx(CONNECT_MESSAGE_BASED): the MSI message when the INF's
 * MSISupported gave the device one, otherwise the system falls back to the
 * line-based interrupt and calls EduIsrLine.
 */
NTSTATUS EduInterruptConnect(PEDU_DEVICE Dev)
{
	IO_CONNECT_INTERRUPT_PARAMETERS p;
	NTSTATUS status;

	RtlZeroMemory(&p, sizeof(p));
	p.Version = CONNECT_MESSAGE_BASED;
	p.MessageBased.PhysicalDeviceObject = Dev->Pdo;
	p.MessageBased.ConnectionContext.Generic = &Dev->InterruptConnection;
	p.MessageBased.MessageServiceRoutine = EduIsrMessage;
	p.MessageBased.ServiceContext = Dev;
	p.MessageBased.FallBackServiceRoutine = EduIsrLine;
	status = IoConnectInterruptEx(&p);
	if (!NT_SUCCESS(status)) {
		EDU_LOG("IoConnectInterruptEx failed 0x%08lx", (unsigned long)status);
		Dev->InterruptConnection = NULL;
		return status;
	}
	Dev->InterruptVersion = p.Version; /* CONNECT_MESSAGE_BASED or CONNECT_LINE_BASED */
	return STATUS_SUCCESS;
}

VOID EduInterruptDisconnect(PEDU_DEVICE Dev)
{
	IO_DISCONNECT_INTERRUPT_PARAMETERS p;

	if (Dev->InterruptConnection == NULL)
		return;
	RtlZeroMemory(&p, sizeof(p));
	p.Version = Dev->InterruptVersion;
	p.ConnectionContext.Generic = Dev->InterruptConnection;
	IoDisconnectInterruptEx(&p);
	Dev->InterruptConnection = NULL;
}
