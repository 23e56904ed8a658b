/* SPDX-License-Identifier: MIT */
/*
 * Virtual time, DPCs, timers, events and waits, and the world loop that
 * stands in for everything that runs while the driver is not running.
 *
 * One thread, deterministic. The world runs only where the driver lets the
 * CPU go: when a request's dispatch routine has returned, and inside
 * KeWaitForSingleObject / KeDelayExecutionThread. Each step does the first of:
 *   1. work a stalled "other CPU" left (mk_defer: a slow canceller),
 *   2. the edu's interrupt, its ISR at DIRQL,
 *   3. the oldest queued DPC that is due, at DISPATCH_LEVEL,
 *   4. advance the clock to the next event: the edu's DMA completion first
 *      (and its interrupt at once), then timers due at that time.
 * So an interrupt that lands exactly when a timer expires queues its DPC
 * ahead of the timer's: the order the stale-timer check needs (review W3).
 * DPCs run on "another CPU" after DMAHIL_MODEL_DPC_LATENCY_US (default 0):
 * a DPC that is queued may stay queued across the driver's own code.
 */
#include <stdlib.h>
#include <string.h>
#include "mk.h"

uint64_t mk_now;

#define DPC_OBJECT 19 /* KOBJECTS DpcObject */
#define TIMER_NOTIFICATION 8
#define TIMER_SYNCHRONIZATION 9

struct qdpc {
	PKDPC dpc;
	uint64_t due;
};
struct qtimer {
	PKTIMER timer;
	uint64_t due, seq, period;
	PKDPC dpc;
	ULONG_PTR caller;
};

static struct qdpc dpcq[256];
static int ndpc;
static struct qtimer timers[64];
static int ntimers;
static uint64_t timer_seq;

void mk_sched_reset(void)
{
	ndpc = 0;
	ntimers = 0;
}

static int dpc_index(PKDPC d)
{
	int i;

	for (i = 0; i < ndpc; i++)
		if (dpcq[i].dpc == d)
			return i;
	return -1;
}

static int timer_index(PKTIMER t)
{
	int i;

	for (i = 0; i < ntimers; i++)
		if (timers[i].timer == t)
			return i;
	return -1;
}

int mk_dpc_queued_count(void)
{
	return ndpc;
}

void mk_check_no_dpc_in(const void *lo, size_t bytes, const char *rule, const char *what)
{
	uintptr_t a = (uintptr_t)lo, b = a + bytes;
	int i;

	for (i = 0; i < ndpc; i++)
		if ((uintptr_t)dpcq[i].dpc >= a && (uintptr_t)dpcq[i].dpc < b)
			mk_bugcheck(rule, "%s: its DPC at +0x%llx (routine 0x%llx) is still queued", what,
				    (unsigned long long)((uintptr_t)dpcq[i].dpc - a),
				    (unsigned long long)mk_rva((ULONG_PTR)dpcq[i].dpc->DeferredRoutine));
	for (i = 0; i < ntimers; i++)
		if (((uintptr_t)timers[i].timer >= a && (uintptr_t)timers[i].timer < b) ||
		    ((uintptr_t)timers[i].dpc >= a && (uintptr_t)timers[i].dpc < b && timers[i].dpc != NULL))
			mk_bugcheck(rule, "%s: its timer at +0x%llx is still set (due in %llu ms, set at 0x%llx)", what,
				    (unsigned long long)((uintptr_t)timers[i].timer - a),
				    (unsigned long long)((timers[i].due - mk_now) / 10000),
				    (unsigned long long)mk_rva(timers[i].caller));
}

/* ---- DPCs ---- */

VOID NTAPI mk_KeInitializeDpc(PRKDPC Dpc, PKDEFERRED_ROUTINE DeferredRoutine, PVOID DeferredContext)
{
	MK_DDI("KeInitializeDpc");

	if (dpc_index(Dpc) >= 0)
		mk_bugcheck("dpc-reinitialized", "DPC %p initialized again while queued", (void *)Dpc);
	memset(Dpc, 0, sizeof(*Dpc));
	Dpc->Type = DPC_OBJECT;
	Dpc->Importance = MediumImportance;
	Dpc->DeferredRoutine = DeferredRoutine;
	Dpc->DeferredContext = DeferredContext;
}

