/* SPDX-License-Identifier: MIT */
/*
 * The object manager and I/O manager pieces that are not IRPs: driver and
 * device objects, device stacks, names and symbolic links, references,
 * device properties, interrupt connection, and the small runtime DDIs
 * (RtlGetVersion, RtlInitUnicodeString, DbgPrintEx, Zw* for the driver's log).
 * Deleted device objects are left inaccessible: a DPC or access after
 * IoDeleteDevice is reported by name (review finding W1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include "mk.h"

static struct mk_devobj *devobjs;

struct mk_devobj *mk_devobj_of(PDEVICE_OBJECT d)
{
	struct mk_devobj *o;

	for (o = devobjs; o != NULL; o = o->next)
		if (o->obj == d)
			return o;
	return NULL;
}

static struct mk_devobj *live_devobj(PDEVICE_OBJECT d, const char *what)
{
	struct mk_devobj *o = mk_devobj_of(d);

	if (o == NULL)
		mk_bugcheck("invalid-device-object", "%s: %p is not a live device object", what, (void *)d);
	return o;
}

static NTSTATUS NTAPI invalid_request(PDEVICE_OBJECT DeviceObject, PIRP Irp);

PDRIVER_OBJECT mk_driver_object_new(const WCHAR *name)
{
	size_t bytes = sizeof(DRIVER_OBJECT) + sizeof(DRIVER_EXTENSION);
	PDRIVER_OBJECT d = os_alloc_private(bytes);
	PDRIVER_EXTENSION x = (PDRIVER_EXTENSION)(d + 1);
	int i;

	d->Type = IO_TYPE_DRIVER;
	d->Size = (CSHORT)sizeof(DRIVER_OBJECT);
	d->DriverExtension = x;
	x->DriverObject = d;
	d->DriverName.Buffer = (PWSTR)name;
	d->DriverName.Length = (USHORT)(wcslen(name) * sizeof(WCHAR));
	d->DriverName.MaximumLength = d->DriverName.Length;
	for (i = 0; i <= IRP_MJ_MAXIMUM_FUNCTION; i++)
		d->MajorFunction[i] = invalid_request;
	return d;
}

void mk_driver_object_free(PDRIVER_OBJECT d)
{
	os_retire(d, sizeof(DRIVER_OBJECT) + sizeof(DRIVER_EXTENSION));
	mk_retired_add(d, sizeof(DRIVER_OBJECT) + sizeof(DRIVER_EXTENSION), "driver-object-touched-after-unload",
		       "the driver object of an unloaded driver");
}

static int name_eq(const WCHAR *a, const WCHAR *b, size_t blen)
{
	size_t i;

	for (i = 0; i < blen; i++)
		if (a[i] == 0 || towlower(a[i]) != towlower(b[i]))
			return 0;
	return a[blen] == 0;
}

static struct mk_devobj *devobj_named(PCUNICODE_STRING n)
{
	struct mk_devobj *o;

	for (o = devobjs; o != NULL; o = o->next)
		if (o->name[0] != 0 && name_eq(o->name, n->Buffer, n->Length / sizeof(WCHAR)))
			return o;
	return NULL;
}

PDEVICE_OBJECT mk_device_create_impl(PDRIVER_OBJECT drv, ULONG ext, const WCHAR *name, int pdo)
{
	size_t head = (sizeof(DEVICE_OBJECT) + 15) & ~(size_t)15;
	size_t bytes = head + ((ext + 15) & ~(size_t)15) + sizeof(DEVOBJ_EXTENSION);
	PDEVICE_OBJECT d = os_alloc_private(bytes);
	struct mk_devobj *o = calloc(1, sizeof(*o));

	d->Type = IO_TYPE_DEVICE;
	d->Size = (USHORT)(head + ext);
	d->DriverObject = drv;
	d->NextDevice = drv->DeviceObject;
	drv->DeviceObject = d;
	d->DeviceExtension = ext ? (uint8_t *)d + head : NULL;
	d->StackSize = 1;
	d->Flags = DO_DEVICE_INITIALIZING;
	d->AlignmentRequirement = FILE_BYTE_ALIGNMENT;
	d->DeviceObjectExtension = (PDEVOBJ_EXTENSION)((uint8_t *)d + head + ((ext + 15) & ~(size_t)15));
	d->DeviceObjectExtension->Type = 13; /* IO_TYPE_DEVICE_OBJECT_EXTENSION */
	d->DeviceObjectExtension->DeviceObject = d;
	d->DeviceLock.Header.Type = SynchronizationEvent;
	InitializeListHead(&d->DeviceLock.Header.WaitListHead);
	o->obj = d;
	o->bytes = bytes;
	o->pdo = pdo;
	if (name != NULL)
		wcsncpy(o->name, name, 63);
	o->next = devobjs;
	devobjs = o;
	return d;
}

