// The explanation rules on synthetic evidence; the same rules run on real guest memory in
// specs/e2e (negative controls), so these fakes only pin down the wording and the order of the rules.
import { expect } from 'chai';
import { FILL_BYTE, pattern, STALE_BYTE } from '../../harness/contract/pattern.js';
import type { BufferReport, RunResult } from '../../harness/contract/result.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { compareBytes, describeMismatch } from '../../harness/dma/compare.js';
import { explain, type Evidence } from '../../harness/dma/explain.js';
import { iovaNote, memoryExcerpts } from '../../harness/dma/excerpts.js';
import { readThroughDevice } from '../../harness/dma/guest-buffer.js';
import { gatherIommuFaults } from '../../harness/dma/iommu-faults.js';
import { DeviceModelLog, parseDeviceModelLine } from '../../harness/machine/device-messages.js';

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

describe('dma: device accesses the IOMMU refused', () => {
  // The use-after-unmap lines of iommu-notes.md (intel-iommu, QEMU 7.2): the destination's IOVA 0xfffe000.
  const SLPTE = 'qemu-system-x86_64: vtd_iova_to_slpte: detected slpte permission error (iova=0xfffe000, level=0x1, slpte=0x0, write=1, pasid=0xffffffff)';
  const TRANSLATE = 'qemu-system-x86_64: vtd_iommu_translate: detected translation failure (dev=00:02:00, iova=0xfffe000)';
  const invalid = (a: number, access = 'write') => `Invalid ${access} at addr 0x${a.toString(16).toUpperCase()}, size 4, region '(null)', reason: rejected`;
  const iovaBuf = (role: 'source' | 'destination', cpu: number, device: number): BufferReport => ({ ...buf(role, cpu, device), bounced: false, translated: true });
  /** What a QEMU process kept of these lines (a 4 KiB refused write: 1024 lines, folded). */
  function logged(lines: string[], at = 1000) {
    const log = new DeviceModelLog();
    for (const l of lines) log.add(parseDeviceModelLine(l, 'stderr', at)!);
    return log.since(at);
  }
  const useAfterUnmap = () => logged([SLPTE, TRANSLATE, ...Array.from({ length: 1024 }, (_, i) => invalid(0xfffe000 + 4 * i))]);
  const translatedEvidence = (over: Partial<Evidence> & { destinationCpu: Buffer }): Evidence =>
    evidence({ source: iovaBuf('source', 0x66d6000, 0xffff000), destination: iovaBuf('destination', 0x66d9000, 0xfffe000), ...over });

  it('counts the refused accesses from the per-access lines, quoting the first line QEMU printed', () => {
    const f = gatherIommuFaults(useAfterUnmap(), false)!;
    expect(f).to.deep.include({ accesses: 1024, writes: 1024, reads: 0, firstIova: 0xfffe000, line: SLPTE, reason: 'not mapped' });
    // With -trace vtd_dmar_fault too, each access prints twice: counted once.
    const traced = logged([SLPTE, ...Array.from({ length: 1024 }, (_, i) => [`vtd_dmar_fault sid 0x10 fault 5 addr 0x${(0xfffe000 + 4 * i).toString(16)} write 1`, invalid(0xfffe000 + 4 * i)]).flat()]);
    expect(gatherIommuFaults(traced, false)).to.deep.include({ accesses: 1024, writes: 1024 });
  });

  it("an access nothing answered is an IOMMU fault only behind an IOMMU (without one it is a DMA into a hole)", () => {
    const later = logged([invalid(0xfffe000), invalid(0xfffe004)]); // a second fault in the same QEMU: no vtd_* line again
    expect(gatherIommuFaults(later, false)).to.equal(undefined);
    expect(gatherIommuFaults(later, true)).to.deep.include({ accesses: 2, firstIova: 0xfffe000, line: invalid(0xfffe000) });
    expect(gatherIommuFaults(logged(["Invalid read at addr 0x1001, size 4, region 'edu-mmio', reason: unaligned"]), true)).to.equal(undefined);
  });

  it('wins over the stale explanations: a destination that kept its fill because the IOMMU blocked the writes', () => {
    const e = translatedEvidence({ destinationCpu: Buffer.alloc(size, FILL_BYTE), iommuFaults: gatherIommuFaults(useAfterUnmap(), true)! });
    const findings = explain(e);
    expect(findings.map((f) => f.kind)).to.deep.equal(['iommu-fault']);
    expect(findings[0]!.message)
      .to.contain('the IOMMU blocked 1024 device writes (first at IOVA 0xfffe000, QEMU: "qemu-system-x86_64: vtd_iova_to_slpte: detected slpte permission error')
      .and.contain("IOVA 0xfffe000 is the destination's device address for data byte 0 of 4096")
      .and.contain('a use after unmap, or a mapping shorter than the transfer')
      .and.contain('kept its 0xa5 fill');
    // The same bytes without the faults: never-written, as before.
    expect(explain(translatedEvidence({ destinationCpu: Buffer.alloc(size, FILL_BYTE) })).map((f) => f.kind)).to.deep.equal(['never-written']);
  });

  it('a short mapping: names the byte of the data the refused write was for', () => {
    const lines = ['qemu-system-x86_64: vtd_iova_to_slpte: detected slpte permission error (iova=0xffff000, level=0x1, slpte=0x0, write=1, pasid=0xffffffff)', invalid(0xffff000)];
    const destination: BufferReport = { ...iovaBuf('destination', 0x66d9000, 0xfffe000), length: 8192, pages: [0x66d9000, 0x66da000], segments: [{ offset: 0, length: 4096, device: 0xfffe000 }, { offset: 4096, length: 4096, device: 0xffff000 }] };
    const got = Buffer.concat([pattern(5, 8192).subarray(0, 4096), Buffer.alloc(4096, FILL_BYTE)]);
    const e: Evidence = { ...translatedEvidence({ destinationCpu: Buffer.alloc(size, FILL_BYTE) }), destination, destinationCpu: got, mismatch: compareBytes(pattern(5, 8192), got), iommuFaults: gatherIommuFaults(logged(lines), true)! };
    e.result = { ...e.result, buffers: [iovaBuf('source', 0x66d6000, 0xfff0000), destination] };
    const [f, ...rest] = explain(e);
    expect(rest).to.deep.equal([]);
    expect(f!.message).to.contain('the IOMMU blocked 1 device write (first at IOVA 0xffff000').and.contain('data byte 4096 of 8192').and.not.contain('kept its');
  });

  it('the wrong direction: a mapping without write permission; an IOVA outside both buffers is said to be', () => {
    const perm = 'qemu-system-x86_64: vtd_iova_to_slpte: detected slpte permission error (iova=0xffff000, level=0x1, slpte=0x66de001, write=1, pasid=0xffffffff)';
    const e = translatedEvidence({ destinationCpu: Buffer.alloc(size, FILL_BYTE), iommuFaults: gatherIommuFaults(logged([perm, invalid(0xffff000)]), true)! });
    expect(explain(e)[0]!.message).to.contain("the source's device address for data byte 0").and.contain('mapped for the wrong direction');
    const elsewhere = translatedEvidence({ destinationCpu: Buffer.alloc(size, FILL_BYTE), iommuFaults: gatherIommuFaults(logged([invalid(0x8000000)]), true)! });
    expect(explain(elsewhere)[0]!.message).to.contain("IOVA 0x8000000 is in neither buffer's device addresses (source 0xffff000..0xfffffff, destination 0xfffe000..0xfffefff)");
  });

  it('an IOMMU fault fails the run even when the data arrived', () => {
    const e = translatedEvidence({ destinationCpu: pattern(5, size), iommuFaults: gatherIommuFaults(logged([invalid(0x8000000, 'read')]), true)! });
    const findings = explain(e);
    expect(findings.map((f) => f.kind)).to.deep.equal(['iommu-fault']);
    expect(findings[0]!.message).to.match(/^the IOMMU blocked 1 device read \(first at IOVA 0x8000000/);
  });

  it('translated device addresses are never read as guest-physical, nor shown as such in excerpts', async () => {
    const d = iovaBuf('destination', 0x66d9000, 0xfffe000);
    const reads: number[] = [];
    const memory = { read: async (gpa: number, n: number) => (reads.push(gpa), Buffer.alloc(n)), contains: () => true };
    expect(await readThroughDevice(memory, d)).to.equal(null);
    expect(reads).to.deep.equal([]);
    const got = Buffer.alloc(size, FILL_BYTE);
    const rows = memoryExcerpts({ mismatch: compareBytes(pattern(5, size), got)!, expected: pattern(5, size), destination: d, destinationCpu: got, destinationDevice: pattern(5, size), sourceCpu: null, sourceDevice: null })[0]!.rows;
    expect(rows.map((r) => r.label)).to.deep.equal(['expected', 'destination (client buffer)']);
    expect(iovaNote([iovaBuf('source', 0x66d6000, 0xffff000), d])).to.equal('device addresses are IOVAs the IOMMU translates: source 0xffff000..0xfffffff, destination 0xfffe000..0xfffefff');
    expect(iovaNote([buf('destination', 0x200000, 0x200000)])).to.equal('');
  });
});
