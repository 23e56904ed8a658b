/* SPDX-License-Identifier: MIT */
/*
 * pci.sys and the PnP manager, as far as the edu's stack sees them.
 *
 * The bus driver owns the PDO: it answers PnP and power IRPs (success for the
 * state changes, BUS_INTERFACE_STANDARD for IRP_MN_QUERY_INTERFACE over a PCI
 * config space with the edu's identity and command register), and the device
 * properties IoGetDeviceProperty reads. Bus Master Enable starts clear unless
 * DMAHIL_MODEL_BUS_MASTER=1: whether pci.sys sets it is undocumented, so the
 * driver must (dma-and-qemu-facts.md section 7).
 *
 * The PnP manager brings the driver up for each backend open (DriverEntry,
 * AddDevice, IRP_MN_START_DEVICE with raw and translated resources) and down
 * after the last close (QUERY_REMOVE, REMOVE, DriverUnload), then checks that
 * nothing the driver took is left (the leak rules).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);

PDEVICE_OBJECT mk_pdo;
PDRIVER_OBJECT mk_drv;
static PDRIVER_OBJECT bus_drv;
static uint8_t config[256];
static LONG interface_refs;
static ULONG_PTR interface_caller;

static const GUID guid_bus_interface_standard = { 0x496B8280, 0x6F25, 0x11D0,
						  { 0xBE, 0xAF, 0x08, 0x00, 0x2B, 0xE2, 0x09, 0x2F } };

uint8_t *mk_pci_config(void)
{
	return config;
}

int mk_bus_master_enabled(void)
{
	return (config[4] & 0x04) != 0;
}

static void config_reset(void)
{
	memset(config, 0, sizeof(config));
	config[0x00] = 0x34, config[0x01] = 0x12; /* vendor 1234 */
	config[0x02] = 0xE8, config[0x03] = 0x11; /* device 11e8 */
	config[0x04] = 0x02 | (mk_cfg.bus_master_on ? 0x04 : 0); /* memory space on */
	config[0x06] = 0x10;                       /* capability list */
	config[0x08] = 0x10;                       /* revision */
	config[0x0B] = 0xFF;                       /* class: other */
	config[0x10] = (uint8_t)MK_EDU_BAR_PA, config[0x11] = (uint8_t)(MK_EDU_BAR_PA >> 8);
	config[0x12] = (uint8_t)(MK_EDU_BAR_PA >> 16), config[0x13] = (uint8_t)(MK_EDU_BAR_PA >> 24);
	config[0x2C] = 0xF4, config[0x2D] = 0x1A;  /* subsystem vendor 1af4 */
	config[0x2E] = 0x00, config[0x2F] = 0x11;  /* subsystem 1100 */
	config[0x34] = 0x40;
	config[0x3C] = 0x0B, config[0x3D] = 0x01;  /* INTA */
	config[0x40] = 0x05;                       /* MSI, 64-bit */
	config[0x42] = 0x80 | (mk_cfg.msi ? 0x01 : 0);
}

/* ---- BUS_INTERFACE_STANDARD ---- */

static VOID NTAPI bus_reference(PVOID Context)
{
	MK_DDI("InterfaceReference");

	(void)Context;
	interface_refs++;
}

static VOID NTAPI bus_dereference(PVOID Context)
{
	MK_DDI("InterfaceDereference");

	(void)Context;
	if (interface_refs <= 0)
		mk_bugcheck("interface-over-dereference", "InterfaceDereference without a reference");
	interface_refs--;
}

static ULONG NTAPI bus_get_data(PVOID Context, ULONG DataType, PVOID Buffer, ULONG Offset, ULONG Length)
{
	MK_DDI("GetBusData");

	(void)Context;
	mk_irql_le(DISPATCH_LEVEL);
	if (DataType != PCI_WHICHSPACE_CONFIG || Offset >= sizeof(config))
		return 0;
	if (Length > sizeof(config) - Offset)
		Length = sizeof(config) - Offset;
	memcpy(Buffer, config + Offset, Length);
	return Length;
}

static ULONG NTAPI bus_set_data(PVOID Context, ULONG DataType, PVOID Buffer, ULONG Offset, ULONG Length)
{
	ULONG i;
	MK_DDI("SetBusData");

	(void)Context;
	mk_irql_le(DISPATCH_LEVEL);
	if (DataType != PCI_WHICHSPACE_CONFIG || Offset >= sizeof(config))
		return 0;
	if (Length > sizeof(config) - Offset)
		Length = sizeof(config) - Offset;
	for (i = 0; i < Length; i++)
		if (Offset + i == 0x04 || Offset + i == 0x05) /* only the command register is the driver's to write */
			config[Offset + i] = ((const uint8_t *)Buffer)[i];
	return Length;
}

