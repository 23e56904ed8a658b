/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * dmactl: the guest-side tool of the dmahil contract (docs/contract.md).
 *
 *   dmactl [--device PATH] info
 *   dmactl [--device PATH] run --direction D --size N [--offset O] [--seed S] [--method M]
 *                              [--sync Y] [--fault F] [--timeout-ms T] [--hold]
 *   dmactl [--device PATH] release HANDLE
 *   dmactl [--device PATH] reattach
 *   dmactl pattern --seed S --size N [--start I]
 *   dmactl [--device PATH] serve
 *   dmactl --help
 *
 * Prints exactly one JSON object on one line (serve: one per command line read). Exit status:
 * 0 success, 1 usage error, 2 device not opened, 3 the driver refused or the run failed.
 *
 * Portable C11 (built with gcc on Linux and mingw-w64 for Windows): no getopt, no
 * POSIX calls. Everything OS-specific is behind backend.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "../dmahil_pattern.h"
#ifdef DMACTL_LIES
#include "lies.h"
#endif

#define EXIT_USAGE 1
#define EXIT_OPEN 2
#define EXIT_RUN 3

#define ERRLEN 256

/* The contract this dmactl speaks, as a string the host finds in the binary without running it
 * (dmahil run --driver checks it before any guest boots). */
__attribute__((used)) static const char contract_tag[] = "dmahil_contract=" DMAHIL_CONTRACT_TEXT;

static const char *const direction_names[] = { NULL, "to-device", "from-device", "round-trip" };
static const char *const method_names[] = { NULL, "streaming", "scatter-gather", "common-buffer" };
static const char *const sync_names[] = { NULL, "full", "minimal" };
static const char *const fault_names[] = { "none", "skip-sync", "skip-flush-dma-buffer", "wrong-direction",
					   "read-before-completion", "addr-beyond-mask", "use-after-unmap", "short-mapping",
					   "other-mapping" };
static const char *const role_names[] = { NULL, "source", "destination" };
static const char *const kind_names[] = { NULL, "client", "staging", "readback", "common" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char usage_text[] =
	"usage:\n"
	"  dmactl [--device PATH] info\n"
	"  dmactl [--device PATH] run --direction to-device|from-device|round-trip --size N [--offset O] [--seed S]\n"
	"         [--method streaming|scatter-gather|common-buffer] [--sync full|minimal]\n"
	"         [--fault none|skip-sync|skip-flush-dma-buffer|wrong-direction|read-before-completion|addr-beyond-mask]\n"
	"         [--timeout-ms T] [--hold]\n"
	"  dmactl [--device PATH] release HANDLE\n"
	"  dmactl [--device PATH] reattach\n"
	"  dmactl pattern --seed S --size N [--start I]\n"
	"  dmactl [--device PATH] serve\n"
	"  dmactl --help\n"
	"Numbers are decimal or 0x-prefixed hex. Defaults: --offset 0 --seed 1 --method streaming --sync full\n"
	"--fault none --timeout-ms 0 (driver default, per edu operation).\n"
	"--hold: in two steps. First print the buffers' pages as an \"armed\" line (the device has not run) and\n"
	"wait for a line \"go\" on standard input (anything else releases the buffers without a DMA); then run\n"
	"the DMA, print the result and keep the buffers allocated until a line or EOF arrives, then release.\n"
	"reattach: after a snapshot restore, have the driver write back the device's PCI config and check the\n"
	"device; prints the first 64 bytes of its config space as the OS reads it (Linux only).\n"
	"serve: read commands (the arguments above, one command per line) from standard input until EOF and\n"
	"answer each with one JSON line; every run --hold, failed or not, is released by the next line\n"
	"(send 'release'), which is answered with a release line.\n"
	"Output: one JSON object on one line. Exit: 0 ok, 1 usage, 2 device not opened, 3 driver refused or run failed.\n";

/* ---- JSON output ---- */

static void json_string_n(const char *s, size_t max)
{
	size_t i;

	putchar('"');
	for (i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			putchar('\\');
			putchar(c);
		} else if (c == '\n') {
			fputs("\\n", stdout);
		} else if (c == '\t') {
			fputs("\\t", stdout);
		} else if (c < 0x20 || c == 0x7f) {
			printf("\\u%04x", c);
		} else {
			putchar(c);
		}
	}
	putchar('"');
}

