// Is a failure real? Run it again, several times, on a guest of its own (a pristine restore for the
// reference guest), and count. "The same failure" means the same status and the same explanation from
// the verifier: a shrink must not drift from a stale client buffer to some other bug.
import type { SuiteVerdict } from '../dma/run-suite.js';
import { outcome, type Verdict } from '../dma/verdict.js';
import type { ExploreCase } from './generate.js';
import type { ExploreGuestPool } from './guests.js';

/** Status and the verifier's explanation (finding kinds) or trouble: what a failure is, not its bytes. */
export function failureSignature(v: Verdict): string {
  if (v.status === 'fail') return `fail: ${[...new Set(v.findings.map((f) => f.kind))].sort().join(', ')}`;
  return `${v.status}: ${v.trouble ?? v.guestError?.code ?? 'no cause'}`;
}

export function isSameFailure(v: Verdict, signature: string): boolean {
  return outcome(v) === 'not-ok' && failureSignature(v) === signature;
}

export interface Confirmation {
  failed: number;
  repeats: number;
  kind: 'deterministic' | 'flaky' | 'not-reproduced';
  /** Whether the guest was a pristine restore, as the source that gave it says. */
  pristine: boolean;
  /** When it was not: why (the snapshot failed, a restore failed, --boot). */
  notPristine?: string;
  /** The first failing verdict there (the evidence the reports show), else the last one. */
  verdict: SuiteVerdict;
}

export function describeConfirmation(c: Confirmation): string {
  const where = c.pristine ? 'a pristine restore' : `a guest that was not restored: ${c.notPristine ?? 'no snapshot for this guest'}`;
  const what = c.kind === 'deterministic' ? 'deterministic' : c.kind === 'flaky' ? 'flaky' : 'not reproduced';
  return `failed ${c.failed} of ${c.repeats} repeats on ${where}: ${what}`;
}

export async function confirm(guests: ExploreGuestPool, c: ExploreCase, signature: string, repeats: number): Promise<Confirmation> {
  const { verdicts, notPristine } = await guests.onFreshGuest(c, repeats, () => false);
  const failing = verdicts.filter((v) => isSameFailure(v, signature));
  const kind = failing.length === 0 ? 'not-reproduced' : failing.length === verdicts.length ? 'deterministic' : 'flaky';
  const where = notPristine === undefined ? { pristine: true } : { pristine: false, notPristine };
  return { failed: failing.length, repeats: verdicts.length, kind, ...where, verdict: failing[0] ?? verdicts.at(-1)! };
}

/**
 * How many runs a shrink candidate gets before it counts as passing: 1 for a deterministic failure; for
 * a flaky one enough that a candidate failing as often as the original is missed 1 time in 1000.
 */
export function triesPerCandidate(c: Confirmation): number {
  if (c.kind === 'deterministic' || c.failed === 0) return 1;
  const p = c.failed / c.repeats;
  return Math.min(100, Math.ceil(Math.log(0.001) / Math.log(1 - p)));
}