static BOOLEAN dpc_insert(PKDPC Dpc, PVOID A1, PVOID A2)
{
	if (Dpc->Type != DPC_OBJECT || Dpc->DeferredRoutine == NULL)
		mk_bugcheck("dpc-not-initialized", "DPC %p was never initialized (type %u)", (void *)Dpc,
			    (unsigned)Dpc->Type);
	if (dpc_index(Dpc) >= 0)
		return FALSE;
	if (ndpc == (int)(sizeof(dpcq) / sizeof(dpcq[0])))
		mk_bugcheck("model-limit", "more than %d DPCs queued", ndpc);
	Dpc->SystemArgument1 = A1;
	Dpc->SystemArgument2 = A2;
	Dpc->DpcData = (PVOID)&dpcq; /* non-NULL while queued, as on Windows */
	dpcq[ndpc].dpc = Dpc;
	dpcq[ndpc].due = mk_now + mk_cfg.dpc_latency;
	ndpc++;
	return TRUE;
}

BOOLEAN NTAPI mk_KeInsertQueueDpc(PRKDPC Dpc, PVOID SystemArgument1, PVOID SystemArgument2)
{
	MK_DDI("KeInsertQueueDpc");

	return dpc_insert(Dpc, SystemArgument1, SystemArgument2);
}

static void run_dpc(int i)
{
	static uint64_t at = ~0ull, runs;
	PKDPC d = dpcq[i].dpc;
	struct mk_cpu c;

	if (at != mk_now) {
		at = mk_now;
		runs = 0;
	}
	if (++runs > 1000000)
		mk_bugcheck_at("dpc-livelock", "DPC", (ULONG_PTR)d->DeferredRoutine,
			       "a million DPCs ran without time passing: a DPC that queues itself");

	memmove(&dpcq[i], &dpcq[i + 1], (size_t)(ndpc - i - 1) * sizeof(dpcq[0]));
	ndpc--;
	d->DpcData = NULL;
	mk_trace("DPC %p routine 0x%llx", (void *)d, (unsigned long long)mk_rva((ULONG_PTR)d->DeferredRoutine));
	mk_cpu_push(&c, DISPATCH_LEVEL, "a DPC");
	{
		MK_CALLOUT();
		d->DeferredRoutine(d, d->DeferredContext, d->SystemArgument1, d->SystemArgument2);
	}
	mk_cpu_pop(&c, "DPC", (ULONG_PTR)d->DeferredRoutine);
}

BOOLEAN NTAPI mk_KeRemoveQueueDpc(PRKDPC Dpc)
{
	int i;
	MK_DDI("KeRemoveQueueDpc");

	i = dpc_index(Dpc);
	if (i < 0)
		return FALSE;
	memmove(&dpcq[i], &dpcq[i + 1], (size_t)(ndpc - i - 1) * sizeof(dpcq[0]));
	ndpc--;
	Dpc->DpcData = NULL;
	return TRUE;
}

void mk_run_all_dpcs(void)
{
	while (ndpc > 0)
		run_dpc(0);
}

VOID NTAPI mk_KeFlushQueuedDpcs(VOID)
{
	MK_DDI("KeFlushQueuedDpcs");

	mk_irql_eq(PASSIVE_LEVEL);
	mk_run_all_dpcs();
}

/* ---- timers ---- */

VOID NTAPI mk_KeInitializeTimer(PKTIMER Timer)
{
	MK_DDI("KeInitializeTimer");

	mk_irql_le(DISPATCH_LEVEL);
	if (timer_index(Timer) >= 0)
		mk_bugcheck("timer-reinitialized", "timer %p initialized again while set", (void *)Timer);
	memset(Timer, 0, sizeof(*Timer));
	Timer->Header.Type = TIMER_NOTIFICATION;
	InitializeListHead(&Timer->Header.WaitListHead);
}

static uint64_t due_of(LARGE_INTEGER d)
{
	if (d.QuadPart < 0)
		return mk_now + (uint64_t)(-d.QuadPart);
	return (uint64_t)d.QuadPart < mk_now ? mk_now : (uint64_t)d.QuadPart;
}

