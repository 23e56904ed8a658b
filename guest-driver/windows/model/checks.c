/* SPDX-License-Identifier: MIT */
/*
 * model-check <name>: sequences dmactl cannot drive, for the review's findings
 * (../shared/reference/wdm-review-2026-12.md). Each prints one line
 *   {"check":"<name>","ok":true|false,"detail":"..."}
 * and exits 0 when ok, 1 when not; a bug check on the way prints that line
 * with the MODEL BUGCHECK text as the detail (and the stderr line), exit 3.
 * Each check sets the model variables it needs (world, latencies); the RAM
 * file and the rest come from the environment.
 *
 *   held-run-blocks-map-registers  L2: two held skip-sync runs keep the HAL's map registers; the next
 *                                  RUN must complete with an error or be cancellable in its timeout
 *   cancel-while-mapping           L2: IoCancelIrp, then the handle's cleanup, while that RUN waits
 *   remove-with-queued-dpc         W1: a late interrupt's DPC still queued (its CPU busy) at REMOVE
 *   stale-timer-dpc                W3: the completion interrupt lands exactly when the op's timer expires
 *   finish-vs-release              W2: a RELEASE from another thread at every point the run's
 *                                  completion gives away
 *   cancel-vs-completion           W4: IoCancelIrp on another CPU takes the cancel routine at every such
 *                                  point and calls it late
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mk.h"
#include "../../common/dmactl/backend.h"
#include "../edudma_ioctl.h"

static const char *check_name = "";
static char interleave[300]; /* what another CPU did, for the detail of a bug check */

static void json_line(int ok, const char *detail)
{
	const char *p;

	printf("{\"check\":\"%s\",\"ok\":%s,\"detail\":\"", check_name, ok ? "true" : "false");
	for (p = detail; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if ((unsigned char)*p < 0x20)
			printf("\\u%04x", (unsigned char)*p);
		else
			putchar(*p);
	}
	printf("\"}\n");
	fflush(stdout);
}

static void on_bugcheck(const char *line)
{
	char d[1400];

	snprintf(d, sizeof(d), "%s%s%s", line, interleave[0] ? " -- " : "", interleave);
	json_line(0, d);
}

static __attribute__((noreturn)) void finish(int ok, const char *fmt, ...)
{
	char d[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d, sizeof(d), fmt, ap);
	va_end(ap);
	mk_on_bugcheck = NULL;
	json_line(ok, d);
	os_exit(ok ? 0 : 1);
}

static void need(const char *setting)
{
	_putenv(setting);
}

static struct dmactl_backend *open_device(void)
{
	struct dmactl_backend *b;
	char err[300];

	if (dmactl_backend_open(EDUDMA_USER_PATH, &b, err, sizeof(err)))
		finish(0, "the device did not open: %s", err);
	return b;
}

static struct dmahil_scenario scenario(uint32_t dir, uint32_t method, uint32_t fault, uint32_t size, uint32_t timeout_ms)
{
	struct dmahil_scenario s;

	memset(&s, 0, sizeof(s));
	s.contract_version = DMAHIL_CONTRACT_VERSION;
	s.direction = dir;
	s.method = method;
	s.sync = DMAHIL_SYNC_FULL;
	s.fault = fault;
	s.size = size;
	s.seed = 7;
	s.timeout_ms = timeout_ms;
	return s;
}

static struct dmahil_result results[4];

static uint32_t prepare(struct dmactl_backend *b, const struct dmahil_scenario *s, struct dmahil_result *r)
{
	char err[300];

	if (dmactl_backend_prepare(b, s, r, err, sizeof(err)))
		finish(0, "prepare failed: %s", err);
	if (r->status != DMAHIL_OK)
		finish(0, "prepare refused the scenario: %.128s", r->message);
	return r->handle;
}

/* GO sent; the request may pend. */
static struct mk_req *go_async(struct dmactl_backend *b, uint32_t handle, struct dmahil_result *r)
{
	struct edudma_go go;

	(void)b; /* the model's one open handle */
	memset(&go, 0, sizeof(go));
	go.handle = handle;
	return mk_backend_submit(IRP_MJ_DEVICE_CONTROL, IOCTL_EDUDMA_GO, "IOCTL_EDUDMA_GO", &go, sizeof(go), r,
				 sizeof(*r));
}