static void json_string(const char *s)
{
	if (s)
		json_string_n(s, (size_t)-1);
	else
		fputs("null", stdout);
}

static const char *name_of(const char *const *names, size_t n, uint32_t v)
{
	return v < n && names[v] ? names[v] : "unknown";
}

/* A usage error without a known command, and --help, answer as command "usage". */
static void print_head(int ok, const char *command)
{
	if (!command)
		command = "usage";
	printf("{\"contract\":%u,\"ok\":%s,\"command\":", DMAHIL_CONTRACT_VERSION, ok ? "true" : "false");
	json_string(command);
	fputs(",\"os\":", stdout);
	json_string(dmactl_backend_os());
}

static void print_error_obj(const char *code, const char *message)
{
	fputs("\"error\":{\"code\":", stdout);
	json_string(code);
	fputs(",\"message\":", stdout);
	json_string(message);
	putchar('}');
}

static int fail_json(const char *command, const char *code, const char *message, int exit_code)
{
	print_head(0, command);
	putchar(',');
	print_error_obj(code, message);
	fputs("}\n", stdout);
	fflush(stdout);
	return exit_code;
}

static int usage_error(const char *command, const char *fmt, const char *arg)
{
	char msg[ERRLEN];

	snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
	strncat(msg, "; see dmactl --help", sizeof(msg) - strlen(msg) - 1);
	return fail_json(command, "usage", msg, EXIT_USAGE);
}

static void print_driver(const struct dmahil_info *info)
{
	fputs("\"driver\":{\"name\":\"edudma\",\"version\":", stdout);
	json_string_n(info->driver_version, sizeof(info->driver_version));
	fputs(",\"api\":", stdout);
	json_string_n(info->api, sizeof(info->api));
	printf(",\"dmaMaskBits\":%" PRIu32 ",\"adapterVersion\":%" PRIu32 ",\"dmaOpsSize\":%" PRIu32
	       ",\"flushDmaBuffer\":%s,\"device\":",
	       info->dma_mask_bits, info->adapter_version, info->dma_ops_size,
	       info->flush_dma_buffer ? "true" : "false");
	json_string_n(info->device, sizeof(info->device));
	putchar('}');
}

static void print_scenario(const struct dmahil_scenario *s)
{
	fputs("\"scenario\":{\"direction\":", stdout);
	json_string(name_of(direction_names, COUNT(direction_names), s->direction));
	fputs(",\"method\":", stdout);
	json_string(name_of(method_names, COUNT(method_names), s->method));
	fputs(",\"sync\":", stdout);
	json_string(name_of(sync_names, COUNT(sync_names), s->sync));
	fputs(",\"fault\":", stdout);
	json_string(name_of(fault_names, COUNT(fault_names), s->fault));
	printf(",\"size\":%" PRIu32 ",\"offset\":%" PRIu32 ",\"seed\":%" PRIu32 "}", s->size, s->offset, s->seed);
}

static void print_buffer(const struct dmahil_buffer *b)
{
	uint32_t i, pages = b->page_count, segs = b->segment_count;

	if (pages > DMAHIL_MAX_PAGES)
		pages = DMAHIL_MAX_PAGES;
	if (segs > DMAHIL_MAX_SEGMENTS)
		segs = DMAHIL_MAX_SEGMENTS;
	fputs("{\"role\":", stdout);
	json_string(name_of(role_names, COUNT(role_names), b->role));
	fputs(",\"kind\":", stdout);
	json_string(name_of(kind_names, COUNT(kind_names), b->kind));
	printf(",\"offset\":%" PRIu32 ",\"length\":%" PRIu32 ",\"bounced\":%s,\"translated\":%s,\"pages\":[", b->offset,
	       b->length, b->bounced ? "true" : "false", b->translated ? "true" : "false");
	for (i = 0; i < pages; i++)
		printf("%s\"0x%" PRIx64 "\"", i ? "," : "", b->pages[i]);
	fputs("],\"segments\":[", stdout);
	for (i = 0; i < segs; i++)
		printf("%s{\"offset\":%" PRIu32 ",\"length\":%" PRIu32 ",\"device\":\"0x%" PRIx64 "\"}", i ? "," : "",
		       b->segments[i].buf_offset, b->segments[i].length, b->segments[i].device_addr);
	fputs("]}", stdout);
}

