// Memory excerpts of a mismatch: for each differing range, the bytes around it as expected, as the
// client buffer holds them, and at the device addresses (bounce or map-register pages) when they differ,
// with the guest-physical address of each row. Written to the artifacts and shown by the HTML report.
// A translated buffer's device addresses are IOVAs, not guest-physical: no row is read or labelled at them.
import type { BufferReport } from '../contract/result.js';
import type { ByteRange, Mismatch } from './compare.js';
import { cpuAddress } from './guest-buffer.js';

export interface ExcerptRow {
  /** What these bytes are: 'expected', 'destination (client)', 'destination (device/bounce)', … */
  label: string;
  /** Guest-physical address of the first byte shown, when the row is guest memory. */
  gpa: number | null;
  /** The bytes, as lowercase hex without separators. */
  hex: string;
}

export interface MemoryExcerpt {
  /** Offset of the first byte shown, within the transfer. */
  offset: number;
  length: number;
  /** Differing bytes inside this window, as offsets within the transfer. */
  differing: ByteRange[];
  rows: ExcerptRow[];
}

export interface ExcerptInputs {
  mismatch: Mismatch;
  expected: Buffer;
  destination: BufferReport;
  destinationCpu: Buffer;
  destinationDevice: Buffer | null;
  source?: BufferReport;
  sourceCpu: Buffer | null;
  sourceDevice: Buffer | null;
}

const CONTEXT = 16;
const MAX_WINDOW = 256;
const MAX_EXCERPTS = 4;

/** The device address of a data offset, or null when no segment covers it. */
export function deviceAddress(b: BufferReport, offset: number): number | null {
  let at = 0;
  for (const s of b.segments) {
    if (offset < at + s.length) return s.device + (offset - at);
    at += s.length;
  }
  return null;
}

/**
 * "device addresses are IOVAs the IOMMU translates: source ..., destination 0xfffe000..0xfffefff" for the
 * translated buffers, or '' when none is: the addresses the device was given, which the host never reads.
 */
export function iovaNote(buffers: BufferReport[]): string {
  const range = (b: BufferReport): string => {
    const first = b.segments[0];
    const last = b.segments.at(-1);
    return first && last ? `${b.role} 0x${first.device.toString(16)}..0x${(last.device + last.length - 1).toString(16)}` : `${b.role} none reported`;
  };
  const translated = buffers.filter((b) => b.translated);
  return translated.length ? `device addresses are IOVAs the IOMMU translates: ${translated.map(range).join(', ')}` : '';
}

/** Windows of at most MAX_WINDOW bytes, 16-byte aligned, around the first differing ranges; overlapping windows merge. */
export function excerptWindows(m: Mismatch): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  for (const r of m.ranges) {
    const start = Math.max(0, Math.floor((r.start - CONTEXT) / 16) * 16);
    const end = Math.min(m.length, Math.ceil((r.end + CONTEXT) / 16) * 16, start + MAX_WINDOW);
    const last = out.at(-1);
    if (last && start <= last.end) last.end = Math.min(Math.max(last.end, end), last.start + MAX_WINDOW);
    else if (out.length < MAX_EXCERPTS) out.push({ start, end });
  }
  return out;
}

export function memoryExcerpts(x: ExcerptInputs): MemoryExcerpt[] {
  return excerptWindows(x.mismatch).map(({ start, end }) => {
    const rows: ExcerptRow[] = [
      { label: 'expected', gpa: null, hex: x.expected.subarray(start, end).toString('hex') },
      { label: 'destination (client buffer)', gpa: cpuAddress(x.destination, start), hex: x.destinationCpu.subarray(start, end).toString('hex') },
    ];
    if (x.destinationDevice && !x.destination.translated) {
      rows.push({ label: `destination (${x.destination.bounced ? 'bounce / map-register page' : 'device address'})`, gpa: deviceAddress(x.destination, start), hex: x.destinationDevice.subarray(start, end).toString('hex') });
    }
    if (x.source && x.sourceCpu && start < x.sourceCpu.length) {
      rows.push({ label: 'source (client buffer)', gpa: cpuAddress(x.source, start), hex: x.sourceCpu.subarray(start, end).toString('hex') });
    }
    if (x.source && x.sourceDevice && !x.source.translated && start < x.sourceDevice.length) {
      rows.push({ label: `source (${x.source.bounced ? 'bounce / map-register page' : 'device address'})`, gpa: deviceAddress(x.source, start), hex: x.sourceDevice.subarray(start, end).toString('hex') });
    }
    const differing = x.mismatch.ranges
      .filter((r) => r.end > start && r.start < end)
      .map((r) => ({ start: Math.max(r.start, start), end: Math.min(r.end, end) }));
    return { offset: start, length: end - start, differing, rows };
  });
}

/** A plain-text side-by-side hex dump of the excerpts: 16 bytes a line, '^^' under differing bytes. */
export function excerptText(title: string, excerpts: MemoryExcerpt[]): string {
  const out = [title, ''];
  for (const e of excerpts) {
    out.push(`bytes ${e.offset}..${e.offset + e.length - 1} (differing: ${e.differing.map((r) => `${r.start}..${r.end - 1}`).join(', ')})`);
    const width = Math.max(...e.rows.map((r) => r.label.length));
    for (let line = 0; line < e.length; line += 16) {
      const off = e.offset + line;
      for (const r of e.rows) {
        const bytes = Buffer.from(r.hex, 'hex').subarray(line, line + 16);
        const gpa = r.gpa === null ? ''.padEnd(12) : `@0x${(r.gpa + line).toString(16).padStart(9, '0')}`;
        out.push(`${String(off).padStart(7)}  ${r.label.padEnd(width)} ${gpa}  ${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`);
      }
      const marks = [...Array(Math.min(16, e.length - line)).keys()].map((i) => (e.differing.some((d) => off + i >= d.start && off + i < d.end) ? '^^' : '  '));
      out.push(`${''.padStart(7)}  ${''.padEnd(width)} ${''.padEnd(12)}  ${marks.join(' ')}`.trimEnd());
    }
    out.push('');
  }
  return out.join('\n');
}

/** A file-name-safe form of a scenario name. */
export function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80) || 'scenario';
}