/* Returns 0 when the driver refused the run as busy and busy_ok allows that answer. */
static int run_held(struct dmactl_backend *b, const struct dmahil_scenario *s, struct dmahil_result *r, int busy_ok)
{
	struct mk_req *q = go_async(b, prepare(b, s, r), r);

	if (!mk_req_wait(q, MK_FOREVER))
		finish(0, "a held run did not complete");
	if (busy_ok && NT_SUCCESS(q->status) && r->status == DMAHIL_E_BUSY) {
		mk_req_free(q);
		return 0;
	}
	if (!NT_SUCCESS(q->status) || r->status != DMAHIL_OK)
		finish(0, "a held run failed: 0x%08lx %.128s", (unsigned long)q->status, r->message);
	mk_req_free(q);
	return 1;
}

static void release(struct dmactl_backend *b, uint32_t handle)
{
	char err[300];

	if (handle != 0 && dmactl_backend_release(b, handle, err, sizeof(err)))
		finish(0, "release %lu failed: %s", (unsigned long)handle, err);
}

/* ---- L2: a held run's map registers and the RUN queued behind them ---- */

/*
 * 64 KiB, 16 pages per buffer: the driver's whole window; kept mapped until release. A driver may refuse
 * the second holder as busy (it knows the first keeps map registers): that answer is as good as any.
 * Returns how many runs hold map registers.
 */
static int map_register_hog(struct dmactl_backend *b)
{
	struct dmahil_scenario s = scenario(DMAHIL_DIR_ROUND_TRIP, DMAHIL_METHOD_SCATTER_GATHER, DMAHIL_FAULT_SKIP_SYNC,
					    65536, 0);

	run_held(b, &s, &results[0], 0);
	if (!run_held(b, &s, &results[1], 1)) {
		return 1;
	}
	return 2;
}

static int held_run(int cancel_first)
{
	struct dmahil_scenario s = scenario(DMAHIL_DIR_ROUND_TRIP, DMAHIL_METHOD_STREAMING, DMAHIL_FAULT_NONE, 1, 1000);
	struct dmactl_backend *b;
	struct mk_req *q;
	uint64_t t0;
	char how[300] = "";
	int waited, hogs;

	b = open_device();
	hogs = map_register_hog(b);
	t0 = mk_now;
	q = go_async(b, prepare(b, &s, &results[2]), &results[2]);
	waited = mk_dma_waiting() > 0;
	if (q->done) {
		snprintf(how, sizeof(how), "completed at once, without waiting for map registers: status 0x%08lx, result %u (%.100s)",
			 (unsigned long)q->status, results[2].status, results[2].message);
	} else if (!cancel_first && mk_req_wait(q, mk_now + MK_MS(3 * s.timeout_ms))) {
		snprintf(how, sizeof(how), "%s and completed after %llu ms: status 0x%08lx, result %u (%.100s)",
			 waited ? "waited for map registers" : "pended", (unsigned long long)((mk_now - t0) / 10000),
			 (unsigned long)q->status, results[2].status, results[2].message);
	} else {
		uint64_t t1 = mk_now;

		if (q->irp != NULL && !q->done)
			mk_irp_cancel(q->irp, 0);
		if (mk_req_wait(q, mk_now + MK_MS(3 * s.timeout_ms)))
			snprintf(how, sizeof(how), "%s%s; IoCancelIrp completed it %llu ms later with 0x%08lx",
				 waited ? "waited for map registers" : "pended",
				 cancel_first ? "" : ", not completed in 3x its timeout",
				 (unsigned long long)((mk_now - t1) / 10000), (unsigned long)q->status);
	}
	if (!q->done) {
		uint64_t t2 = mk_now;
		struct mk_req *c;

		if (!cancel_first)
			finish(0, "the RUN queued behind two held runs (%u of %u map registers free) neither completed in 3x "
				  "its %lu ms timeout nor after IoCancelIrp: it waits for map registers the held runs keep "
				  "until release (review L2)",
			       mk_dma_map_registers_free(), mk_cfg.map_pool, (unsigned long)s.timeout_ms);
		/* the handle closes (the process exits): cleanup, and what it frees may wake the request */
		snprintf(interleave, sizeof(interleave),
			 "IoCancelIrp did not complete the RUN waiting for map registers in 3 s (review L2); then the "
			 "handle's IRP_MJ_CLEANUP freed the held runs, and the RUN got its map registers after all");
		c = mk_backend_submit(IRP_MJ_CLEANUP, 0, "IRP_MJ_CLEANUP", NULL, 0, NULL, 0);
		mk_req_wait(c, mk_now + MK_MS(3 * s.timeout_ms));
		mk_req_wait(q, mk_now + MK_MS(3 * s.timeout_ms));
		finish(0, "the RUN waiting for map registers (two held runs keep all %u) was not completed by IoCancelIrp "
			  "in 3 s: a cancelled request keeps waiting (review L2). After the handle's IRP_MJ_CLEANUP (%s) "
			  "freed the held runs, it %s %llu ms later",
		       mk_cfg.map_pool, c->done ? "completed" : "itself pending",
		       q->done ? "completed" : "still pended", (unsigned long long)((mk_now - t2) / 10000));
	}
	mk_req_free(q);
	release(b, results[0].handle);
	release(b, results[1].handle);
	if (results[2].handle != 0)
		release(b, results[2].handle);
	interleave[0] = 0;
	dmactl_backend_close(b);
	finish(1, "the RUN behind %s (%u map registers in the HAL's pool) %s; after release and close nothing "
		  "leaked", hogs == 2 ? "two held runs" : "a held run (the driver refused a second as busy)", mk_cfg.map_pool,
	       how);
}