static const char *status_code(uint32_t status)
{
	switch (status) {
	case DMAHIL_E_INVALID: return "invalid";
	case DMAHIL_E_UNSUPPORTED: return "unsupported";
	case DMAHIL_E_NOMEM: return "nomem";
	case DMAHIL_E_MAP: return "map";
	case DMAHIL_E_TIMEOUT: return "timeout";
	case DMAHIL_E_DEVICE: return "device";
	case DMAHIL_E_BUSY: return "busy";
	default: return "device";
	}
}

static uint64_t ns_to_us(uint64_t ns)
{
	return (ns + 500) / 1000;
}

static void print_result(const struct dmahil_info *info, const struct dmahil_result *r)
{
	uint32_t i, nbuf = r->buffer_count, ncalls = r->call_count;
	int ok = r->status == DMAHIL_OK;

	if (nbuf > 2)
		nbuf = 2;
	if (ncalls > DMAHIL_MAX_CALLS)
		ncalls = DMAHIL_MAX_CALLS;
	print_head(ok, "run");
	putchar(',');
	print_driver(info);
	putchar(',');
	print_scenario(&r->scenario);
	if (r->handle) /* absent when the driver holds nothing */
		printf(",\"handle\":%" PRIu32, r->handle);
	fputs(",\"buffers\":[", stdout);
	for (i = 0; i < nbuf; i++) {
		if (i)
			putchar(',');
		print_buffer(&r->buffers[i]);
	}
	fputs("],\"calls\":[", stdout);
	for (i = 0; i < ncalls; i++) {
		printf("%s{\"name\":", i ? "," : "");
		json_string_n(r->calls[i].name, sizeof(r->calls[i].name));
		printf(",\"count\":%" PRIu32 ",\"status\":%" PRId32 "}", r->calls[i].count, r->calls[i].status);
	}
	printf("],\"timings\":{\"toDeviceUs\":%" PRIu64 ",\"fromDeviceUs\":%" PRIu64 ",\"totalUs\":%" PRIu64
	       ",\"eduOps\":%" PRIu32 "},",
	       ns_to_us(r->to_device_ns), ns_to_us(r->from_device_ns), ns_to_us(r->total_ns), r->edu_ops);
	if (ok) {
		fputs("\"error\":null", stdout);
	} else {
		char msg[sizeof(r->message) + 1];

		memcpy(msg, r->message, sizeof(r->message));
		msg[sizeof(r->message)] = '\0';
		print_error_obj(status_code(r->status), msg[0] ? msg : "the driver reported a failure without a message");
	}
	fputs("}\n", stdout);
}

/* ---- argument parsing ---- */

/* Decimal or 0x-prefixed hex, 0 .. 2^32-1, nothing else. */
static int parse_u32(const char *s, uint32_t *out)
{
	const char *digits = s;
	unsigned long long v;
	char *end;
	int base = 10;

	if (!s || !*s)
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		digits = s + 2;
	}
	if (!*digits || !((*digits >= '0' && *digits <= '9') || (base == 16 && strchr("abcdefABCDEF", *digits))))
		return -1;
	errno = 0;
	v = strtoull(digits, &end, base);
	if (errno || *end || v > 0xffffffffull)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int lookup(const char *const *names, size_t n, const char *s, uint32_t *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (names[i] && !strcmp(names[i], s)) {
			*out = (uint32_t)i;
			return 0;
		}
	}
	return -1;
}

struct opts {
	const char *device;
	const char *command;
	/* run */
	int have_direction, have_size, hold;
	struct dmahil_scenario s;
	/* release */
	int have_handle;
	uint32_t handle;
	/* pattern */
	int have_seed, have_start;
	uint32_t start;
};

