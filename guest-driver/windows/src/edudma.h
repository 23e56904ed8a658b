/* SPDX-License-Identifier: MIT */
/*
 * edudma.sys: a WDM function driver for the QEMU edu PCI device
 * (PCI\VEN_1234&DEV_11E8) that runs dmahil DMA scenarios (docs/contract.md).
 *
 * Files: driver.c (DriverEntry, AddDevice, unload), pnp.c, power.c,
 * dispatch.c (create/cleanup/close/ioctl), queue.c (cancel-safe queue),
 * dma.c (adapter, buffers), run.c (the scenario engine), isr.c (ISR, DPC,
 * timeout), log.c (the driver's log), regs.h (edu registers), dma_v3.h (DMA v3 declarations).
 */
#ifndef EDUDMA_H
#define EDUDMA_H

#include <ntddk.h>
#include <wdmguid.h>
#include <stdarg.h>
#include "dma_v3.h"
#include "regs.h"
#include "../edudma_ioctl.h"
#include "../../common/dmahil_pattern.h"

#define EDU_TAG 'mDdE' /* "EdDm" in pool dumps */
#define EDU_NT_NAME L"\\Device\\EduDma0"
#define EDU_DOS_NAME L"\\DosDevices\\EduDma"

/* The driver's log: the debugger, and C:\dmahil\edudma.log at PASSIVE_LEVEL (log.c). */
VOID EduLog(const char *Fmt, ...);
#define EDU_LOG(fmt, ...) EduLog(fmt, ##__VA_ARGS__)

typedef enum _EDU_PNP_STATE {
	EduNotStarted = 0,
	EduStarted,
	EduStopPending,
	EduStopped,
	EduRemovePending,
	EduSurpriseRemoved,
	EduDeleted,
} EDU_PNP_STATE;

typedef enum _EDU_RUN_STATE {
	EduRunQueued = 0,
	EduRunActive,
	EduRunFinished,
	EduRunPrepared,  /* buffers filled and reported (IOCTL_EDUDMA_PREPARE); waits for GO */
} EDU_RUN_STATE;

typedef enum _EDU_PHASE {
	EduPhaseIdle = 0,
	EduPhaseMapping,    /* waiting for AllocateAdapterChannel / GetScatterGatherList */
	EduPhaseToDevice,   /* edu op RAM -> device in flight */
	EduPhaseFromDevice, /* edu op device -> RAM in flight */
} EDU_PHASE;

struct _EDU_DEVICE;

/*
 * One device-contiguous piece of a buffer's mapped window: what one MapTransfer returned, or one
 * scatter/gather element. A window spans at most DMAHIL_MAX_PAGES pages, so it has at most that many.
 */
typedef struct _EDU_MAP_PIECE {
	ULONG64 Address;
	ULONG Length;
} EDU_MAP_PIECE;

/* One of a run's two buffers: [0] source (the device reads it), [1] destination. */
typedef struct _EDU_BUFFER {
	ULONG Role;             /* enum dmahil_buffer_role */
	ULONG Kind;             /* enum dmahil_buffer_kind */
	BOOLEAN Common;         /* AllocateCommonBuffer; otherwise nonpaged pool */
	BOOLEAN Mapped;         /* mapped per window (MapTransfer / GetScatterGatherList) */
	BOOLEAN WriteToDevice;  /* the flag this buffer is mapped and flushed with */
	PUCHAR Base;            /* page-aligned allocation */
	ULONG AllocLength;
	PHYSICAL_ADDRESS BaseLogical; /* common buffers: the logical address of Base */
	PUCHAR Data;            /* Base + scenario offset */
	PMDL Mdl;               /* exactly the data: Data .. Data + size */
	/* the current map-register window */
	BOOLEAN WindowMapped;   /* map registers or a scatter/gather list granted for the window */
	BOOLEAN WindowFlushed;  /* FlushAdapterBuffers already called (read-before-completion) */
	PVOID MapRegisterBase;  /* streaming */
	ULONG MapRegisterCount;
	ULONG MappedLength;     /* streaming: bytes from the window start that MapTransfer mapped */
	PSCATTER_GATHER_LIST Sgl; /* scatter-gather */
	EDU_MAP_PIECE Pieces[DMAHIL_MAX_PAGES]; /* the window's device-contiguous pieces, in order */
	ULONG PieceCount;
	ULONG PieceIndex;       /* cursor: the piece holding the current position */
	ULONG PieceStart;       /* transfer position where that piece starts */
	struct dmahil_buffer *Report;
} EDU_BUFFER, *PEDU_BUFFER;

