/* SPDX-License-Identifier: MIT */
/*
 * IRP_MJ_PNP. START_DEVICE brings the device up in this order, and every
 * way down (failed start, STOP, SURPRISE_REMOVAL, REMOVE) undoes it in reverse:
 *   1. forward START to pci.sys and wait
 *   2. map BAR0 from the translated memory resource
 *   3. check the edu ID register (0x010000ed) and the liveness register
 *   4. make sure PCI bus mastering is on (BUS_INTERFACE_STANDARD)
 *   5. IoGetDmaAdapter (v3 with a 28-bit width, else v2)
 *   6. connect the interrupt (MSI message, or the line-based fallback)
 */
#include <initguid.h> /* defines GUID_BUS_INTERFACE_STANDARD here */
#include "edudma.h"

static NTSTATUS EduStartDevice(PEDU_DEVICE Dev, PIRP Irp);
static VOID EduStopHardware(PEDU_DEVICE Dev, BOOLEAN ReleaseAdapter);

static NTSTATUS EduParseResources(PEDU_DEVICE Dev, PCM_RESOURCE_LIST Translated)
{
	PCM_PARTIAL_RESOURCE_LIST list;
	ULONG i;

	if (Translated == NULL || Translated->Count < 1)
		return STATUS_DEVICE_CONFIGURATION_ERROR;
	list = &Translated->List[0].PartialResourceList;
	for (i = 0; i < list->Count; i++) {
		PCM_PARTIAL_RESOURCE_DESCRIPTOR d = &list->PartialDescriptors[i];

		switch (d->Type) {
		case CmResourceTypeMemory:
			if (Dev->Regs == NULL && d->u.Memory.Length >= EDU_MIN_BAR_LENGTH) {
				Dev->RegsPhysical = d->u.Memory.Start;
				Dev->RegsLength = d->u.Memory.Length;
				Dev->Regs = (PUCHAR)MmMapIoSpace(d->u.Memory.Start, d->u.Memory.Length, MmNonCached);
				if (Dev->Regs == NULL)
					return STATUS_INSUFFICIENT_RESOURCES;
			}
			break;
		case CmResourceTypeInterrupt:
			Dev->HaveInterrupt = TRUE;
			Dev->InterruptIsMessage = (d->Flags & CM_RESOURCE_INTERRUPT_MESSAGE) != 0;
			break;
		default:
			break;
		}
	}
	if (Dev->Regs == NULL) {
		EDU_LOG("start: no memory resource of at least 1 MiB");
		return STATUS_DEVICE_CONFIGURATION_ERROR;
	}
	if (!Dev->HaveInterrupt) {
		EDU_LOG("start: no interrupt resource");
		return STATUS_DEVICE_CONFIGURATION_ERROR;
	}
	return STATUS_SUCCESS;
}

static NTSTATUS EduCheckDevice(PEDU_DEVICE Dev)
{
	ULONG live;

	Dev->DeviceId = EDU_RD(Dev, EDU_REG_ID);
	if ((Dev->DeviceId & EDU_ID_MASK) != EDU_ID_VALUE) {
		EDU_LOG("start: ID register 0x%08lx is not an edu (0x010000ed)", (unsigned long)Dev->DeviceId);
		return STATUS_DEVICE_CONFIGURATION_ERROR;
	}
	EDU_WR(Dev, EDU_REG_LIVENESS, 0x12345678u);
	live = EDU_RD(Dev, EDU_REG_LIVENESS);
	if (live != ~0x12345678u) {
		EDU_LOG("start: liveness register read 0x%08lx", (unsigned long)live);
		return STATUS_DEVICE_CONFIGURATION_ERROR;
	}
	return STATUS_SUCCESS;
}

/*
 * The edu moves nothing while the PCI command register's Bus Master Enable bit
 * is clear. Whether pci.sys sets it for a function driver that never asked is
 * not documented, so read it through the bus interface and set it if needed.
 */
