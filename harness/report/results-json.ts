// The machine-readable result of a run (--json, and results.json in the artifacts).
import { outcome } from '../dma/verdict.js';
import type { SuiteVerdict } from '../dma/run-suite.js';
import { rerunCommand, tally } from './verdict-table.js';

/** Where the run ran: what a reader needs to reproduce it or to compare two hosts. */
export interface RunHost {
  /** QEMU's version and package, e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
  qemu: string;
  /** The QEMU binary's absolute path (--qemu, or the qemu-system-x86_64 found on PATH). */
  qemuBinary: string;
  /** The edu's measured behaviour (edu-behaviour.ts), when the run needed it. */
  edu: string | null;
  /** The accelerator asked for, and what 'auto' meant for this guest. */
  accel: string;
  /** --driver: the user's driver build (folder, the contract it declares, the kernel a module was built for). */
  driver?: { path: string; contract: number; builtFor: string | null } | null;
  /** The reference guest's kernel: its version and root ('/' the installed one, else --kernel DIR). */
  guestKernel?: { version: string; root: string } | null;
  /** The guest variants the config declared (dmahil.config.json "variants"), with their machines. */
  variants?: Array<{ id: string; description: string; machine: object }>;
  /** Every variant this run's scenarios ran on (a scenario's "guest"): its machine, e.g. which IOMMU in which mode. */
  guests?: Array<{ id: string; description: string; forceBounce: boolean; machine: object | null }>;
}

export function resultsJson(verdicts: SuiteVerdict[], meta: { version: string; artifacts: string; host?: RunHost }) {
  const t = tally(verdicts);
  return {
    tool: 'dmahil',
    version: meta.version,
    artifacts: meta.artifacts,
    host: meta.host ?? null,
    ok: t.notOk === 0 && t.ok > 0,
    counts: t,
    scenarios: verdicts.map((v) => ({
      name: v.name,
      guest: v.variant,
      scenario: v.scenario,
      expectSeed: v.expectSeed,
      expectFinding: v.expectFinding ?? null,
      status: v.status,
      outcome: outcome(v),
      summary: v.summary,
      findings: v.findings,
      mismatch: v.mismatch,
      guestError: v.guestError ?? null,
      durationMs: v.durationMs,
      trouble: v.trouble ?? null,
      excerpts: v.excerpts ?? null,
      artifacts: v.artifacts ?? [],
      rerun: outcome(v) === 'not-ok' ? (v.rerun ?? rerunCommand(v.name)) : null,
      driver: v.result?.driver ?? null,
      buffers: v.result?.buffers.map((b) => ({ ...b, pages: b.pages.map((p) => `0x${p.toString(16)}`), segments: b.segments.map((s) => ({ ...s, device: `0x${s.device.toString(16)}` })) })) ?? null,
      calls: v.result?.calls ?? null,
      timings: v.result?.timings ?? null,
    })),
  };
}
