/* SPDX-License-Identifier: MIT */
/*
 * DMA interface version 3 declarations that mingw-w64 10's ddk headers lack.
 *
 * mingw-w64 10 stops DMA_OPERATIONS at BuildMdlFromScatterGatherList (the v2
 * table), has no DEVICE_DESCRIPTION_VERSION3 and no v3 DEVICE_DESCRIPTION
 * fields. The members, their order and their prototypes below follow the
 * WDK's wdm.h (10.0.22621 / 10.0.26100); the offsets are asserted at the end
 * (see shared/reference/dma-and-qemu-facts.md sections 1.2 and 2.1).
 *
 * FlushDmaBuffer (member 30) exists only on Windows 10 and later: the driver
 * calls it only when DmaOperations->Size covers it and the pointer is not NULL.
 * With the WDK (wdk/edudma.vcxproj) the real headers are used instead.
 */
#ifndef EDUDMA_DMA_V3_H
#define EDUDMA_DMA_V3_H

#include <ntddk.h>
#include <stddef.h>

#define EDU_OFFSETOF(type, field) offsetof(type, field)

#ifdef __MINGW32__ /* mingw-w64 10: declare the v3 interface ourselves */

#ifndef DEVICE_DESCRIPTION_VERSION3
#define DEVICE_DESCRIPTION_VERSION3 3
#endif

/* DEVICE_DESCRIPTION as of Windows 8: the v2 fields, then four v3 fields. */
typedef struct _EDU_DEVICE_DESCRIPTION_V3 {
	ULONG Version;
	BOOLEAN Master;
	BOOLEAN ScatterGather;
	BOOLEAN DemandMode;
	BOOLEAN AutoInitialize;
	BOOLEAN Dma32BitAddresses;
	BOOLEAN IgnoreCount;
	BOOLEAN Reserved1;
	BOOLEAN Dma64BitAddresses;
	ULONG BusNumber;
	ULONG DmaChannel;
	INTERFACE_TYPE InterfaceType;
	DMA_WIDTH DmaWidth;
	DMA_SPEED DmaSpeed;
	ULONG MaximumLength;
	ULONG DmaPort;
	ULONG DmaAddressWidth;       /* v3: bits the device can address, 1..64 */
	ULONG DmaControllerInstance; /* v3: system DMA only */
	ULONG DmaRequestLine;        /* v3: system DMA only */
	PHYSICAL_ADDRESS DeviceAddress; /* v3: system DMA only */
} EDU_DEVICE_DESCRIPTION_V3, *PEDU_DEVICE_DESCRIPTION_V3;

/* NODE_REQUIREMENT is in mingw's wdm.h; the structs below are used only through pointers. */
typedef struct _DMA_ADAPTER_INFO *PDMA_ADAPTER_INFO;
typedef struct _DMA_TRANSFER_INFO *PDMA_TRANSFER_INFO;
typedef struct _DMA_COMMON_BUFFER_VECTOR *PDMA_COMMON_BUFFER_VECTOR;
typedef struct _DMA_COMMON_BUFFER_EXTENDED_CONFIGURATION *PDMA_COMMON_BUFFER_EXTENDED_CONFIGURATION;

/* DMA_COMPLETION_STATUS (DmaComplete ... DmaCancelled) is in mingw's wdm.h. */

typedef VOID (NTAPI *PDMA_COMPLETION_ROUTINE)(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject,
					     PVOID CompletionContext, DMA_COMPLETION_STATUS Status);

typedef NTSTATUS (NTAPI *PGET_DMA_ADAPTER_INFO)(PDMA_ADAPTER DmaAdapter, PDMA_ADAPTER_INFO AdapterInfo);
typedef NTSTATUS (NTAPI *PGET_DMA_TRANSFER_INFO)(PDMA_ADAPTER DmaAdapter, PMDL Mdl, ULONGLONG Offset, ULONG Length,
						  BOOLEAN WriteOnly, PDMA_TRANSFER_INFO TransferInfo);
typedef NTSTATUS (NTAPI *PINITIALIZE_DMA_TRANSFER_CONTEXT)(PDMA_ADAPTER DmaAdapter, PVOID DmaTransferContext);
typedef PVOID (NTAPI *PALLOCATE_COMMON_BUFFER_EX)(PDMA_ADAPTER DmaAdapter, PPHYSICAL_ADDRESS MaximumAddress,
						  ULONG Length, PPHYSICAL_ADDRESS LogicalAddress, BOOLEAN CacheEnabled,
						  NODE_REQUIREMENT PreferredNode);
