/* SPDX-License-Identifier: MIT */
/*
 * IRQL and the locks that depend on it. The IRQL lives in the current CPU
 * context (the thread, or a DPC, ISR or other thread the model runs nested);
 * wdm.h's inline KeGetCurrentIrql/KeRaiseIrql/KeLowerIrql reach it through
 * __readcr8/__writecr8 (mk_forced.h).
 *
 * The model is single-threaded: a lock held by an interrupted context can
 * never be released while a nested one spins on it, so the model refuses to
 * nest anything while a lock is held (mk_cpu_idle_safe), and a recursion on
 * the same context is the deadlock it would be on Windows.
 */
#include "mk.h"

static struct mk_cpu thread0 = { PASSIVE_LEVEL, PASSIVE_LEVEL, 1, 0, 0, 0, "the thread", NULL };
struct mk_cpu *mk_cpu = &thread0;
static int next_cpu_id = 2;
static int cancel_owner; /* cpu id holding the cancel spin lock */

#define SPIN_OWNER(c) ((((ULONG_PTR)(c)->id) << 1) | 1)

unsigned long long __readcr8(void)
{
	return mk_cpu->irql;
}

void __writecr8(unsigned long long v)
{
	ULONG_PTR ret = (ULONG_PTR)__builtin_return_address(0) - 1;

	if (v > HIGH_LEVEL)
		mk_bugcheck_at("wrong-irql", "KeRaiseIrql", ret, "IRQL %llu does not exist", v);
	if (v < DISPATCH_LEVEL && mk_cpu->spinlocks > 0)
		mk_bugcheck_at("irql-lowered-holding-spin-lock", "KeLowerIrql", ret,
			       "IRQL lowered to %llu while %d spin lock(s) are held", v, mk_cpu->spinlocks);
	if (v < mk_cpu->floor)
		mk_bugcheck_at("wrong-irql", "KeLowerIrql", ret, "IRQL lowered to %llu inside %s (entered at %u)", v,
			       mk_cpu->what, (unsigned)mk_cpu->floor);
	mk_cpu->irql = (KIRQL)v;
}

void mk_cpu_push(struct mk_cpu *c, KIRQL irql, const char *what)
{
	c->irql = irql;
	c->floor = irql;
	c->id = next_cpu_id++;
	c->spinlocks = c->fastmutexes = c->cancel_lock = 0;
	c->what = what;
	c->prev = mk_cpu;
	mk_cpu = c;
}

void mk_cpu_pop(struct mk_cpu *c, const char *rule_ddi, ULONG_PTR caller)
{
	KIRQL entry = c->floor;

	if (c->irql != entry)
		mk_bugcheck_at("wrong-irql", rule_ddi, caller, "%s returned at IRQL %u, entered at %u", c->what,
			       (unsigned)c->irql, (unsigned)entry);
	if (c->spinlocks || c->fastmutexes || c->cancel_lock)
		mk_bugcheck_at("lock-held-on-return", rule_ddi, caller,
			       "%s returned holding %d spin lock(s), %d fast mutex(es)%s", c->what, c->spinlocks,
			       c->fastmutexes, c->cancel_lock ? " and the cancel spin lock" : "");
	mk_cpu = c->prev;
}

int mk_cpu_idle_safe(void)
{
	const struct mk_cpu *c;

	if (mk_cpu->irql > DISPATCH_LEVEL)
		return 0;
	for (c = mk_cpu; c != NULL; c = c->prev)
		if (c->spinlocks || c->fastmutexes || c->cancel_lock)
			return 0;
	return 1;
}

void mk_irql_eq(KIRQL want)
{
	if (mk_cpu->irql != want)
		mk_bugcheck("wrong-irql", "needs IRQL %u, called at IRQL %u", (unsigned)want, (unsigned)mk_cpu->irql);
}

