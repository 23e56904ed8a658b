// dmahil explore: run generated scenarios on live guests until one fails or the budget is spent; confirm
// a failure on a fresh (pristine) guest; shrink it to the smallest scenario that fails the same way;
// confirm that one too. Every scenario is verified by runScenario, exactly as `dmahil run` verifies.
import type { SuiteVerdict } from '../dma/run-suite.js';
import { outcome } from '../dma/verdict.js';
import { confirm, describeConfirmation, failureSignature, triesPerCandidate, type Confirmation } from './confirm.js';
import { caseArbitrary, caseLabel, caseName, CaseSequence, toCase, type ExploreCase, type VariantId } from './generate.js';
import type { ExploreGuestPool } from './guests.js';
import { shrink, type ShrinkStep } from './shrink.js';

export interface ExploreOptions {
  guests: ExploreGuestPool;
  seed: number;
  /** Exploration stops after this long (the guests' first boot is not counted) ... */
  budgetMs?: number;
  /** ... or after this many scenarios, whichever comes first. */
  maxRuns?: number;
  variants: readonly VariantId[];
  grep?: RegExp;
  /** Scenarios at once while exploring, each on its own live guest. */
  jobs?: number;
  /** Runs of a failing scenario on a fresh guest to confirm it (default 20). */
  repeats?: number;
  onProgress?: (message: string) => void;
  progressEveryMs?: number;
  /** Kept current while it runs, for a report of an interrupted exploration (Ctrl-C). */
  live?: ExploreProgress;
}

/** What an exploration has seen so far. */
export interface ExploreProgress {
  runs: number;
  /** performance.now() when exploring began (the guests' first boot is not counted). */
  startedAt?: number;
  /** Failures seen on a live guest, in the order they were seen. */
  failures: Array<{ index: number; case: ExploreCase; verdict: SuiteVerdict }>;
  /** The shrink's steps so far, each a smaller case that failed the same way on the live guest. */
  steps: ShrinkStep[];
}

export interface ExploreFailure {
  /** Position of the first failing scenario in the seed's sequence. */
  index: number;
  original: ExploreCase;
  originalVerdict: SuiteVerdict;
  confirmation: Confirmation;
  minimal: ExploreCase;
  minimalConfirmation: Confirmation;
  steps: ShrinkStep[];
  shrinkCandidates: number;
  /** From the start of exploring to the failure seen on the live guest. */
  findMs: number;
  /** Confirmation, shrinking and the final confirmation. */
  shrinkMs: number;
}

export interface ExploreResult {
  seed: number;
  /** Explored scenarios (shrinking and confirmations not counted). */
  runs: number;
  exploreMs: number;
  scenariosPerS: number;
  stoppedBy: 'failure' | 'budget' | 'runs';
  /** Failures a fresh guest did not reproduce: reported, and exploring went on. */
  unconfirmed: Array<{ index: number; case: ExploreCase; verdict: SuiteVerdict; confirmation: Confirmation }>;
  failure?: ExploreFailure;
}

const DEFAULT_REPEATS = 20;

/** The i-th scenario a seed explores (what --grep lets through), for replays and specs. */
export function exploredSequence(seed: number, variants: readonly VariantId[], grep?: RegExp): CaseSequence {
  const arb = caseArbitrary(variants);
  return new CaseSequence(grep ? arb.filter((f) => grep.test(caseLabel(toCase(f)))) : arb, seed);
}

