// Shrink a confirmed failure with fast-check's shrinker: the failing case is given to fc.check as an
// example, and every candidate fast-check proposes runs on the guest; a candidate shrinks the case only
// when it fails the same way. Two coordinate systems (generate.ts) are alternated until neither shrinks.
import fc from 'fast-check';
import type { SuiteVerdict } from '../dma/run-suite.js';
import { isSameFailure } from './confirm.js';
import { SHRINK_SYSTEMS, toCase, toFields, type CaseFields, type ExploreCase, type ShrinkSystem, type VariantId } from './generate.js';

export interface ShrinkStep {
  case: ExploreCase;
  verdict: SuiteVerdict;
  system: ShrinkSystem;
}

export interface ShrinkOptions {
  variants: readonly VariantId[];
  /** Only cases the user asked for (--grep). */
  accept?: (c: ExploreCase) => boolean;
  signature: string;
  /** Runs per candidate before it counts as passing (confirm.ts triesPerCandidate). */
  tries: number;
  run: (c: ExploreCase) => Promise<SuiteVerdict>;
  onStep?: (step: ShrinkStep, n: number) => void;
}

export interface ShrinkResult {
  minimal: ExploreCase;
  steps: ShrinkStep[];
  /** Candidates run (each up to `tries` times). */
  candidates: number;
}

const ROUNDS = 4;
const same = (a: CaseFields, b: CaseFields): boolean => JSON.stringify(a) === JSON.stringify(b);

export async function shrink(start: ExploreCase, opts: ShrinkOptions): Promise<ShrinkResult> {
  let current = toFields(start);
  const steps: ShrinkStep[] = [];
  let candidates = 0;
  for (let round = 0; round < ROUNDS; round++) {
    let changed = false;
    for (const name of Object.keys(SHRINK_SYSTEMS) as ShrinkSystem[]) {
      const system = SHRINK_SYSTEMS[name];
      let arbitrary = system.arbitrary(opts.variants);
      if (opts.accept) arbitrary = arbitrary.filter((v) => opts.accept!(toCase(system.decode(v, opts.variants))));
      // fc.check turns a throw into a failing case: keep errors out of it and rethrow them after.
      let broken: unknown;
      const property = fc.asyncProperty(arbitrary, async (v) => {
        if (broken !== undefined) return true;
        const c = toCase(system.decode(v, opts.variants));
        const fields = toFields(c); // one key order, for the comparison below
        candidates++;
        try {
          for (let i = 0; i < opts.tries; i++) {
            const verdict = await opts.run(c);
            if (!isSameFailure(verdict, opts.signature)) continue;
            if (!same(fields, current)) {
              current = fields;
              changed = true;
              steps.push({ case: c, verdict, system: name });
              opts.onStep?.(steps.at(-1)!, steps.length);
            }
            return false;
          }
          return true;
        } catch (e) {
          broken = e;
          return true;
        }
      });
      await fc.check(property, { examples: [[system.encode(current, opts.variants)]], numRuns: 1 });
      if (broken !== undefined) throw broken;
    }
    if (!changed) break;
  }
  return { minimal: toCase(current), steps, candidates };
}