/* A scenario: prepared or queued, running, then held with its buffers until release. */
typedef struct _EDU_RUN {
	LIST_ENTRY Link;        /* Device->Held */
	struct _EDU_DEVICE *Device;
	PFILE_OBJECT Owner;
	PIRP Irp;               /* until completion */
	EDU_RUN_STATE State;
	ULONG Handle;
	struct dmahil_scenario Scenario;
	struct dmahil_result *Result; /* nonpaged; copied to the IRP on completion */
	EDU_BUFFER Buf[2];
	BOOLEAN Bounced[2];
	/* engine state, touched only by whoever owns the run's progress */
	EDU_PHASE Phase;
	ULONG Pos;              /* transfer position of the current chunk */
	ULONG ChunkLength;
	ULONG64 ChunkAddr[2];   /* device addresses of the current chunk */
	ULONG WindowStart, WindowEnd, WindowPages, MapIndex;
	volatile LONG Pending;  /* callback/caller hand-off for the DMA allocation routines */
	NTSTATUS MapStatus;
	ULONG TimeoutMs;
	LARGE_INTEGER OpStart, RunStart;
	BOOLEAN DeviceMayBeBusy; /* ended by a timeout: the edu may still be moving data */
	BOOLEAN HoldsMapping;   /* finished with a window still mapped (skip-sync, a timeout): counted in MappingHolders */
	BOOLEAN Cancelled;
	KDPC ContinueDpc;       /* resumes the engine outside a DMA execution routine */
} EDU_RUN, *PEDU_RUN;

typedef struct _EDU_DEVICE {
	PDEVICE_OBJECT Self;
	PDEVICE_OBJECT Pdo;
	PDEVICE_OBJECT Lower;
	IO_REMOVE_LOCK RemoveLock;
	EDU_PNP_STATE State;
	EDU_PNP_STATE PreviousState;
	UNICODE_STRING LinkName;
	BOOLEAN LinkCreated;

	/* hardware, valid while started */
	PUCHAR Regs;
	SIZE_T RegsLength;
	PHYSICAL_ADDRESS RegsPhysical;
	ULONG DeviceId;
	BOOLEAN HaveInterrupt;
	BOOLEAN InterruptIsMessage; /* the translated resource was an MSI message */
	PVOID InterruptConnection;  /* IoConnectInterruptEx ConnectionContext */
	ULONG InterruptVersion;     /* CONNECT_MESSAGE_BASED or CONNECT_LINE_BASED, as granted */
	BOOLEAN BusMasterSetByDriver;
	BOOLEAN BusMasterChecked;
	CHAR Location[32];

	/* DMA */
	PDMA_ADAPTER Adapter;
	ULONG MapRegisters;
	ULONG AdapterVersion; /* DEVICE_DESCRIPTION version granted: 3 or 2 */
	ULONG DmaOpsSize;
	PFLUSH_DMA_BUFFER FlushDmaBuffer;
	ULONG DmaMaskBits;

	/* one run at a time; the rest wait in a cancel-safe queue */
	IO_CSQ Csq;
	LIST_ENTRY Queue;
	KSPIN_LOCK QueueLock;
	KSPIN_LOCK RunLock;     /* Active, ActiveIrp, OpInFlight, OpStart, CancelActive */
	PEDU_RUN Active;
	PIRP ActiveIrp;         /* the running request, in ActiveCsq: whoever removes it from there completes it */
	IO_CSQ ActiveCsq;       /* a one-slot cancel-safe queue: cancel and completion never race for the IRP */
	IO_CSQ_IRP_CONTEXT ActiveCsqContext;
	BOOLEAN OpInFlight;
	LARGE_INTEGER OpStart;  /* when the operation in flight started: a timer DPC older than it is stale */
	ULONG OpTimeoutMs;
	volatile LONG CancelActive;
	volatile LONG MappingHolders; /* finished runs that still hold map registers or a scatter/gather list */
	KEVENT IdleEvent;       /* signalled while no run is active */
	KTIMER Timer;
	KDPC TimerDpc;
	volatile LONG IrqStatus; /* latched by the ISR for the DPC */
	LARGE_INTEGER PerfFrequency;

	/* runs that hold buffers (queued, active or finished) */
	FAST_MUTEX HeldMutex;
	LIST_ENTRY Held;
	ULONG HeldCount;
	ULONG NextHandle;
} EDU_DEVICE, *PEDU_DEVICE;

