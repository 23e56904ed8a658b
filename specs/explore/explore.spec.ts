// The explorer's logic on simulated guests (no QEMU): it finds each kind of planted bug, confirms it,
// shrinks it to the one smallest scenario, repeats itself for a seed, and keeps exploring past a
// failure a fresh guest does not reproduce. specs/explore/planted-bugs.e2e.spec.ts does it on real guests.
import { expect } from 'chai';
import fc from 'fast-check';
import { DIRECTIONS, MAX_SIZE, METHODS, PAGE_SIZE, SYNC_MODES } from '../../harness/contract/scenario.js';
import { triesPerCandidate } from '../../harness/explore/confirm.js';
import { explore, exploredSequence, type ExploreOptions } from '../../harness/explore/explore.js';
import { caseArbitrary, caseLabel, SHRINK_SYSTEMS, toCase, toFields, type ExploreCase, type VariantId } from '../../harness/explore/generate.js';
import { shrink } from '../../harness/explore/shrink.js';
import { SIMULATED, simulatedGuests, type SimulatedPool } from './simulated-guests.js';

const VARIANTS: VariantId[] = ['direct', 'bounce'];
const run = (guests: SimulatedPool, extra: Partial<ExploreOptions> = {}) =>
  explore({ guests, seed: 1, maxRuns: 5000, variants: VARIANTS, ...extra });
const brief = (c: ExploreCase | undefined) => c && { variant: c.variant, ...c.scenario };

/** The smallest scenario each bug has: what the shrinker must end at. */
const MINIMAL = {
  'first-page': { variant: 'bounce', direction: 'from-device', method: 'streaming', sync: 'full', size: 4097, offset: 0, seed: 0 },
  'last-chunk': { variant: 'bounce', direction: 'from-device', method: 'streaming', sync: 'full', size: 2, offset: 4095, seed: 0 },
  'skip-64k': { variant: 'bounce', direction: 'from-device', method: 'streaming', sync: 'full', size: 65536, offset: 0, seed: 0 },
  'sg-last': { variant: 'bounce', direction: 'from-device', method: 'scatter-gather', sync: 'full', size: 2, offset: 4095, seed: 0 },
  race: { variant: 'bounce', direction: 'from-device', method: 'streaming', sync: 'full', size: 1, offset: 0, seed: 0 },
};