NTSTATUS NTAPI mk_IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize, PUNICODE_STRING DeviceName,
				 DEVICE_TYPE DeviceType, ULONG DeviceCharacteristics, BOOLEAN Exclusive,
				 PDEVICE_OBJECT *DeviceObject)
{
	WCHAR name[64] = { 0 };
	PDEVICE_OBJECT d;
	MK_DDI("IoCreateDevice");

	mk_irql_eq(PASSIVE_LEVEL);
	if (DriverObject != mk_drv)
		mk_bugcheck("invalid-parameter", "IoCreateDevice with driver object %p, not the driver's", (void *)DriverObject);
	if (DeviceName != NULL) {
		if (DeviceName->Length / sizeof(WCHAR) >= 63)
			mk_bugcheck("model-limit", "a device name of %u characters", DeviceName->Length / 2u);
		if (devobj_named(DeviceName) != NULL)
			return STATUS_OBJECT_NAME_COLLISION;
		memcpy(name, DeviceName->Buffer, DeviceName->Length);
	}
	d = mk_device_create_impl(DriverObject, DeviceExtensionSize, DeviceName != NULL ? name : NULL, 0);
	d->DeviceType = DeviceType;
	d->Characteristics = DeviceCharacteristics;
	if (Exclusive)
		d->Flags |= DO_EXCLUSIVE;
	*DeviceObject = d;
	return STATUS_SUCCESS;
}

VOID NTAPI mk_IoDeleteDevice(PDEVICE_OBJECT DeviceObject)
{
	struct mk_devobj *o, **pp;
	PDEVICE_OBJECT *link;
	char what[96];
	MK_DDI("IoDeleteDevice");

	mk_irql_eq(PASSIVE_LEVEL);
	o = live_devobj(DeviceObject, "IoDeleteDevice");
	if (o->lower != NULL)
		mk_bugcheck("delete-attached-device", "IoDeleteDevice of a device still attached to %p (no IoDetachDevice)",
			    (void *)o->lower);
	if (DeviceObject->AttachedDevice != NULL)
		mk_bugcheck("delete-attached-device", "IoDeleteDevice of a device %p is still attached to",
			    (void *)DeviceObject->AttachedDevice);
	if (o->refs != 0)
		mk_bugcheck("object-reference-leak", "IoDeleteDevice with %ld references taken by the driver still held",
			    (long)o->refs);
	snprintf(what, sizeof(what), "device object %p (and its extension), deleted by IoDeleteDevice",
		 (void *)DeviceObject);
	mk_check_no_dpc_in(DeviceObject, o->bytes, "dpc-after-delete", what);
	mk_remove_locks_check_in(DeviceObject, o->bytes);
	mk_check_no_workitem_for(DeviceObject);
	for (link = &DeviceObject->DriverObject->DeviceObject; *link != NULL; link = &(*link)->NextDevice)
		if (*link == DeviceObject) {
			*link = DeviceObject->NextDevice;
			break;
		}
	for (pp = &devobjs; *pp != o; pp = &(*pp)->next)
		;
	*pp = o->next;
	os_retire(DeviceObject, o->bytes);
	mk_retired_add(DeviceObject, o->bytes, "device-touched-after-delete", what);
	free(o);
}

