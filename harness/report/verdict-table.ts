// The verdict as a person reads it in a terminal.
import { outcome, type Verdict } from '../dma/verdict.js';

export interface TableRow extends Verdict {
  variant: string;
}

const MARK = { ok: 'ok', 'not-ok': 'FAILED', skipped: 'skipped' } as const;

/** The command that runs one scenario alone: its exact name, anchored and regex-escaped, shell-quoted. */
export function rerunCommand(name: string): string {
  const re = `^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`;
  return `dmahil run --grep '${re.replaceAll("'", `'\\''`)}'`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** A scenario takes milliseconds on a restored guest and seconds or minutes on a big transfer. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function verdictTable(rows: TableRow[]): string {
  const header = ['guest', 'scenario', 'expected', 'verdict', 'time', ''];
  const body = rows.map((r) => [
    r.variant,
    r.name,
    r.expectFinding ? `caught: ${r.expectFinding}` : 'pass',
    r.status,
    formatDuration(r.durationMs),
    MARK[outcome(r)],
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => pad(c, widths[i]!)).join('  ').trimEnd();
  const out = [line(header), line(widths.map((w) => '-'.repeat(w)))];
  for (let i = 0; i < rows.length; i++) {
    out.push(line(body[i]!));
    const r = rows[i]!;
    if (outcome(r) !== 'ok' || r.expectFinding) out.push(`    ${r.summary}`);
    if (outcome(r) === 'not-ok') out.push(`    re-run alone: ${r.rerun ?? rerunCommand(r.name)}`);
  }
  return out.join('\n');
}

export function tally(rows: Verdict[]): { ok: number; notOk: number; skipped: number } {
  const t = { ok: 0, notOk: 0, skipped: 0 };
  for (const r of rows) {
    const o = outcome(r);
    if (o === 'ok') t.ok++;
    else if (o === 'skipped') t.skipped++;
    else t.notOk++;
  }
  return t;
}