describe('explore: generation, shrinking and confirmation on simulated guests', () => {
  for (const [bug, minimal] of Object.entries(MINIMAL)) {
    it(`${bug}: found, confirmed and shrunk to ${minimal.size} B at offset ${minimal.offset} (${minimal.method})`, async () => {
      const flaky = bug === 'race';
      const r = await run(simulatedGuests(SIMULATED[bug], flaky ? { every: 5 } : {}));
      expect(r.stoppedBy).to.equal('failure');
      const f = r.failure!;
      expect(f.confirmation.kind).to.equal(flaky ? 'flaky' : 'deterministic');
      expect([f.confirmation.failed, f.confirmation.repeats]).to.deep.equal(flaky ? [4, 20] : [20, 20]);
      expect(brief(f.minimal)).to.deep.equal({ ...minimal, fault: 'none' });
      expect(f.minimalConfirmation.kind).to.equal(flaky ? 'flaky' : 'deterministic');
      // The path ends at the minimal case and every step is a case that failed.
      expect(brief(f.steps.at(-1)?.case)).to.deep.equal(brief(f.minimal));
      expect(f.steps.every((s) => s.verdict.status === 'fail')).to.equal(true);
    });
  }

  it('a seed explores the same scenarios in the same order, and finds the same failure; another seed does not', async () => {
    const a = simulatedGuests(SIMULATED['sg-last']);
    const b = simulatedGuests(SIMULATED['sg-last']);
    const ra = await run(a, { seed: 77 });
    const rb = await run(b, { seed: 77 });
    expect(a.cases.map(caseLabel)).to.deep.equal(b.cases.map(caseLabel));
    expect(ra.failure!.index).to.equal(rb.failure!.index);
    const first = (seed: number) => {
      const sequence = exploredSequence(seed, VARIANTS);
      return Array.from({ length: 20 }, (_, i) => caseLabel(sequence.at(i)));
    };
    expect(first(77)).to.deep.equal(first(77)).and.not.deep.equal(first(78));
  });

  it('with no bug it explores until --runs and reports no failure', async () => {
    const r = await run(simulatedGuests(undefined), { maxRuns: 300 });
    expect(r).to.include({ runs: 300, stoppedBy: 'runs' });
    expect(r.failure).to.equal(undefined);
    expect(r.unconfirmed).to.deep.equal([]);
  });

  it('stops when the budget is spent', async () => {
    const r = await run(simulatedGuests(undefined, { delayMs: 5 }), { maxRuns: undefined, budgetMs: 200 });
    expect(r.stoppedBy).to.equal('budget');
    // Past the budget by one step at most: 5 ms here, 7 s once on a loaded CI runner (the bound is for a loop
    // that would not stop, which maxRuns: undefined would otherwise leave to mocha's timeout).
    expect(r.exploreMs).to.be.within(200, 15_000);
  });

  it('a failure a fresh guest does not reproduce is reported, and exploring goes on to a real one', async () => {
    const liveOnly = (c: ExploreCase) => c.scenario.method === 'common-buffer';
    const r = await run(simulatedGuests(SIMULATED['first-page'], { liveOnly }));
    expect(r.unconfirmed.length).to.be.greaterThan(0);
    expect(r.unconfirmed.every((u) => u.confirmation.kind === 'not-reproduced' && u.case.scenario.method === 'common-buffer')).to.equal(true);
    expect(brief(r.failure!.minimal)).to.deep.equal({ ...MINIMAL['first-page'], fault: 'none' });
  });

  it('--grep: every explored and every shrunk scenario matches', async () => {
    const guests = simulatedGuests(SIMULATED['last-chunk']);
    const grep = /scatter-gather|streaming 4[0-9]{3} B/;
    const r = await run(guests, { grep, maxRuns: 2000 });
    expect(guests.cases.length).to.be.greaterThan(0);
    expect(guests.cases.every((c) => grep.test(caseLabel(c))), guests.cases.map(caseLabel).find((l) => !grep.test(l))).to.equal(true);
    expect(r.failure === undefined || grep.test(caseLabel(r.failure.minimal))).to.equal(true);
  });

  it('generates the whole contract, biased to boundaries: every enum, 1 B, 1 MiB, multiples of 64 KiB, page ±1, offsets 0 and 4095', () => {
    const sequence = exploredSequence(5, VARIANTS);
    const cases = Array.from({ length: 3000 }, (_, i) => sequence.at(i));
    const sizes = new Set(cases.map((c) => c.scenario.size));
    for (const [field, all] of [['direction', DIRECTIONS], ['method', METHODS], ['sync', SYNC_MODES]] as const) expect(new Set(cases.map((c) => c.scenario[field])), field).to.deep.equal(new Set(all));
    expect(new Set(cases.map((c) => c.variant))).to.deep.equal(new Set(VARIANTS));
    for (const s of [4095, 4096, 4097, 65536, 131072, MAX_SIZE]) expect(sizes.has(s), `size ${s}`).to.equal(true);
    expect(cases.some((c) => c.scenario.size <= 3)).to.equal(true);
    expect(new Set(cases.map((c) => c.scenario.offset))).to.include.members([0, 1, PAGE_SIZE - 1]);
    expect(cases.every((c) => c.scenario.fault === 'none')).to.equal(true);
    // Cheap scenarios dominate, so a budget explores many: most are at most three pages.
    expect(cases.filter((c) => c.scenario.size <= 3 * PAGE_SIZE).length / cases.length).to.be.greaterThan(0.5);
  });

  it('both shrink coordinate systems encode every case and decode it unchanged (fast-check property)', () => {
    for (const system of Object.values(SHRINK_SYSTEMS)) {
      fc.assert(fc.property(caseArbitrary(VARIANTS), (f) => void expect(toFields(toCase(system.decode(system.encode(f, VARIANTS), VARIANTS)))).to.deep.equal(toFields(toCase(f)))));
      fc.assert(fc.property(system.arbitrary(VARIANTS), (v) => void toCase(system.decode(v, VARIANTS)))); // every point is a valid scenario
    }
  });

  it('a guest that breaks while shrinking is an error of the run, not a smaller failure', async () => {
    const start = toCase({ variant: 'bounce', direction: 'from-device', method: 'streaming', sync: 'full', size: 9000, offset: 0, seed: 3 });
    let calls = 0;
    const err = await shrink(start, {
      variants: VARIANTS,
      signature: 'fail: stale-client-buffer',
      tries: 1,
      run: async () => {
        if (++calls > 3) throw new Error('the bounce guest did not start');
        return simulatedGuests(SIMULATED['first-page']).run(start);
      },
    }).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.equal('the bounce guest did not start');
  });

  it('a flaky failure gives each shrink candidate enough runs to show it', () => {
    const c = (failed: number, repeats: number) => triesPerCandidate({ failed, repeats, kind: failed === repeats ? 'deterministic' : 'flaky', pristine: true, verdict: undefined as never });
    expect([c(20, 20), c(4, 20), c(1, 20), c(19, 20)]).to.deep.equal([1, 31, 100, 3]);
  });
});