PDEVICE_OBJECT mk_attached_top(PDEVICE_OBJECT d)
{
	while (d->AttachedDevice != NULL)
		d = d->AttachedDevice;
	return d;
}

PDEVICE_OBJECT NTAPI mk_IoAttachDeviceToDeviceStack(PDEVICE_OBJECT SourceDevice, PDEVICE_OBJECT TargetDevice)
{
	struct mk_devobj *src;
	PDEVICE_OBJECT top;
	MK_DDI("IoAttachDeviceToDeviceStack");

	mk_irql_eq(PASSIVE_LEVEL);
	src = live_devobj(SourceDevice, "IoAttachDeviceToDeviceStack");
	live_devobj(TargetDevice, "IoAttachDeviceToDeviceStack");
	if (src->lower != NULL)
		mk_bugcheck("invalid-parameter", "IoAttachDeviceToDeviceStack: the device is already attached");
	top = mk_attached_top(TargetDevice);
	top->AttachedDevice = SourceDevice;
	SourceDevice->StackSize = (CCHAR)(top->StackSize + 1);
	if (top->AlignmentRequirement > SourceDevice->AlignmentRequirement)
		SourceDevice->AlignmentRequirement = top->AlignmentRequirement;
	src->lower = top;
	return top;
}

VOID NTAPI mk_IoDetachDevice(PDEVICE_OBJECT TargetDevice)
{
	struct mk_devobj *above;
	MK_DDI("IoDetachDevice");

	mk_irql_eq(PASSIVE_LEVEL);
	live_devobj(TargetDevice, "IoDetachDevice");
	if (TargetDevice->AttachedDevice == NULL)
		mk_bugcheck("detach-not-attached", "IoDetachDevice(%p): nothing is attached to it", (void *)TargetDevice);
	above = mk_devobj_of(TargetDevice->AttachedDevice);
	if (above != NULL)
		above->lower = NULL;
	TargetDevice->AttachedDevice = NULL;
}

PDEVICE_OBJECT NTAPI mk_IoGetAttachedDeviceReference(PDEVICE_OBJECT DeviceObject)
{
	PDEVICE_OBJECT top;
	MK_DDI("IoGetAttachedDeviceReference");

	mk_irql_le(DISPATCH_LEVEL);
	live_devobj(DeviceObject, "IoGetAttachedDeviceReference");
	top = mk_attached_top(DeviceObject);
	mk_devobj_of(top)->refs++;
	top->ReferenceCount++;
	return top;
}

LONG_PTR FASTCALL mk_ObfDereferenceObject(PVOID Object)
{
	struct mk_devobj *o = mk_devobj_of((PDEVICE_OBJECT)Object);
	MK_DDI("ObfDereferenceObject");

	mk_irql_le(DISPATCH_LEVEL);
	if (o == NULL)
		mk_bugcheck("object-invalid", "ObDereferenceObject(%p): the model knows only device objects here", Object);
	if (o->refs <= 0)
		mk_bugcheck("object-over-dereference", "ObDereferenceObject(%p) without a reference the driver took", Object);
	o->refs--;
	o->obj->ReferenceCount--;
	return o->refs;
}

LONG_PTR FASTCALL mk_ObfReferenceObject(PVOID Object)
{
	struct mk_devobj *o = mk_devobj_of((PDEVICE_OBJECT)Object);
	MK_DDI("ObfReferenceObject");

	mk_irql_le(DISPATCH_LEVEL);
	if (o == NULL)
		mk_bugcheck("object-invalid", "ObReferenceObject(%p): the model knows only device objects here", Object);
	o->refs++;
	o->obj->ReferenceCount++;
	return o->refs;
}

/* ---- symbolic links ---- */

struct symlink {
	WCHAR link[80], target[80];
	int used;
};
static struct symlink links[4];

