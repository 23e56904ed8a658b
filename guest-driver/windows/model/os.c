/* SPDX-License-Identifier: MIT */
/* Win32 services for the model (see os.h). Nothing here knows about the kernel model. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "os.h"

static HANDLE ram_section;

int os_ram_open(const char *path, uint64_t bytes, uint8_t **base, char *err, size_t errlen)
{
	HANDLE file = INVALID_HANDLE_VALUE;

	if (path != NULL && path[0] != '\0') {
		file = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
				   OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
		if (file == INVALID_HANDLE_VALUE) {
			snprintf(err, errlen, "cannot open the RAM file %s: win32 error %lu", path,
				 (unsigned long)GetLastError());
			return -1;
		}
	}
	ram_section = CreateFileMappingA(file, NULL, PAGE_READWRITE, (DWORD)(bytes >> 32), (DWORD)bytes, NULL);
	if (ram_section == NULL) {
		snprintf(err, errlen, "cannot map %llu bytes of RAM: win32 error %lu", (unsigned long long)bytes,
			 (unsigned long)GetLastError());
		return -1;
	}
	if (file != INVALID_HANDLE_VALUE)
		CloseHandle(file);
	*base = MapViewOfFile(ram_section, FILE_MAP_WRITE, 0, 0, (SIZE_T)bytes);
	if (*base == NULL) {
		snprintf(err, errlen, "cannot map a view of the RAM: win32 error %lu", (unsigned long)GetLastError());
		return -1;
	}
	return 0;
}

void *os_va_probe(size_t bytes)
{
	void *va = VirtualAlloc(NULL, bytes, MEM_RESERVE, PAGE_NOACCESS);

	if (va != NULL)
		VirtualFree(va, 0, MEM_RELEASE);
	return va;
}

int os_ram_alias(void *va, uint64_t offset, size_t bytes)
{
	void *got = MapViewOfFileEx(ram_section, FILE_MAP_WRITE, (DWORD)(offset >> 32), (DWORD)offset, bytes, va);

	return got == va ? 0 : -1;
}

void os_ram_unalias(void *va)
{
	UnmapViewOfFile(va);
}

int os_protect(void *va, size_t bytes, enum os_prot prot)
{
	DWORD old, p = prot == OS_NOACCESS ? PAGE_NOACCESS : prot == OS_RW ? PAGE_READWRITE : PAGE_READWRITE | PAGE_GUARD;

	return VirtualProtect(va, bytes, p, &old) ? 0 : -1;
}

void *os_alloc_private(size_t bytes)
{
	return VirtualAlloc(NULL, bytes, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

void os_retire(void *va, size_t bytes)
{
	VirtualFree(va, bytes, MEM_DECOMMIT);
}

static int (*exc_handler)(struct os_exc *);

static LONG CALLBACK os_veh(EXCEPTION_POINTERS *ep)
{
	EXCEPTION_RECORD *r = ep->ExceptionRecord;
	struct os_exc x;

	memset(&x, 0, sizeof(x));
	x.code = r->ExceptionCode;
	if (r->NumberParameters >= 2) {
		x.rw = r->ExceptionInformation[0];
		x.addr = r->ExceptionInformation[1];
	}
	x.rip = (uintptr_t)ep->ContextRecord->Rip;
	if (x.code == OS_EXC_SINGLE_STEP)
		ep->ContextRecord->EFlags &= ~0x100u;
	if (!exc_handler || !exc_handler(&x))
		return EXCEPTION_CONTINUE_SEARCH;
	if (x.single_step_next)
		ep->ContextRecord->EFlags |= 0x100u;
	return EXCEPTION_CONTINUE_EXECUTION;
}

static LONG WINAPI os_last_chance(EXCEPTION_POINTERS *ep)
{
	char line[200];

	snprintf(line, sizeof(line), "MODEL: unhandled exception 0x%08lx at %p\n",
		 (unsigned long)ep->ExceptionRecord->ExceptionCode, ep->ExceptionRecord->ExceptionAddress);
	os_stderr(line);
	os_exit(3);
}

void os_install_exception_handler(int (*handler)(struct os_exc *))
{
	exc_handler = handler;
	AddVectoredExceptionHandler(1, os_veh);
	SetUnhandledExceptionFilter(os_last_chance);
}

uintptr_t os_image_base(void)
{
	return (uintptr_t)GetModuleHandleA(NULL);
}

uintptr_t os_image_end(void)
{
	const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)GetModuleHandleA(NULL);
	const IMAGE_NT_HEADERS *nt = (const IMAGE_NT_HEADERS *)((const char *)dos + dos->e_lfanew);

	return (uintptr_t)dos + nt->OptionalHeader.SizeOfImage;
}

const char *os_getenv(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

void os_stderr(const char *s)
{
	fputs(s, stderr);
	fflush(stderr);
}

void os_exit(int code)
{
	fflush(stdout);
	os_stderr(OS_EXIT_MARK);
	ExitProcess((UINT)code);
}

uint32_t os_ntstatus_to_win32(int32_t status)
{
	static ULONG (WINAPI *conv)(LONG);

	if (conv == NULL)
		conv = (ULONG (WINAPI *)(LONG))(void (*)(void))GetProcAddress(GetModuleHandleA("ntdll.dll"),
									      "RtlNtStatusToDosError");
	return conv != NULL ? conv(status) : ERROR_GEN_FAILURE;
}

void os_win32_message(uint32_t code, char *buf, size_t len)
{
	DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, buf,
				 (DWORD)len, NULL);

	if (n == 0 && len > 0)
		buf[0] = '\0';
}

void os_append(const char *path, const char *data, size_t len)
{
	FILE *f;

	if (path == NULL)
		return;
	f = fopen(path, "ab");
	if (f == NULL)
		return;
	fwrite(data, 1, len, f);
	fclose(f);
}