/* ---- W1: a DPC still queued when REMOVE deletes the device ---- */

static int queued_dpc(void)
{
	/* The edu's 100 ms outlives the 10 ms timeout; the late interrupt's DPC waits on a busy CPU for 60 s. */
	struct dmahil_scenario s = scenario(DMAHIL_DIR_ROUND_TRIP, DMAHIL_METHOD_STREAMING, DMAHIL_FAULT_NONE, 1, 10);
	struct dmactl_backend *b;
	struct mk_req *q;

	b = open_device();
	q = go_async(b, prepare(b, &s, &results[0]), &results[0]);
	if (!mk_req_wait(q, MK_FOREVER))
		finish(0, "the run never completed");
	mk_req_free(q);
	release(b, results[0].handle);
	snprintf(interleave, sizeof(interleave),
		 "the run timed out (10 ms) before the edu's completion interrupt (100 ms); that interrupt's DPC was "
		 "still queued on a busy CPU when the device was removed");
	dmactl_backend_close(b);
	finish(1, "no DPC or timer of the device was queued or set when IoDeleteDevice ran (%d DPCs queued at the end; "
		  "the run: %.100s)", mk_dpc_queued_count(), results[0].message);
}

/* ---- W3: the completion interrupt and the op's timer at the same instant ---- */

static int stale_timer(void)
{
	struct dmahil_scenario s = scenario(DMAHIL_DIR_ROUND_TRIP, DMAHIL_METHOD_STREAMING, DMAHIL_FAULT_NONE, 1, 100);
	struct dmactl_backend *b;
	struct mk_req *q;
	struct dmahil_result *r = &results[0];

	b = open_device();
	q = go_async(b, prepare(b, &s, r), r);
	if (!mk_req_wait(q, MK_FOREVER))
		finish(0, "the run never completed");
	mk_req_free(q);
	release(b, r->handle);
	dmactl_backend_close(b);
	if (r->status != DMAHIL_OK)
		finish(0, "each edu op's interrupt came exactly at its %lu ms timeout, the interrupt first; the run failed "
			  "with '%.120s' after %u ops: the first op's timer DPC, already queued, timed out the second "
			  "op (review W3)",
		       (unsigned long)s.timeout_ms, r->message, r->edu_ops);
	finish(1, "each edu op's interrupt came exactly at its %lu ms timeout, the interrupt first; all %u ops completed",
	       (unsigned long)s.timeout_ms, r->edu_ops);
}

/* ---- W2 / W4: another CPU at every point the engine gives away ---- */

static struct dmactl_backend *inj_b;
static uint32_t inj_handle;
static int inj_released;
static struct mk_req *inj_req;

static void describe_point(const char *what)
{
	const struct mk_ddi *d = mk_ddi_top;

	snprintf(interleave, sizeof(interleave), "%s at point %u: the driver's call of %s at caller=0x%llx", what,
		 mk_inject_points(), d != NULL && d->name != NULL ? d->name : "?",
		 d != NULL ? (unsigned long long)mk_rva(d->caller) : 0ull);
}