static int wcs_from_us(WCHAR *out, size_t n, PCUNICODE_STRING s)
{
	size_t len = s->Length / sizeof(WCHAR);

	if (len >= n)
		return -1;
	memcpy(out, s->Buffer, len * sizeof(WCHAR));
	out[len] = 0;
	return 0;
}

static int wcs_ieq(const WCHAR *a, const WCHAR *b)
{
	while (*a && towlower(*a) == towlower(*b))
		a++, b++;
	return *a == 0 && *b == 0;
}

NTSTATUS NTAPI mk_IoCreateSymbolicLink(PUNICODE_STRING SymbolicLinkName, PUNICODE_STRING DeviceName)
{
	WCHAR l[80], t[80];
	int i, freei = -1;
	MK_DDI("IoCreateSymbolicLink");

	mk_irql_eq(PASSIVE_LEVEL);
	if (wcs_from_us(l, 80, SymbolicLinkName) || wcs_from_us(t, 80, DeviceName))
		mk_bugcheck("model-limit", "a name of 80 characters or more");
	for (i = 0; i < 4; i++) {
		if (links[i].used && wcs_ieq(links[i].link, l))
			return STATUS_OBJECT_NAME_COLLISION;
		if (!links[i].used && freei < 0)
			freei = i;
	}
	if (freei < 0)
		mk_bugcheck("model-limit", "more than 4 symbolic links");
	wcscpy(links[freei].link, l);
	wcscpy(links[freei].target, t);
	links[freei].used = 1;
	return STATUS_SUCCESS;
}

NTSTATUS NTAPI mk_IoDeleteSymbolicLink(PUNICODE_STRING SymbolicLinkName)
{
	WCHAR l[80];
	int i;
	MK_DDI("IoDeleteSymbolicLink");

	mk_irql_eq(PASSIVE_LEVEL);
	if (wcs_from_us(l, 80, SymbolicLinkName))
		return STATUS_OBJECT_NAME_NOT_FOUND;
	for (i = 0; i < 4; i++)
		if (links[i].used && wcs_ieq(links[i].link, l)) {
			links[i].used = 0;
			return STATUS_SUCCESS;
		}
	return STATUS_OBJECT_NAME_NOT_FOUND;
}

/* "\\.\EduDma" as CreateFile sees it: \??\EduDma, i.e. a \DosDevices\ or \GLOBAL??\ link, to a named device. */
PDEVICE_OBJECT mk_symlink_resolve(const char *user_path)
{
	static const WCHAR *const dirs[] = { L"\\DosDevices\\", L"\\??\\", L"\\GLOBAL??\\" };
	WCHAR want[80];
	size_t i, d;
	struct mk_devobj *o;

	if (strncmp(user_path, "\\\\.\\", 4) != 0)
		return NULL;
	for (d = 0; d < 3; d++) {
		size_t n = wcslen(dirs[d]);

		wcscpy(want, dirs[d]);
		for (i = 0; user_path[4 + i] != 0 && n + i < 79; i++)
			want[n + i] = (WCHAR)(unsigned char)user_path[4 + i];
		want[n + i] = 0;
		for (i = 0; i < 4; i++)
			if (links[i].used && wcs_ieq(links[i].link, want))
				for (o = devobjs; o != NULL; o = o->next)
					if (o->name[0] != 0 && wcs_ieq(o->name, links[i].target))
						return o->obj;
	}
	return NULL;
}

void mk_objects_check_leaks(PDRIVER_OBJECT drv)
{
	int i;

	if (drv->DeviceObject != NULL)
		mk_bugcheck_at("device-leak", "DriverUnload", 0, "device object %p still exists after unload",
			       (void *)drv->DeviceObject);
	for (i = 0; i < 4; i++)
		if (links[i].used) {
			char l[80];

			wcstombs(l, links[i].link, sizeof(l));
			mk_bugcheck_at("symlink-leak", "DriverUnload", 0, "symbolic link %s still exists after unload", l);
		}
}

/* ---- device properties ---- */

