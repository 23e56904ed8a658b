/* SPDX-License-Identifier: MIT */
/*
 * IRP_MJ_POWER. As the function driver this driver is the device's power
 * policy owner (Docs: kernel/managing-device-power-policy), but it requests no
 * D-IRPs: the edu stays in D0 through a system sleep and nothing restores it
 * on resume. The test images disable sleep (images/windows/setup-script.ts);
 * testing sleep would need PoRequestPowerIrp for D3/D0. Every power IRP goes
 * down to pci.sys: PoStartNextPowerIrp (required before Vista, harmless after),
 * skip the stack location, PoCallDriver.
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
