/* SPDX-License-Identifier: MIT */
/* DriverEntry, AddDevice, DriverUnload and the pass-down dispatch routine. */
#include "edudma.h"

DRIVER_INITIALIZE DriverEntry;
static DRIVER_UNLOAD EduUnload;
static DRIVER_DISPATCH EduDispatchPassDown;

POOL_TYPE EduNonPagedPool = NonPagedPool;

/*
 * ExAllocatePool2 (Windows 10 2004 on) where the kernel exports it; ExAllocatePoolWithTag, deprecated
 * there, only where it does not (Docs: kernel/updating-deprecated-exallocatepool-calls). One binary
 * runs on Windows 7 to 11.
 */
typedef PVOID(NTAPI *EDU_EX_ALLOCATE_POOL2)(ULONG64 Flags, SIZE_T NumberOfBytes, ULONG Tag);
#define EDU_POOL_FLAG_NON_PAGED 0x0000000000000040ull /* POOL_FLAG_NON_PAGED: non-executable */
static EDU_EX_ALLOCATE_POOL2 EduExAllocatePool2;

#if defined(__GNUC__)
#define EDU_USED __attribute__((used))
#else
#define EDU_USED
#endif

/*
 * The dispatch table as data. Besides being the one place that lists the
 * major functions, its pointers are absolute addresses: without any, x64 ld
 * writes no .reloc section (wdm-build-notes.md section 4.2, trap 3). "used"
 * keeps gcc from folding the table into code.
 */
static const struct {
	UCHAR Major;
	PDRIVER_DISPATCH Routine;
} EduMajorTable[] EDU_USED = {
	{ IRP_MJ_CREATE, EduDispatchCreate },
	{ IRP_MJ_CLEANUP, EduDispatchCleanup },
	{ IRP_MJ_CLOSE, EduDispatchClose },
	{ IRP_MJ_DEVICE_CONTROL, EduDispatchDeviceControl },
	{ IRP_MJ_PNP, EduDispatchPnp },
	{ IRP_MJ_POWER, EduDispatchPower },
};

NTSTATUS NTAPI DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
	RTL_OSVERSIONINFOW os;
	ULONG i;

	UNREFERENCED_PARAMETER(RegistryPath);

	/* NonPagedPoolNx from Windows 8 (6.2) on; plain NonPagedPool on Windows 7. */
	RtlZeroMemory(&os, sizeof(os));
	os.dwOSVersionInfoSize = sizeof(os);
	if (NT_SUCCESS(RtlGetVersion(&os)) &&
	    (os.dwMajorVersion > 6 || (os.dwMajorVersion == 6 && os.dwMinorVersion >= 2)))
		EduNonPagedPool = NonPagedPoolNx;

	{
		UNICODE_STRING name;

		RtlInitUnicodeString(&name, L"ExAllocatePool2");
		EduExAllocatePool2 = (EDU_EX_ALLOCATE_POOL2)MmGetSystemRoutineAddress(&name);
	}

	for (i = 0; i <= IRP_MJ_MAXIMUM_FUNCTION; i++)
		DriverObject->MajorFunction[i] = EduDispatchPassDown;
	for (i = 0; i < ARRAYSIZE(EduMajorTable); i++)
		DriverObject->MajorFunction[EduMajorTable[i].Major] = EduMajorTable[i].Routine;
	DriverObject->DriverExtension->AddDevice = EduAddDevice;
	DriverObject->DriverUnload = EduUnload;

	EDU_LOG("DriverEntry: version " EDUDMA_DRIVER_VERSION ", contract %u, built with "
#if defined(__GNUC__)
		"gcc " __VERSION__
#else
		"the WDK"
#endif
		, DMAHIL_CONTRACT_VERSION);
	return STATUS_SUCCESS;
}

/* Nonpaged, tagged EDU_TAG, freed with ExFreePoolWithTag. Any IRQL <= DISPATCH_LEVEL. */
PVOID EduAllocateNonPaged(SIZE_T Bytes)
{
	if (EduExAllocatePool2 != NULL)
		return EduExAllocatePool2(EDU_POOL_FLAG_NON_PAGED, Bytes, EDU_TAG);
#if defined(_MSC_VER)
#pragma warning(suppress : 4996) /* the fallback for kernels without ExAllocatePool2 */
#endif
	return ExAllocatePoolWithTag(EduNonPagedPool, Bytes, EDU_TAG);
}

static VOID NTAPI EduUnload(PDRIVER_OBJECT DriverObject)
{
	UNREFERENCED_PARAMETER(DriverObject);
	EDU_LOG("unload");
}

/* Bounded, always NUL-terminated formatting through ntoskrnl's _vsnprintf (no CRT, no ntstrsafe). */
int __cdecl _vsnprintf(char *Buffer, size_t Count, const char *Format, va_list Args);

