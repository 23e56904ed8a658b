// Parsing QEMU's output lines and classifying exits: pure functions fed with lines and statuses seen
// from QEMU 7.2 (guest notes §8, facts §4.4). The real processes are exercised in machine.e2e.spec.

import { expect } from 'chai';
import { classifyExit, isUnassignedAccess, messageCount, parseDeviceModelLine, type ExitEvidence } from '../../harness/machine/index.js';
import { BURST_GAP_MS, DeviceModelLog, KEPT_PER_BURST, LineSplitter, MAX_ENTRIES } from '../../harness/machine/device-messages.js';

describe('machine/device-model messages', () => {
  it('parses the edu clamp line (stdout) with both addresses', () => {
    const m = parseDeviceModelLine('EDU: clamping DMA 0x0000000010001000 to 0x0000000000001000!', 'stdout', 5);
    expect(m).to.deep.include({ kind: 'edu-clamp', from: 0x10001000n, to: 0x1000n, at: 5, stream: 'stdout' });
  });
  it('parses a clamp to address 0, which printf writes without the 0x', () => {
    const m = parseDeviceModelLine('EDU: clamping DMA 0x0000000010000000 to 0000000000000000!', 'stderr', 5);
    expect(m).to.deep.include({ kind: 'edu-clamp', from: 0x10000000n, to: 0n });
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    s.push('EDU: clamping DMA 0x0000000010000000 to 0000000000000000!EDU: clamping DMA 0x1 to 0x1!');
    expect(lines).to.deep.equal(['EDU: clamping DMA 0x0000000010000000 to 0000000000000000!', 'EDU: clamping DMA 0x1 to 0x1!']);
  });
  it('parses hw_error lines, with the edu range when it is one', () => {
    const line = 'qemu: hardware error: EDU: DMA range 0x0000000000040000-0x0000000000040fff out of bounds (0x0000000000040000-0x0000000000040fff)!';
    const m = parseDeviceModelLine(line, 'stderr', 1);
    expect(m?.kind).to.equal('hardware-error');
    if (m?.kind !== 'hardware-error') return;
    expect(m.detail).to.match(/^EDU: DMA range/);
    expect(m.eduRange).to.deep.equal({ first: 0x40000n, last: 0x40fffn, validFirst: 0x40000n, validLast: 0x40fffn });
    const other = parseDeviceModelLine('qemu: hardware error: something else', 'stderr', 1);
    expect(other).to.deep.include({ kind: 'hardware-error', detail: 'something else' });
    expect(other && 'eduRange' in other).to.equal(false);
  });
  it('parses -d guest_errors invalid accesses', () => {
    const m = parseDeviceModelLine("Invalid write at addr 0xE000000, size 4, region '(null)', reason: rejected", 'stderr', 1);
    expect(m).to.deep.include({ kind: 'invalid-access', access: 'write', addr: 0xe000000n, size: 4, region: '(null)', reason: 'rejected' });
  });
  it('parses QEMU’s signal, warning and error lines; ignores anything else', () => {
    expect(parseDeviceModelLine('qemu-system-x86_64: terminating on signal 15 from pid 1234 (node)', 'stderr', 1))
      .to.deep.include({ kind: 'terminating-on-signal', signal: 15, fromPid: 1234 });
    expect(parseDeviceModelLine('qemu-system-x86_64: warning: host doesn\'t support requested feature', 'stderr', 1))
      .to.deep.include({ kind: 'qemu-warning' });
    expect(parseDeviceModelLine("qemu-system-x86_64: -device foo: 'foo' is not a valid device model name", 'stderr', 1))
      .to.deep.include({ kind: 'qemu-error', detail: "-device foo: 'foo' is not a valid device model name" });
    expect(parseDeviceModelLine('RAX=000000000001ad40 RBX=0000000000000000', 'stderr', 1)).to.equal(undefined);
  });
  it('splits lines across chunk boundaries and keeps a final unterminated line', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    for (const chunk of ['EDU: clamp', 'ing DMA 0x1 to 0x1!\r\nsecond\nthi', 'rd']) s.push(chunk);
    expect(lines).to.deep.equal(['EDU: clamping DMA 0x1 to 0x1!', 'second']);
    s.end();
    expect(lines).to.deep.equal(['EDU: clamping DMA 0x1 to 0x1!', 'second', 'third']);
  });
  it("QEMU 10's clamp messages: on stderr without a newline, run together, the last never ended", () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    // As QEMU 10.0 writes them (hosts.md): fprintf(stderr) with no newline, split across reads.
    for (const chunk of ['EDU: clamping DMA 0x00000000163db000 to 0x00000000063db000!EDU: clamp', 'ing DMA 0x00000000163dc000 to 0x00000000063dc000!']) s.push(chunk);
    expect(lines).to.deep.equal(['EDU: clamping DMA 0x00000000163db000 to 0x00000000063db000!', 'EDU: clamping DMA 0x00000000163dc000 to 0x00000000063dc000!']);
    const parsed = lines.map((l) => parseDeviceModelLine(l, 'stderr', 1));
    expect(parsed.map((m) => m?.kind === 'edu-clamp' && [m.from, m.to])).to.deep.equal([[0x163db000n, 0x63db000n], [0x163dc000n, 0x63dc000n]]);
    s.push('qemu-system-x86_64: terminating on signal 15\n');
    expect(lines[2]).to.equal('qemu-system-x86_64: terminating on signal 15');
  });
  it('a clamp message in the middle of other output is a record of its own', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    s.push('noise EDU: clamping DMA 0x10001000 to 0x1000!more\n');
    expect(lines).to.deep.equal(['noise ', 'EDU: clamping DMA 0x10001000 to 0x1000!', 'more']);
  });
  it("QEMU 9.1+'s logged edu range error, run together with a clamp; 7.2's hw_error line stays whole", () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    s.push('EDU: DMA range 0x0000000000040000-0x0000000000041fff out of bounds (0x0000000000040000-0x0000000000040fff)!EDU: clamping DMA 0x10001000 to 0x1000!');
    expect(lines).to.have.length(2);
    expect(parseDeviceModelLine(lines[0]!, 'stderr', 1)).to.deep.include({ kind: 'edu-range', first: 0x40000n, last: 0x41fffn, validFirst: 0x40000n, validLast: 0x40fffn });
    s.push('qemu: hardware error: EDU: DMA range 0x0000000000040000-0x0000000000040fff out of bounds (0x0000000000040000-0x0000000000040fff)!\n');
    expect(lines).to.have.length(3);
    expect(parseDeviceModelLine(lines[2]!, 'stderr', 1)).to.deep.include({ kind: 'hardware-error' });
  });
  // The lines of iommu-notes.md (QEMU 7.2, intel-iommu, a use after unmap and a wrong direction).
  it('parses intel-iommu fault lines: the IOVA, read or write, and why', () => {
    const slpte = 'qemu-system-x86_64: vtd_iova_to_slpte: detected slpte permission error (iova=0xfffe000, level=0x1, slpte=0x0, write=1, pasid=0xffffffff)';
    expect(parseDeviceModelLine(slpte, 'stderr', 1)).to.deep.include({ kind: 'iommu-fault', source: 'vtd-slpte', iova: 0xfffe000n, access: 'write', reason: 'not mapped' });
    const perm = 'qemu-system-x86_64: vtd_iova_to_slpte: detected slpte permission error (iova=0xffff000, level=0x1, slpte=0x66de001, write=1, pasid=0xffffffff)';
    expect(parseDeviceModelLine(perm, 'stderr', 1)).to.deep.include({ kind: 'iommu-fault', iova: 0xffff000n, access: 'write', reason: 'no write permission' });
    const translate = 'qemu-system-x86_64: vtd_iommu_translate: detected translation failure (dev=00:02:00, iova=0xfffe000)';
    const t = parseDeviceModelLine(translate, 'stderr', 1);
    expect(t).to.deep.include({ kind: 'iommu-fault', source: 'vtd-translate', iova: 0xfffe000n, reason: 'translation failure for 00:02:00' });
    expect(t && 'access' in t).to.equal(false);
    // -trace vtd_dmar_fault, as QEMU 7.2's log backend prints it, and with -msg timestamp=on's pid@time prefix.
    expect(parseDeviceModelLine('vtd_dmar_fault sid 0x10 fault 5 addr 0xfffe000 write 1', 'stderr', 1))
      .to.deep.include({ kind: 'iommu-fault', source: 'vtd-dmar-fault', iova: 0xfffe000n, access: 'write', reason: 'no write permission' });
    expect(parseDeviceModelLine('8073@1796318758.270264:vtd_dmar_fault sid 0x10 fault 6 addr 0xffff000 write 0', 'stderr', 1))
      .to.deep.include({ kind: 'iommu-fault', iova: 0xffff000n, access: 'read', reason: 'no read permission' });
    expect(parseDeviceModelLine('vtd_dmar_fault sid 0x10 fault 12 addr 0x1000 write 0', 'stderr', 1)).to.deep.include({ reason: 'VT-d fault reason 12' });
    // Still a plain QEMU error line, not a fault.
    expect(parseDeviceModelLine('qemu-system-x86_64: New fault is not recorded due to compression of faults', 'stderr', 1)).to.deep.include({ kind: 'qemu-error' });
  });
  // virtio_iommu_translate's error_report_once formats (hw/virtio/virtio-iommu.c); flag 2 is IOMMU_WO.
  it('parses virtio-iommu fault lines: not mapped, and a permission error with its access', () => {
    expect(parseDeviceModelLine('qemu-system-x86_64: virtio_iommu_translate no mapping for 0xfffe000 for sid=24', 'stderr', 1))
      .to.deep.include({ kind: 'iommu-fault', source: 'virtio-iommu', iova: 0xfffe000n, reason: 'not mapped' });
    expect(parseDeviceModelLine('qemu-system-x86_64: virtio_iommu_translate permission error on 0xffff000(2): allowed=1', 'stderr', 1))
      .to.deep.include({ kind: 'iommu-fault', source: 'virtio-iommu', iova: 0xffff000n, access: 'write', reason: 'no write permission' });
  });
  it("an access that nothing answered ('(null)', rejected) stays an invalid-access: a hole without an IOMMU, a refused IOVA behind one", () => {
    const refused = parseDeviceModelLine("Invalid write at addr 0xFFFE000, size 4, region '(null)', reason: rejected", 'stderr', 1)!;
    expect(refused).to.deep.include({ kind: 'invalid-access', access: 'write', addr: 0xfffe000n, size: 4 });
    expect(isUnassignedAccess(refused)).to.equal(true);
    const unaligned = parseDeviceModelLine("Invalid read at addr 0x1001, size 4, region 'edu-mmio', reason: unaligned", 'stderr', 1)!;
    expect(unaligned).to.deep.include({ kind: 'invalid-access', region: 'edu-mmio', reason: 'unaligned' });
    expect(isUnassignedAccess(unaligned)).to.equal(false);
  });
  it('300K fault lines (a 1 MiB use after unmap, twice over) are counted, and kept bounded, in little time', () => {
    const log = new DeviceModelLog();
    const s = new LineSplitter((l) => {
      const m = parseDeviceModelLine(l, 'stderr', 1000);
      if (m) log.add(m);
    });
    const started = performance.now();
    s.push('qemu-system-x86_64: vtd_iova_to_slpte: detected slpte permission error (iova=0xfffe000, level=0x1, slpte=0x0, write=1, pasid=0xffffffff)\n');
    // As a pipe delivers them: 64 KiB chunks cut mid-line.
    const lines: string[] = [];
    for (let i = 0; i < 300_000; i++) lines.push(`Invalid write at addr 0x${(0xfffe000 + 4 * i).toString(16).toUpperCase()}, size 4, region '(null)', reason: rejected\n`);
    const text = lines.join('');
    for (let at = 0; at < text.length; at += 65536) s.push(text.slice(at, at + 65536));
    s.end();
    const ms = performance.now() - started;
    expect(log.total('invalid-access')).to.equal(300_000);
    expect(log.entries.length).to.be.at.most(KEPT_PER_BURST + 2);
    const invalid = log.entries.filter((m) => m.kind === 'invalid-access');
    expect(messageCount(invalid)).to.equal(300_000);
    expect(invalid[0]).to.deep.include({ addr: 0xfffe000n });
    expect(invalid.at(-1)!.more).to.equal(300_000 - KEPT_PER_BURST - 1);
    expect(ms, `${Math.round(ms)} ms`).to.be.below(5000);
  });
  it('a new burst after a pause keeps its own first messages; the entries stay bounded however many bursts come', () => {
    const log = new DeviceModelLog();
    const clamp = (at: number) => parseDeviceModelLine('EDU: clamping DMA 0x0000000010001000 to 0x0000000000001000!', 'stdout', at)!;
    for (let i = 0; i < 20; i++) log.add(clamp(0));
    const next = BURST_GAP_MS + 1;
    for (let i = 0; i < 3; i++) log.add(clamp(next));
    expect(messageCount(log.since(0))).to.equal(23);
    expect(log.since(next).map((m) => m.more)).to.deep.equal([undefined, undefined, undefined]);
    const many = new DeviceModelLog();
    many.add(parseDeviceModelLine('KVM internal error. Suberror: 1', 'stderr', 0)!);
    for (let i = 0; i < MAX_ENTRIES * 2; i++) many.add(clamp((i + 1) * (BURST_GAP_MS + 1)));
    expect(many.entries.length).to.equal(MAX_ENTRIES);
    expect(many.entries[0]!.kind, 'start-up messages stay').to.equal('kvm-internal-error');
    expect(many.total('edu-clamp')).to.equal(MAX_ENTRIES * 2);
  });
  it("a KVM that cannot run the guest: QEMU's internal-error line", () => {
    expect(parseDeviceModelLine('KVM internal error. Suberror: 1', 'stderr', 1)).to.deep.include({ kind: 'kvm-internal-error', suberror: 1 });
    expect(parseDeviceModelLine('emulation failure', 'stderr', 1)).to.equal(undefined);
  });
});