static void inject_release(void *arg)
{
	struct mk_cpu c;
	char err[300];

	(void)arg;
	describe_point("another thread's IOCTL_EDUDMA_RELEASE");
	mk_cpu_push(&c, PASSIVE_LEVEL, "another thread");
	inj_released = dmactl_backend_release(inj_b, inj_handle, err, sizeof(err)) == 0;
	mk_cpu_pop(&c, "IOCTL_EDUDMA_RELEASE", 0);
	if (inj_released)
		strncat(interleave, " -- the RELEASE succeeded there, freeing the run", sizeof(interleave) - strlen(interleave) - 1);
	else
		interleave[0] = 0;
}

static void inject_cancel(void *arg)
{
	struct mk_cpu c;

	(void)arg;
	if (inj_req == NULL)
		inj_req = mk_req_sending; /* still inside the GO's dispatch routine */
	if (inj_req->irp == NULL || inj_req->done)
		return;
	describe_point("IoCancelIrp on another CPU took the cancel routine");
	strncat(interleave, " and called it only after the IRP completed (or when nothing else could run)",
		sizeof(interleave) - strlen(interleave) - 1);
	mk_cpu_push(&c, PASSIVE_LEVEL, "the cancelling CPU");
	mk_irp_cancel(inj_req->irp, 1);
	mk_cpu_pop(&c, "IoCancelIrp", 0);
}

static int interleavings(int cancel)
{
	struct dmahil_scenario s = scenario(DMAHIL_DIR_ROUND_TRIP, DMAHIL_METHOD_STREAMING, DMAHIL_FAULT_NONE, 1, 0);
	unsigned k, fired = 0;

	inj_b = open_device();
	for (k = 1; k < 10000; k++) {
		struct dmahil_result *r = &results[0];

		inj_handle = prepare(inj_b, &s, r);
		inj_released = 0;
		interleave[0] = 0;
		inj_req = NULL;
		mk_inject_arm(k, cancel ? inject_cancel : inject_release, NULL);
		inj_req = go_async(inj_b, inj_handle, r);
		if (!mk_req_wait(inj_req, MK_FOREVER))
			finish(0, "with another CPU at point %u: the GO request never completed (%s)", k, interleave);
		if (mk_slow_cancel_pending())
			mk_slow_cancel_run();
		mk_inject_disarm();
		if (!mk_inject_done()) {
			mk_req_free(inj_req);
			release(inj_b, inj_handle);
			break;
		}
		fired++;
		if (!inj_released)
			release(inj_b, inj_handle);
		mk_req_free(inj_req);
	}
	interleave[0] = 0;
	dmactl_backend_close(inj_b);
	finish(1, "%s at each of the %u points from GO to its completion: no freed run or IRP was touched",
	       cancel ? "IoCancelIrp (cancel routine taken, called late)" : "a RELEASE of the run's handle", fired);
}

int mk_checks_main(int argc, char **argv)
{
	static const char *const names[] = { "held-run-blocks-map-registers", "cancel-while-mapping",
					     "remove-with-queued-dpc", "stale-timer-dpc", "finish-vs-release",
					     "cancel-vs-completion" };
	char err[300];
	size_t i;

	check_name = argc > 2 ? argv[2] : "";
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(check_name, names[i]) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0])) {
		char list[400] = "unknown check; the checks:";

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			strcat(strcat(list, " "), names[i]);
		json_line(0, list);
		return 1;
	}
	switch (i) {
	case 0: need("DMAHIL_MODEL_WORLD=map-registers"); break;
	case 1: need("DMAHIL_MODEL_WORLD=map-registers"); break;
	case 2: need("DMAHIL_MODEL_WORLD=direct"); need("DMAHIL_MODEL_DPC_LATENCY_US=60000000"); break;
	case 3: need("DMAHIL_MODEL_WORLD=direct"); need("DMAHIL_MODEL_EDU_LATENCY_MS=100"); break;
	default: need("DMAHIL_MODEL_WORLD=direct"); break;
	}
	if (mk_init(err, sizeof(err)))
		finish(0, "the model cannot start: %s", err);
	mk_on_bugcheck = on_bugcheck;
	switch (i) {
	case 0: return held_run(0);
	case 1: return held_run(1);
	case 2: return queued_dpc();
	case 3: return stale_timer();
	case 4: return interleavings(0);
	default: return interleavings(1);
	}
}
