/* SPDX-License-Identifier: MIT */
/*
 * The import address table the driver's code goes through: the DDK declares
 * each kernel routine DECLSPEC_IMPORT, so a call is "call *__imp_<Name>"; here
 * every __imp_<Name> points at the model's mk_<Name>. That is what lets the
 * driver's sources build unchanged.
 */
#include <string.h>
#include "mk.h"

#define MK_DEFINE_IMPORT(name) const void *__imp_##name = (const void *)(ULONG_PTR)mk_##name;
MK_IMPORT_LIST(MK_DEFINE_IMPORT)

static const struct {
	const char *name;
	const void *fn;
} routines[] = {
#define MK_ROUTINE(name) { #name, (const void *)(ULONG_PTR)mk_##name },
	MK_IMPORT_LIST(MK_ROUTINE)
};

/* ExAllocatePool2 exists from Windows 10 2004: present in the v3 worlds, absent in the ReactOS-like v2 one. */
PVOID NTAPI mk_MmGetSystemRoutineAddress(PUNICODE_STRING SystemRoutineName)
{
	char name[64];
	size_t i, n = SystemRoutineName->Length / sizeof(WCHAR);
	MK_DDI("MmGetSystemRoutineAddress");

	mk_irql_eq(PASSIVE_LEVEL);
	if (n >= sizeof(name))
		return NULL;
	for (i = 0; i < n; i++)
		name[i] = SystemRoutineName->Buffer[i] < 128 ? (char)SystemRoutineName->Buffer[i] : '?';
	name[n] = 0;
	if (strcmp(name, "ExAllocatePool2") == 0)
		return mk_cfg.world == MK_WORLD_V2_NULL_FLUSH ? NULL : (PVOID)(ULONG_PTR)mk_ExAllocatePool2;
	for (i = 0; i < sizeof(routines) / sizeof(routines[0]); i++)
		if (strcmp(name, routines[i].name) == 0)
			return (PVOID)routines[i].fn;
	return NULL;
}

/* memcpy and memset as ntoskrnl exports them: points where another CPU may act (sched.c). */
void *mk_memcpy(void *dst, const void *src, size_t n)
{
	MK_DDI("RtlCopyMemory");

	return memcpy(dst, src, n);
}

void *mk_memset(void *dst, int c, size_t n)
{
	MK_DDI("RtlFillMemory");

	return memset(dst, c, n);
}