/* Returns 0, or the exit code after printing a usage error. */
static int parse(int argc, char **argv, struct opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->s.contract_version = DMAHIL_CONTRACT_VERSION;
	o->s.method = DMAHIL_METHOD_STREAMING;
	o->s.sync = DMAHIL_SYNC_FULL;
	o->s.fault = DMAHIL_FAULT_NONE;
	o->s.seed = 1;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char *cmd = o->command;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			o->command = "help";
			return 0;
		}
		if (!strcmp(a, "--device")) {
			if (!v)
				return usage_error(cmd, "--device needs a path%s", NULL);
			o->device = v;
			i++;
			continue;
		}
		if (!o->command) {
			if (strcmp(a, "info") && strcmp(a, "run") && strcmp(a, "release") && strcmp(a, "pattern") &&
			    strcmp(a, "reattach") && strcmp(a, "serve"))
				return usage_error(NULL, "unknown command '%s'", a);
			o->command = a;
			continue;
		}
		if (!strcmp(cmd, "release") && a[0] != '-') {
			if (o->have_handle)
				return usage_error(cmd, "extra argument '%s'", a);
			if (parse_u32(a, &o->handle) || o->handle == 0)
				return usage_error(cmd, "HANDLE '%s' is not a number in 1..2^32-1", a);
			o->have_handle = 1;
			continue;
		}
		if (!strcmp(cmd, "run") && !strcmp(a, "--hold")) {
			o->hold = 1;
			continue;
		}
		if (strncmp(a, "--", 2))
			return usage_error(cmd, "unexpected argument '%s'", a);
		if (!v)
			return usage_error(cmd, "option %s needs a value", a);
		i++;
		if (!strcmp(cmd, "run")) {
			if (!strcmp(a, "--direction")) {
				if (lookup(direction_names, COUNT(direction_names), v, &o->s.direction))
					return usage_error(cmd, "--direction must be to-device, from-device or round-trip, not '%s'", v);
				o->have_direction = 1;
			} else if (!strcmp(a, "--method")) {
				if (lookup(method_names, COUNT(method_names), v, &o->s.method))
					return usage_error(cmd, "--method must be streaming, scatter-gather or common-buffer, not '%s'", v);
			} else if (!strcmp(a, "--sync")) {
				if (lookup(sync_names, COUNT(sync_names), v, &o->s.sync))
					return usage_error(cmd, "--sync must be full or minimal, not '%s'", v);
			} else if (!strcmp(a, "--fault")) {
				if (lookup(fault_names, COUNT(fault_names), v, &o->s.fault))
					return usage_error(cmd, "unknown --fault '%s'", v);
			} else if (!strcmp(a, "--size")) {
				if (parse_u32(v, &o->s.size))
					return usage_error(cmd, "--size '%s' is not a number", v);
				o->have_size = 1;
			} else if (!strcmp(a, "--offset")) {
				if (parse_u32(v, &o->s.offset))
					return usage_error(cmd, "--offset '%s' is not a number", v);
			} else if (!strcmp(a, "--seed")) {
				if (parse_u32(v, &o->s.seed))
					return usage_error(cmd, "--seed '%s' is not a number", v);
			} else if (!strcmp(a, "--timeout-ms")) {
				if (parse_u32(v, &o->s.timeout_ms))
					return usage_error(cmd, "--timeout-ms '%s' is not a number", v);
			} else {
				return usage_error(cmd, "unknown option '%s' for run", a);
			}
		} else if (!strcmp(cmd, "pattern")) {
			if (!strcmp(a, "--seed")) {
				if (parse_u32(v, &o->s.seed))
					return usage_error(cmd, "--seed '%s' is not a number", v);
				o->have_seed = 1;
			} else if (!strcmp(a, "--size")) {
				if (parse_u32(v, &o->s.size))
					return usage_error(cmd, "--size '%s' is not a number", v);
				o->have_size = 1;
			} else if (!strcmp(a, "--start")) {
				if (parse_u32(v, &o->start))
					return usage_error(cmd, "--start '%s' is not a number", v);
				o->have_start = 1;
			} else {
				return usage_error(cmd, "unknown option '%s' for pattern", a);
			}
		} else {
			return usage_error(cmd, "unknown option '%s'", a);
		}
	}

	if (!o->command)
		return usage_error(NULL, "no command given%s", NULL);
	if (!strcmp(o->command, "run")) {
		if (!o->have_direction)
			return usage_error("run", "run needs --direction%s", NULL);
		if (!o->have_size)
			return usage_error("run", "run needs --size%s", NULL);
	} else if (!strcmp(o->command, "release")) {
		if (!o->have_handle)
			return usage_error("release", "release needs a HANDLE%s", NULL);
	} else if (!strcmp(o->command, "pattern")) {
		if (!o->have_seed || !o->have_size)
			return usage_error("pattern", "pattern needs --seed and --size%s", NULL);
		if (o->s.size < 1 || o->s.size > DMAHIL_MAX_SIZE)
			return usage_error("pattern", "--size must be 1..1048576%s", NULL);
		if ((uint64_t)o->start + o->s.size > 0x100000000ull)
			return usage_error("pattern", "--start + --size must not pass 2^32%s", NULL);
	}
	return 0;
}

