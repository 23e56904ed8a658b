// The explanation rules on synthetic evidence; the same rules run on real guest memory in
// specs/e2e (negative controls), so these fakes only pin down the wording and the order of the rules.
import { expect } from 'chai';
import { FILL_BYTE, pattern, STALE_BYTE } from '../../harness/contract/pattern.js';
import type { BufferReport, RunResult } from '../../harness/contract/result.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { compareBytes, describeMismatch } from '../../harness/dma/compare.js';
import { explain, type Evidence } from '../../harness/dma/explain.js';

const size = 4096;
const buf = (role: 'source' | 'destination', cpu: number, device: number): BufferReport => ({
  role, kind: 'client', offset: 0, length: size, bounced: cpu !== device, translated: false, pages: [cpu],
  segments: [{ offset: 0, length: 4095, device }, { offset: 4095, length: 1, device: device + 4095 }],
});

function evidence(over: Partial<Evidence> & { destinationCpu: Buffer }, seed = 5): Evidence {
  const destination = over.destination ?? buf('destination', 0x200000, 0x200000);
  const result: RunResult = {
    ok: true, os: 'linux', driver: { name: 'edudma', version: '0', api: 'linux-dma-api', dmaMaskBits: 28 },
    scenario: makeScenario({ size, seed }), buffers: [over.source ?? buf('source', 0x100000, 0x100000), destination],
    calls: [{ name: 'dma_map_single', count: 2 }], timings: {}, error: null,
  };
  return {
    result, expectSeed: seed, destination, mismatch: compareBytes(pattern(seed, size), over.destinationCpu),
    destinationDevice: null, sourceCpu: null, sourceDevice: null, clamps: [], dmaMaskBits: 28, ...over,
  };
}

describe('dma: explaining a mismatch', () => {
  it('finds nothing when the bytes are right', () => {
    expect(explain(evidence({ destinationCpu: pattern(5, size) }))).to.deep.equal([]);
  });

  it('names stale data in the client buffer when only the bounce buffer holds the pattern', () => {
    const destination = buf('destination', 0x200000, 0xb200000);
    const [f] = explain(evidence({ destination, destinationCpu: Buffer.alloc(size, FILL_BYTE), destinationDevice: pattern(5, size) }));
    expect(f!.kind).to.equal('stale-client-buffer');
    expect(f!.message).to.match(/bounce buffer at 0xb200000/).and.match(/client buffer at 0x200000/).and.match(/dma_sync_single_for_cpu/);
  });

  it('names the wrong seed when the data is the pattern of the seed the guest used', () => {
    const e = evidence({ destinationCpu: pattern(5, size) }, 5);
    const [f] = explain({ ...e, expectSeed: 6, mismatch: compareBytes(pattern(6, size), e.destinationCpu) });
    expect(f!.kind).to.equal('wrong-seed');
    expect(f!.message).to.contain('seed 5').and.contain('seed 6');
  });

  it('names a destination the device never wrote', () => {
    expect(explain(evidence({ destinationCpu: Buffer.alloc(size, FILL_BYTE) }))[0]!.kind).to.equal('never-written');
  });

  it('names a stale source bounce buffer', () => {
    const source = buf('source', 0x100000, 0xb100000);
    const [f] = explain(evidence({ source, destinationCpu: Buffer.alloc(size, STALE_BYTE), sourceCpu: pattern(5, size), sourceDevice: Buffer.alloc(size, STALE_BYTE) }));
    expect(f!.kind).to.equal('stale-source-bounce');
    expect(f!.message).to.contain('dma_sync_single_for_device');
  });

  it('reports an address beyond the DMA mask and QEMU clamping even when the data is right', () => {
    const destination = buf('destination', 0x200000, 0x10200000);
    const kinds = explain(evidence({ destination, destinationCpu: pattern(5, size), clamps: [{ from: 0x10200000, to: 0x200000, line: 'EDU: clamping DMA 0x0000000010200000 to 0x0000000000200000!' }] })).map((f) => f.kind);
    expect(kinds).to.include('beyond-dma-mask').and.include('device-model-clamp');
  });

  it('says each kind of address fault once, with how often it happened', () => {
    const destination = buf('destination', 0x200000, 0x10200000);
    const clamp = (a: number) => ({ from: a, to: a & 0xfffffff, line: `EDU: clamping DMA ${a} to ${a & 0xfffffff}!` });
    const findings = explain(evidence({ destination, destinationCpu: pattern(5, size), clamps: [clamp(0x10200000), clamp(0x10200fff)] }));
    expect(findings.map((f) => f.kind)).to.deep.equal(['beyond-dma-mask', 'device-model-clamp']);
    expect(findings[0]!.message).to.contain('0x10200000 (and 1 more segments)');
    expect(findings[1]!.message).to.contain('2 times in all');
  });

  it('says where bytes differ', () => {
    const actual = pattern(5, size);
    actual[10] ^= 1;
    actual.fill(0, 100, 200);
    const m = compareBytes(pattern(5, size), actual)!;
    expect(m.firstOffset).to.equal(10);
    expect(m.ranges[0]).to.deep.equal({ start: 10, end: 11 });
    expect(m.differing).to.be.within(100, 101);
    expect(describeMismatch(m)).to.match(/of 4096 bytes differ, first at offset 10/);
    expect(m.excerpt.expected).to.not.equal(m.excerpt.actual);
  });
});

