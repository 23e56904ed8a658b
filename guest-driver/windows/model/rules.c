/* SPDX-License-Identifier: MIT */
/*
 * How a broken rule ends the run: one stderr line, exit code 3, as a bug check
 * ends Windows. The line names the rule, the DDI and the driver's call site as
 * an RVA of the model exe (x86_64-w64-mingw32-addr2line -e edudma-model.exe
 * <image base + RVA> gives file:line; the exe is linked at 0x140000000).
 *
 * Faults: memory the model retired (a completed IRP, a deleted device object,
 * freed pool, a put scatter/gather list, an unmapped BAR) is left inaccessible,
 * so the driver's next touch faults here and is reported by what it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"

struct mk_ddi *mk_ddi_top;
void (*mk_on_bugcheck)(const char *line);

struct mk_ddi *mk_ddi_enter(struct mk_ddi *d, const char *name, void *ret)
{
	d->name = name;
	/* the call instruction's last byte: addr2line names the line of the call, not the next one */
	d->caller = ret != NULL ? (ULONG_PTR)ret - 1 : 0;
	d->prev = mk_ddi_top;
	mk_ddi_top = d;
	if (name != NULL) {
		if (mk_cfg.trace)
			mk_trace("%s from 0x%llx at irql %u", name, (unsigned long long)mk_rva(d->caller),
				 (unsigned)mk_cpu->irql);
		mk_interleave_point();
	}
	return d;
}

void mk_ddi_leave(struct mk_ddi **d)
{
	mk_ddi_top = (*d)->prev;
}

ULONG_PTR mk_ddi_caller(void)
{
	const struct mk_ddi *d = mk_ddi_top;

	while (d != NULL && d->name == NULL)
		d = d->prev;
	return d != NULL ? d->caller : 0;
}

ULONG_PTR mk_rva(ULONG_PTR va)
{
	uintptr_t base = os_image_base();

	return va >= base && va < os_image_end() ? va - base : va;
}

void mk_log_raw(const char *s, size_t n)
{
	os_append(mk_cfg.log_path, s, n);
}

void mk_trace(const char *fmt, ...)
{
	char line[400];
	va_list ap;
	int n;

	if (mk_cfg.log_path == NULL)
		return;
	n = snprintf(line, sizeof(line), "model t=%llu.%04llums: ", (unsigned long long)(mk_now / 10000),
		     (unsigned long long)(mk_now % 10000));
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	mk_log_raw(line, strlen(line));
}

void mk_note(const char *fmt, ...)
{
	char line[400] = "MODEL: ";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + 7, sizeof(line) - 9, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	os_stderr(line);
	mk_log_raw(line, strlen(line));
}

__attribute__((noreturn)) static void bugcheck_v(const char *rule, const char *ddi, ULONG_PTR caller, const char *fmt, va_list ap)
{
	static int dying;
	char line[1024];
	int n;

	if (dying++) /* a fault while reporting: the first line stands */
		os_exit(3);
	n = snprintf(line, sizeof(line), "MODEL BUGCHECK rule=%s ddi=%s caller=0x%llx :: ", rule, ddi,
		     (unsigned long long)mk_rva(caller));
	vsnprintf(line + n, sizeof(line) - (size_t)n - 2, fmt, ap);
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fflush(stdout);
	if (mk_on_bugcheck != NULL)
		mk_on_bugcheck(line);
	strcat(line, "\n");
	os_stderr(line);
	mk_log_raw(line, strlen(line));
	os_exit(3);
}

void mk_bugcheck(const char *rule, const char *fmt, ...)
{
	const struct mk_ddi *d = mk_ddi_top;
	va_list ap;

	while (d != NULL && d->name == NULL)
		d = d->prev;
	va_start(ap, fmt);
	bugcheck_v(rule, d != NULL ? d->name : "-", d != NULL ? d->caller : 0, fmt, ap);
	va_end(ap);
}

void mk_bugcheck_at(const char *rule, const char *ddi, ULONG_PTR caller, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bugcheck_v(rule, ddi, caller, fmt, ap);
	va_end(ap);
}

/* ---- retired memory ---- */

struct retired {
	uintptr_t lo, hi;
	const char *rule;
	char what[80];
};
static struct retired *retired;
static size_t nretired, capretired;

void mk_retired_add(const void *lo, size_t bytes, const char *rule, const char *what)
{
	struct retired *r;

	if (nretired == capretired) {
		capretired = capretired ? capretired * 2 : 256;
		retired = realloc(retired, capretired * sizeof(*retired));
		if (retired == NULL)
			os_exit(99);
	}
	r = &retired[nretired++];
	r->lo = (uintptr_t)lo;
	r->hi = (uintptr_t)lo + bytes;
	r->rule = rule;
	snprintf(r->what, sizeof(r->what), "%s", what);
}

static const struct retired *retired_find(uintptr_t a)
{
	size_t i;

	for (i = nretired; i-- > 0;)
		if (a >= retired[i].lo && a < retired[i].hi)
			return &retired[i];
	return NULL;
}

int mk_exception(struct os_exc *x)
{
	const struct mk_ddi *d = mk_ddi_top;
	const struct retired *r;
	const char *ddi = "-";
	ULONG_PTR caller = x->rip;

	if (x->code == OS_EXC_GUARD_PAGE || x->code == OS_EXC_SINGLE_STEP)
		if (mk_edu_exception(x))
			return 1;
	/* inside a DDI (not below a callout into the driver): the model touched it on the driver's behalf */
	if (d != NULL && d->name != NULL) {
		ddi = d->name;
		caller = d->caller;
	}
	if (x->code == OS_EXC_ACCESS_VIOLATION) {
		r = retired_find(x->addr);
		if (r != NULL)
			mk_bugcheck_at(r->rule, ddi, caller, "%s at 0x%llx, +0x%llx into %s",
				       x->rw == 1 ? "write" : x->rw == 8 ? "execute" : "read",
				       (unsigned long long)x->addr, (unsigned long long)(x->addr - r->lo), r->what);
		mk_bugcheck_at("access-violation", ddi, caller, "%s at 0x%llx (rip 0x%llx)",
			       x->rw == 1 ? "write" : x->rw == 8 ? "execute" : "read", (unsigned long long)x->addr,
			       (unsigned long long)mk_rva(x->rip));
	}
	if (x->code == 0xC0000096u) /* privileged instruction */
		mk_bugcheck_at("privileged-instruction", ddi, caller, "a privileged instruction at rip 0x%llx",
			       (unsigned long long)mk_rva(x->rip));
	if (x->code == 0xC0000094u || x->code == 0xC000001Du || x->code == 0xC00000FDu || x->code == 0x80000003u)
		mk_bugcheck_at("driver-exception", ddi, caller, "exception 0x%08lx at rip 0x%llx",
			       (unsigned long)x->code, (unsigned long long)mk_rva(x->rip));
	return 0;
}