void mk_irql_le(KIRQL max)
{
	if (mk_cpu->irql > max)
		mk_bugcheck("wrong-irql", "needs IRQL <= %u, called at IRQL %u", (unsigned)max, (unsigned)mk_cpu->irql);
}

static void spin_acquire(PKSPIN_LOCK l)
{
	const struct mk_cpu *c;

	if (*l == SPIN_OWNER(mk_cpu))
		mk_bugcheck("spin-lock-recursion", "spin lock %p acquired again by its holder (%s)", (void *)l,
			    mk_cpu->what);
	if (*l != 0) {
		for (c = mk_cpu->prev; c != NULL; c = c->prev)
			if (*l == SPIN_OWNER(c))
				mk_bugcheck("spin-lock-deadlock", "spin lock %p is held by %s, which %s interrupted",
					    (void *)l, c->what, mk_cpu->what);
		mk_bugcheck("spin-lock-corrupt", "spin lock %p holds 0x%llx: not initialized, or freed", (void *)l,
			    (unsigned long long)*l);
	}
	*l = SPIN_OWNER(mk_cpu);
	mk_cpu->spinlocks++;
}

static void spin_release(PKSPIN_LOCK l)
{
	if (*l != SPIN_OWNER(mk_cpu)) {
		if (*l == 0)
			mk_bugcheck("spin-lock-not-held", "spin lock %p released but not held", (void *)l);
		mk_bugcheck("spin-lock-not-owner", "spin lock %p released by %s, which does not hold it (0x%llx)",
			    (void *)l, mk_cpu->what, (unsigned long long)*l);
	}
	*l = 0;
	mk_cpu->spinlocks--;
}

KIRQL NTAPI mk_KeAcquireSpinLockRaiseToDpc(PKSPIN_LOCK SpinLock)
{
	KIRQL old;
	MK_DDI("KeAcquireSpinLockRaiseToDpc");

	mk_irql_le(DISPATCH_LEVEL);
	old = mk_cpu->irql;
	spin_acquire(SpinLock);
	mk_cpu->irql = DISPATCH_LEVEL;
	return old;
}

VOID NTAPI mk_KeReleaseSpinLock(PKSPIN_LOCK SpinLock, KIRQL NewIrql)
{
	MK_DDI("KeReleaseSpinLock");

	mk_irql_eq(DISPATCH_LEVEL);
	spin_release(SpinLock);
	if (NewIrql > DISPATCH_LEVEL)
		mk_bugcheck("wrong-irql", "KeReleaseSpinLock to IRQL %u", (unsigned)NewIrql);
	if (NewIrql < DISPATCH_LEVEL && mk_cpu->spinlocks > 0)
		mk_bugcheck("irql-lowered-holding-spin-lock", "IRQL lowered to %u while %d spin lock(s) are held",
			    (unsigned)NewIrql, mk_cpu->spinlocks);
	mk_cpu->irql = NewIrql;
}

/* Documented as IRQL >= DISPATCH_LEVEL; the model wants exactly DISPATCH_LEVEL (above it, only interrupt spin locks). */
VOID NTAPI mk_KeAcquireSpinLockAtDpcLevel(PKSPIN_LOCK SpinLock)
{
	MK_DDI("KeAcquireSpinLockAtDpcLevel");

	mk_irql_eq(DISPATCH_LEVEL);
	spin_acquire(SpinLock);
}

VOID NTAPI mk_KeReleaseSpinLockFromDpcLevel(PKSPIN_LOCK SpinLock)
{
	MK_DDI("KeReleaseSpinLockFromDpcLevel");

	mk_irql_eq(DISPATCH_LEVEL);
	spin_release(SpinLock);
}

/* FAST_MUTEX: Count bit 0 set = free (ExInitializeFastMutex sets FM_LOCK_BIT). */
#define FM_OWNER(c) ((PKTHREAD)(ULONG_PTR)(0xFA570000u + (unsigned)(c)->id))

