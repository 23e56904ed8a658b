// What an interrupted exploration (Ctrl-C, SIGTERM) still reports: the failures seen on a live guest and
// the shrink's smallest case so far. None is confirmed on a fresh guest; the seed explores the same way
// again, so the hunt is not lost with the terminal.
import type { SuiteVerdict } from '../dma/run-suite.js';
import type { ExploreProgress } from './explore.js';
import { caseLabel, caseName } from './generate.js';

/** The reports' verdicts: the smallest case so far first, then the failures as seen. */
export function interruptedVerdicts(live: ExploreProgress, seed: number): SuiteVerdict[] {
  const rerun = `dmahil explore --seed ${seed}`;
  const last = live.steps.at(-1);
  return [
    ...(last ? [{ ...last.verdict, name: `smallest so far (shrinking was interrupted): ${caseName(last.case)}`, rerun }] : []),
    ...live.failures.map((f) => ({ ...f.verdict, name: `seen on a live guest, not confirmed: ${caseName(f.case)}`, rerun })),
  ];
}

/** What the terminal, report.html and results.json say about it. */
export function interruptedLines(live: ExploreProgress, seed: number, ver: string, why: string, nowMs = performance.now()): string[] {
  const s = live.startedAt === undefined ? 'before exploring began' : `in ${((nowMs - live.startedAt) / 1000).toFixed(1)} s`;
  const lines = [`dmahil ${ver} explored ${live.runs} scenarios ${s} with seed ${seed}: interrupted (${why})`];
  if (live.failures.length === 0) lines.push('no scenario failed before the interruption');
  for (const f of live.failures) lines.push(`failed on a live guest at scenario ${f.index + 1}: ${caseLabel(f.case)} (not confirmed on a fresh guest)`);
  const last = live.steps.at(-1);
  if (last) lines.push(`shrinking was interrupted after ${live.steps.length} steps; smallest so far: ${caseLabel(last.case)}`);
  lines.push(`dmahil explore --seed ${seed} explores the same way again`);
  return lines;
}