static BOOLEAN NTAPI bus_translate(PVOID Context, PHYSICAL_ADDRESS BusAddress, ULONG Length, PULONG AddressSpace,
				   PPHYSICAL_ADDRESS TranslatedAddress)
{
	MK_DDI("TranslateBusAddress");

	(void)Context, (void)Length, (void)AddressSpace;
	*TranslatedAddress = BusAddress;
	return TRUE;
}

static PDMA_ADAPTER NTAPI bus_get_dma_adapter(PVOID Context, PDEVICE_DESCRIPTION DeviceDescriptor,
					      PULONG NumberOfMapRegisters)
{
	MK_DDI("GetDmaAdapter");

	(void)Context;
	mk_irql_eq(PASSIVE_LEVEL);
	return mk_get_dma_adapter_impl(mk_pdo, DeviceDescriptor, NumberOfMapRegisters);
}

/* ---- the PDO's dispatch (pci.sys) ---- */

static NTSTATUS NTAPI bus_pnp(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PIO_STACK_LOCATION sp = IoGetCurrentIrpStackLocation(Irp);
	NTSTATUS st = Irp->IoStatus.Status;

	(void)DeviceObject;
	switch (sp->MinorFunction) {
	case IRP_MN_START_DEVICE:
	case IRP_MN_QUERY_STOP_DEVICE:
	case IRP_MN_STOP_DEVICE:
	case IRP_MN_CANCEL_STOP_DEVICE:
	case IRP_MN_QUERY_REMOVE_DEVICE:
	case IRP_MN_CANCEL_REMOVE_DEVICE:
	case IRP_MN_SURPRISE_REMOVAL:
	case IRP_MN_REMOVE_DEVICE:
		st = STATUS_SUCCESS;
		break;
	case IRP_MN_QUERY_INTERFACE:
		if (memcmp(sp->Parameters.QueryInterface.InterfaceType, &guid_bus_interface_standard, sizeof(GUID)) == 0 &&
		    sp->Parameters.QueryInterface.Size >= sizeof(BUS_INTERFACE_STANDARD) &&
		    sp->Parameters.QueryInterface.Version == 1) {
			PBUS_INTERFACE_STANDARD b = (PBUS_INTERFACE_STANDARD)sp->Parameters.QueryInterface.Interface;

			b->Size = sizeof(*b);
			b->Version = 1;
			b->Context = &config;
			b->InterfaceReference = bus_reference;
			b->InterfaceDereference = bus_dereference;
			b->TranslateBusAddress = bus_translate;
			b->GetDmaAdapter = bus_get_dma_adapter;
			b->SetBusData = bus_set_data;
			b->GetBusData = bus_get_data;
			interface_refs++;
			interface_caller = mk_ddi_caller();
			st = STATUS_SUCCESS;
		}
		break;
	default:
		break;
	}
	Irp->IoStatus.Status = st;
	mk_irp_complete_impl(Irp);
	return st;
}

static NTSTATUS NTAPI bus_power(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	(void)DeviceObject;
	Irp->IoStatus.Status = STATUS_SUCCESS;
	mk_irp_complete_impl(Irp);
	return STATUS_SUCCESS;
}

static NTSTATUS NTAPI bus_other(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	NTSTATUS st = Irp->IoStatus.Status;

	(void)DeviceObject;
	if (IoGetCurrentIrpStackLocation(Irp)->MajorFunction != IRP_MJ_SYSTEM_CONTROL)
		st = STATUS_INVALID_DEVICE_REQUEST;
	Irp->IoStatus.Status = st;
	mk_irp_complete_impl(Irp);
	return st;
}

/* ---- resources ---- */

static CM_RESOURCE_LIST *resources(int translated)
{
	size_t bytes = sizeof(CM_RESOURCE_LIST) + sizeof(CM_PARTIAL_RESOURCE_DESCRIPTOR);
	CM_RESOURCE_LIST *l = os_alloc_private(bytes);
	CM_PARTIAL_RESOURCE_LIST *p = &l->List[0].PartialResourceList;
	CM_PARTIAL_RESOURCE_DESCRIPTOR *d = p->PartialDescriptors;

	l->Count = 1;
	l->List[0].InterfaceType = PCIBus;
	l->List[0].BusNumber = 0;
	p->Version = 1;
	p->Revision = 1;
	p->Count = 2;
	d[0].Type = CmResourceTypeMemory;
	d[0].ShareDisposition = CmResourceShareDeviceExclusive;
	d[0].Flags = CM_RESOURCE_MEMORY_READ_WRITE;
	d[0].u.Memory.Start.QuadPart = (LONGLONG)MK_EDU_BAR_PA;
	d[0].u.Memory.Length = MK_EDU_BAR_LEN;
	d[1].Type = CmResourceTypeInterrupt;
	d[1].ShareDisposition = mk_cfg.msi ? CmResourceShareDeviceExclusive : CmResourceShareShared;
	if (mk_cfg.msi) {
		d[1].Flags = CM_RESOURCE_INTERRUPT_LATCHED | CM_RESOURCE_INTERRUPT_MESSAGE;
		if (translated) {
			d[1].u.MessageInterrupt.Translated.Level = MK_DIRQL;
			d[1].u.MessageInterrupt.Translated.Vector = 0x51;
			d[1].u.MessageInterrupt.Translated.Affinity = 1;
		} else {
			d[1].u.MessageInterrupt.Raw.MessageCount = 1;
			d[1].u.MessageInterrupt.Raw.Vector = 0xFFFFFFFE;
			d[1].u.MessageInterrupt.Raw.Affinity = 1;
		}
	} else {
		d[1].Flags = CM_RESOURCE_INTERRUPT_LEVEL_SENSITIVE;
		d[1].u.Interrupt.Level = translated ? MK_DIRQL : 11;
		d[1].u.Interrupt.Vector = translated ? 0x51 : 11;
		d[1].u.Interrupt.Affinity = 1;
	}
	return l;
}