/* ---- commands ---- */

static int open_backend(const struct opts *o, struct dmactl_backend **b)
{
	char err[ERRLEN] = "";
	const char *dev = o->device ? o->device : dmactl_backend_default_device();

	if (dmactl_backend_open(dev, b, err, sizeof(err)))
		return fail_json(o->command, "open", err[0] ? err : "cannot open the device", EXIT_OPEN);
	return 0;
}

/* Open the device and ask the driver who it is; on success the backend stays open. */
static int open_with_info(const struct opts *o, struct dmactl_backend **b, struct dmahil_info *info)
{
	char err[ERRLEN] = "";
	int rc;

	rc = open_backend(o, b);
	if (rc)
		return rc;
	memset(info, 0, sizeof(*info));
	if (dmactl_backend_info(*b, info, err, sizeof(err))) {
		dmactl_backend_close(*b);
		return fail_json(o->command, "ioctl", err, EXIT_RUN);
	}
	return 0;
}

static int cmd_info(const struct opts *o)
{
	struct dmactl_backend *b;
	struct dmahil_info info;
	uint32_t i;
	int rc, first;

	rc = open_with_info(o, &b, &info);
	if (rc)
		return rc;
	dmactl_backend_close(b);
	print_head(1, "info");
	putchar(',');
	print_driver(&info);
	fputs(",\"faults\":[", stdout);
	for (i = 0, first = 1; i < COUNT(fault_names); i++) {
		if (info.faults_supported & (1u << i)) {
			printf("%s\"%s\"", first ? "" : ",", fault_names[i]);
			first = 0;
		}
	}
	fputs("],\"methods\":[", stdout);
	for (i = 1, first = 1; i < COUNT(method_names); i++) {
		if (info.methods_supported & (1u << i)) {
			printf("%s\"%s\"", first ? "" : ",", method_names[i]);
			first = 0;
		}
	}
	printf("],\"maxSize\":%" PRIu32 ",\"held\":%" PRIu32 "}\n", info.max_size, info.held);
	return 0;
}

/* Set while serving: commands come from standard input, one per line. */
static int serving;
/* Set when a held run has read and answered its release line. */
static int release_answered;

static void print_release_ack(uint32_t handle)
{
	print_head(1, "release");
	printf(",\"handle\":%" PRIu32 ",\"error\":null}\n", handle);
}

static void wait_for_stdin(void)
{
	int c;

	do {
		c = getchar();
	} while (c != EOF && c != '\n');
}

static struct dmahil_result result; /* ~25 KB: not on the stack */

/* The run's pages before the device runs: the first of a held run's two lines. */
static void print_armed(const struct dmahil_info *info, const struct dmahil_result *r)
{
	uint32_t i, nbuf = r->buffer_count > 2 ? 2 : r->buffer_count;

	print_head(1, "armed");
	putchar(',');
	print_driver(info);
	putchar(',');
	print_scenario(&r->scenario);
	printf(",\"handle\":%" PRIu32 ",\"buffers\":[", r->handle);
	for (i = 0; i < nbuf; i++) {
		if (i)
			putchar(',');
		print_buffer(&r->buffers[i]);
	}
	fputs("],\"error\":null}\n", stdout);
}

