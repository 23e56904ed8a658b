/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * Binary interface between dmactl (user mode) and a dmahil test driver
 * (Linux edudma.ko, Windows edudma.sys). The same structs on every OS and
 * architecture: fixed-width fields, explicit padding, size asserts below.
 * How each OS carries them (ioctl numbers) is in the driver's own header.
 * The JSON that dmactl prints from these is documented in docs/contract.md.
 */
#ifndef DMAHIL_ABI_H
#define DMAHIL_ABI_H

#include "dmahil_types.h"

/*
 * The contract version. DMAHIL_CONTRACT_NUMBER is bare so that it can also be carried as text, where the
 * host reads it without booting a guest: MODULE_INFO(dmahil_contract, ...) in edudma.ko's .modinfo and the
 * "dmahil_contract=N" tag in dmactl (harness/driver/). Change only DMAHIL_CONTRACT_NUMBER.
 */
#define DMAHIL_CONTRACT_NUMBER 1
#define DMAHIL_PASTE_(a, b) a##b
#define DMAHIL_PASTE(a, b) DMAHIL_PASTE_(a, b)
#define DMAHIL_STR_(x) #x
#define DMAHIL_STR(x) DMAHIL_STR_(x)
#define DMAHIL_CONTRACT_VERSION DMAHIL_PASTE(DMAHIL_CONTRACT_NUMBER, u)
#define DMAHIL_CONTRACT_TEXT DMAHIL_STR(DMAHIL_CONTRACT_NUMBER)

#define DMAHIL_MAX_SIZE       (1u << 20)      /* largest transfer */
#define DMAHIL_PAGE_SIZE      4096u
#define DMAHIL_MAX_PAGES      258u            /* (MAX_SIZE + PAGE_SIZE - 1 offset) / PAGE_SIZE, rounded up */
#define DMAHIL_MAX_SEGMENTS   640u            /* edu operations per buffer, with room for page splits */
#define DMAHIL_EDU_MAX_OP     4095u           /* QEMU 7.2 edu aborts on 4096 (off-by-one) */
#define DMAHIL_EDU_BUF_ADDR   0x40000u        /* the edu's internal DMA buffer */
#define DMAHIL_EDU_DMA_BITS   28u             /* the edu's default DMA mask */
#define DMAHIL_FILL_BYTE      0xA5u           /* what a destination holds before the device writes */
#define DMAHIL_STALE_BYTE     0x3Cu           /* what a client source holds before the CPU writes the pattern */
#define DMAHIL_MAX_CALLS      12u

/*
 * Test-only scenario flags (dmahil_scenario.test_flags), set by the test build of dmactl
 * (guest-driver/common/dmactl/lies.c) and never by the dmactl that ships. A driver that does not
 * implement one refuses the scenario as invalid.
 */
#define DMAHIL_TEST_PRECOPY   0x1u /* write the pattern into the destination with the CPU before the DMA:
                                    * the driver bug "copies with the CPU"; the host must catch it */

enum dmahil_direction {
	DMAHIL_DIR_TO_DEVICE = 1,   /* client buffer -> device; read back through a coherent buffer */
	DMAHIL_DIR_FROM_DEVICE = 2, /* device (loaded from a coherent buffer) -> client buffer */
	DMAHIL_DIR_ROUND_TRIP = 3,  /* client source -> device -> client destination */
};

enum dmahil_method {
	DMAHIL_METHOD_STREAMING = 1,      /* Linux dma_map_single; Windows AllocateAdapterChannel + MapTransfer */
	DMAHIL_METHOD_SCATTER_GATHER = 2, /* Linux dma_map_sg; Windows GetScatterGatherList */
	DMAHIL_METHOD_COMMON_BUFFER = 3,  /* Linux dma_alloc_coherent; Windows AllocateCommonBuffer */
};

enum dmahil_sync {
	DMAHIL_SYNC_FULL = 1,    /* every sync/flush the API offers (Linux sync_for_cpu + unmap; Windows FlushAdapterBuffers + FlushDmaBuffer) */
	DMAHIL_SYNC_MINIMAL = 2, /* only what the API requires (Linux unmap; Windows FlushAdapterBuffers) */
};

enum dmahil_fault {
	DMAHIL_FAULT_NONE = 0,
	DMAHIL_FAULT_SKIP_SYNC = 1,              /* Linux: no sync_for_cpu/for_device, unmap deferred to release; Windows: no FlushAdapterBuffers until release */
	DMAHIL_FAULT_SKIP_FLUSH_DMA_BUFFER = 2,  /* Windows only: no FlushDmaBuffer */
	DMAHIL_FAULT_WRONG_DIRECTION = 3,        /* destination mapped as to-device (Windows: WriteToDevice TRUE) */
	DMAHIL_FAULT_READ_BEFORE_COMPLETION = 4, /* CPU takes the buffer back before the completion interrupt */
	DMAHIL_FAULT_ADDR_BEYOND_MASK = 5,       /* device given the destination address with bit 28 set */
	DMAHIL_FAULT_USE_AFTER_UNMAP = 6,        /* Linux only: destination unmapped before the device writes it */
	DMAHIL_FAULT_SHORT_MAPPING = 7,          /* Linux only: destination mapped for its first page only; the device writes it all */
	DMAHIL_FAULT_OTHER_MAPPING = 8,          /* Linux only: the device writes the destination's data to the source's device addresses */
};
#define DMAHIL_FAULT_COUNT 9u

enum dmahil_buffer_role {
	DMAHIL_ROLE_SOURCE = 1,      /* the device read from it */
	DMAHIL_ROLE_DESTINATION = 2, /* the device wrote to it; the host judges this one */
};

