// An interrupted exploration still reports what it saw: explore keeps its progress current (runs, the
// failures seen on a live guest, the shrink's steps), and the report built from it puts the smallest case
// so far first. On simulated guests; the Ctrl-C of the real command is in specs/explore/cli.e2e.spec.ts.
import { expect } from 'chai';
import { explore, type ExploreProgress } from '../../harness/explore/explore.js';
import { caseName } from '../../harness/explore/generate.js';
import { interruptedLines, interruptedVerdicts } from '../../harness/explore/interrupted.js';
import { SIMULATED, simulatedGuests } from './simulated-guests.js';

describe('explore: what an interrupted exploration reports', () => {
  it('the progress explore keeps is what it found: its runs, the failure as seen, every shrink step', async () => {
    const live: ExploreProgress = { runs: 0, failures: [], steps: [] };
    const r = await explore({ guests: simulatedGuests(SIMULATED['last-chunk']!), seed: 1, maxRuns: 5000, variants: ['direct', 'bounce'], live });
    const f = r.failure!;
    expect(live.runs).to.equal(r.runs);
    expect(live.failures.map((x) => [x.index, x.case])).to.deep.equal([[f.index, f.original]]);
    expect(live.steps).to.deep.equal(f.steps);
    expect(live.startedAt).to.be.a('number');

    // Interrupted at this point: the smallest case so far first, then the failure as seen; none confirmed.
    const v = interruptedVerdicts(live, 1);
    expect(v.map((x) => x.name)).to.deep.equal([
      'smallest so far (shrinking was interrupted): from-device streaming 2 B at offset 4095, full sync, seed 0',
      `seen on a live guest, not confirmed: ${caseName(f.original)}`,
    ]);
    expect(v.every((x) => x.rerun === 'dmahil explore --seed 1' && x.status === 'fail')).to.equal(true);
    const lines = interruptedLines(live, 1, '0.1.0', 'SIGINT', live.startedAt! + 2500);
    expect(lines[0]).to.equal(`dmahil 0.1.0 explored ${r.runs} scenarios in 2.5 s with seed 1: interrupted (SIGINT)`);
    expect(lines).to.include(`shrinking was interrupted after ${f.steps.length} steps; smallest so far: bounce from-device streaming 2 B at offset 4095, full sync, seed 0`);
    expect(lines.at(-1)).to.equal('dmahil explore --seed 1 explores the same way again');
  });

  it('interrupted before anything failed (or before exploring began): no verdicts, and the lines say so', () => {
    const live: ExploreProgress = { runs: 0, failures: [], steps: [] };
    expect(interruptedVerdicts(live, 7)).to.deep.equal([]);
    expect(interruptedLines(live, 7, '0.1.0', 'SIGTERM')).to.deep.equal([
      'dmahil 0.1.0 explored 0 scenarios before exploring began with seed 7: interrupted (SIGTERM)',
      'no scenario failed before the interruption',
      'dmahil explore --seed 7 explores the same way again',
    ]);
  });
});
