// A report that does not hold together is a failure naming the rule and the addresses, never a pass.
// Each lie here is one a buggy or hostile guest can tell; the honest reports are shaped as the
// reference guest's are (segments cut at page ends and at 4095 bytes).
import { expect } from 'chai';
import { checkReportConsistency, type ConsistencyOptions } from '../../harness/contract/report-consistency.js';
import type { BufferReport, RunResult } from '../../harness/contract/result.js';
import { makeScenario } from '../../harness/contract/scenario.js';

const P = 4096;

/** A buffer the way edudma reports it; `bounceAt` gives bounced device addresses from that page on. */
function buffer(role: BufferReport['role'], pages: number[], offset: number, length: number, bounceAt?: number): BufferReport {
  const segments: BufferReport['segments'] = [];
  for (let at = 0; at < length; ) {
    const inPage = (offset + at) % P;
    const len = Math.min(length - at, P - inPage, 4095);
    const cpu = pages[Math.floor((offset + at) / P)]! + inPage;
    segments.push({ offset: at, length: len, device: bounceAt === undefined ? cpu : bounceAt + offset + at });
    at += len;
  }
  return { role, kind: 'client', offset, length, bounced: bounceAt !== undefined, translated: false, pages, segments };
}

function result(buffers: BufferReport[], calls: RunResult['calls'] = [{ name: 'dma_map_single', count: 2, status: 0 }]): RunResult {
  return { ok: true, os: 'linux', driver: { name: 'edudma', version: '1', api: 'linux-dma' }, scenario: makeScenario({ size: 12 * 1024, offset: 7 }), buffers, calls, timings: {}, error: null };
}

const direct: ConsistencyOptions = { direct: true, dmaMaskBits: 28 };
const bounce: ConsistencyOptions = { direct: false, dmaMaskBits: 28 };
const SRC = [0x66a5000, 0x66a6000, 0x66a7000, 0x66a8000];
const DST = [0x6697000, 0x6698000, 0x6699000, 0x669a000];
const honestDirect = (): RunResult => result([buffer('source', SRC, 7, 12 * 1024), buffer('destination', DST, 7, 12 * 1024)]);
const honestBounce = (): RunResult => result([buffer('source', SRC, 7, 12 * 1024, 0xb200000), buffer('destination', DST, 7, 12 * 1024, 0xb210000)]);
const rules = (r: RunResult, o: ConsistencyOptions) => checkReportConsistency(r, o).map((v) => v.rule);
const messages = (r: RunResult, o: ConsistencyOptions) => checkReportConsistency(r, o).map((v) => v.message);