static BOOLEAN set_timer(PKTIMER Timer, LARGE_INTEGER DueTime, LONG Period, PKDPC Dpc)
{
	int i;
	BOOLEAN was;

	mk_irql_le(DISPATCH_LEVEL);
	if (Timer->Header.Type != TIMER_NOTIFICATION && Timer->Header.Type != TIMER_SYNCHRONIZATION)
		mk_bugcheck("timer-not-initialized", "timer %p was never initialized", (void *)Timer);
	if (Dpc != NULL && (Dpc->Type != DPC_OBJECT || Dpc->DeferredRoutine == NULL))
		mk_bugcheck("dpc-not-initialized", "KeSetTimer with DPC %p, never initialized", (void *)Dpc);
	if (Period < 0)
		mk_bugcheck("invalid-parameter", "KeSetTimerEx period %ld", (long)Period);
	i = timer_index(Timer);
	was = i >= 0;
	if (i < 0) {
		if (ntimers == (int)(sizeof(timers) / sizeof(timers[0])))
			mk_bugcheck("model-limit", "more than %d timers set", ntimers);
		i = ntimers++;
	}
	timers[i].timer = Timer;
	timers[i].due = due_of(DueTime);
	timers[i].seq = timer_seq++;
	timers[i].period = (uint64_t)Period * 10000;
	timers[i].dpc = Dpc;
	timers[i].caller = mk_ddi_top->caller;
	Timer->Header.SignalState = 0;
	Timer->Dpc = Dpc;
	Timer->Period = (ULONG)Period;
	return was;
}

BOOLEAN NTAPI mk_KeSetTimer(PKTIMER Timer, LARGE_INTEGER DueTime, PKDPC Dpc)
{
	MK_DDI("KeSetTimer");

	return set_timer(Timer, DueTime, 0, Dpc);
}

BOOLEAN NTAPI mk_KeSetTimerEx(PKTIMER Timer, LARGE_INTEGER DueTime, LONG Period, PKDPC Dpc)
{
	MK_DDI("KeSetTimerEx");

	return set_timer(Timer, DueTime, Period, Dpc);
}

BOOLEAN NTAPI mk_KeReadStateTimer(PKTIMER Timer)
{
	MK_DDI("KeReadStateTimer");

	return Timer->Header.SignalState != 0;
}

BOOLEAN NTAPI mk_KeCancelTimer(PKTIMER Timer)
{
	int i;
	MK_DDI("KeCancelTimer");

	mk_irql_le(DISPATCH_LEVEL);
	i = timer_index(Timer);
	if (i < 0)
		return FALSE;
	timers[i] = timers[--ntimers];
	return TRUE;
}

/* Expire every timer due by now, oldest first. */
static void fire_timers(void)
{
	for (;;) {
		int i, best = -1;

		for (i = 0; i < ntimers; i++)
			if (timers[i].due <= mk_now &&
			    (best < 0 || timers[i].due < timers[best].due ||
			     (timers[i].due == timers[best].due && timers[i].seq < timers[best].seq)))
				best = i;
		if (best < 0)
			return;
		{
			struct qtimer t = timers[best];

			if (t.period != 0) {
				timers[best].due += t.period; /* periodic: stays set */
				timers[best].seq = timer_seq++;
			} else {
				timers[best] = timers[--ntimers];
			}
			t.timer->Header.SignalState = 1;
			mk_trace("timer %p expired", (void *)t.timer);
			if (t.dpc != NULL)
				dpc_insert(t.dpc, (PVOID)(ULONG_PTR)mk_now, NULL);
		}
	}
}

/* ---- events and waits ---- */

VOID NTAPI mk_KeInitializeEvent(PRKEVENT Event, EVENT_TYPE Type, BOOLEAN State)
{
	MK_DDI("KeInitializeEvent");

	if (Type != NotificationEvent && Type != SynchronizationEvent)
		mk_bugcheck("invalid-parameter", "KeInitializeEvent type %d", (int)Type);
	Event->Header.Type = (UCHAR)Type;
	Event->Header.SignalState = State ? 1 : 0;
	InitializeListHead(&Event->Header.WaitListHead);
}