static NTSTATUS EduEnableBusMaster(PEDU_DEVICE Dev)
{
	BUS_INTERFACE_STANDARD bus;
	IO_STATUS_BLOCK iosb;
	PIO_STACK_LOCATION sp;
	PDEVICE_OBJECT top;
	KEVENT event;
	USHORT cmd = 0;
	NTSTATUS status;
	PIRP irp;

	RtlZeroMemory(&bus, sizeof(bus));
	KeInitializeEvent(&event, NotificationEvent, FALSE);
	top = IoGetAttachedDeviceReference(Dev->Self);
	irp = IoBuildSynchronousFsdRequest(IRP_MJ_PNP, top, NULL, 0, NULL, &event, &iosb);
	if (irp == NULL) {
		ObDereferenceObject(top);
		return STATUS_INSUFFICIENT_RESOURCES;
	}
	irp->IoStatus.Status = STATUS_NOT_SUPPORTED;
	sp = IoGetNextIrpStackLocation(irp);
	sp->MinorFunction = IRP_MN_QUERY_INTERFACE;
	sp->Parameters.QueryInterface.InterfaceType = &GUID_BUS_INTERFACE_STANDARD;
	sp->Parameters.QueryInterface.Size = sizeof(bus);
	sp->Parameters.QueryInterface.Version = 1;
	sp->Parameters.QueryInterface.Interface = (PINTERFACE)&bus;
	sp->Parameters.QueryInterface.InterfaceSpecificData = NULL;
	status = IoCallDriver(top, irp);
	if (status == STATUS_PENDING) {
		KeWaitForSingleObject(&event, Executive, KernelMode, FALSE, NULL);
		status = iosb.Status;
	}
	ObDereferenceObject(top);
	if (!NT_SUCCESS(status)) {
		EDU_LOG("start: no BUS_INTERFACE_STANDARD (0x%08lx); bus mastering left as pci.sys set it",
			(unsigned long)status);
		return STATUS_SUCCESS;
	}
	if (bus.GetBusData(bus.Context, PCI_WHICHSPACE_CONFIG, &cmd, EDU_PCI_COMMAND_OFFSET, sizeof(cmd)) ==
	    sizeof(cmd)) {
		Dev->BusMasterChecked = TRUE;
		if (!(cmd & EDU_PCI_COMMAND_BUS_MASTER)) {
			cmd |= EDU_PCI_COMMAND_BUS_MASTER;
			if (bus.SetBusData(bus.Context, PCI_WHICHSPACE_CONFIG, &cmd, EDU_PCI_COMMAND_OFFSET,
					   sizeof(cmd)) == sizeof(cmd))
				Dev->BusMasterSetByDriver = TRUE;
			else
				status = STATUS_DEVICE_CONFIGURATION_ERROR;
		}
		EDU_LOG("start: PCI command 0x%04x, bus master %s", cmd,
			Dev->BusMasterSetByDriver ? "set by edudma" : "already on");
	}
	bus.InterfaceDereference(bus.Context);
	return status;
}

static VOID EduReadLocation(PEDU_DEVICE Dev)
{
	ULONG bus = 0, address = 0, len = 0;

	if (NT_SUCCESS(IoGetDeviceProperty(Dev->Pdo, DevicePropertyBusNumber, sizeof(bus), &bus, &len)) &&
	    NT_SUCCESS(IoGetDeviceProperty(Dev->Pdo, DevicePropertyAddress, sizeof(address), &address, &len)))
		EduFormat(Dev->Location, sizeof(Dev->Location), "0000:%02lx:%02lx.%lx",
				   (unsigned long)(bus & 0xFF), (unsigned long)((address >> 16) & 0x1F),
				   (unsigned long)(address & 0x7));
	else
		EduCopyString(Dev->Location, sizeof(Dev->Location), "unknown");
}

static NTSTATUS EduStartDevice(PEDU_DEVICE Dev, PIRP Irp)
{
	PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
	NTSTATUS status;

	status = IoForwardIrpSynchronously(Dev->Lower, Irp) ? Irp->IoStatus.Status : STATUS_UNSUCCESSFUL;
	if (!NT_SUCCESS(status)) {
		EDU_LOG("start: pci.sys failed START_DEVICE 0x%08lx", (unsigned long)status);
		return status;
	}
	status = EduParseResources(Dev, sp->Parameters.StartDevice.AllocatedResourcesTranslated);
	if (NT_SUCCESS(status))
		status = EduCheckDevice(Dev);
	if (NT_SUCCESS(status))
		status = EduEnableBusMaster(Dev);
	if (NT_SUCCESS(status))
		status = EduDmaStart(Dev);
	if (NT_SUCCESS(status))
		status = EduInterruptConnect(Dev);
	if (!NT_SUCCESS(status)) {
		EduStopHardware(Dev, TRUE);
		return status;
	}
	EduReadLocation(Dev);
	Dev->State = EduStarted;
	EDU_LOG("started: %s id 0x%08lx BAR0 %I64x+%lx, %s interrupt, DMA v%lu (%lu-bit, ops size %lu, "
		"FlushDmaBuffer %s, %lu map registers)",
		Dev->Location, (unsigned long)Dev->DeviceId, (unsigned long long)Dev->RegsPhysical.QuadPart,
		(unsigned long)Dev->RegsLength, Dev->InterruptVersion == CONNECT_MESSAGE_BASED ? "MSI" : "line-based",
		(unsigned long)Dev->AdapterVersion, (unsigned long)Dev->DmaMaskBits, (unsigned long)Dev->DmaOpsSize,
		Dev->FlushDmaBuffer ? "present" : "absent", (unsigned long)Dev->MapRegisters);
	EduStartNext(Dev);
	return STATUS_SUCCESS;
}