VOID FASTCALL mk_ExAcquireFastMutex(PFAST_MUTEX FastMutex)
{
	const struct mk_cpu *c;
	MK_DDI("ExAcquireFastMutex");

	mk_irql_le(APC_LEVEL);
	if (!(FastMutex->Count & 1)) {
		if (FastMutex->Owner == FM_OWNER(mk_cpu))
			mk_bugcheck("fast-mutex-recursion", "fast mutex %p acquired again by its owner", (void *)FastMutex);
		for (c = mk_cpu->prev; c != NULL; c = c->prev)
			if (FastMutex->Owner == FM_OWNER(c))
				mk_bugcheck("fast-mutex-deadlock", "fast mutex %p is held by %s, which %s interrupted",
					    (void *)FastMutex, c->what, mk_cpu->what);
		mk_bugcheck("fast-mutex-corrupt", "fast mutex %p: Count 0x%lx, not initialized or freed",
			    (void *)FastMutex, (unsigned long)FastMutex->Count);
	}
	FastMutex->Count &= ~1;
	FastMutex->Owner = FM_OWNER(mk_cpu);
	FastMutex->OldIrql = mk_cpu->irql;
	mk_cpu->irql = APC_LEVEL;
	mk_cpu->fastmutexes++;
}

VOID FASTCALL mk_ExReleaseFastMutex(PFAST_MUTEX FastMutex)
{
	MK_DDI("ExReleaseFastMutex");

	if ((FastMutex->Count & 1) || FastMutex->Owner != FM_OWNER(mk_cpu))
		mk_bugcheck("fast-mutex-not-owner", "fast mutex %p released by %s, which does not own it",
			    (void *)FastMutex, mk_cpu->what);
	mk_irql_eq(APC_LEVEL);
	FastMutex->Count |= 1;
	FastMutex->Owner = NULL;
	mk_cpu->irql = (KIRQL)FastMutex->OldIrql;
	mk_cpu->fastmutexes--;
}

void mk_cancel_lock_acquire(KIRQL *old)
{
	if (cancel_owner == mk_cpu->id)
		mk_bugcheck("spin-lock-recursion", "the cancel spin lock acquired again by its holder");
	if (cancel_owner != 0)
		mk_bugcheck("spin-lock-deadlock", "the cancel spin lock is held by an interrupted context");
	mk_irql_le(DISPATCH_LEVEL);
	*old = mk_cpu->irql;
	cancel_owner = mk_cpu->id;
	mk_cpu->cancel_lock = 1;
	mk_cpu->irql = DISPATCH_LEVEL;
}

void mk_cancel_lock_release(KIRQL irql)
{
	if (cancel_owner != mk_cpu->id)
		mk_bugcheck("spin-lock-not-held", "the cancel spin lock released by %s, which does not hold it",
			    mk_cpu->what);
	mk_irql_eq(DISPATCH_LEVEL);
	cancel_owner = 0;
	mk_cpu->cancel_lock = 0;
	mk_cpu->irql = irql;
}

VOID NTAPI mk_IoReleaseCancelSpinLock(KIRQL Irql)
{
	MK_DDI("IoReleaseCancelSpinLock");

	mk_cancel_lock_release(Irql);
}

/* A slow canceller (irp.c) keeps the cancel spin lock while it is away: parked, then handed to its next context. */
#define CANCEL_PARKED (-1)

void mk_cancel_lock_park(void)
{
	if (cancel_owner != mk_cpu->id)
		mk_bugcheck("spin-lock-not-held", "model: parking a cancel spin lock it does not hold");
	cancel_owner = CANCEL_PARKED;
	mk_cpu->cancel_lock = 0;
}

void mk_cancel_lock_unpark(void)
{
	cancel_owner = mk_cpu->id;
	mk_cpu->cancel_lock = 1;
}

int mk_cancel_lock_free(void)
{
	return cancel_owner == 0;
}
