// Turn the bytes the host read into a cause a driver engineer recognises. Each rule looks at
// evidence only the host gathered (guest RAM, QEMU's own messages); the guest's word is used to
// name things, never to judge them.
import type { ArmedReport, BufferReport, RunResult, Segment } from '../contract/result.js';
import { PAGE_SIZE } from '../contract/scenario.js';
import { FILL_BYTE, pattern, STALE_BYTE } from '../contract/pattern.js';
import { allBytes, type Mismatch } from './compare.js';
import { cpuAddress } from './guest-buffer.js';
import type { IommuFaults } from './iommu-faults.js';

export type FindingKind =
  | 'beyond-dma-mask'
  | 'device-model-clamp'
  | 'stale-client-buffer'
  | 'stale-source-bounce'
  | 'wrong-seed'
  | 'never-written'
  | 'stale-source'
  | 'mismatch'
  /** The guest's report contradicts itself or the guest booted (report-consistency.ts): never a pass. */
  | 'inconsistent-report'
  /** The destination held the pattern before the device ran (a driver that copies with the CPU). */
  | 'written-before-dma'
  /** The reported destination pages are not where the device wrote (other data before, or the data misplaced after). */
  | 'wrong-pages'
  /** The source did not hold the pattern when the device was told to go. */
  | 'source-not-ready'
  /** The result's pages (or handle) are not the ones the armed line reported. */
  | 'pages-changed'
  /** QEMU's vIOMMU blocked device accesses (a use after unmap, a short mapping, a wrong direction). */
  | 'iommu-fault';

export interface Finding {
  kind: FindingKind;
  message: string;
}

export interface ClampMessage {
  from: number;
  to: number;
  line: string;
  /** Further clamps this one stands for (QEMU's messages are kept bounded: see DeviceModelLog). */
  more?: number;
}

/** What the host read between the armed line and "go": the device had not run yet. */
export interface BeforeDma {
  armed: ArmedReport;
  /** The destination's data bytes at the armed pages. */
  destinationCpu: Buffer;
  /** The source's data bytes at the armed pages. */
  sourceCpu: Buffer;
}

export interface Evidence {
  result: RunResult;
  /** Absent only when the run was never armed (then a pass is impossible: runScenario says why). */
  before?: BeforeDma;
  expectSeed: number;
  destination: BufferReport;
  source?: BufferReport;
  mismatch: Mismatch | null;
  destinationCpu: Buffer;
  /** Bytes at the destination's device addresses, when bounced and readable. */
  destinationDevice: Buffer | null;
  sourceCpu: Buffer | null;
  sourceDevice: Buffer | null;
  clamps: ClampMessage[];
  /** Device accesses the IOMMU refused during the scenario (iommu-faults.ts). */
  iommuFaults?: IommuFaults;
  dmaMaskBits: number;
}

const h = (n: number): string => `0x${n.toString(16)}`;

function handBackCall(os: string): string {
  return os === 'windows' ? 'FlushAdapterBuffers' : 'dma_sync_single_for_cpu (or the unmap)';
}

function handOverCall(os: string): string {
  return os === 'windows' ? 'MapTransfer after the CPU wrote' : 'dma_sync_single_for_device';
}

function callsMade(r: RunResult): string {
  return r.calls.length === 0 ? 'no DMA API calls reported' : r.calls.map((c) => `${c.name} ×${c.count}`).join(', ');
}

function beyondMask(buffers: BufferReport[], bits: number): Array<{ b: BufferReport; s: Segment; i: number }> {
  const limit = 2 ** bits;
  return buffers.flatMap((b) => b.segments.map((s, i) => ({ b, s, i }))).filter(({ s }) => s.device + s.length > limit);
}

/** Bytes of a that differ from b (or from a byte value), with the first such offset. */
function differing(a: Buffer, b: Buffer | number): { count: number; first: number } {
  if (typeof b !== 'number' && a.equals(b)) return { count: 0, first: -1 }; // the usual case, natively
  let count = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== (typeof b === 'number' ? b : b[i])) {
      count++;
      if (first < 0) first = i;
    }
  }
  return { count, first };
}