/* Undo START in reverse: interrupt, adapter (and the buffers that need it), registers. */
static VOID EduStopHardware(PEDU_DEVICE Dev, BOOLEAN ReleaseAdapter)
{
	EduInterruptDisconnect(Dev);
	/*
	 * No interrupt comes now, but a DPC it queued (or the timer's) may still be waiting to run on
	 * the device extension, which REMOVE frees: cancel the timer and let queued DPCs finish.
	 */
	KeCancelTimer(&Dev->Timer);
	KeFlushQueuedDpcs();
	if (ReleaseAdapter) {
		EduReleaseOwner(Dev, NULL, TRUE);
		EduDmaStop(Dev);
	}
	if (Dev->Regs != NULL) {
		MmUnmapIoSpace(Dev->Regs, Dev->RegsLength);
		Dev->Regs = NULL;
	}
	Dev->HaveInterrupt = FALSE;
}

/* No new run starts; wait for the active one (bounded by its per-operation timeout). */
static VOID EduQuiesce(PEDU_DEVICE Dev, NTSTATUS QueuedStatus)
{
	EduQueueFlush(Dev, NULL, QueuedStatus);
	KeWaitForSingleObject(&Dev->IdleEvent, Executive, KernelMode, FALSE, NULL);
}

static BOOLEAN EduBusy(PEDU_DEVICE Dev)
{
	BOOLEAN busy;

	ExAcquireFastMutex(&Dev->HeldMutex);
	busy = Dev->HeldCount != 0;
	ExReleaseFastMutex(&Dev->HeldMutex);
	return busy || Dev->Active != NULL;
}

NTSTATUS NTAPI EduDispatchPnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
	NTSTATUS status;

	status = IoAcquireRemoveLock(&dev->RemoveLock, Irp);
	if (!NT_SUCCESS(status))
		return EduCompleteIrp(Irp, status, 0);

	switch (sp->MinorFunction) {
	case IRP_MN_START_DEVICE:
		status = EduStartDevice(dev, Irp);
		EduCompleteIrp(Irp, status, 0);
		IoReleaseRemoveLock(&dev->RemoveLock, Irp);
		return status;

	case IRP_MN_QUERY_STOP_DEVICE:
	case IRP_MN_QUERY_REMOVE_DEVICE:
		/* Held buffers belong to an open handle: refuse rather than pull them away. */
		if (EduBusy(dev)) {
			EduCompleteIrp(Irp, STATUS_DEVICE_BUSY, 0);
			IoReleaseRemoveLock(&dev->RemoveLock, Irp);
			return STATUS_DEVICE_BUSY;
		}
		dev->PreviousState = dev->State;
		dev->State = sp->MinorFunction == IRP_MN_QUERY_STOP_DEVICE ? EduStopPending : EduRemovePending;
		Irp->IoStatus.Status = STATUS_SUCCESS;
		break;

	case IRP_MN_CANCEL_STOP_DEVICE:
	case IRP_MN_CANCEL_REMOVE_DEVICE:
		/* handled on the way up: the bus driver first, then each driver above it */
		status = IoForwardIrpSynchronously(dev->Lower, Irp) ? Irp->IoStatus.Status : STATUS_UNSUCCESSFUL;
		if (NT_SUCCESS(status) && (dev->State == EduStopPending || dev->State == EduRemovePending))
			dev->State = dev->PreviousState;
		EduCompleteIrp(Irp, status, Irp->IoStatus.Information);
		IoReleaseRemoveLock(&dev->RemoveLock, Irp);
		return status;

	case IRP_MN_STOP_DEVICE:
		dev->State = EduStopped;
		EduQuiesce(dev, STATUS_DEVICE_NOT_READY);
		EduStopHardware(dev, TRUE);
		Irp->IoStatus.Status = STATUS_SUCCESS;
		break;

	case IRP_MN_SURPRISE_REMOVAL:
		/* The device is gone: stop touching it; buffers stay until their handles close. */
		dev->State = EduSurpriseRemoved;
		EduQuiesce(dev, STATUS_NO_SUCH_DEVICE);
		EduStopHardware(dev, FALSE);
		if (dev->LinkCreated) {
			IoDeleteSymbolicLink(&dev->LinkName);
			dev->LinkCreated = FALSE;
		}
		Irp->IoStatus.Status = STATUS_SUCCESS;
		break;

	case IRP_MN_REMOVE_DEVICE:
		dev->State = EduDeleted;
		EduQuiesce(dev, STATUS_NO_SUCH_DEVICE);
		EduStopHardware(dev, TRUE);
		Irp->IoStatus.Status = STATUS_SUCCESS;
		IoSkipCurrentIrpStackLocation(Irp);
		status = IoCallDriver(dev->Lower, Irp);
		IoReleaseRemoveLockAndWait(&dev->RemoveLock, Irp);
		IoDetachDevice(dev->Lower);
		if (dev->LinkCreated)
			IoDeleteSymbolicLink(&dev->LinkName);
		EDU_LOG("removed");
		IoDeleteDevice(DeviceObject);
		return status;

	default:
		break;
	}

	IoSkipCurrentIrpStackLocation(Irp);
	status = IoCallDriver(dev->Lower, Irp);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
	return status;
}