describe('dma: the evidence of the DMA window (armed, then go)', () => {
  // A 3-page destination at offset 0, so pages can be misplaced.
  const n = 3 * 4096;
  const pages = (role: 'source' | 'destination', first: number): BufferReport => ({
    role, kind: 'client', offset: 0, length: n, bounced: false, translated: false, pages: [first, first + 0x1000, first + 0x2000],
    segments: [0, 1, 2].map((k) => ({ offset: k * 4096, length: 4096, device: first + k * 0x1000 })).flatMap((s) => [{ ...s, length: 4095 }, { offset: s.offset + 4095, length: 1, device: s.device + 4095 }]),
  });
  const src = pages('source', 0x100000);
  const dst = pages('destination', 0x200000);
  function windowEvidence(o: { before?: Buffer; sourceBefore?: Buffer; after?: Buffer; armedDst?: BufferReport; destination?: BufferReport }): Evidence {
    const after = o.after ?? pattern(5, n);
    const destination = o.destination ?? dst;
    const result: RunResult = {
      ok: true, os: 'linux', driver: { name: 'edudma', version: '0', api: 'linux-dma-api', dmaMaskBits: 28 },
      scenario: makeScenario({ size: n, seed: 5 }), handle: 3, buffers: [src, destination], calls: [], timings: {}, error: null,
    };
    return {
      result, expectSeed: 5, destination, mismatch: compareBytes(pattern(5, n), after), destinationCpu: after,
      destinationDevice: null, sourceCpu: null, sourceDevice: null, clamps: [], dmaMaskBits: 28,
      before: {
        armed: { handle: 3, scenario: result.scenario, buffers: [{ ...src, segments: [] }, { ...(o.armedDst ?? destination), segments: [] }] },
        destinationCpu: o.before ?? Buffer.alloc(n, FILL_BYTE),
        sourceCpu: o.sourceBefore ?? pattern(5, n),
      },
    };
  }

  it('fill before, pattern after, same pages: nothing to say', () => {
    expect(explain(windowEvidence({}))).to.deep.equal([]);
  });

  it('the pattern already in the destination before the DMA: written-before-dma, even though the bytes after are right', () => {
    const f = explain(windowEvidence({ before: pattern(5, n) }));
    expect(f.map((x) => x.kind)).to.deep.equal(['written-before-dma']);
    expect(f[0]!.message).to.match(/already holds the pattern before the DMA \(all of it/).and.match(/copies with the CPU/);
  });

  it('other data in the reported pages before the DMA: wrong-pages, and no sync explanation after it', () => {
    const f = explain(windowEvidence({ before: Buffer.alloc(n, 0x11), after: Buffer.alloc(n, 0x11) }));
    expect(f.map((x) => x.kind)).to.deep.equal(['wrong-pages']);
    expect(f[0]!.message).to.match(/not where the device wrote: before the DMA they held other data/);
  });

  it('the data of another page in a reported page after the DMA: wrong-pages (pages reported out of order)', () => {
    const p = pattern(5, n);
    const after = Buffer.concat([p.subarray(8192), p.subarray(4096, 8192), p.subarray(0, 4096)]);
    const f = explain(windowEvidence({ after }));
    expect(f.map((x) => x.kind)).to.deep.equal(['wrong-pages']);
    expect(f[0]!.message).to.match(/reported page 0 \(0x200000\) holds the bytes of data page 2/);
  });

  it('the fill left after the DMA is not misplaced data: the usual explanations follow', () => {
    const f = explain(windowEvidence({ after: Buffer.alloc(n, FILL_BYTE) }));
    expect(f.map((x) => x.kind)).to.deep.equal(['never-written']);
  });

  it('a source without the pattern when the device was told to go: source-not-ready', () => {
    const f = explain(windowEvidence({ sourceBefore: Buffer.alloc(n, STALE_BYTE) }));
    expect(f.map((x) => x.kind)).to.deep.equal(['source-not-ready']);
    expect(f[0]!.message).to.match(/pre-fill when the device was told to go/);
  });

  it('pages that changed between the armed line and the result: pages-changed', () => {
    const moved = { ...dst, pages: [0x200000, 0x300000, 0x202000] };
    const f = explain(windowEvidence({ destination: moved, armedDst: dst }));
    expect(f.map((x) => x.kind)).to.include('pages-changed');
    expect(f.find((x) => x.kind === 'pages-changed')!.message).to.match(/destination's page 1 was 0x201000 when armed, 0x300000 in the result/);
  });
});
