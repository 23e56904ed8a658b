// Does a run report hold together? The guest only says where its buffers are; a report that names the
// source's page as the destination's would let the host read the pattern the CPU wrote and call it the
// device's work. So before the bytes are judged, the pages and device addresses a guest reported must be
// consistent with each other and with the guest the host booted. Pure: no memory is read here.
// A translated buffer's device addresses are IOVAs: they are never compared with CPU pages (an IOVA may
// equal some page's address by chance), only with other IOVAs.
import { PAGE_SIZE } from './scenario.js';
import type { BufferReport, RunResult } from './result.js';

export type ConsistencyRule =
  | 'page-reported-twice'
  | 'buffers-share-a-page'
  | 'bounce-page-is-a-client-page'
  | 'bounce-ranges-overlap'
  | 'bounced-on-a-direct-guest'
  | 'device-address-is-not-the-cpu-address'
  | 'translated-without-an-iommu'
  | 'success-with-a-failed-call';

export interface Violation {
  rule: ConsistencyRule;
  /** One line naming the rule's subject and the addresses. */
  message: string;
}

export interface ConsistencyOptions {
  /** The host booted a guest where nothing bounces (the direct variant): every device address is a CPU address. */
  direct: boolean;
  /** That guest's name in the message (default "direct"; a declared variant with swiotlb off has its own). */
  guest?: string;
  /** The device's DMA mask: a device address beyond it is judged by the beyond-mask finding instead. */
  dmaMaskBits: number;
  /**
   * Whether the host put the device behind an IOMMU; undefined when it cannot tell. Without one, a buffer
   * that says translated would dodge the checks that compare device addresses with CPU pages.
   */
  iommu?: boolean;
  /**
   * How long the guest's bounce mappings live (GuestSession.bounceMappings): 'concurrent' (Linux swiotlb,
   * the default: all of a run's at once) or 'per-window' (Windows map registers: a transfer larger than
   * the registers granted runs window by window, each window reusing them). Per window, only segments of
   * the same data bytes are live together, so only those must not overlap the other buffer's.
   */
  bounceMappings?: 'concurrent' | 'per-window';
}

const h = (n: number): string => `0x${n.toString(16)}`;

/** Pages (page-aligned addresses) that [start, start + length) touches. */
function pagesOf(start: number, length: number): number[] {
  const first = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
  const out: number[] = [];
  for (let p = first; p < start + length; p += PAGE_SIZE) out.push(p);
  return out;
}

/** The CPU address of each data byte's page run: [dataOffset, cpu] where a new physically contiguous run starts. */
function cpuAt(b: BufferReport, dataOffset: number): number {
  const at = b.offset + dataOffset;
  return b.pages[Math.floor(at / PAGE_SIZE)]! + (at % PAGE_SIZE);
}

export function checkReportConsistency(r: RunResult, opts: ConsistencyOptions): Violation[] {
  const out: Violation[] = [];
  const add = (rule: ConsistencyRule, message: string): void => void out.push({ rule, message });
  const name = (b: BufferReport): string => b.role;

  for (const b of r.buffers) {
    const seen = new Set<number>();
    for (const p of b.pages) {
      if (seen.has(p)) add('page-reported-twice', `${name(b)} page ${h(p)} is reported twice`);
      seen.add(p);
    }
  }

  const client = new Map<number, BufferReport>();
  for (const b of r.buffers) {
    for (const p of b.pages) {
      const other = client.get(p);
      if (other && other !== b) add('buffers-share-a-page', `${name(b)} page ${h(p)} is also the ${name(other)}'s`);
      client.set(p, b);
    }
  }

  const limit = 2 ** opts.dmaMaskBits;
  // Bounce ranges are compared by byte: swiotlb's slots are 2 KiB, so two mappings may share a page.
  const bounceRanges: Array<{ b: BufferReport; start: number; end: number; data: number; dataEnd: number }> = [];
  const together = (data: number, dataEnd: number, o: { data: number; dataEnd: number }): boolean =>
    opts.bounceMappings !== 'per-window' || (data < o.dataEnd && o.data < dataEnd);
  const sameSpace = (a: BufferReport, b: BufferReport): boolean => a.translated === b.translated;
  for (const b of r.buffers) {
    if (b.translated && opts.iommu === false) add('translated-without-an-iommu', `the ${name(b)} says its device addresses are IOVAs, but the host booted the guest without an IOMMU`);
    if (b.bounced && opts.direct) add('bounced-on-a-direct-guest', `the ${name(b)} reports bounced device addresses on the ${opts.guest ?? 'direct'} guest, where nothing bounces`);
    b.segments.forEach((s, i) => {
      if (s.device + s.length > limit) return; // the beyond-mask finding fails it
      if (b.bounced) {
        for (const p of b.translated ? [] : pagesOf(s.device, s.length)) {
          const owner = client.get(p);
          if (owner) add('bounce-page-is-a-client-page', `the ${name(b)}'s bounce page ${h(p)} (segment ${i}) is a client page of the ${name(owner)}`);
        }
        const start = s.device;
        const end = s.device + s.length;
        for (const o of bounceRanges) {
          if (o.b !== b && sameSpace(o.b, b) && start < o.end && o.start < end && together(s.offset, s.offset + s.length, o)) add('bounce-ranges-overlap', `the ${name(b)}'s bounce bytes ${h(start)}..${h(end - 1)} overlap the ${name(o.b)}'s at ${h(Math.max(start, o.start))}`);
        }
        bounceRanges.push({ b, start, end, data: s.offset, dataEnd: s.offset + s.length });
        return;
      }
      // Not bounced: the device must be given the CPU address of each byte the segment claims (an IOVA is
      // translated to it, which only the guest can see).
      if (b.translated) return;
      for (let k = 0; k < s.length; ) {
        const cpu = cpuAt(b, s.offset + k);
        if (s.device + k !== cpu) {
          add('device-address-is-not-the-cpu-address', `${name(b)} segment ${i}: data offset ${s.offset + k} is at CPU address ${h(cpu)}, but the device was given ${h(s.device + k)}`);
          break;
        }
        k += PAGE_SIZE - ((b.offset + s.offset + k) % PAGE_SIZE); // next page boundary in the data
      }
    });
  }

  if (r.ok) {
    for (const c of r.calls) {
      if (c.status !== undefined && c.status < 0) add('success-with-a-failed-call', `the result claims success, but ${c.name} returned status ${c.status}`);
    }
  }
  // One line per rule and subject is enough to name the lie.
  return out.filter((v, i) => out.findIndex((w) => w.message === v.message) === i);
}