function samePages(a: BufferReport, b: BufferReport): string | null {
  if (a.offset !== b.offset || a.length !== b.length) return `offset ${a.offset} and length ${a.length} when armed, ${b.offset} and ${b.length} in the result`;
  if (a.pages.length !== b.pages.length) return `${a.pages.length} pages when armed, ${b.pages.length} in the result`;
  const i = a.pages.findIndex((p, k) => p !== b.pages[k]);
  return i < 0 ? null : `page ${i} was ${h(a.pages[i]!)} when armed, ${h(b.pages[i]!)} in the result`;
}

/**
 * A data page (page-sized piece of the data, cut where the buffer's pages are cut) whose bytes after the
 * DMA are the expected bytes of another data page: the data arrived, in other pages than reported.
 */
function misplacedPage(d: BufferReport, after: Buffer, expected: Buffer): { at: number; holds: number } | null {
  const starts: number[] = [];
  for (let k = 0; k < d.pages.length; k++) starts.push(Math.max(0, k * PAGE_SIZE - d.offset));
  const piece = (buf: Buffer, k: number): Buffer => buf.subarray(starts[k]!, Math.min(d.length, (starts[k + 1] ?? d.length)));
  for (let k = 0; k < starts.length; k++) {
    const got = piece(after, k);
    if (got.length === 0 || got.equals(piece(expected, k))) continue;
    for (let j = 0; j < starts.length; j++) {
      if (j !== k && piece(expected, j).length === got.length && piece(expected, j).equals(got)) return { at: k, holds: j };
    }
  }
  return null;
}

/**
 * The host's own evidence that the device wrote the destination during the DMA: the armed pages held the
 * fill byte before "go" (and the source the pattern), the same pages came back in the result, and (judged
 * by the caller) the pattern is there afterwards.
 */
function explainWindow(e: Evidence, b: BeforeDma): Finding[] {
  const out: Finding[] = [];
  const d = e.destination;
  const guestSeed = e.result.scenario.seed;
  const expected = pattern(e.expectSeed, d.length);

  for (const role of ['source', 'destination'] as const) {
    const was = b.armed.buffers.find((x) => x.role === role);
    const is = e.result.buffers.find((x) => x.role === role);
    const why = was && is ? samePages(was, is) : `the ${role} is missing from the ${was ? 'result' : 'armed line'}`;
    if (why) out.push({ kind: 'pages-changed', message: `the report changed between the armed line and the result: the ${role}'s ${why}; the host read other pages before the DMA than after it` });
  }
  if (e.result.handle !== undefined && e.result.handle !== b.armed.handle) {
    out.push({ kind: 'pages-changed', message: `the result is for handle ${e.result.handle}, the armed line for handle ${b.armed.handle}: not the run the host read before the DMA` });
  }

  const source = guestSeed === e.expectSeed && b.sourceCpu.length === d.length ? expected : pattern(guestSeed, b.sourceCpu.length);
  const src = differing(b.sourceCpu, source);
  if (src.count > 0) {
    const stale = allBytes(b.sourceCpu, STALE_BYTE);
    out.push({
      kind: 'source-not-ready',
      message: stale
        ? `the source still held its 0x${STALE_BYTE.toString(16)} pre-fill when the device was told to go: the CPU had not written the pattern yet`
        : `the source did not hold the pattern of seed ${guestSeed} when the device was told to go: ${src.count} of ${b.sourceCpu.length} bytes differ, first at data offset ${src.first} (0x${b.sourceCpu[src.first]!.toString(16)}, the pattern has 0x${source[src.first]!.toString(16)})`,
    });
  }

  const notFill = b.destinationCpu.equals(Buffer.alloc(b.destinationCpu.length, FILL_BYTE)) ? { count: 0, first: -1 } : differing(b.destinationCpu, FILL_BYTE);
  if (notFill.count > 0) {
    const guestPattern = guestSeed === e.expectSeed ? expected : pattern(guestSeed, d.length);
    const isPattern = (p: Buffer): boolean => b.destinationCpu.every((v, i) => v === FILL_BYTE || v === p[i]);
    if (isPattern(expected) || isPattern(guestPattern)) {
      const all = notFill.count === d.length || b.destinationCpu.equals(expected) || b.destinationCpu.equals(guestPattern);
      out.push({
        kind: 'written-before-dma',
        message:
          `the destination already holds the pattern before the DMA (${all ? 'all of it' : `${notFill.count} of ${d.length} bytes, from data offset ${notFill.first}`}, read at ` +
          `${h(cpuAddress(b.armed.buffers.find((x) => x.role === 'destination') ?? d, notFill.first))} after the guest armed the run and before the host said go): ` +
          `these bytes are not the device's work (a driver that copies with the CPU?)`,
      });
    } else {
      out.push({
        kind: 'wrong-pages',
        message:
          `the reported destination pages are not where the device wrote: before the DMA they held other data, not the 0x${FILL_BYTE.toString(16)} fill ` +
          `the driver puts in its destination (${notFill.count} of ${d.length} bytes, first at data offset ${notFill.first}: 0x${b.destinationCpu[notFill.first]!.toString(16)})`,
      });
    }
    return out;
  }
  // The pages held the fill; after the DMA, data of the right pattern in other pages than reported.
  const after = e.destinationCpu;
  if (!after.equals(expected)) {
    const m = misplacedPage(d, after, expected);
    if (m) {
      out.push({
        kind: 'wrong-pages',
        message:
          `the reported destination pages are not where the device wrote: they changed during the DMA, but reported page ${m.at} (${h(d.pages[m.at]!)}) ` +
          `holds the bytes of data page ${m.holds}, so the pages are not reported in the order (or at the places) the data went`,
      });
    }
  }
  return out;
}