typedef NTSTATUS (NTAPI *PALLOCATE_ADAPTER_CHANNEL_EX)(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject,
							PVOID DmaTransferContext, ULONG NumberOfMapRegisters,
							ULONG Flags, PDRIVER_CONTROL ExecutionRoutine,
							PVOID ExecutionContext, PVOID *MapRegisterBase);
typedef NTSTATUS (NTAPI *PCONFIGURE_ADAPTER_CHANNEL)(PDMA_ADAPTER DmaAdapter, ULONG FunctionNumber, PVOID Context);
typedef BOOLEAN (NTAPI *PCANCEL_ADAPTER_CHANNEL)(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject,
						 PVOID DmaTransferContext);
typedef NTSTATUS (NTAPI *PMAP_TRANSFER_EX)(PDMA_ADAPTER DmaAdapter, PMDL Mdl, PVOID MapRegisterBase,
					    ULONGLONG Offset, ULONG DeviceOffset, PULONG Length,
					    BOOLEAN WriteToDevice, PSCATTER_GATHER_LIST ScatterGatherBuffer,
					    ULONG ScatterGatherBufferLength,
					    PDMA_COMPLETION_ROUTINE DmaCompletionRoutine, PVOID CompletionContext);
typedef NTSTATUS (NTAPI *PGET_SCATTER_GATHER_LIST_EX)(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject,
						       PVOID DmaTransferContext, PMDL Mdl, ULONGLONG Offset,
						       ULONG Length, ULONG Flags, PDRIVER_LIST_CONTROL ExecutionRoutine,
						       PVOID Context, BOOLEAN WriteToDevice,
						       PDMA_COMPLETION_ROUTINE DmaCompletionRoutine,
						       PVOID CompletionContext, PSCATTER_GATHER_LIST *ScatterGatherList);
typedef NTSTATUS (NTAPI *PBUILD_SCATTER_GATHER_LIST_EX)(PDMA_ADAPTER DmaAdapter, PDEVICE_OBJECT DeviceObject,
							 PVOID DmaTransferContext, PMDL Mdl, ULONGLONG Offset,
							 ULONG Length, ULONG Flags, PDRIVER_LIST_CONTROL ExecutionRoutine,
							 PVOID Context, BOOLEAN WriteToDevice, PVOID ScatterGatherBuffer,
							 ULONG ScatterGatherLength,
							 PDMA_COMPLETION_ROUTINE DmaCompletionRoutine,
							 PVOID CompletionContext, PVOID ScatterGatherList);
typedef NTSTATUS (NTAPI *PFLUSH_ADAPTER_BUFFERS_EX)(PDMA_ADAPTER DmaAdapter, PMDL Mdl, PVOID MapRegisterBase,
						     ULONGLONG Offset, ULONG Length, BOOLEAN WriteToDevice);
typedef VOID (NTAPI *PFREE_ADAPTER_OBJECT)(PDMA_ADAPTER DmaAdapter, IO_ALLOCATION_ACTION AllocationAction);
typedef NTSTATUS (NTAPI *PCANCEL_MAPPED_TRANSFER)(PDMA_ADAPTER DmaAdapter, PVOID DmaTransferContext);
typedef NTSTATUS (NTAPI *PALLOCATE_DOMAIN_COMMON_BUFFER)(PDMA_ADAPTER DmaAdapter, HANDLE DomainHandle,
							  PPHYSICAL_ADDRESS MaximumAddress, ULONG Length, ULONG Flags,
							  MEMORY_CACHING_TYPE *CacheType, NODE_REQUIREMENT PreferredNode,
							  PPHYSICAL_ADDRESS LogicalAddress, PVOID *VirtualAddress);
