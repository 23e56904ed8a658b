// Guests for the explorer's unit specs: no QEMU, a predicate says which scenarios a simulated driver
// gets wrong. The real guests run the same explorer in specs/explore/planted-bugs.e2e.spec.ts.
import type { SuiteVerdict } from '../../harness/dma/run-suite.js';
import type { ExploreCase } from '../../harness/explore/generate.js';
import type { ExploreGuestPool } from '../../harness/explore/guests.js';

export type Bug = (c: ExploreCase) => boolean;

/** Mirrors of the planted bugs' conditions (guest-driver/linux/edudma_planted.h). */
const handBack = (c: ExploreCase): boolean => c.variant === 'bounce' && c.scenario.direction !== 'to-device' && c.scenario.method !== 'common-buffer' && c.scenario.sync === 'full';
const end = (c: ExploreCase): number => c.scenario.offset + c.scenario.size;
export const SIMULATED: Record<string, Bug> = {
  'first-page': (c) => handBack(c) && c.scenario.method === 'streaming' && c.scenario.size > 4096,
  'last-chunk': (c) => handBack(c) && c.scenario.method === 'streaming' && end(c) > 4096,
  'skip-64k': (c) => handBack(c) && c.scenario.method === 'streaming' && (c.scenario.size % 65536 === 0 || c.scenario.size > 262144),
  'sg-last': (c) => handBack(c) && c.scenario.method === 'scatter-gather' && end(c) > 4096,
  race: handBack,
};

export interface SimulatedPool extends ExploreGuestPool {
  liveRuns: number;
  freshGuests: number;
  cases: ExploreCase[];
}

/**
 * `bug` fails a scenario; with `every`, only every n-th eligible run on a guest fails (a counter per guest,
 * as the planted race has). `liveOnly` fails on the live guest but never on a fresh one.
 */
export function simulatedGuests(bug: Bug | undefined, opts: { every?: number; liveOnly?: Bug; delayMs?: number } = {}): SimulatedPool {
  const judge = (c: ExploreCase, counter: { n: number }, live: boolean): SuiteVerdict => {
    let failing = bug?.(c) ?? false;
    if (failing && opts.every) failing = ++counter.n % opts.every === 0;
    if (live && opts.liveOnly?.(c)) failing = true;
    const name = `${c.variant} ${c.scenario.size}@${c.scenario.offset}`;
    return {
      name,
      variant: c.variant,
      scenario: c.scenario,
      expectSeed: c.scenario.seed,
      status: failing ? 'fail' : 'pass',
      summary: failing ? 'stale data in the client buffer (simulated)' : 'verified (simulated)',
      findings: failing ? [{ kind: 'stale-client-buffer', message: 'simulated' }] : [],
      mismatch: null,
      durationMs: 0,
    };
  };
  const live = { n: 0 };
  const pool: SimulatedPool = {
    liveRuns: 0,
    freshGuests: 0,
    cases: [],
    warm: async () => undefined,
    run: async (c) => {
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      pool.liveRuns++;
      pool.cases.push(c);
      return judge(c, live, true);
    },
    onFreshGuest: async (c, repeats) => {
      pool.freshGuests++;
      const fresh = { n: 0 };
      return { verdicts: Array.from({ length: repeats }, () => judge(c, fresh, false)), notPristine: undefined };
    },
  };
  return pool;
}
