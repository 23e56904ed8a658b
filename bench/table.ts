// Benchmark results: each metric beside the baseline measured in the same invocation.
export interface Metric {
  name: string;
  unit: string;
  value: number;
  samples: number[];
  baseline?: { name: string; value: number; samples: number[] };
  /** value is better when lower (times) or higher (rates). */
  better: 'lower' | 'higher';
  goal?: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** How many times better than the baseline (above 1 = better). */
export function ratio(m: Metric): number | undefined {
  if (!m.baseline || m.value === 0 || m.baseline.value === 0) return undefined;
  return m.better === 'lower' ? m.baseline.value / m.value : m.value / m.baseline.value;
}

const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(4));

export function benchTable(metrics: Metric[]): string {
  const rows = [['metric', 'value', 'baseline (same run)', 'baseline value', 'ratio', 'goal']];
  for (const m of metrics) {
    const r = ratio(m);
    rows.push([m.name, `${fmt(m.value)} ${m.unit}`, m.baseline?.name ?? '-', m.baseline ? `${fmt(m.baseline.value)} ${m.unit}` : '-', r === undefined ? '-' : `${r.toFixed(1)}x`, m.goal ?? '']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n');
}