typedef NTSTATUS (NTAPI *PFLUSH_DMA_BUFFER)(PDMA_ADAPTER DmaAdapter, PMDL Mdl, BOOLEAN ReadOperation);
typedef NTSTATUS (NTAPI *PJOIN_DMA_DOMAIN)(PDMA_ADAPTER DmaAdapter, HANDLE DomainHandle);
typedef NTSTATUS (NTAPI *PLEAVE_DMA_DOMAIN)(PDMA_ADAPTER DmaAdapter);
typedef HANDLE (NTAPI *PGET_DMA_DOMAIN)(PDMA_ADAPTER DmaAdapter);
typedef PVOID (NTAPI *PALLOCATE_COMMON_BUFFER_WITH_BOUNDS)(PDMA_ADAPTER DmaAdapter, PPHYSICAL_ADDRESS MinimumAddress,
							   PPHYSICAL_ADDRESS MaximumAddress, ULONG Length,
							   ULONG Flags, MEMORY_CACHING_TYPE *CacheType,
							   NODE_REQUIREMENT PreferredNode,
							   PPHYSICAL_ADDRESS LogicalAddress);
typedef NTSTATUS (NTAPI *PALLOCATE_COMMON_BUFFER_VECTOR)(PDMA_ADAPTER DmaAdapter, PHYSICAL_ADDRESS LowAddress,
							  PHYSICAL_ADDRESS HighAddress, MEMORY_CACHING_TYPE CacheType,
							  NODE_REQUIREMENT IdealNode, ULONG Flags,
							  ULONG NumberOfElements, ULONGLONG SizeOfElements,
							  PDMA_COMMON_BUFFER_VECTOR *VectorOut);
typedef VOID (NTAPI *PGET_COMMON_BUFFER_FROM_VECTOR_BY_INDEX)(PDMA_ADAPTER DmaAdapter,
							      PDMA_COMMON_BUFFER_VECTOR Vector, ULONG Index,
							      PVOID *VirtualAddressOut,
							      PPHYSICAL_ADDRESS LogicalAddressOut);
typedef VOID (NTAPI *PFREE_COMMON_BUFFER_FROM_VECTOR)(PDMA_ADAPTER DmaAdapter, PDMA_COMMON_BUFFER_VECTOR Vector,
						      ULONG Index);
typedef VOID (NTAPI *PFREE_COMMON_BUFFER_VECTOR)(PDMA_ADAPTER DmaAdapter, PDMA_COMMON_BUFFER_VECTOR Vector);
typedef NTSTATUS (NTAPI *PCREATE_COMMON_BUFFER_FROM_MDL)(PDMA_ADAPTER DmaAdapter, PMDL Mdl,
							  PDMA_COMMON_BUFFER_EXTENDED_CONFIGURATION ExtendedConfigs,
							  ULONG ExtendedConfigsCount, PPHYSICAL_ADDRESS LogicalAddress);

/* DMA_OPERATIONS of the current WDK: mingw's v2 table (Size + 15 routines), then 24 more. */
typedef struct _EDU_DMA_OPERATIONS_V3 {
	DMA_OPERATIONS V2; /* Size .. BuildMdlFromScatterGatherList */
	PGET_DMA_ADAPTER_INFO GetDmaAdapterInfo;
	PGET_DMA_TRANSFER_INFO GetDmaTransferInfo;
	PINITIALIZE_DMA_TRANSFER_CONTEXT InitializeDmaTransferContext;
	PALLOCATE_COMMON_BUFFER_EX AllocateCommonBufferEx;
	PALLOCATE_ADAPTER_CHANNEL_EX AllocateAdapterChannelEx;
	PCONFIGURE_ADAPTER_CHANNEL ConfigureAdapterChannel;
	PCANCEL_ADAPTER_CHANNEL CancelAdapterChannel;
	PMAP_TRANSFER_EX MapTransferEx;
	PGET_SCATTER_GATHER_LIST_EX GetScatterGatherListEx;
	PBUILD_SCATTER_GATHER_LIST_EX BuildScatterGatherListEx;
	PFLUSH_ADAPTER_BUFFERS_EX FlushAdapterBuffersEx;
	PFREE_ADAPTER_OBJECT FreeAdapterObject;
	PCANCEL_MAPPED_TRANSFER CancelMappedTransfer;
	PALLOCATE_DOMAIN_COMMON_BUFFER AllocateDomainCommonBuffer;  /* Windows 10 */
	PFLUSH_DMA_BUFFER FlushDmaBuffer;                           /* Windows 10 */
	PJOIN_DMA_DOMAIN JoinDmaDomain;
	PLEAVE_DMA_DOMAIN LeaveDmaDomain;
	PGET_DMA_DOMAIN GetDmaDomain;
	PALLOCATE_COMMON_BUFFER_WITH_BOUNDS AllocateCommonBufferWithBounds;     /* 1803 */
	PALLOCATE_COMMON_BUFFER_VECTOR AllocateCommonBufferVector;             /* 1903 */
	PGET_COMMON_BUFFER_FROM_VECTOR_BY_INDEX GetCommonBufferFromVectorByIndex;
	PFREE_COMMON_BUFFER_FROM_VECTOR FreeCommonBufferFromVector;
	PFREE_COMMON_BUFFER_VECTOR FreeCommonBufferVector;
	PCREATE_COMMON_BUFFER_FROM_MDL CreateCommonBufferFromMdl;               /* NTDDI_WIN10_FE */
} EDU_DMA_OPERATIONS_V3, *PEDU_DMA_OPERATIONS_V3;