export async function explore(opts: ExploreOptions): Promise<ExploreResult> {
  const progress = opts.onProgress ?? (() => undefined);
  const repeats = opts.repeats ?? DEFAULT_REPEATS;
  const sequence = exploredSequence(opts.seed, opts.variants, opts.grep);
  const accept = opts.grep ? (c: ExploreCase) => opts.grep!.test(caseLabel(c)) : undefined;
  const unconfirmed: ExploreResult['unconfirmed'] = [];
  // The guests' first boot and snapshot are set-up, not exploring: off the budget's clock.
  progress(`starting the ${opts.variants.join(' and ')} guests`);
  await opts.guests.warm(opts.variants);

  const started = performance.now();
  const live = opts.live ?? { runs: 0, failures: [], steps: [] };
  live.startedAt = started;
  const elapsed = (): number => performance.now() - started;
  let next = 0;
  let ticker: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const s = elapsed() / 1000;
    progress(`explore: ${live.runs} runs, ${live.failures.length} failures, ${(live.runs / Math.max(s, 0.001)).toFixed(1)} scenarios/s, ${s.toFixed(0)} s${opts.budgetMs ? ` of ${(opts.budgetMs / 1000).toFixed(0)} s` : ''}`);
  };

  let stoppedBy: ExploreResult['stoppedBy'] = 'budget';
  try {
    for (;;) {
      ticker = setInterval(tick, opts.progressEveryMs ?? 2000);
      ticker.unref();
      const failed: Array<{ index: number; case: ExploreCase; verdict: SuiteVerdict }> = [];
      const worker = async (): Promise<void> => {
        while (failed.length === 0) {
          if (opts.maxRuns !== undefined && next >= opts.maxRuns) return void (stoppedBy = 'runs');
          if (opts.budgetMs !== undefined && elapsed() >= opts.budgetMs) return void (stoppedBy = 'budget');
          const index = next++;
          const c = sequence.at(index);
          const verdict = await opts.guests.run(c);
          live.runs++;
          if (outcome(verdict) === 'not-ok') {
            failed.push({ index, case: c, verdict });
            live.failures.push({ index, case: c, verdict });
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, opts.jobs ?? 1) }, worker));
      if (failed.length === 0) break;
      const findMs = elapsed();
      clearInterval(ticker); // confirming and shrinking say what they do themselves
      // The first failure in the sequence, whatever order the jobs finished in: the same seed, the same answer.
      failed.sort((a, b) => a.index - b.index);
      let confirmed: ExploreFailure | undefined;
      for (const f of failed) {
        const signature = failureSignature(f.verdict);
        progress(`failure at scenario ${f.index + 1} (${f.case.variant} ${caseName(f.case)}): ${f.verdict.summary.slice(0, 200)}`);
        const confirmation = await confirm(opts.guests, f.case, signature, repeats);
        progress(`confirmation: ${describeConfirmation(confirmation)}`);
        if (confirmation.kind === 'not-reproduced') {
          unconfirmed.push({ ...f, confirmation });
          continue;
        }
        confirmed = await shrinkConfirmed(opts, f, signature, confirmation, accept, findMs, elapsed);
        break;
      }
      if (confirmed) {
        stoppedBy = 'failure';
        const exploreMs = confirmed.findMs;
        return { seed: opts.seed, runs: live.runs, exploreMs, scenariosPerS: live.runs / (exploreMs / 1000), stoppedBy, unconfirmed, failure: confirmed };
      }
    }
  } finally {
    clearInterval(ticker);
  }
  const exploreMs = elapsed();
  return { seed: opts.seed, runs: live.runs, exploreMs, scenariosPerS: live.runs / (exploreMs / 1000), stoppedBy, unconfirmed };
}

async function shrinkConfirmed(
  opts: ExploreOptions,
  f: { index: number; case: ExploreCase; verdict: SuiteVerdict },
  signature: string,
  confirmation: Confirmation,
  accept: ((c: ExploreCase) => boolean) | undefined,
  findMs: number,
  elapsed: () => number,
): Promise<ExploreFailure> {
  const progress = opts.onProgress ?? (() => undefined);
  const tries = triesPerCandidate(confirmation);
  progress(`shrinking (each candidate up to ${tries} run${tries === 1 ? '' : 's'} on the live guest)`);
  const shrunk = await shrink(f.case, {
    variants: opts.variants,
    accept,
    signature,
    tries,
    run: (c) => opts.guests.run(c),
    onStep: (s, n) => {
      opts.live?.steps.push(s);
      progress(`shrink step ${n}: ${s.case.variant} ${caseName(s.case)}`);
    },
  });
  // The smallest case must fail on a fresh guest too; if it does not, the last step that does is the answer.
  const candidates = [...shrunk.steps].reverse();
  let minimal = f.case;
  let minimalConfirmation = confirmation;
  let steps = shrunk.steps;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!.case;
    const conf = await confirm(opts.guests, c, signature, opts.repeats ?? DEFAULT_REPEATS);
    progress(`minimal ${c.variant} ${caseName(c)}: ${describeConfirmation(conf)}`);
    if (conf.kind !== 'not-reproduced') {
      minimal = c;
      minimalConfirmation = conf;
      steps = shrunk.steps.slice(0, shrunk.steps.length - i);
      break;
    }
  }
  return {
    index: f.index,
    original: f.case,
    originalVerdict: f.verdict,
    confirmation,
    minimal,
    minimalConfirmation,
    steps,
    shrinkCandidates: shrunk.candidates,
    findMs,
    shrinkMs: elapsed() - findMs,
  };
}