enum dmahil_buffer_kind {
	DMAHIL_KIND_CLIENT = 1,   /* the buffer under test (streaming or scatter/gather) */
	DMAHIL_KIND_STAGING = 2,  /* coherent helper that loads the device for from-device */
	DMAHIL_KIND_READBACK = 3, /* coherent helper that reads the device back for to-device */
	DMAHIL_KIND_COMMON = 4,   /* the buffer under test, a common (coherent) buffer */
};

enum dmahil_status {
	DMAHIL_OK = 0,
	DMAHIL_E_INVALID = 1,     /* scenario out of range */
	DMAHIL_E_UNSUPPORTED = 2, /* method or fault this driver does not implement */
	DMAHIL_E_NOMEM = 3,
	DMAHIL_E_MAP = 4,         /* the DMA API refused a mapping */
	DMAHIL_E_TIMEOUT = 5,     /* no completion interrupt */
	DMAHIL_E_DEVICE = 6,      /* device missing, wrong ID or dead */
	DMAHIL_E_BUSY = 7,        /* too many held scenarios */
};

struct dmahil_scenario {
	uint32_t contract_version;
	uint32_t direction;  /* enum dmahil_direction */
	uint32_t method;     /* enum dmahil_method */
	uint32_t sync;       /* enum dmahil_sync */
	uint32_t fault;      /* enum dmahil_fault */
	uint32_t size;       /* 1 .. DMAHIL_MAX_SIZE */
	uint32_t offset;     /* byte offset of the data in its first page, 0 .. 4095 */
	uint32_t seed;
	uint32_t timeout_ms; /* per edu operation; 0 = driver default */
	uint32_t test_flags; /* DMAHIL_TEST_*: only the test build of dmactl sets them; 0 otherwise */
	uint32_t reserved[6];
};
DMAHIL_STATIC_ASSERT(sizeof(struct dmahil_scenario) == 64, "dmahil_scenario layout");

struct dmahil_segment {
	uint32_t buf_offset;  /* offset in the buffer's data */
	uint32_t length;      /* 1 .. DMAHIL_EDU_MAX_OP */
	uint64_t device_addr; /* address the device was programmed with */
};
DMAHIL_STATIC_ASSERT(sizeof(struct dmahil_segment) == 16, "dmahil_segment layout");

struct dmahil_buffer {
	uint32_t role;          /* enum dmahil_buffer_role */
	uint32_t kind;          /* enum dmahil_buffer_kind */
	uint32_t offset;        /* byte offset of the data in pages[0] */
	uint32_t length;        /* data bytes */
	uint32_t page_count;
	uint32_t segment_count;
	uint32_t bounced;       /* 1 if the device reaches other pages than the CPU's (a bounce buffer or map registers) */
	uint32_t translated;    /* 1 if device addresses are IOVAs an IOMMU translates (bounced then compares the translation) */
	uint64_t pages[DMAHIL_MAX_PAGES];                  /* CPU physical address of each page, page aligned */
	struct dmahil_segment segments[DMAHIL_MAX_SEGMENTS];
};
DMAHIL_STATIC_ASSERT(sizeof(struct dmahil_buffer) == 32 + 8 * DMAHIL_MAX_PAGES + 16 * DMAHIL_MAX_SEGMENTS, "dmahil_buffer layout");

struct dmahil_call {
	char name[40];    /* "dma_map_single", "FlushAdapterBuffers", ... */
	uint32_t count;
	int32_t status;   /* last status (Linux errno, Windows NTSTATUS); 0 if none */
};
DMAHIL_STATIC_ASSERT(sizeof(struct dmahil_call) == 48, "dmahil_call layout");

struct dmahil_result {
	uint32_t contract_version;
	uint32_t status;          /* enum dmahil_status */
	char message[128];        /* human-readable detail when status != OK */
	uint32_t handle;          /* id of the held buffers, for release */
	uint32_t edu_ops;         /* edu operations run */
	uint64_t to_device_ns;    /* time spent in RAM -> device operations */
	uint64_t from_device_ns;  /* time spent in device -> RAM operations */
	uint64_t total_ns;
	uint32_t call_count;
	uint32_t buffer_count;
	struct dmahil_call calls[DMAHIL_MAX_CALLS];
	struct dmahil_scenario scenario; /* as the driver ran it */
	struct dmahil_buffer buffers[2];
};
DMAHIL_STATIC_ASSERT(sizeof(struct dmahil_result) % 8 == 0, "dmahil_result layout");

struct dmahil_info {
	uint32_t contract_version;
	uint32_t device_id;          /* edu ID register, 0x010000ed */
	uint32_t dma_mask_bits;      /* mask the driver declared */
	uint32_t faults_supported;   /* bit (1 << enum dmahil_fault) */
	uint32_t methods_supported;  /* bit (1 << enum dmahil_method) */
	uint32_t max_size;
	uint32_t held;               /* scenarios currently held */
	uint32_t adapter_version;    /* Windows: DEVICE_DESCRIPTION version granted (2 or 3); Linux: 0 */
	uint32_t dma_ops_size;       /* Windows: DmaOperations->Size; Linux: 0 */
	uint32_t flush_dma_buffer;   /* Windows: 1 if FlushDmaBuffer is present; Linux: 0 */
	char driver_version[32];
	char api[32];                /* "linux-dma-api", "wdm-dma-v3", "wdm-dma-v2" */
	char os[16];                 /* "linux", "windows" */
	char device[32];             /* bus location, e.g. "0000:00:02.0" */
};
DMAHIL_STATIC_ASSERT(sizeof(struct dmahil_info) == 40 + 112, "dmahil_info layout");

#endif /* DMAHIL_ABI_H */