/* ---- the PnP manager ---- */

static int booted;

static void bus_boot(void)
{
	if (booted)
		return;
	booted = 1;
	bus_drv = mk_driver_object_new(L"\\Driver\\pci");
	bus_drv->MajorFunction[IRP_MJ_PNP] = bus_pnp;
	bus_drv->MajorFunction[IRP_MJ_POWER] = bus_power;
	for (int i = 0; i <= IRP_MJ_MAXIMUM_FUNCTION; i++)
		if (i != IRP_MJ_PNP && i != IRP_MJ_POWER)
			bus_drv->MajorFunction[i] = bus_other;
	mk_pdo = mk_device_create_impl(bus_drv, 0, L"\\Device\\NTPNP_PCI0003", 1);
	mk_pdo->Flags = DO_BUS_ENUMERATED_DEVICE | DO_POWER_PAGABLE;
	mk_pdo->DeviceType = FILE_DEVICE_BUS_EXTENDER;
}

static void check_thread_clean(const char *what, ULONG_PTR routine)
{
	if (mk_cpu->irql != PASSIVE_LEVEL || mk_cpu->spinlocks || mk_cpu->fastmutexes)
		mk_bugcheck_at("wrong-irql", what, routine, "%s returned at IRQL %u holding %d spin lock(s), %d fast mutex(es)",
			       what, (unsigned)mk_cpu->irql, mk_cpu->spinlocks, mk_cpu->fastmutexes);
}

static NTSTATUS pnp_irp(UCHAR minor, const char *what, const CM_RESOURCE_LIST *raw, const CM_RESOURCE_LIST *tr)
{
	PDEVICE_OBJECT top = mk_attached_top(mk_pdo);
	PIRP irp = mk_irp_alloc_impl(top->StackSize);
	PIO_STACK_LOCATION sp = IoGetNextIrpStackLocation(irp);
	struct mk_req *r;
	NTSTATUS st;

	sp->MajorFunction = IRP_MJ_PNP;
	sp->MinorFunction = minor;
	if (minor == IRP_MN_START_DEVICE) {
		sp->Parameters.StartDevice.AllocatedResources = (PCM_RESOURCE_LIST)raw;
		sp->Parameters.StartDevice.AllocatedResourcesTranslated = (PCM_RESOURCE_LIST)tr;
	}
	irp->IoStatus.Status = STATUS_NOT_SUPPORTED;
	r = mk_req_send(top, irp, what, NULL, 0, 0);
	if (!mk_req_wait(r, MK_FOREVER))
		mk_bugcheck_at("irp-never-completes", what, 0, "%s was never completed: nothing left to run will", what);
	st = r->status;
	mk_req_free(r);
	check_thread_clean(what, 0);
	return st;
}

static void unload(void)
{
	if (mk_drv->DriverUnload == NULL)
		mk_bugcheck_at("no-unload-routine", "DriverUnload", 0, "the driver has no unload routine");
	{
		MK_CALLOUT();
		mk_drv->DriverUnload(mk_drv);
	}
	check_thread_clean("DriverUnload", (ULONG_PTR)mk_drv->DriverUnload);
	/* time goes on: a DMA the driver left in flight lands now (device-dma-unmapped if its memory is gone) */
	while (mk_edu_next_due() != MK_FOREVER) {
		mk_now = mk_edu_next_due();
		mk_edu_fire(mk_now);
	}
	mk_objects_check_leaks(mk_drv);
	mk_irp_check_leaks();
	mk_dma_check_leaks();
	mk_interrupt_check_leaks();
	mk_edu_check_leaks();
	mk_misc_check_leaks();
	mk_workitems_check_leaks();
	mk_mdl_check_leaks();
	mk_mem_check_leaks();
	if (interface_refs != 0)
		mk_bugcheck_at("interface-leak", "DriverUnload", interface_caller,
			       "%ld reference(s) on BUS_INTERFACE_STANDARD not dereferenced", (long)interface_refs);
	if (mk_dpc_queued_count() != 0)
		mk_bugcheck_at("dpc-after-unload", "DriverUnload", 0, "%d DPC(s) still queued after unload",
			       mk_dpc_queued_count());
	mk_check_no_dpc_in((void *)0, (size_t)-1, "dpc-after-unload", "the unloaded driver");
	mk_driver_object_free(mk_drv);
	mk_drv = NULL;
}