void mk_event_set_impl(PKEVENT e)
{
	e->Header.SignalState = 1;
}

int mk_event_signaled(PKEVENT e)
{
	return e->Header.SignalState != 0;
}

static void check_event(PKEVENT e)
{
	if (e->Header.Type != NotificationEvent && e->Header.Type != SynchronizationEvent)
		mk_bugcheck("event-not-initialized", "event %p has type %u: not initialized, or not an event",
			    (void *)e, (unsigned)e->Header.Type);
}

LONG NTAPI mk_KeSetEvent(PRKEVENT Event, KPRIORITY Increment, BOOLEAN Wait)
{
	LONG prev;
	MK_DDI("KeSetEvent");

	(void)Increment;
	mk_irql_le(DISPATCH_LEVEL);
	if (Wait)
		mk_irql_le(APC_LEVEL);
	check_event(Event);
	prev = Event->Header.SignalState;
	Event->Header.SignalState = 1;
	return prev;
}

VOID NTAPI mk_KeClearEvent(PRKEVENT Event)
{
	MK_DDI("KeClearEvent");

	mk_irql_le(DISPATCH_LEVEL);
	check_event(Event);
	Event->Header.SignalState = 0;
}

LONG NTAPI mk_KeResetEvent(PRKEVENT Event)
{
	LONG prev;
	MK_DDI("KeResetEvent");

	mk_irql_le(DISPATCH_LEVEL);
	check_event(Event);
	prev = Event->Header.SignalState;
	Event->Header.SignalState = 0;
	return prev;
}

static int obj_signaled(void *o)
{
	return ((DISPATCHER_HEADER *)o)->SignalState != 0;
}

NTSTATUS NTAPI mk_KeWaitForSingleObject(PVOID Object, KWAIT_REASON WaitReason, KPROCESSOR_MODE WaitMode,
					BOOLEAN Alertable, PLARGE_INTEGER Timeout)
{
	DISPATCHER_HEADER *h = (DISPATCHER_HEADER *)Object;
	uint64_t deadline;
	MK_DDI("KeWaitForSingleObject");

	(void)WaitReason;
	(void)WaitMode;
	(void)Alertable;
	if (Timeout != NULL && Timeout->QuadPart == 0)
		mk_irql_le(DISPATCH_LEVEL);
	else
		mk_irql_le(APC_LEVEL);
	if (h->Type != NotificationEvent && h->Type != SynchronizationEvent && h->Type != TIMER_NOTIFICATION &&
	    h->Type != TIMER_SYNCHRONIZATION)
		mk_bugcheck("wait-object-unknown", "waiting on %p of object type %u (the model knows events and timers)",
			    Object, (unsigned)h->Type);
	deadline = Timeout == NULL ? MK_FOREVER : due_of(*Timeout);
	if (!obj_signaled(h)) {
		if (Timeout != NULL && Timeout->QuadPart == 0)
			return STATUS_TIMEOUT;
		if (!mk_world_run(obj_signaled, h, deadline)) {
			if (deadline == MK_FOREVER)
				mk_bugcheck("wait-forever",
					    "waiting without a timeout on %p, which nothing left to run will ever signal "
					    "(no interrupt, DPC, timer or DMA pending)",
					    Object);
			return STATUS_TIMEOUT;
		}
	}
	if (h->Type == SynchronizationEvent || h->Type == TIMER_SYNCHRONIZATION)
		h->SignalState = 0;
	return STATUS_SUCCESS;
}

NTSTATUS NTAPI mk_KeDelayExecutionThread(KPROCESSOR_MODE WaitMode, BOOLEAN Alertable, PLARGE_INTEGER Interval)
{
	MK_DDI("KeDelayExecutionThread");

	(void)WaitMode;
	(void)Alertable;
	mk_irql_le(APC_LEVEL);
	mk_world_run(NULL, NULL, due_of(*Interval));
	return STATUS_SUCCESS;
}