NTSTATUS NTAPI mk_IoGetDeviceProperty(PDEVICE_OBJECT DeviceObject, DEVICE_REGISTRY_PROPERTY DeviceProperty,
				      ULONG BufferLength, PVOID PropertyBuffer, PULONG ResultLength)
{
	ULONG v;
	MK_DDI("IoGetDeviceProperty");

	mk_irql_eq(PASSIVE_LEVEL);
	if (DeviceObject != mk_pdo)
		mk_bugcheck("not-a-pdo", "IoGetDeviceProperty(%p): not the physical device object", (void *)DeviceObject);
	switch (DeviceProperty) {
	case DevicePropertyBusNumber:
		v = 0;
		break;
	case DevicePropertyAddress:
		v = (3u << 16) | 0u; /* 0000:00:03.0 */
		break;
	default:
		return STATUS_INVALID_PARAMETER_2;
	}
	*ResultLength = sizeof(v);
	if (BufferLength < sizeof(v))
		return STATUS_BUFFER_TOO_SMALL;
	memcpy(PropertyBuffer, &v, sizeof(v));
	return STATUS_SUCCESS;
}

/* ---- the edu's interrupt ---- */

static struct {
	int connected;
	ULONG version;        /* CONNECT_MESSAGE_BASED or CONNECT_LINE_BASED, as granted */
	PVOID context;        /* what the driver got in ConnectionContext */
	PKMESSAGE_SERVICE_ROUTINE msg_isr;
	PKSERVICE_ROUTINE line_isr;
	PVOID service_context;
	ULONG_PTR caller;
	unsigned storm;
	PIO_INTERRUPT_MESSAGE_INFO info;
	PKINTERRUPT kint;
} irq;

NTSTATUS NTAPI mk_IoConnectInterruptEx(PIO_CONNECT_INTERRUPT_PARAMETERS Parameters)
{
	PIO_CONNECT_INTERRUPT_MESSAGE_BASED_PARAMETERS m = &Parameters->MessageBased;
	MK_DDI("IoConnectInterruptEx");

	mk_irql_eq(PASSIVE_LEVEL);
	if (irq.connected)
		mk_bugcheck("interrupt-connected-twice", "IoConnectInterruptEx while the interrupt is connected");
	irq.kint = os_alloc_private(PAGE_SIZE); /* stands for the KINTERRUPT; the driver never looks inside */
	switch (Parameters->Version) {
	case CONNECT_MESSAGE_BASED:
		if (m->PhysicalDeviceObject != mk_pdo)
			mk_bugcheck("not-a-pdo", "IoConnectInterruptEx: PhysicalDeviceObject %p is not the PDO",
				    (void *)m->PhysicalDeviceObject);
		if (m->ConnectionContext.Generic == NULL || m->MessageServiceRoutine == NULL)
			return STATUS_INVALID_PARAMETER;
		irq.service_context = m->ServiceContext;
		if (mk_cfg.msi) {
			irq.info = os_alloc_private(PAGE_SIZE);
			irq.info->UnifiedIrql = MK_DIRQL;
			irq.info->MessageCount = 1;
			irq.info->MessageInfo[0].InterruptObject = irq.kint;
			irq.info->MessageInfo[0].Irql = MK_DIRQL;
			irq.info->MessageInfo[0].Vector = 0x51;
			irq.info->MessageInfo[0].MessageAddress.QuadPart = 0xFEE00000;
			irq.info->MessageInfo[0].MessageData = 0x4051;
			irq.msg_isr = m->MessageServiceRoutine;
			irq.line_isr = NULL;
			irq.version = CONNECT_MESSAGE_BASED;
			irq.context = irq.info;
		} else {
			/* no message resources: the documented fallback to the line-based routine */
			if (m->FallBackServiceRoutine == NULL)
				return STATUS_NOT_FOUND;
			irq.line_isr = m->FallBackServiceRoutine;
			irq.msg_isr = NULL;
			irq.version = CONNECT_LINE_BASED;
			irq.context = irq.kint;
			Parameters->Version = CONNECT_LINE_BASED;
		}
		*m->ConnectionContext.Generic = irq.context;
		break;
	case CONNECT_LINE_BASED:
		if (Parameters->LineBased.PhysicalDeviceObject != mk_pdo)
			mk_bugcheck("not-a-pdo", "IoConnectInterruptEx: PhysicalDeviceObject is not the PDO");
		if (mk_cfg.msi)
			mk_bugcheck("unmodelled-ddi", "a line-based connection where the device has a message interrupt");
		irq.line_isr = Parameters->LineBased.ServiceRoutine;
		irq.service_context = Parameters->LineBased.ServiceContext;
		irq.version = CONNECT_LINE_BASED;
		irq.context = irq.kint;
		*Parameters->LineBased.InterruptObject = irq.kint;
		break;
	default:
		mk_bugcheck("unmodelled-ddi", "IoConnectInterruptEx version %lu", (unsigned long)Parameters->Version);
	}
	irq.connected = 1;
	irq.caller = mk_ddi_top->caller;
	irq.storm = 0;
	return STATUS_SUCCESS;
}