/* driver.c */
extern POOL_TYPE EduNonPagedPool;
PVOID EduAllocateNonPaged(SIZE_T Bytes); /* ExAllocatePool2 where the kernel has it, else ExAllocatePoolWithTag */
VOID EduFormat(char *Buf, size_t Size, const char *Fmt, ...);
VOID EduFormatV(char *Buf, size_t Size, const char *Fmt, va_list Ap);
VOID EduCopyString(char *Buf, size_t Size, const char *Src);
DRIVER_ADD_DEVICE EduAddDevice;
NTSTATUS EduCompleteIrp(PIRP Irp, NTSTATUS Status, ULONG_PTR Information);

/* pnp.c / power.c */
DRIVER_DISPATCH EduDispatchPnp;
DRIVER_DISPATCH EduDispatchPower;

/* dispatch.c */
DRIVER_DISPATCH EduDispatchCreate;
DRIVER_DISPATCH EduDispatchCleanup;
DRIVER_DISPATCH EduDispatchClose;
DRIVER_DISPATCH EduDispatchDeviceControl;
NTSTATUS EduValidateScenario(const struct dmahil_scenario *S);

/* queue.c */
VOID EduQueueInit(PEDU_DEVICE Dev);
VOID EduQueueFlush(PEDU_DEVICE Dev, PFILE_OBJECT Owner, NTSTATUS Status);
VOID EduStartNext(PEDU_DEVICE Dev);
NTSTATUS EduSetActive(PEDU_DEVICE Dev, PIRP Irp);
PIRP EduTakeActive(PEDU_DEVICE Dev);

/* dma.c */
NTSTATUS EduDmaStart(PEDU_DEVICE Dev);
VOID EduDmaStop(PEDU_DEVICE Dev);
ULONG EduFaultsSupported(PEDU_DEVICE Dev);
NTSTATUS EduRunCreate(PEDU_DEVICE Dev, const struct dmahil_scenario *S, PFILE_OBJECT Owner, PEDU_RUN *Out);
VOID EduRunFree(PEDU_RUN Run);
NTSTATUS EduReleaseHandle(PEDU_DEVICE Dev, ULONG Handle);
VOID EduReleaseOwner(PEDU_DEVICE Dev, PFILE_OBJECT Owner, BOOLEAN All);
VOID EduCall(PEDU_RUN Run, const char *Name, NTSTATUS Status);
BOOLEAN EduIsBounced(PEDU_BUFFER B, ULONG Pos, ULONG64 DeviceAddr);
VOID EduRunFail(PEDU_RUN Run, ULONG DmahilStatus, const char *Fmt, ...);

/* run.c */
KDEFERRED_ROUTINE EduContinueDpc;
VOID EduRunBegin(PEDU_RUN Run);          /* DISPATCH_LEVEL */
VOID EduRunOpDone(PEDU_RUN Run);         /* DISPATCH_LEVEL, after the completion interrupt */
VOID EduRunTimedOut(PEDU_RUN Run);       /* DISPATCH_LEVEL */
VOID EduRunUnmapWindow(PEDU_RUN Run, BOOLEAN Deferred); /* DISPATCH_LEVEL */
BOOLEAN EduWaitDeviceIdle(PEDU_DEVICE Dev, ULONG Ms); /* PASSIVE_LEVEL */
ULONG64 EduTicksToNs(PEDU_DEVICE Dev, LONGLONG Ticks); /* KeQueryPerformanceCounter ticks */

/* isr.c */
KSERVICE_ROUTINE EduIsrLine;
KMESSAGE_SERVICE_ROUTINE EduIsrMessage;
IO_DPC_ROUTINE EduDpc;
KDEFERRED_ROUTINE EduTimerDpc;
VOID EduProgramOp(PEDU_DEVICE Dev, PEDU_RUN Run, ULONG64 Src, ULONG64 Dst, ULONG Count, BOOLEAN FromDevice);
NTSTATUS EduInterruptConnect(PEDU_DEVICE Dev);
VOID EduInterruptDisconnect(PEDU_DEVICE Dev);

#endif /* EDUDMA_H */