describe('contract: a run report must hold together before its bytes are judged', () => {
  it('honest reports hold, direct and bounced', () => {
    expect(checkReportConsistency(honestDirect(), direct)).to.deep.equal([]);
    expect(checkReportConsistency(honestBounce(), bounce)).to.deep.equal([]);
  });

  it("destination pages reported as the source's: named with the page", () => {
    const r = result([buffer('source', SRC, 7, 12 * 1024), buffer('destination', SRC, 7, 12 * 1024)]);
    expect(messages(r, direct)).to.include("destination page 0x66a5000 is also the source's");
    expect(rules(honestBounceWith((b) => (b[1] = buffer('destination', SRC, 7, 12 * 1024, 0xb210000))), bounce)).to.include('buffers-share-a-page');
  });

  it("destination pages reported as the bounce buffer's", () => {
    const bouncePages = [0xb200000, 0xb201000, 0xb202000, 0xb203000];
    const r = honestBounceWith((b) => (b[1] = buffer('destination', bouncePages, 7, 12 * 1024, 0xb210000)));
    expect(messages(r, bounce)).to.include("the source's bounce page 0xb200000 (segment 0) is a client page of the destination");
  });

  it('pages shifted by one, or reversed: the device was given other addresses than the CPU pages (direct)', () => {
    const shifted = result([buffer('source', SRC, 7, 12 * 1024), { ...buffer('destination', DST, 7, 12 * 1024), pages: DST.map((p) => p + P) }]);
    expect(messages(shifted, direct)[0]).to.equal('destination segment 0: data offset 0 is at CPU address 0x6698007, but the device was given 0x6697007');
    const reversed = result([buffer('source', SRC, 7, 12 * 1024), { ...buffer('destination', DST, 7, 12 * 1024), pages: [...DST].reverse() }]);
    expect(rules(reversed, direct)).to.include('device-address-is-not-the-cpu-address');
  });

  it('a page reported twice', () => {
    const r = result([buffer('source', SRC, 7, 12 * 1024), { ...buffer('destination', DST, 7, 12 * 1024), pages: [DST[0]!, DST[0]!, DST[2]!, DST[3]!] }]);
    expect(messages(r, direct)).to.include('destination page 0x6697000 is reported twice');
  });

  it('segments that point into the other buffer', () => {
    const d = buffer('destination', DST, 7, 12 * 1024);
    d.segments[1] = { ...d.segments[1]!, device: SRC[1]! };
    expect(rules(result([buffer('source', SRC, 7, 12 * 1024), d]), direct)).to.deep.equal(['device-address-is-not-the-cpu-address']);
    const b = buffer('destination', DST, 7, 12 * 1024, 0xb210000);
    b.segments[1] = { ...b.segments[1]!, device: SRC[1]! };
    expect(rules(result([buffer('source', SRC, 7, 12 * 1024, 0xb200000), b]), bounce)).to.include('bounce-page-is-a-client-page');
  });

  it('bounce bytes the source and the destination share; a shared page is fine (swiotlb slots are 2 KiB)', () => {
    const r = result([buffer('source', SRC, 7, 12 * 1024, 0xb200000), buffer('destination', DST, 7, 12 * 1024, 0xb200000)]);
    expect(messages(r, bounce)).to.include("the destination's bounce bytes 0xb200007..0xb200fff overlap the source's at 0xb200007");
    // As the reference guest reported it: the source's last 7 bytes and the destination's first slot in one page.
    const s = buffer('source', SRC, 5, 12288, 0xb201000 - 5);
    const d = buffer('destination', DST, 5, 12288, 0xb204800 - 5);
    expect(s.segments.at(-1)!.device + s.segments.at(-1)!.length).to.be.below(0xb204800);
    expect(checkReportConsistency(result([s, d]), bounce)).to.deep.equal([]);
  });

  it('bounced addresses on the guest the host booted without bouncing', () => {
    expect(messages(honestBounce(), direct)).to.include('the source reports bounced device addresses on the direct guest, where nothing bounces');
    // A declared variant with swiotlb off is such a guest too, and is named.
    expect(messages(honestBounce(), { ...direct, guest: 'no-swiotlb' })).to.include('the source reports bounced device addresses on the no-swiotlb guest, where nothing bounces');
  });

  it("success claimed while a DMA call's status says it failed", () => {
    const r = result(honestDirect().buffers, [{ name: 'dma_map_single', count: 2, status: -12 }]);
    expect(messages(r, direct)).to.deep.equal(['the result claims success, but dma_map_single returned status -12']);
    expect(checkReportConsistency({ ...r, ok: false }, direct)).to.deep.equal([]);
  });

  it('a device address beyond the DMA mask is left to the beyond-mask finding', () => {
    const d = buffer('destination', DST, 7, 12 * 1024);
    d.segments[0] = { ...d.segments[0]!, device: d.segments[0]!.device + 2 ** 28 };
    expect(checkReportConsistency(result([buffer('source', SRC, 7, 12 * 1024), d]), direct)).to.deep.equal([]);
  });

  describe('map registers reused window by window (Windows edudma: bounceMappings per-window)', () => {
    // What `dmahil explore` found on the NT model: a 61442-byte round trip at offset 4095 needs 17 + 17
    // map registers of 32; the second window maps each buffer's last byte into registers the first
    // window's source used. The same report from a driver whose mappings are all live at once is a lie.
    const windowed = (): RunResult => {
      const src = buffer('source', SRC, 7, 12 * 1024, 0x100000);
      const dst = buffer('destination', DST, 7, 12 * 1024, 0x110000);
      const last = dst.segments.length - 1;
      dst.segments[last] = { ...dst.segments[last]!, device: 0x100000 + 7 }; // the source's first bytes' register
      return result([src, dst]);
    };
    const perWindow: ConsistencyOptions = { ...bounce, bounceMappings: 'per-window' };

    it('across windows (other data bytes), reused registers are no overlap', () => {
      expect(checkReportConsistency(windowed(), perWindow)).to.deep.equal([]);
      expect(rules(windowed(), bounce)).to.include('bounce-ranges-overlap');
    });

    it('within a window (the same data bytes), both buffers in the same registers is still a lie', () => {
      const r = result([buffer('source', SRC, 7, 12 * 1024, 0x100000), buffer('destination', DST, 7, 12 * 1024, 0x100000)]);
      expect(rules(r, perWindow)).to.include('bounce-ranges-overlap');
    });
  });

  describe('translated buffers (device addresses are IOVAs)', () => {
    // As the iommu guest reported them (iommu-notes.md): IOVAs top-down under the 28-bit mask.
    const iova = (role: BufferReport['role'], pages: number[], at: number, bounced = false): BufferReport => ({ ...buffer(role, pages, 7, 12 * 1024, at), bounced, translated: true });
    const translated = (): RunResult => result([iova('source', SRC, 0xfffc000), iova('destination', DST, 0xfff8000)]);

    it('an IOVA that is not the CPU address is no lie, on a guest where nothing bounces', () => {
      expect(checkReportConsistency(translated(), direct)).to.deep.equal([]);
      // The same addresses untranslated are one.
      const plain = result([buffer('source', SRC, 7, 12 * 1024), { ...iova('destination', DST, 0xfff8000), translated: false }]);
      expect(rules(plain, direct)).to.include('device-address-is-not-the-cpu-address');
    });

    it("an IOVA equal to a client page's address is not that page (bounced behind the IOMMU)", () => {
      const r = result([iova('source', SRC, 0xfffc000, true), iova('destination', DST, SRC[0]!, true)]);
      expect(rules(r, bounce)).to.not.include('bounce-page-is-a-client-page');
      const untranslated = result([buffer('source', SRC, 7, 12 * 1024, 0xfffc000), buffer('destination', DST, 7, 12 * 1024, SRC[0]!)]);
      expect(rules(untranslated, bounce)).to.include('bounce-page-is-a-client-page');
    });

    it('two translated buffers with overlapping IOVAs are still a lie; an IOVA and a bounce address are in different spaces', () => {
      expect(rules(result([iova('source', SRC, 0xfff8000, true), iova('destination', DST, 0xfff8000, true)]), bounce)).to.include('bounce-ranges-overlap');
      expect(rules(result([iova('source', SRC, 0xfff8000, true), buffer('destination', DST, 7, 12 * 1024, 0xfff8000)]), bounce)).to.not.include('bounce-ranges-overlap');
    });

    it('translated on a guest the host booted without an IOMMU: a lie that would dodge the address checks', () => {
      expect(messages(translated(), { ...direct, iommu: false })).to.deep.equal([
        'the source says its device addresses are IOVAs, but the host booted the guest without an IOMMU',
        'the destination says its device addresses are IOVAs, but the host booted the guest without an IOMMU',
      ]);
      expect(checkReportConsistency(translated(), { ...direct, iommu: true })).to.deep.equal([]);
    });

    it('an IOVA beyond the DMA mask is still left to the beyond-mask finding (edu clamps before it translates)', () => {
      const d = iova('destination', DST, 0xfff8000);
      d.segments[0] = { ...d.segments[0]!, device: d.segments[0]!.device + 2 ** 28 };
      expect(checkReportConsistency(result([iova('source', SRC, 0xfffc000), d]), direct)).to.deep.equal([]);
    });
  });
});

function honestBounceWith(edit: (b: BufferReport[]) => void): RunResult {
  const r = honestBounce();
  edit(r.buffers);
  return r;
}