VOID NTAPI mk_IoDisconnectInterruptEx(PIO_DISCONNECT_INTERRUPT_PARAMETERS Parameters)
{
	MK_DDI("IoDisconnectInterruptEx");

	mk_irql_eq(PASSIVE_LEVEL);
	if (!irq.connected)
		mk_bugcheck("interrupt-not-connected", "IoDisconnectInterruptEx without a connected interrupt");
	if (Parameters->Version != irq.version || Parameters->ConnectionContext.Generic != irq.context)
		mk_bugcheck("interrupt-disconnect-mismatch",
			    "disconnect with version %lu and context %p; the connection was version %lu, context %p",
			    (unsigned long)Parameters->Version, Parameters->ConnectionContext.Generic,
			    (unsigned long)irq.version, irq.context);
	irq.connected = 0;
	if (irq.info != NULL) {
		os_retire(irq.info, PAGE_SIZE);
		mk_retired_add(irq.info, PAGE_SIZE, "interrupt-touched-after-disconnect", "the interrupt message table");
		irq.info = NULL;
	}
	os_retire(irq.kint, PAGE_SIZE);
	mk_retired_add(irq.kint, PAGE_SIZE, "interrupt-touched-after-disconnect", "the interrupt object");
}

static void check_kinterrupt(PKINTERRUPT i)
{
	if (!irq.connected || i != irq.kint)
		mk_bugcheck("interrupt-not-connected", "interrupt object %p is not the connected interrupt", (void *)i);
}

BOOLEAN NTAPI mk_KeSynchronizeExecution(PKINTERRUPT Interrupt, PKSYNCHRONIZE_ROUTINE SynchronizeRoutine,
					 PVOID SynchronizeContext)
{
	KIRQL old;
	BOOLEAN r;
	MK_DDI("KeSynchronizeExecution");

	mk_irql_le(MK_DIRQL);
	check_kinterrupt(Interrupt);
	old = mk_cpu->irql;
	mk_cpu->irql = MK_DIRQL;
	{
		MK_CALLOUT();
		r = SynchronizeRoutine(SynchronizeContext);
	}
	if (mk_cpu->irql != MK_DIRQL)
		mk_bugcheck_at("wrong-irql", "SynchronizeRoutine", (ULONG_PTR)SynchronizeRoutine,
			       "the synchronize routine returned at IRQL %u", (unsigned)mk_cpu->irql);
	mk_cpu->irql = old;
	return r;
}

KIRQL NTAPI mk_KeAcquireInterruptSpinLock(PKINTERRUPT Interrupt)
{
	KIRQL old;
	MK_DDI("KeAcquireInterruptSpinLock");

	mk_irql_le(MK_DIRQL);
	check_kinterrupt(Interrupt);
	old = mk_cpu->irql;
	mk_cpu->irql = MK_DIRQL;
	mk_cpu->spinlocks++;
	return old;
}

