// Turn the bytes the host read into a cause a driver engineer recognises. Each rule looks at
// evidence only the host gathered (guest RAM, QEMU's own messages); the guest's word is used to
// name things, never to judge them.
import type { BufferReport, RunResult, Segment } from '../contract/result.js';
import { FILL_BYTE, pattern, STALE_BYTE } from '../contract/pattern.js';
import { allBytes, type Mismatch } from './compare.js';
import { cpuAddress } from './guest-buffer.js';

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
  | 'inconsistent-report';

export interface Finding {
  kind: FindingKind;
  message: string;
}

export interface ClampMessage {
  from: number;
  to: number;
  line: string;
}

export interface Evidence {
  result: RunResult;
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
    const more = e.clamps.length > 1 ? `, ${e.clamps.length} times in all` : '';
    findings.push({
      kind: 'device-model-clamp',
      message: `QEMU clamped a DMA address from ${h(c.from)} to ${h(c.to)} ("${c.line.trim()}"${more}): the device was given an address it cannot reach`,
    });
  }
  if (!e.mismatch) return findings;

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