/* The driver could not be asked (an ioctl failed): a run line with code "ioctl". */
static void print_ioctl_failure(const struct dmahil_info *info, const struct dmahil_scenario *s, const char *err)
{
	print_head(0, "run");
	putchar(',');
	print_driver(info);
	putchar(',');
	print_scenario(s);
	fputs(",\"buffers\":[],\"calls\":[],", stdout);
	print_error_obj("ioctl", err);
	fputs("}\n", stdout);
	fflush(stdout);
}

/* Reads one line from standard input: is it "go"? EOF or anything else is not. */
static int read_go(void)
{
	char line[64];
	size_t n;

	if (!fgets(line, sizeof(line), stdin))
		return 0;
	if (!strchr(line, '\n') && !feof(stdin))
		wait_for_stdin();
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = '\0';
	return !strcmp(line + strspn(line, " \t"), "go");
}

/* Free a held run's buffers after the host's line; serve answers that line. */
static void release_held(struct dmactl_backend *b, uint32_t handle)
{
	char err[ERRLEN] = "";
	int released = 1;

	if (handle && dmactl_backend_release(b, handle, err, sizeof(err))) {
		fprintf(stderr, "dmactl: release %" PRIu32 ": %s\n", handle, err);
		released = 0;
	}
	/* serve answers every line it reads, the release line too */
	if (serving && released)
		print_release_ack(handle);
	else if (serving)
		fail_json("release", "ioctl", err, EXIT_RUN);
	release_answered = 1;
}

/*
 * A run in two halves: the driver prepares (allocates, maps, writes the source pattern, fills the
 * destination) and reports the pages; with --hold dmactl prints them as an "armed" line and waits for
 * "go" while the host reads the buffers; then the device runs and the result line follows. Anything but
 * "go" releases the buffers without a DMA (answered as a release). Without --hold both halves run at once.
 */
static int cmd_run(const struct opts *o)
{
	struct dmactl_backend *b;
	struct dmahil_info info;
	struct dmahil_scenario s = o->s;
	char err[ERRLEN] = "";
	uint32_t handle;
	int rc;
#ifdef DMACTL_LIES
	char mode[64];

	dmactl_read_lie(mode, sizeof(mode));
	dmactl_lie_scenario(mode, &s);
#endif

	rc = open_with_info(o, &b, &info);
	if (rc)
		return rc;
	memset(&result, 0, sizeof(result));
	if (dmactl_backend_prepare(b, &s, &result, err, sizeof(err))) {
		print_ioctl_failure(&info, &o->s, err);
		dmactl_backend_close(b);
		return EXIT_RUN;
	}
	result.scenario.test_flags = 0; /* the test build's flags are not part of the report */
	handle = result.handle;
	if (result.status == DMAHIL_OK) {
		if (o->hold) {
#ifdef DMACTL_LIES
			dmactl_apply_lie(&result, mode);
#endif
			print_armed(&info, &result);
			fflush(stdout);
			if (!read_go()) {
				release_held(b, handle);
				dmactl_backend_close(b);
				return EXIT_RUN;
			}
		}
		if (dmactl_backend_go(b, handle, &result, err, sizeof(err))) {
			print_ioctl_failure(&info, &o->s, err);
			result.status = DMAHIL_E_DEVICE;
			goto hold;
		}
		result.scenario.test_flags = 0;
	}
#ifdef DMACTL_LIES
	if (dmactl_apply_lie(&result, mode) < 0)
		fprintf(stderr, "dmactl: lie mode \"%s\" does not apply to this run; reporting it honestly\n", mode);
#endif
	print_result(&info, &result);
	fflush(stdout);
hold:
	if (o->hold) {
		wait_for_stdin();
		release_held(b, handle);
	}
	dmactl_backend_close(b);
	return result.status == DMAHIL_OK ? 0 : EXIT_RUN;
}

static int cmd_release(const struct opts *o)
{
	struct dmactl_backend *b;
	char err[ERRLEN] = "";
	int rc;

	rc = open_backend(o, &b);
	if (rc)
		return rc;
	if (dmactl_backend_release(b, o->handle, err, sizeof(err))) {
		dmactl_backend_close(b);
		return fail_json("release", "ioctl", err, EXIT_RUN);
	}
	dmactl_backend_close(b);
	print_release_ack(o->handle);
	return 0;
}

