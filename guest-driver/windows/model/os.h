/* SPDX-License-Identifier: MIT */
/*
 * The model's only door to Win32 (os.c). Kernel-side files include the DDK
 * headers, which do not mix with <windows.h>, so they reach the host through
 * these plain C calls.
 */
#ifndef MK_OS_H
#define MK_OS_H

#include <stddef.h>
#include <stdint.h>

/* Guest RAM: the file named by path (NULL: anonymous memory), mapped whole; PA = offset. */
int os_ram_open(const char *path, uint64_t bytes, uint8_t **base, char *err, size_t errlen);
/* A VA range of bytes (64 KiB multiple) that is free right now. */
void *os_va_probe(size_t bytes);
/* Map the RAM file's [offset, offset + bytes) (64 KiB aligned) at va. 0 on success. */
int os_ram_alias(void *va, uint64_t offset, size_t bytes);
void os_ram_unalias(void *va);

enum os_prot { OS_NOACCESS, OS_RW, OS_RW_GUARD };
int os_protect(void *va, size_t bytes, enum os_prot prot);
/* Private memory: committed read-write, page-granular, never reused once freed (os_retire). */
void *os_alloc_private(size_t bytes);
void os_retire(void *va, size_t bytes); /* decommit: any later access faults */

struct os_exc {
	uint32_t code;      /* EXCEPTION_* */
	uintptr_t rw;       /* access violations and guard pages: 0 read, 1 write, 8 execute */
	uintptr_t addr;     /* the data address of an access violation or guard page */
	uintptr_t rip;
	int single_step_next; /* out: trap after the next instruction */
};
#define OS_EXC_ACCESS_VIOLATION 0xC0000005u
#define OS_EXC_GUARD_PAGE 0x80000001u
#define OS_EXC_SINGLE_STEP 0x80000004u
/* handler returns 1: resume, 0: not ours */
void os_install_exception_handler(int (*handler)(struct os_exc *));

uintptr_t os_image_base(void);
uintptr_t os_image_end(void);
const char *os_getenv(const char *name);
void os_stderr(const char *s);   /* written and flushed at once */
__attribute__((noreturn)) void os_exit(int code);
/* The model's last stderr line (harness/guest/nt-model/model-process.ts waits for it). */
#define OS_EXIT_MARK "MODEL: exiting\n"
uint32_t os_ntstatus_to_win32(int32_t status);
void os_win32_message(uint32_t code, char *buf, size_t len);
/* Append to a host file (the model's log); silently nothing if path is NULL. */
void os_append(const char *path, const char *data, size_t len);

#endif /* MK_OS_H */