/** The buffer, segment and data byte whose device address is iova, if any. */
function atDeviceAddress(buffers: BufferReport[], iova: number): { b: BufferReport; byte: number } | null {
  for (const b of buffers) {
    const s = b.segments.find((x) => x.device <= iova && iova < x.device + x.length);
    if (s) return { b, byte: s.offset + (iova - s.device) };
  }
  return null;
}

function deviceRange(b: BufferReport): string {
  const first = b.segments[0];
  const last = b.segments.at(-1);
  return first && last ? `${h(first.device)}..${h(last.device + last.length - 1)}` : 'none reported';
}

function iommuFinding(e: Evidence, f: IommuFaults): Finding {
  const n = f.accesses;
  const what =
    f.writes === n ? `device write${n > 1 ? 's' : ''}` : f.reads === n ? `device read${n > 1 ? 's' : ''}` : f.writes + f.reads === n ? `device accesses (${f.writes} writes, ${f.reads} reads)` : `device access${n > 1 ? 'es' : ''}`;
  const why =
    f.reason === 'not mapped' || f.reason?.startsWith('translation failure')
      ? 'nothing was mapped there when the device used it (a use after unmap, or a mapping shorter than the transfer)'
      : f.reason === 'no write permission'
        ? 'the mapping does not let the device write (mapped for the wrong direction)'
        : f.reason === 'no read permission'
          ? 'the mapping does not let the device read (mapped for the wrong direction)'
          : `the mapping did not allow it${f.reason ? ` (${f.reason})` : ''}`;
  const at = atDeviceAddress(e.result.buffers, f.firstIova);
  const where = at
    ? `IOVA ${h(f.firstIova)} is the ${at.b.role}'s device address for data byte ${at.byte} of ${at.b.length}`
    : `IOVA ${h(f.firstIova)} is in neither buffer's device addresses (${e.result.buffers.map((b) => `${b.role} ${deviceRange(b)}`).join(', ')})`;
  const kept = allBytes(e.destinationCpu, FILL_BYTE) ? `; the destination kept its 0x${FILL_BYTE.toString(16)} fill` : '';
  return {
    kind: 'iommu-fault',
    message: `the IOMMU blocked ${n} ${what} (first at IOVA ${h(f.firstIova)}, QEMU: "${f.line}"): ${where}; ${why}${kept}`,
  };
}