describe('machine/exit classification', () => {
  const base: ExitEvidence = { code: 0, signal: null, shutdownRequested: false, guestPanicked: false };
  const cause = (e: Partial<ExitEvidence>) => classifyExit({ ...base, ...e }).cause;

  it('hardware error wins over everything, with or without the message', () => {
    expect(cause({ signal: 'SIGABRT', code: null })).to.equal('hardware-error');
    expect(cause({ signal: 'SIGABRT', code: null, shutdownRequested: true })).to.equal('hardware-error');
    const c = classifyExit({ ...base, signal: 'SIGABRT', code: null, hardwareError: 'qemu: hardware error: EDU: DMA range …' });
    expect(c).to.deep.equal({ cause: 'hardware-error', detail: 'qemu: hardware error: EDU: DMA range …' });
  });
  it('anything after shutdown() is requested, even the SIGKILL escalation', () => {
    expect(cause({ shutdownRequested: true, shutdownEvent: { guest: false, reason: 'host-qmp-quit' } })).to.equal('requested');
    expect(cause({ shutdownRequested: true, code: null, signal: 'SIGKILL' })).to.equal('requested');
  });
  it('guest panic and guest shutdown/reset come from QMP events', () => {
    expect(cause({ guestPanicked: true })).to.equal('guest-panic');
    expect(cause({ shutdownEvent: { guest: true, reason: 'guest-panic' } })).to.equal('guest-panic');
    expect(cause({ shutdownEvent: { guest: true, reason: 'guest-reset' } })).to.equal('guest-shutdown');
    expect(classifyExit({ ...base, shutdownEvent: { guest: true, reason: 'guest-shutdown' } }).detail).to.contain('guest-shutdown');
  });
  it('signals the harness did not send are kills', () => {
    expect(cause({ code: null, signal: 'SIGKILL' })).to.equal('killed');
    expect(cause({ terminatedBy: { signal: 15, fromPid: 99 }, shutdownEvent: { guest: false, reason: 'host-signal' } })).to.equal('killed');
    expect(classifyExit({ ...base, terminatedBy: { signal: 15, fromPid: 99 } }).detail).to.contain('from pid 99');
  });
  it('the rest is a crash', () => {
    expect(cause({ code: null, signal: 'SIGSEGV' })).to.equal('crashed');
    expect(cause({ code: 1 })).to.equal('crashed');
    expect(cause({ code: 0 })).to.equal('crashed');
  });
});