#define EDU_DMA_OPS_V3(ops) ((PEDU_DMA_OPERATIONS_V3)(ops))
#define EDU_DD_V3 EDU_DEVICE_DESCRIPTION_V3
#define EDU_FLUSH_DMA_BUFFER_OFFSET EDU_OFFSETOF(EDU_DMA_OPERATIONS_V3, FlushDmaBuffer)

#else /* the WDK's own headers */

typedef DEVICE_DESCRIPTION EDU_DEVICE_DESCRIPTION_V3;
typedef DMA_OPERATIONS EDU_DMA_OPERATIONS_V3, *PEDU_DMA_OPERATIONS_V3;
#define EDU_DMA_OPS_V3(ops) (ops)
#define EDU_DD_V3 DEVICE_DESCRIPTION
#define EDU_FLUSH_DMA_BUFFER_OFFSET EDU_OFFSETOF(DMA_OPERATIONS, FlushDmaBuffer)

#endif

/*
 * The known layout (WDK headers, PDB-derived dumps): the build fails if ours differs.
 * sizeof is asserted only for our own table (the WDK's depends on NTDDI_VERSION).
 */
#ifdef _WIN64
C_ASSERT(sizeof(DMA_OPERATIONS) >= 0x80);
C_ASSERT(EDU_FLUSH_DMA_BUFFER_OFFSET == 0xF0);
C_ASSERT(EDU_OFFSETOF(EDU_DMA_OPERATIONS_V3, GetDmaAdapterInfo) == 0x80);
C_ASSERT(EDU_OFFSETOF(EDU_DMA_OPERATIONS_V3, CancelMappedTransfer) == 0xE0);
#ifdef __MINGW32__
C_ASSERT(sizeof(EDU_DMA_OPERATIONS_V3) == 0x140); /* with CreateCommonBufferFromMdl */
#endif
#else
C_ASSERT(EDU_FLUSH_DMA_BUFFER_OFFSET == 0x78);
C_ASSERT(EDU_OFFSETOF(EDU_DMA_OPERATIONS_V3, GetDmaAdapterInfo) == 0x40);
C_ASSERT(EDU_OFFSETOF(EDU_DMA_OPERATIONS_V3, CancelMappedTransfer) == 0x70);
#ifdef __MINGW32__
C_ASSERT(sizeof(EDU_DMA_OPERATIONS_V3) == 0xA0);
#endif
#endif
C_ASSERT(sizeof(EDU_DEVICE_DESCRIPTION_V3) == 64);
C_ASSERT(EDU_OFFSETOF(EDU_DEVICE_DESCRIPTION_V3, DmaPort) == 36);
C_ASSERT(EDU_OFFSETOF(EDU_DEVICE_DESCRIPTION_V3, DmaAddressWidth) == 40);
C_ASSERT(EDU_OFFSETOF(EDU_DEVICE_DESCRIPTION_V3, DeviceAddress) == 56);
C_ASSERT(EDU_OFFSETOF(DMA_ADAPTER, DmaOperations) == sizeof(PVOID));

/* Minimum DmaOperations->Size that includes FlushDmaBuffer: 248 (x64) / 124 (x86). */
#define EDU_FLUSH_DMA_BUFFER_MIN_SIZE (EDU_FLUSH_DMA_BUFFER_OFFSET + sizeof(PVOID))

#endif /* EDUDMA_DMA_V3_H */