VOID NTAPI mk_KeReleaseInterruptSpinLock(PKINTERRUPT Interrupt, KIRQL OldIrql)
{
	MK_DDI("KeReleaseInterruptSpinLock");

	check_kinterrupt(Interrupt);
	mk_irql_eq(MK_DIRQL);
	if (mk_cpu->spinlocks <= 0)
		mk_bugcheck("spin-lock-not-held", "KeReleaseInterruptSpinLock without the lock");
	mk_cpu->spinlocks--;
	mk_cpu->irql = OldIrql;
}

int mk_interrupt_connected(void)
{
	return irq.connected;
}

void mk_interrupt_check_leaks(void)
{
	if (irq.connected)
		mk_bugcheck_at("interrupt-leak", "DriverUnload", irq.caller, "the interrupt is still connected");
}

int mk_interrupt_deliver(void)
{
	struct mk_cpu c;
	BOOLEAN claimed;
	ULONG_PTR isr;

	if (!irq.connected || !mk_edu_irq_pending() || mk_cpu->irql >= MK_DIRQL)
		return 0;
	mk_edu_irq_taken();
	isr = irq.msg_isr != NULL ? (ULONG_PTR)irq.msg_isr : (ULONG_PTR)irq.line_isr;
	mk_trace("interrupt: ISR 0x%llx", (unsigned long long)mk_rva(isr));
	mk_cpu_push(&c, MK_DIRQL, "an ISR");
	{
		MK_CALLOUT();
		claimed = irq.msg_isr != NULL ? irq.msg_isr(irq.kint, irq.service_context, 0)
					      : irq.line_isr(irq.kint, irq.service_context);
	}
	mk_cpu_pop(&c, "ISR", isr);
	/* a level-triggered line the ISR leaves asserted comes straight back */
	if (!mk_cfg.msi && mk_edu_irq_pending()) {
		if (++irq.storm > 1000)
			mk_bugcheck_at("interrupt-storm", "ISR", isr,
				       "the line stayed asserted through 1000 ISR calls (last returned %s)",
				       claimed ? "TRUE" : "FALSE");
	} else {
		irq.storm = 0;
	}
	return 1;
}

/* ---- runtime ---- */

NTSTATUS NTAPI mk_RtlGetVersion(PRTL_OSVERSIONINFOW lpVersionInformation)
{
	MK_DDI("RtlGetVersion");

	mk_irql_eq(PASSIVE_LEVEL);
	if (lpVersionInformation->dwOSVersionInfoSize != sizeof(RTL_OSVERSIONINFOW) &&
	    lpVersionInformation->dwOSVersionInfoSize != sizeof(RTL_OSVERSIONINFOEXW))
		return STATUS_INVALID_PARAMETER;
	/* Windows 11 23H2 */
	lpVersionInformation->dwMajorVersion = 10;
	lpVersionInformation->dwMinorVersion = 0;
	lpVersionInformation->dwBuildNumber = 22631;
	lpVersionInformation->dwPlatformId = 2;
	lpVersionInformation->szCSDVersion[0] = 0;
	return STATUS_SUCCESS;
}

VOID NTAPI mk_RtlInitUnicodeString(PUNICODE_STRING DestinationString, PCWSTR SourceString)
{
	MK_DDI("RtlInitUnicodeString");

	DestinationString->Buffer = (PWSTR)SourceString;
	DestinationString->Length = SourceString != NULL ? (USHORT)(wcslen(SourceString) * sizeof(WCHAR)) : 0;
	DestinationString->MaximumLength = SourceString != NULL ? (USHORT)(DestinationString->Length + sizeof(WCHAR)) : 0;
}

ULONG __cdecl mk_DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...)
{
	char line[512];
	va_list ap;
	MK_DDI("DbgPrintEx");

	(void)ComponentId;
	(void)Level;
	va_start(ap, Format);
	_vsnprintf(line, sizeof(line) - 1, Format, ap);
	va_end(ap);
	line[sizeof(line) - 1] = 0;
	mk_trace("DbgPrintEx: %s", line);
	return 0;
}