VOID EduFormatV(char *Buf, size_t Size, const char *Fmt, va_list Ap)
{
	int n;

	if (Size == 0)
		return;
	n = _vsnprintf(Buf, Size - 1, Fmt, Ap);
	if (n < 0 || (size_t)n >= Size - 1)
		Buf[Size - 1] = '\0';
	else
		Buf[n] = '\0';
}

VOID EduFormat(char *Buf, size_t Size, const char *Fmt, ...)
{
	va_list ap;

	va_start(ap, Fmt);
	EduFormatV(Buf, Size, Fmt, ap);
	va_end(ap);
}

VOID EduCopyString(char *Buf, size_t Size, const char *Src)
{
	size_t i;

	if (Size == 0)
		return;
	for (i = 0; i + 1 < Size && Src[i] != '\0'; i++)
		Buf[i] = Src[i];
	Buf[i] = '\0';
}

NTSTATUS EduCompleteIrp(PIRP Irp, NTSTATUS Status, ULONG_PTR Information)
{
	Irp->IoStatus.Status = Status;
	Irp->IoStatus.Information = Information;
	IoCompleteRequest(Irp, IO_NO_INCREMENT);
	return Status;
}

NTSTATUS NTAPI EduAddDevice(PDRIVER_OBJECT DriverObject, PDEVICE_OBJECT Pdo)
{
	UNICODE_STRING ntName = RTL_CONSTANT_STRING(EDU_NT_NAME);
	PDEVICE_OBJECT fdo = NULL;
	PEDU_DEVICE dev;
	NTSTATUS status;

	/* One device: a second edu fails here with STATUS_OBJECT_NAME_COLLISION. */
	status = IoCreateDevice(DriverObject, sizeof(EDU_DEVICE), &ntName, FILE_DEVICE_UNKNOWN,
				FILE_DEVICE_SECURE_OPEN, FALSE, &fdo);
	if (!NT_SUCCESS(status)) {
		EDU_LOG("IoCreateDevice failed 0x%08lx", (unsigned long)status);
		return status;
	}
	dev = (PEDU_DEVICE)fdo->DeviceExtension;
	RtlZeroMemory(dev, sizeof(*dev));
	dev->Self = fdo;
	dev->Pdo = Pdo;
	dev->State = EduNotStarted;
	dev->NextHandle = 1;
	IoInitializeRemoveLock(&dev->RemoveLock, EDU_TAG, 0, 0);
	InitializeListHead(&dev->Held);
	ExInitializeFastMutex(&dev->HeldMutex);
	KeInitializeSpinLock(&dev->RunLock);
	KeInitializeEvent(&dev->IdleEvent, NotificationEvent, TRUE);
	KeInitializeTimer(&dev->Timer);
	KeInitializeDpc(&dev->TimerDpc, EduTimerDpc, dev);
	IoInitializeDpcRequest(fdo, EduDpc);
	EduQueueInit(dev);
	KeQueryPerformanceCounter(&dev->PerfFrequency);

	RtlInitUnicodeString(&dev->LinkName, EDU_DOS_NAME);
	status = IoCreateSymbolicLink(&dev->LinkName, &ntName);
	if (!NT_SUCCESS(status)) {
		EDU_LOG("IoCreateSymbolicLink failed 0x%08lx", (unsigned long)status);
		IoDeleteDevice(fdo);
		return status;
	}
	dev->LinkCreated = TRUE;

	dev->Lower = IoAttachDeviceToDeviceStack(fdo, Pdo);
	if (dev->Lower == NULL) {
		IoDeleteSymbolicLink(&dev->LinkName);
		IoDeleteDevice(fdo);
		return STATUS_NO_SUCH_DEVICE;
	}
	fdo->Flags |= DO_BUFFERED_IO | DO_POWER_PAGABLE;
	fdo->Flags &= ~DO_DEVICE_INITIALIZING;
	EDU_LOG("AddDevice: attached over PDO %p", Pdo);
	return STATUS_SUCCESS;
}

/* Everything this driver does not handle goes to pci.sys unchanged. */
static NTSTATUS NTAPI EduDispatchPassDown(PDEVICE_OBJECT DeviceObject, PIRP Irp)
{
	PEDU_DEVICE dev = (PEDU_DEVICE)DeviceObject->DeviceExtension;
	NTSTATUS status = IoAcquireRemoveLock(&dev->RemoveLock, Irp);

	if (!NT_SUCCESS(status))
		return EduCompleteIrp(Irp, status, 0);
	IoSkipCurrentIrpStackLocation(Irp);
	status = IoCallDriver(dev->Lower, Irp);
	IoReleaseRemoveLock(&dev->RemoveLock, Irp);
	return status;
}