int mk_lifecycle_up(char *err, size_t errlen)
{
	static WCHAR regpath_buf[] = L"\\Registry\\Machine\\System\\CurrentControlSet\\Services\\edudma";
	UNICODE_STRING regpath = { sizeof(regpath_buf) - sizeof(WCHAR), sizeof(regpath_buf), regpath_buf };
	CM_RESOURCE_LIST *raw, *tr;
	NTSTATUS st;

	bus_boot();
	config_reset();
	interface_refs = 0;
	mk_drv = mk_driver_object_new(L"\\Driver\\edudma");
	{
		MK_CALLOUT();
		st = DriverEntry(mk_drv, &regpath);
	}
	check_thread_clean("DriverEntry", (ULONG_PTR)DriverEntry);
	if (!NT_SUCCESS(st)) {
		snprintf(err, errlen, "DriverEntry failed 0x%08lx", (unsigned long)st);
		mk_objects_check_leaks(mk_drv);
		mk_mem_check_leaks();
		mk_driver_object_free(mk_drv);
		mk_drv = NULL;
		return -1;
	}
	if (mk_drv->DriverExtension->AddDevice == NULL)
		mk_bugcheck_at("invalid-parameter", "DriverEntry", 0, "DriverEntry set no AddDevice routine");
	{
		MK_CALLOUT();
		st = mk_drv->DriverExtension->AddDevice(mk_drv, mk_pdo);
	}
	check_thread_clean("AddDevice", (ULONG_PTR)mk_drv->DriverExtension->AddDevice);
	if (!NT_SUCCESS(st)) {
		snprintf(err, errlen, "AddDevice failed 0x%08lx", (unsigned long)st);
		unload();
		return -1;
	}
	if (mk_pdo->AttachedDevice == NULL)
		mk_bugcheck_at("invalid-parameter", "AddDevice", 0, "AddDevice succeeded without attaching to the PDO");
	if (mk_pdo->AttachedDevice->Flags & DO_DEVICE_INITIALIZING)
		mk_bugcheck_at("device-initializing", "AddDevice", 0,
			       "AddDevice returned with DO_DEVICE_INITIALIZING still set on its device object");
	raw = resources(0);
	tr = resources(1);
	st = pnp_irp(IRP_MN_START_DEVICE, "IRP_MN_START_DEVICE", raw, tr);
	os_retire(raw, PAGE_SIZE);
	os_retire(tr, PAGE_SIZE);
	mk_retired_add(raw, PAGE_SIZE, "resources-touched-after-start", "the raw resource list of IRP_MN_START_DEVICE");
	mk_retired_add(tr, PAGE_SIZE, "resources-touched-after-start",
		       "the translated resource list of IRP_MN_START_DEVICE");
	if (!NT_SUCCESS(st)) {
		snprintf(err, errlen, "IRP_MN_START_DEVICE failed 0x%08lx", (unsigned long)st);
		pnp_irp(IRP_MN_REMOVE_DEVICE, "IRP_MN_REMOVE_DEVICE", NULL, NULL);
		unload();
		return -1;
	}
	return 0;
}

void mk_lifecycle_down(void)
{
	NTSTATUS st;

	st = pnp_irp(IRP_MN_QUERY_REMOVE_DEVICE, "IRP_MN_QUERY_REMOVE_DEVICE", NULL, NULL);
	if (!NT_SUCCESS(st))
		mk_bugcheck_at("busy-after-last-close", "IRP_MN_QUERY_REMOVE_DEVICE", 0,
			       "the driver refused QUERY_REMOVE (0x%08lx) after its last handle was closed: it still holds "
			       "what the closed handle asked for",
			       (unsigned long)st);
	pnp_irp(IRP_MN_REMOVE_DEVICE, "IRP_MN_REMOVE_DEVICE", NULL, NULL);
	if (mk_pdo->AttachedDevice != NULL || mk_drv->DeviceObject != NULL)
		mk_bugcheck_at("remove-incomplete", "IRP_MN_REMOVE_DEVICE", 0,
			       "after REMOVE the device is still %s", mk_pdo->AttachedDevice != NULL ? "attached" : "not deleted");
	unload();
}