/* A busy wait: time passes and the edu moves on, but this CPU runs nothing else. */
VOID NTAPI mk_KeStallExecutionProcessor(ULONG MicroSeconds)
{
	MK_DDI("KeStallExecutionProcessor");

	if (MicroSeconds > 50)
		mk_bugcheck("invalid-parameter", "KeStallExecutionProcessor(%lu): the docs allow at most 50 us",
			    (unsigned long)MicroSeconds);
	mk_now += (uint64_t)MicroSeconds * 10;
	if (mk_edu_next_due() <= mk_now)
		mk_edu_fire(mk_now);
}

LARGE_INTEGER NTAPI mk_KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency)
{
	LARGE_INTEGER now;
	MK_DDI("KeQueryPerformanceCounter");

	if (PerformanceFrequency != NULL)
		PerformanceFrequency->QuadPart = 10000000; /* the virtual clock counts 100 ns */
	now.QuadPart = (LONGLONG)mk_now;
	return now;
}

/* ---- work items: a system worker thread at PASSIVE_LEVEL, run by the world ---- */

struct mk_workitem {
	PDEVICE_OBJECT dev;
	PIO_WORKITEM_ROUTINE routine;
	PVOID context;
	int queued;
	ULONG_PTR caller;
	struct mk_workitem *next;
};
static struct mk_workitem *workitems;

PIO_WORKITEM NTAPI mk_IoAllocateWorkItem(PDEVICE_OBJECT DeviceObject)
{
	struct mk_workitem *w;
	MK_DDI("IoAllocateWorkItem");

	mk_irql_le(DISPATCH_LEVEL);
	if (mk_devobj_of(DeviceObject) == NULL)
		mk_bugcheck("invalid-device-object", "IoAllocateWorkItem(%p)", (void *)DeviceObject);
	w = os_alloc_private(sizeof(*w));
	w->dev = DeviceObject;
	w->caller = mk_ddi_top->caller;
	w->next = workitems;
	workitems = w;
	return (PIO_WORKITEM)w;
}

static struct mk_workitem *live_workitem(PIO_WORKITEM I)
{
	struct mk_workitem *w;

	for (w = workitems; w != NULL; w = w->next)
		if ((PIO_WORKITEM)w == I)
			return w;
	mk_bugcheck("workitem-invalid", "work item %p is not allocated (freed?)", (void *)I);
}

VOID NTAPI mk_IoQueueWorkItem(PIO_WORKITEM IoWorkItem, PIO_WORKITEM_ROUTINE WorkerRoutine, WORK_QUEUE_TYPE QueueType,
			      PVOID Context)
{
	struct mk_workitem *w;
	MK_DDI("IoQueueWorkItem");

	(void)QueueType;
	mk_irql_le(DISPATCH_LEVEL);
	w = live_workitem(IoWorkItem);
	if (w->queued)
		mk_bugcheck("workitem-queued-twice", "IoQueueWorkItem of a work item that is still queued");
	w->routine = WorkerRoutine;
	w->context = Context;
	w->queued = 1;
}

VOID NTAPI mk_IoFreeWorkItem(PIO_WORKITEM IoWorkItem)
{
	struct mk_workitem *w, **pp;
	MK_DDI("IoFreeWorkItem");

	mk_irql_le(DISPATCH_LEVEL);
	w = live_workitem(IoWorkItem);
	if (w->queued)
		mk_bugcheck("workitem-freed-while-queued", "IoFreeWorkItem of a work item that is still queued");
	for (pp = &workitems; *pp != w; pp = &(*pp)->next)
		;
	*pp = w->next;
	os_retire(w, sizeof(*w));
	mk_retired_add(w, sizeof(*w), "workitem-touched-after-free", "a freed work item");
}

static int run_workitem(void)
{
	struct mk_workitem *w;
	struct mk_cpu c;

	if (mk_cpu->irql > PASSIVE_LEVEL || !mk_cpu_idle_safe())
		return 0;
	for (w = workitems; w != NULL && !w->queued; w = w->next)
		;
	if (w == NULL)
		return 0;
	w->queued = 0;
	mk_cpu_push(&c, PASSIVE_LEVEL, "a system worker thread");
	{
		MK_CALLOUT();
		w->routine(w->dev, w->context);
	}
	mk_cpu_pop(&c, "WorkItem", (ULONG_PTR)w->routine);
	return 1;
}

