// Where two byte strings differ, said so a person can act on it.

export interface ByteRange {
  start: number;
  end: number; // exclusive
}

export interface Mismatch {
  length: number;
  differing: number;
  firstOffset: number;
  /** Differing ranges, merged, at most MAX_RANGES of them. */
  ranges: ByteRange[];
  rangesOmitted: number;
  excerpt: { offset: number; expected: string; actual: string };
}

const MAX_RANGES = 16;
const EXCERPT_BYTES = 16;

export function hex(buf: Buffer): string {
  return buf.toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

/** null when equal. */
export function compareBytes(expected: Buffer, actual: Buffer): Mismatch | null {
  if (expected.length !== actual.length) throw new Error(`compareBytes: lengths ${expected.length} and ${actual.length} differ`);
  if (expected.equals(actual)) return null;
  const ranges: ByteRange[] = [];
  let differing = 0;
  let rangeCount = 0;
  let open: ByteRange | undefined;
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] !== actual[i]) {
      differing++;
      if (open && open.end === i) open.end = i + 1;
      else {
        rangeCount++;
        open = { start: i, end: i + 1 };
        if (ranges.length < MAX_RANGES) ranges.push(open);
      }
    }
  }
  const first = ranges[0]!.start;
  const from = Math.max(0, first - 4);
  const to = Math.min(expected.length, from + EXCERPT_BYTES);
  return {
    length: expected.length,
    differing,
    firstOffset: first,
    ranges,
    rangesOmitted: rangeCount - ranges.length,
    excerpt: { offset: from, expected: hex(expected.subarray(from, to)), actual: hex(actual.subarray(from, to)) },
  };
}

/** A one-line account of a mismatch. */
export function describeMismatch(m: Mismatch): string {
  const shown = m.ranges.slice(0, 4).map((r) => `${r.start}..${r.end - 1}`).join(', ');
  const more = m.ranges.length + m.rangesOmitted > 4 ? ` and ${m.ranges.length + m.rangesOmitted - 4} more ranges` : '';
  return `${m.differing} of ${m.length} bytes differ, first at offset ${m.firstOffset} (bytes ${shown}${more})`;
}

/** Whether every byte of buf is `value`. */
export function allBytes(buf: Buffer, value: number): boolean {
  for (const b of buf) if (b !== value) return false;
  return buf.length > 0;
}
