import type { GuestError, RunResult } from '../contract/result.js';
import type { Scenario } from '../contract/scenario.js';
import type { Mismatch } from './compare.js';
import type { Finding, FindingKind } from './explain.js';
import type { MemoryExcerpt } from './excerpts.js';

/** Why a scenario could not be judged because the guest itself went wrong (not its data). */
export type GuestTrouble = 'hang' | 'guest-panic' | 'qemu-exit' | 'connection-lost';

/**
 * pass: the host read the right bytes and nothing went wrong on the way.
 * fail: the host found wrong bytes or a DMA fault.
 * error: the scenario could not be judged (the guest refused or broke).
 * skip: the driver does not implement this scenario, or the control cannot apply on this QEMU.
 * not-run: the guest variant could not start (accelerator, missing tool, image build): the scenario
 * never ran, and its variant is not booted again for it.
 */
export type Status = 'pass' | 'fail' | 'error' | 'skip' | 'not-run';

export interface Verdict {
  name: string;
  scenario: Scenario;
  expectSeed: number;
  status: Status;
  /** One line: what happened. */
  summary: string;
  findings: Finding[];
  mismatch: Mismatch | null;
  result?: RunResult;
  guestError?: GuestError;
  durationMs: number;
  /** For a negative control: the finding the harness must report. */
  expectFinding?: FindingKind;
  /** Set when the guest hung, panicked, lost its connection or QEMU ended during the scenario. */
  trouble?: GuestTrouble;
  /** Bytes around each differing range: expected, client buffer, bounce pages (a mismatch only). */
  excerpts?: MemoryExcerpt[];
  /** Files this scenario left in the artifacts: excerpts, memory dump, console tail or screen. */
  artifacts?: string[];
  /** The command that runs it alone, when not `dmahil run --grep '^name$'` (a repro file, a repetition). */
  rerun?: string;
}

/** A negative control passes when it is caught for the right reason. */
export function outcome(v: Verdict): 'ok' | 'not-ok' | 'skipped' {
  if (v.status === 'skip') return 'skipped';
  if (v.expectFinding) {
    return v.status === 'fail' && v.findings.some((f) => f.kind === v.expectFinding) ? 'ok' : 'not-ok';
  }
  return v.status === 'pass' ? 'ok' : 'not-ok';
}
