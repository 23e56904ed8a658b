/* SPDX-License-Identifier: MIT */
/*
 * Every kernel/HAL routine the driver imports, declared with the exact type
 * of the DDK's declaration: mk_<Name> has the type of <Name>, so an
 * implementation that disagrees with the header the driver was built against
 * does not compile. imports.c points __imp_<Name> at each one.
 */
#ifndef MK_IMPORTS_H
#define MK_IMPORTS_H

/* The driver's imports today, then routines a fixed driver is likely to add (so it still links). */
#define MK_IMPORT_LIST(X) \
	X(DbgPrintEx) \
	X(ExAcquireFastMutex) \
	X(ExAllocatePoolWithTag) \
	X(ExFreePoolWithTag) \
	X(ExReleaseFastMutex) \
	X(IoAcquireRemoveLockEx) \
	X(IoAllocateMdl) \
	X(IoAttachDeviceToDeviceStack) \
	X(IoBuildSynchronousFsdRequest) \
	X(IoConnectInterruptEx) \
	X(IoCreateDevice) \
	X(IoCreateSymbolicLink) \
	X(IoCsqInitializeEx) \
	X(IoCsqInsertIrpEx) \
	X(IoCsqRemoveNextIrp) \
	X(IoDeleteDevice) \
	X(IoDeleteSymbolicLink) \
	X(IoDetachDevice) \
	X(IoDisconnectInterruptEx) \
	X(IoForwardIrpSynchronously) \
	X(IoFreeMdl) \
	X(IoGetAttachedDeviceReference) \
	X(IoGetDeviceProperty) \
	X(IoGetDmaAdapter) \
	X(IoInitializeRemoveLockEx) \
	X(IoReleaseCancelSpinLock) \
	X(IoReleaseRemoveLockAndWaitEx) \
	X(IoReleaseRemoveLockEx) \
	X(IofCallDriver) \
	X(IofCompleteRequest) \
	X(KeAcquireSpinLockAtDpcLevel) \
	X(KeAcquireSpinLockRaiseToDpc) \
	X(KeCancelTimer) \
	X(KeClearEvent) \
	X(KeDelayExecutionThread) \
	X(KeFlushQueuedDpcs) \
	X(KeInitializeDpc) \
	X(KeInitializeEvent) \
	X(KeInitializeTimer) \
	X(KeInsertQueueDpc) \
	X(KeQueryPerformanceCounter) \
	X(KeReleaseSpinLock) \
	X(KeReleaseSpinLockFromDpcLevel) \
	X(KeSetEvent) \
	X(KeSetTimer) \
	X(KeWaitForSingleObject) \
	X(MmBuildMdlForNonPagedPool) \
	X(MmGetSystemRoutineAddress) \
	X(MmMapIoSpace) \
	X(MmUnmapIoSpace) \
	X(ObfDereferenceObject) \
	X(PoCallDriver) \
	X(PoStartNextPowerIrp) \
	X(RtlGetVersion) \
	X(RtlInitUnicodeString) \
	X(ZwClose) \
	X(ZwCreateFile) \
	X(ZwWriteFile) \
	X(ExFreePool) \
	X(KeRemoveQueueDpc) \
	X(KeResetEvent) \
	X(KeReadStateTimer) \
	X(KeSetTimerEx) \
	X(IoAcquireCancelSpinLock) \
	X(IoCsqInitialize) \
	X(IoCsqInsertIrp) \
	X(IoCsqRemoveIrp) \
	X(IoAllocateWorkItem) \
	X(IoQueueWorkItem) \
	X(IoFreeWorkItem) \
	X(KeSynchronizeExecution) \
	X(KeAcquireInterruptSpinLock) \
	X(KeReleaseInterruptSpinLock) \
	X(ObfReferenceObject) \
	X(KeStallExecutionProcessor)

#define MK_DECLARE_IMPORT(name) extern __typeof__(name) mk_##name;
MK_IMPORT_LIST(MK_DECLARE_IMPORT)

/* Not in mingw's headers: Windows 10 2004+, found through MmGetSystemRoutineAddress. */
PVOID NTAPI mk_ExAllocatePool2(ULONG64 Flags, SIZE_T NumberOfBytes, ULONG Tag);

/* The CRT routines ntoskrnl exports; the driver is built with -Dmemcpy=mk_memcpy -Dmemset=mk_memset. */
void *mk_memcpy(void *dst, const void *src, size_t n);
void *mk_memset(void *dst, int c, size_t n);

#endif /* MK_IMPORTS_H */