void mk_check_no_workitem_for(PDEVICE_OBJECT dev)
{
	struct mk_workitem *w;

	for (w = workitems; w != NULL; w = w->next)
		if (w->dev == dev && w->queued)
			mk_bugcheck("workitem-after-delete", "IoDeleteDevice while a work item for the device is queued");
}

void mk_workitems_check_leaks(void)
{
	if (workitems != NULL)
		mk_bugcheck_at("workitem-leak", "DriverUnload", workitems->caller, "a work item was never freed");
}

/* ---- the world ---- */

static uint64_t next_event(void)
{
	uint64_t t = mk_edu_next_due();
	int i;

	for (i = 0; i < ntimers; i++)
		if (timers[i].due < t)
			t = timers[i].due;
	for (i = 0; i < ndpc; i++)
		if (dpcq[i].due < t)
			t = dpcq[i].due;
	return t;
}

int mk_world_run(int (*done)(void *), void *arg, uint64_t deadline)
{
	if (mk_cpu->irql > APC_LEVEL)
		mk_bugcheck("wrong-irql", "model: the world runs only below DISPATCH_LEVEL (IRQL %u)",
			    (unsigned)mk_cpu->irql);
	for (;;) {
		uint64_t t;

		if (done != NULL && done(arg))
			return 1;
		if (mk_run_deferred())
			continue;
		if (mk_interrupt_deliver())
			continue;
		if (ndpc > 0 && dpcq[0].due <= mk_now) {
			run_dpc(0);
			continue;
		}
		if (run_workitem())
			continue;
		t = next_event();
		if (t == MK_FOREVER && mk_slow_cancel_pending()) {
			mk_slow_cancel_run(); /* nothing else will happen: the stalled canceller goes on */
			continue;
		}
		if (t == MK_FOREVER || t > deadline) {
			if (deadline != MK_FOREVER && deadline > mk_now)
				mk_now = deadline;
			return done != NULL && done(arg);
		}
		if (t > mk_now)
			mk_now = t;
		if (mk_now > MK_MS(7ull * 24 * 3600 * 1000))
			mk_bugcheck_at("model-time-runaway", "world", 0, "a week of virtual time passed: the driver polls forever");
		if (mk_edu_next_due() <= mk_now) {
			mk_edu_fire(mk_now);
			while (mk_interrupt_deliver())
				;
		}
		fire_timers();
	}
}

/* ---- interleaving: another CPU acts at a point the driver gives away ---- */

static unsigned inj_point, inj_seen;
static mk_inject_fn inj_fn;
static void *inj_arg;
static int inj_fired, inj_running;

void mk_inject_arm(unsigned point, mk_inject_fn fn, void *arg)
{
	inj_point = point;
	inj_seen = 0;
	inj_fn = fn;
	inj_arg = arg;
	inj_fired = 0;
}

void mk_inject_disarm(void)
{
	inj_fn = NULL;
}

unsigned mk_inject_points(void)
{
	return inj_seen;
}

int mk_inject_done(void)
{
	return inj_fired;
}

void mk_interleave_point(void)
{
	if (inj_fn == NULL || inj_fired || inj_running || !mk_cpu_idle_safe())
		return;
	if (++inj_seen != inj_point)
		return;
	inj_fired = 1;
	inj_running = 1;
	mk_trace("interleave: another CPU acts at point %u (%s)", inj_point, mk_ddi_top->name);
	inj_fn(inj_arg);
	inj_running = 0;
}

static struct {
	mk_inject_fn fn;
	void *arg;
} deferred[8];
static int ndeferred;

void mk_defer(mk_inject_fn fn, void *arg)
{
	if (ndeferred == 8)
		mk_bugcheck("model-limit", "too much deferred work");
	deferred[ndeferred].fn = fn;
	deferred[ndeferred].arg = arg;
	ndeferred++;
}

int mk_run_deferred(void)
{
	mk_inject_fn fn;
	void *arg;

	if (ndeferred == 0)
		return 0;
	fn = deferred[0].fn;
	arg = deferred[0].arg;
	memmove(&deferred[0], &deferred[1], (size_t)(--ndeferred) * sizeof(deferred[0]));
	fn(arg);
	return 1;
}