/* Zw*: only the driver's log file, appended to DMAHIL_MODEL_LOG when that is set. */
#define LOG_HANDLE ((HANDLE)(ULONG_PTR)0x4A4)
static int log_open;
static ULONG_PTR log_caller;

NTSTATUS NTAPI mk_ZwCreateFile(PHANDLE FileHandle, ACCESS_MASK DesiredAccess, POBJECT_ATTRIBUTES ObjectAttributes,
			       PIO_STATUS_BLOCK IoStatusBlock, PLARGE_INTEGER AllocationSize, ULONG FileAttributes,
			       ULONG ShareAccess, ULONG CreateDisposition, ULONG CreateOptions, PVOID EaBuffer,
			       ULONG EaLength)
{
	static const WCHAR want[] = L"\\??\\C:\\dmahil\\edudma.log";
	PUNICODE_STRING n = ObjectAttributes->ObjectName;
	MK_DDI("ZwCreateFile");

	(void)DesiredAccess, (void)AllocationSize, (void)FileAttributes, (void)ShareAccess;
	(void)CreateDisposition, (void)CreateOptions, (void)EaBuffer, (void)EaLength;
	mk_irql_eq(PASSIVE_LEVEL);
	if (!(ObjectAttributes->Attributes & OBJ_KERNEL_HANDLE))
		mk_bugcheck("user-handle-from-kernel", "ZwCreateFile without OBJ_KERNEL_HANDLE");
	if (mk_cfg.log_path == NULL || n == NULL || !name_eq(want, n->Buffer, n->Length / sizeof(WCHAR)))
		return STATUS_OBJECT_PATH_NOT_FOUND;
	if (log_open)
		mk_bugcheck("model-limit", "the log file opened twice");
	log_open = 1;
	log_caller = mk_ddi_top->caller;
	*FileHandle = LOG_HANDLE;
	IoStatusBlock->Status = STATUS_SUCCESS;
	IoStatusBlock->Information = FILE_OPENED;
	return STATUS_SUCCESS;
}

NTSTATUS NTAPI mk_ZwWriteFile(HANDLE FileHandle, HANDLE Event, PIO_APC_ROUTINE ApcRoutine, PVOID ApcContext,
			      PIO_STATUS_BLOCK IoStatusBlock, PVOID Buffer, ULONG Length, PLARGE_INTEGER ByteOffset,
			      PULONG Key)
{
	MK_DDI("ZwWriteFile");

	(void)Event, (void)ApcRoutine, (void)ApcContext, (void)ByteOffset, (void)Key;
	mk_irql_eq(PASSIVE_LEVEL);
	if (FileHandle != LOG_HANDLE || !log_open)
		mk_bugcheck("invalid-handle", "ZwWriteFile on handle %p", FileHandle);
	mk_log_raw("edudma: ", 8);
	mk_log_raw(Buffer, Length);
	IoStatusBlock->Status = STATUS_SUCCESS;
	IoStatusBlock->Information = Length;
	return STATUS_SUCCESS;
}

NTSTATUS NTAPI mk_ZwClose(HANDLE Handle)
{
	MK_DDI("ZwClose");

	mk_irql_eq(PASSIVE_LEVEL);
	if (Handle != LOG_HANDLE || !log_open)
		mk_bugcheck("invalid-handle", "ZwClose(%p): not an open handle", Handle);
	log_open = 0;
	return STATUS_SUCCESS;
}

void mk_misc_check_leaks(void)
{
	if (log_open)
		mk_bugcheck_at("handle-leak", "DriverUnload", log_caller, "a file handle is still open");
}

/* The I/O manager's answer for a major function the driver does not handle. */
static NTSTATUS NTAPI invalid_request(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	(void)DeviceObject;
	Irp->IoStatus.Status = STATUS_INVALID_DEVICE_REQUEST;
	Irp->IoStatus.Information = 0;
	mk_irp_complete_impl(Irp);
	return STATUS_INVALID_DEVICE_REQUEST;
}
