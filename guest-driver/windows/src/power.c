/* SPDX-License-Identifier: MIT */
/*
 * IRP_MJ_POWER. This driver is not the device's power policy owner and keeps
 * no device context across D-states (the edu has none worth saving), so every
 * power IRP goes down to pci.sys: PoStartNextPowerIrp (required before Vista,
 * harmless after), skip the stack location, PoCallDriver.
 */
#include "edudma.h"

NTSTATUS NTAPI EduDispatchPower(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	NTSTATUS status = IoAcquireRemoveLock(&dev->RemoveLock, Irp);

	if (!NT_SUCCESS(status)) {
		PoStartNextPowerIrp(Irp);
		return EduCompleteIrp(Irp, status, 0);
	}
	PoStartNextPowerIrp(Irp);
	IoSkipCurrentIrpStackLocation(Irp);
	status = PoCallDriver(dev->Lower, Irp);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
	return status;
}