export function explain(e: Evidence): Finding[] {
  const findings: Finding[] = [];
  const os = e.result.os;

  // One finding per kind, naming the first instance and how many there were.
  const beyond = beyondMask(e.result.buffers, e.dmaMaskBits);
  if (beyond.length > 0) {
    const { b, s, i } = beyond[0]!;
    const more = beyond.length > 1 ? ` (and ${beyond.length - 1} more segments)` : '';
    findings.push({
      kind: 'beyond-dma-mask',
      message: `the ${b.role} segment ${i} was given device address ${h(s.device)}${more}, beyond the device's ${e.dmaMaskBits}-bit DMA mask; on hardware this DMA reaches another page`,
    });
  }
  if (e.clamps.length > 0) {
    const c = e.clamps[0]!;
    const times = e.clamps.reduce((n, x) => n + 1 + (x.more ?? 0), 0);
    const more = times > 1 ? `, ${times} times in all` : '';
    findings.push({
      kind: 'device-model-clamp',
      message: `QEMU clamped a DMA address from ${h(c.from)} to ${h(c.to)} ("${c.line.trim()}"${more}): the device was given an address it cannot reach`,
    });
  }
  if (e.iommuFaults) findings.push(iommuFinding(e, e.iommuFaults));
  const window = e.before ? explainWindow(e, e.before) : [];
  findings.push(...window);
  // Pages that are not where the device wrote say nothing about syncs or seeds: stop there. Nor do bytes
  // the IOMMU kept the device from writing (or reading): a destination that kept its fill is no stale bounce.
  if (!e.mismatch || window.some((f) => f.kind === 'wrong-pages') || e.iommuFaults) return findings;

  const d = e.destination;
  const expected = pattern(e.expectSeed, d.length);
  const guestSeed = e.result.scenario.seed;

  if (d.bounced && e.destinationDevice?.equals(expected)) {
    const first = e.mismatch.firstOffset;
    const seg = d.segments.find((s) => s.offset <= first && first < s.offset + s.length) ?? d.segments[0]!;
    findings.push({
      kind: 'stale-client-buffer',
      message:
        `stale data in the client buffer: the device wrote the right bytes to the bounce buffer at ${h(seg.device)}, ` +
        `but they never reached the client buffer at ${h(cpuAddress(d, seg.offset))}; the driver did not hand the buffer back ` +
        `to the CPU with ${handBackCall(os)} before reading it (${callsMade(e.result)})`,
    });
  } else if (guestSeed !== e.expectSeed && e.destinationCpu.equals(pattern(guestSeed, d.length))) {
    findings.push({
      kind: 'wrong-seed',
      message: `the destination holds the pattern of seed ${guestSeed}, the seed the guest used, not the expected seed ${e.expectSeed}`,
    });
  } else if (allBytes(e.destinationCpu, FILL_BYTE) && (!e.destinationDevice || allBytes(e.destinationDevice, FILL_BYTE))) {
    findings.push({
      kind: 'never-written',
      message: `the destination still holds its 0x${FILL_BYTE.toString(16)} fill: the device wrote nothing there (bus mastering off, a dead device, or DMA to another address)`,
    });
  } else if (e.source?.bounced && e.sourceCpu?.equals(expected) && e.sourceDevice && !e.sourceDevice.equals(expected)) {
    findings.push({
      kind: 'stale-source-bounce',
      message:
        `the device read a stale bounce buffer at ${h(e.source.segments[0]!.device)}: the client source at ${h(cpuAddress(e.source, 0))} ` +
        `holds the right bytes, but the CPU wrote them after mapping, without ${handOverCall(os)} (${callsMade(e.result)})`,
    });
  } else if (allBytes(e.destinationCpu, STALE_BYTE)) {
    findings.push({
      kind: 'stale-source',
      message: `the destination holds the source's 0x${STALE_BYTE.toString(16)} pre-fill: the device copied the source before the CPU wrote the pattern into it`,
    });
  } else {
    findings.push({ kind: 'mismatch', message: 'the destination differs from the expected pattern, with no recognised cause' });
  }
  return findings;
}
