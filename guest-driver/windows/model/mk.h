/* SPDX-License-Identifier: MIT */
/*
 * The NT kernel/HAL model: shared declarations of its kernel-side files
 * (built against the DDK headers like the driver; see README.md).
 *
 * Conventions. A DDI the driver imports is implemented as mk_<Name> and
 * reached through the __imp_<Name> pointer defined in imports.c; it opens
 * with MK_DDI("<Name>") so a broken rule names the DDI and the driver's call
 * site. Model code never calls an mk_ DDI itself: it calls the *_impl helper,
 * so "caller" is always the driver.
 */
#ifndef MK_H
#define MK_H

#include <ntddk.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "os.h"
#include "mk_imports.h"

/* ---- configuration (config.c) ---- */

enum mk_world { MK_WORLD_MAP_REGISTERS, MK_WORLD_DIRECT, MK_WORLD_V2_NULL_FLUSH };
/* A v3 DmaOperations table's FlushDmaBuffer (DMAHIL_MODEL_V3_FLUSH): present, NULL with a Size that
 * covers it, or a Size that ends before it (a table older than the member). */
enum mk_v3_flush { MK_V3_FLUSH_PRESENT, MK_V3_FLUSH_NULL, MK_V3_FLUSH_SHORT };

struct mk_config {
	enum mk_world world;
	const char *world_name;
	const char *ram_path;          /* DMAHIL_MODEL_RAM, NULL: anonymous memory */
	uint64_t ram_bytes;            /* DMAHIL_MODEL_RAM_BYTES */
	unsigned edu_dma_bits;         /* DMAHIL_MODEL_EDU_DMA_BITS */
	unsigned edu_latency_ms;       /* DMAHIL_MODEL_EDU_LATENCY_MS: QEMU's 100 ms timer */
	uint64_t dpc_latency;          /* DMAHIL_MODEL_DPC_LATENCY_US, in 100 ns units */
	unsigned map_registers;        /* DMAHIL_MODEL_MAP_REGISTERS: per adapter (map-registers world) */
	unsigned map_pool;             /* DMAHIL_MODEL_MAP_POOL: the HAL's whole pool */
	int msi;                       /* DMAHIL_MODEL_INTERRUPT=msi|line */
	int bus_master_on;             /* DMAHIL_MODEL_BUS_MASTER=1: pci.sys left Bus Master Enable set */
	int count_map_registers;       /* map-register rules on in every world (DMAHIL_MODEL_STRICT_MAP_REGISTERS) */
	enum mk_v3_flush v3_flush;     /* DMAHIL_MODEL_V3_FLUSH=present|null|short (v3 adapters) */
	const char *log_path;          /* DMAHIL_MODEL_LOG: the driver's log and the model's trace */
	int trace;                     /* DMAHIL_MODEL_TRACE=1: every DDI call in the log */
	/* the physical layout of this world */
	uint64_t pool_lo, pool_hi, common_lo, common_hi, mapreg_lo;
};
extern struct mk_config mk_cfg;
int mk_config_read(char *err, size_t errlen);
int mk_init(char *err, size_t errlen);

/* ---- DDI frames, bug checks, faults (rules.c) ---- */

struct mk_ddi {
	const char *name;
	ULONG_PTR caller;
	struct mk_ddi *prev;
};
extern struct mk_ddi *mk_ddi_top;
struct mk_ddi *mk_ddi_enter(struct mk_ddi *d, const char *name, void *ret);
void mk_ddi_leave(struct mk_ddi **d);
#define MK_DDI(nm)                                                                                      \
	struct mk_ddi mk_ddi_frame_;                                                                    \
	struct mk_ddi *mk_ddi_ __attribute__((cleanup(mk_ddi_leave), unused)) =                        \
		mk_ddi_enter(&mk_ddi_frame_, nm, __builtin_return_address(0))

/* Around every call into driver code: faults below it are the driver's, not the DDI's. */
#define MK_CALLOUT()                                                                                    \
	struct mk_ddi mk_callout_frame_;                                                                \
	struct mk_ddi *mk_callout_ __attribute__((cleanup(mk_ddi_leave), unused)) =                    \
		mk_ddi_enter(&mk_callout_frame_, NULL, NULL)

/* One stderr line "MODEL BUGCHECK rule=... ddi=... caller=... :: ...", exit 3. */
__attribute__((noreturn, format(printf, 2, 3))) void mk_bugcheck(const char *rule, const char *fmt, ...);
__attribute__((noreturn, format(printf, 4, 5))) void mk_bugcheck_at(const char *rule, const char *ddi,
								     ULONG_PTR caller, const char *fmt, ...);
