/* SPDX-License-Identifier: MIT */
/*
 * The driver's own log: every EDU_LOG line goes to the debugger (DbgPrintEx) and, at PASSIVE_LEVEL,
 * is appended to C:\dmahil\edudma.log, which the harness collects after every run. The file is
 * opened per line (a test driver logs a few lines per run) so nothing stays open across unload;
 * if C:\dmahil does not exist the line goes to the debugger only.
 */
#include "edudma.h"

#define EDU_LOG_FILE L"\\??\\C:\\dmahil\\edudma.log"
#define EDU_LOG_LINE 240

static VOID EduLogAppend(const char *Line, ULONG Length)
{
	UNICODE_STRING name = RTL_CONSTANT_STRING(EDU_LOG_FILE);
	OBJECT_ATTRIBUTES oa;
	IO_STATUS_BLOCK iosb;
	LARGE_INTEGER end;
	HANDLE file;

	InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL);
	if (!NT_SUCCESS(ZwCreateFile(&file, FILE_APPEND_DATA | SYNCHRONIZE, &oa, &iosb, NULL, FILE_ATTRIBUTE_NORMAL,
				     FILE_SHARE_READ | FILE_SHARE_WRITE, FILE_OPEN_IF,
				     FILE_SYNCHRONOUS_IO_NONALERT | FILE_NON_DIRECTORY_FILE, NULL, 0)))
		return;
	end.HighPart = -1;
	end.LowPart = FILE_WRITE_TO_END_OF_FILE;
	(VOID)ZwWriteFile(file, NULL, NULL, NULL, &iosb, (PVOID)Line, Length, &end, NULL);
	ZwClose(file);
}

VOID EduLog(const char *Fmt, ...)
{
	char line[EDU_LOG_LINE];
	va_list ap;
	size_t n;

	va_start(ap, Fmt);
	EduFormatV(line, sizeof(line) - 2, Fmt, ap);
	va_end(ap);
	DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_ERROR_LEVEL, "edudma: %s\n", line);
	if (KeGetCurrentIrql() != PASSIVE_LEVEL)
		return; /* file I/O only at PASSIVE_LEVEL; the ISR/DPC lines reach the debugger */
	for (n = 0; line[n] != '\0'; n++)
		;
	line[n++] = '\r';
	line[n++] = '\n';
	EduLogAppend(line, (ULONG)n);
}