static int cmd_reattach(const struct opts *o)
{
	struct dmactl_backend *b;
	char err[ERRLEN] = "";
	uint32_t config[16];
	int rc, i;

	rc = open_backend(o, &b);
	if (rc)
		return rc;
	rc = dmactl_backend_reattach(b, config, err, sizeof(err));
	dmactl_backend_close(b);
	if (rc)
		return fail_json("reattach", "device", err, EXIT_RUN);
	print_head(1, "reattach");
	fputs(",\"config\":[", stdout);
	for (i = 0; i < 16; i++)
		printf("%s\"0x%08" PRIx32 "\"", i ? "," : "", config[i]);
	fputs("],\"error\":null}\n", stdout);
	return 0;
}

static int cmd_pattern(const struct opts *o)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t i;

	print_head(1, "pattern");
	printf(",\"seed\":%" PRIu32 ",\"start\":%" PRIu32 ",\"size\":%" PRIu32 ",\"hex\":\"", o->s.seed, o->start,
	       o->s.size);
	for (i = 0; i < o->s.size; i++) {
		uint8_t v = dmahil_pattern_byte(o->s.seed, o->start + i);

		putchar(hex[v >> 4]);
		putchar(hex[v & 15]);
	}
	fputs("\"}\n", stdout);
	return 0;
}

static int cmd_help(void)
{
	print_head(1, NULL);
	fputs(",\"usage\":", stdout);
	json_string(usage_text);
	fputs("}\n", stdout);
	return 0;
}

static int dispatch(const struct opts *o)
{
	if (!strcmp(o->command, "help"))
		return cmd_help();
	if (!strcmp(o->command, "info"))
		return cmd_info(o);
	if (!strcmp(o->command, "run"))
		return cmd_run(o);
	if (!strcmp(o->command, "release"))
		return cmd_release(o);
	if (!strcmp(o->command, "reattach"))
		return cmd_reattach(o);
	return cmd_pattern(o);
}

#define SERVE_LINE 1024
#define SERVE_ARGS 40

/*
 * One process for many commands: the host keeps one channel open instead of starting a process per
 * scenario (an SSH exec costs ~60 ms under TCG; a line costs ~1 ms).
 */
static int cmd_serve(const struct opts *served)
{
	static char line[SERVE_LINE];
	char *argv[SERVE_ARGS + 3];

	serving = 1;
	while (fgets(line, sizeof(line), stdin)) {
		struct opts o;
		int argc = 0, rc;
		char *p = line;

		if (!strchr(line, '\n') && !feof(stdin)) {
			wait_for_stdin();
			usage_error(NULL, "command line longer than %s bytes", "1023");
			continue;
		}
		argv[argc++] = "dmactl";
		if (served->device) {
			argv[argc++] = "--device";
			argv[argc++] = (char *)served->device;
		}
		while (*p) {
			while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
				*p++ = '\0';
			if (!*p)
				break;
			if (argc == SERVE_ARGS + 3) {
				argc = -1;
				break;
			}
			argv[argc++] = p;
			while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
				p++;
		}
		if (argc < 0) {
			usage_error(NULL, "more than %s arguments on one line", "40");
			continue;
		}
		if (argc == (served->device ? 3 : 1))
			continue; /* blank line */
		rc = parse(argc, argv, &o);
		if (rc)
			continue; /* parse printed the usage error */
		if (!strcmp(o.command, "serve")) {
			usage_error("serve", "serve does not nest%s", NULL);
			continue;
		}
		release_answered = 0;
		dispatch(&o);
		fflush(stdout);
		/* A held run that failed before holding anything still takes its release line: one protocol. */
		if (o.hold && !release_answered) {
			wait_for_stdin();
			print_release_ack(0);
			fflush(stdout);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = parse(argc, argv, &o);

	if (rc)
		return rc;
	rc = strcmp(o.command, "serve") ? dispatch(&o) : cmd_serve(&o);
	fflush(stdout);
	return rc;
}