/* A check (checks.c) that wants the bug check as its own JSON line too. */
extern void (*mk_on_bugcheck)(const char *line);
ULONG_PTR mk_rva(ULONG_PTR va);
ULONG_PTR mk_ddi_caller(void); /* the driver's call site of the innermost DDI */
__attribute__((format(printf, 1, 2))) void mk_trace(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void mk_note(const char *fmt, ...);
void mk_log_raw(const char *s, size_t n);

/* Memory the model retired (freed IRPs, deleted devices, freed pool): a later access is named by rule. */
void mk_retired_add(const void *lo, size_t bytes, const char *rule, const char *what);
int mk_exception(struct os_exc *x);

/* ---- IRQL, CPUs, spin locks, fast mutexes (irql.c) ---- */

#define MK_DIRQL 5 /* the edu's interrupt (message or line), an x64 device IRQL */

/* A CPU context: the thread, or a DPC, an ISR or another thread the model runs nested. */
struct mk_cpu {
	KIRQL irql;
	KIRQL floor; /* the IRQL it was entered at: it may not go below it */
	int id;
	int spinlocks;   /* executive spin locks held */
	int fastmutexes;
	int cancel_lock; /* holds the cancel spin lock */
	const char *what;
	struct mk_cpu *prev;
};
extern struct mk_cpu *mk_cpu;
void mk_cpu_push(struct mk_cpu *c, KIRQL irql, const char *what);
void mk_cpu_pop(struct mk_cpu *c, const char *rule_ddi, ULONG_PTR caller);
void mk_irql_eq(KIRQL want);
void mk_irql_le(KIRQL max);
void mk_cancel_lock_acquire(KIRQL *old);
void mk_cancel_lock_release(KIRQL irql);
void mk_cancel_lock_park(void);
void mk_cancel_lock_unpark(void);
int mk_cancel_lock_free(void);
/* Nothing the current context holds would block another context. */
int mk_cpu_idle_safe(void);

/* ---- virtual time, DPCs, timers, events, the world (sched.c) ---- */

extern uint64_t mk_now; /* virtual time, 100 ns units */
#define MK_MS(x) ((uint64_t)(x) * 10000ull)
#define MK_FOREVER UINT64_MAX
void mk_check_no_dpc_in(const void *lo, size_t bytes, const char *rule, const char *what);
int mk_dpc_queued_count(void);
void mk_sched_reset(void);
/*
 * Run what is due (an interrupt, then DPCs, then the next event in time) until
 * done(arg) is true, or nothing can happen before deadline. Returns done(arg).
 * Only from a context at PASSIVE_LEVEL or APC_LEVEL.
 */
int mk_world_run(int (*done)(void *), void *arg, uint64_t deadline);
void mk_run_all_dpcs(void);
void mk_check_no_workitem_for(PDEVICE_OBJECT dev);
void mk_workitems_check_leaks(void);
int mk_event_signaled(PKEVENT e);
void mk_event_set_impl(PKEVENT e);

/* Interleaving: a DDI entry where nothing is held is a point another CPU may act at. */
typedef void (*mk_inject_fn)(void *arg);
void mk_inject_arm(unsigned point, mk_inject_fn fn, void *arg);
void mk_inject_disarm(void);
unsigned mk_inject_points(void); /* points seen since armed */
int mk_inject_done(void);
void mk_interleave_point(void);
/* Work for "another CPU" that runs at the next point where the world runs. */
void mk_defer(mk_inject_fn fn, void *arg);
int mk_run_deferred(void);

/* ---- guest RAM, pool, MDLs (memory.c) ---- */

extern uint8_t *mk_ram;
int mk_mem_init(char *err, size_t errlen);
static inline void *mk_pa(uint64_t pa)
{
	return mk_ram + pa;
}
enum mk_alloc_kind { MK_ALLOC_POOL, MK_ALLOC_COMMON };
void *mk_mem_alloc(enum mk_alloc_kind kind, size_t bytes, ULONG tag, ULONG_PTR caller, uint64_t *first_pa);
/* The allocation starting at va (0 if none); frees it. */
int mk_mem_free(enum mk_alloc_kind kind, void *va, ULONG *tag);
int mk_va_to_pa(const void *va, uint64_t *pa);
int mk_va_is_mem(const void *va, size_t bytes);
int mk_pa_live(uint64_t pa);
void mk_mem_check_leaks(void);
int mk_mdl_live(PMDL mdl);
void mk_mdl_check_leaks(void);

/* ---- objects, names, interrupts, misc (objects.c) ---- */

struct mk_devobj {
	PDEVICE_OBJECT obj;
	size_t bytes;
	PDEVICE_OBJECT lower; /* what it is attached to */
	LONG refs;
	int pdo;
	WCHAR name[64];
	struct mk_devobj *next;
};
struct mk_devobj *mk_devobj_of(PDEVICE_OBJECT d);
PDEVICE_OBJECT mk_device_create_impl(PDRIVER_OBJECT drv, ULONG ext, const WCHAR *name, int pdo);
PDEVICE_OBJECT mk_attached_top(PDEVICE_OBJECT d);
PDEVICE_OBJECT mk_symlink_resolve(const char *user_path);
PDRIVER_OBJECT mk_driver_object_new(const WCHAR *name);
void mk_driver_object_free(PDRIVER_OBJECT d);
void mk_objects_check_leaks(PDRIVER_OBJECT drv);
void mk_misc_check_leaks(void);
void mk_interrupt_check_leaks(void);
/* the edu's interrupt: 1 if an ISR ran */
int mk_interrupt_deliver(void);
int mk_interrupt_connected(void);

/* ---- IRPs, the I/O manager, CSQ, remove locks (irp.c) ---- */

struct mk_req {
	PIRP irp;
	const char *what;
	int done;
	NTSTATUS status;
	ULONG_PTR info;
	int dispatch_returned;
	NTSTATUS dispatch_status;
	int pending_marked;
	int freed;
	void *sysbuf;
	size_t sysbuf_bytes;
	void *out;
	ULONG out_len;
	ULONG copied;
};
PIRP mk_irp_alloc_impl(CCHAR stack);
int mk_irp_live(PIRP irp);
/* A request from the model (user I/O, PnP manager) to the top of a stack; returns after dispatch returns. */
struct mk_req *mk_req_send(PDEVICE_OBJECT top, PIRP irp, const char *what, void *out, ULONG out_len,
			   size_t sysbuf_bytes);
void mk_irp_complete_impl(PIRP irp);
void mk_remove_locks_check_in(const void *lo, size_t bytes);
int mk_slow_cancel_pending(void);
void mk_slow_cancel_run(void);
int mk_req_done(void *req);
extern struct mk_req *mk_req_sending;
int mk_req_wait(struct mk_req *r, uint64_t deadline);
void mk_req_free(struct mk_req *r);
/* IoCancelIrp as another CPU does it; slow: the cancel routine runs only after the IRP completes, or later. */
void mk_irp_cancel(PIRP irp, int slow);
void mk_irp_check_leaks(void);

/* backend_model.c: a user request sent to the driver on the open handle; it may still pend */
struct mk_req *mk_backend_submit(UCHAR major, ULONG code, const char *what, const void *in, ULONG inlen, void *out,
				 ULONG outlen);

/* ---- the PCI bus, the PDO, the PnP manager (pnp_bus.c) ---- */

extern PDEVICE_OBJECT mk_pdo;
uint8_t *mk_pci_config(void);
int mk_bus_master_enabled(void);
/* Load the driver, add the device, start it. 0, or -1 and err. */
int mk_lifecycle_up(char *err, size_t errlen);
/* Remove the device, unload the driver, check for leaks. */
void mk_lifecycle_down(void);
extern PDRIVER_OBJECT mk_drv;
extern const CM_RESOURCE_LIST *mk_raw_resources, *mk_translated_resources;

/* ---- the HAL's DMA (hal_dma.c) ---- */

PDMA_ADAPTER mk_get_dma_adapter_impl(PDEVICE_OBJECT pdo, PDEVICE_DESCRIPTION dd, PULONG nregs);
void mk_dma_check_leaks(void);
/* bug check if a DMA mapping (map registers, scatter/gather list) still covers this memory or MDL */
void mk_dma_check_unmapped(const void *va, size_t bytes, const char *what);
void mk_dma_check_mdl_unused(PMDL mdl);
void mk_dma_reset(void);
unsigned mk_dma_map_registers_free(void);
int mk_dma_waiting(void); /* map-register requests queued */
int mk_dma_pa_granted(uint64_t pa);

/* ---- the edu (edu.c) ---- */

#define MK_EDU_BAR_PA 0xFEA00000ull
#define MK_EDU_BAR_LEN 0x100000u
void mk_edu_reset(void);
void *mk_edu_map(uint64_t pa, size_t bytes);
int mk_edu_unmap(void *va, size_t bytes);
int mk_edu_exception(struct os_exc *x);
uint64_t mk_edu_next_due(void);
void mk_edu_fire(uint64_t now);
/* 1 if the edu asks for an interrupt: MSI messages pending, or the line asserted */
int mk_edu_irq_pending(void);
void mk_edu_irq_taken(void);
int mk_edu_busy(void);
void mk_edu_check_leaks(void);

#endif /* MK_H */
