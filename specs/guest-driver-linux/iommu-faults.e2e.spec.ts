// edudma's two IOMMU faults. On the direct reference guest (no IOMMU): info lists them, the driver refuses
// them where there is no client destination mapping to undo or shorten, and where it runs them nothing
// translates, so the data still arrives. On the iommu guest: buffers are translated and not bounced, and
// the device's writes after the unmap or past the short mapping are rejected (the host's own verdict on
// them is the catalog's controls; this checks the driver and QEMU's log directly).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { pattern } from '../../harness/contract/pattern.js';
import { makeScenario, type Scenario } from '../../harness/contract/scenario.js';
import type { RunResult } from '../../harness/contract/result.js';
import { VARIANTS } from '../../harness/dma/catalog.js';
import { readThroughCpu } from '../../harness/dma/guest-buffer.js';
import type { LinuxSession } from '../../harness/guest/linux/profile.js';
import { BOOT_TIMEOUT_MS, startReferenceGuest } from '../e2e/support.js';

async function runOn(session: LinuxSession, s: Partial<Scenario>): Promise<{ result: RunResult; destination: Buffer | undefined }> {
  const held = await session.run(makeScenario({ seed: 5, ...s }));
  try {
    const dst = held.result.buffers.find((b) => b.role === 'destination');
    return { result: held.result, destination: held.result.ok && dst ? await readThroughCpu(session.memory, dst) : undefined };
  } finally {
    await held.release();
  }
}

describe('guest-driver/linux: edudma use-after-unmap and short-mapping on the direct guest', function () {
  this.timeout(60_000);
  let session: LinuxSession;

  before(async function () {
    this.timeout(BOOT_TIMEOUT_MS);
    session = await startReferenceGuest('edudma-iommu-faults', false);
  });

  after(async function () {
    if (!session) return;
    await session.collectLogs().catch(() => undefined);
    await session.close();
  });

  const run = (s: Partial<Scenario>): ReturnType<typeof runOn> => runOn(session, s);

  it('info lists the IOMMU faults', async () => {
    const info = await session.info();
    expect(info.faults).to.include.members(['use-after-unmap', 'short-mapping', 'other-mapping']);
  });

  const refused: [Partial<Scenario>, RegExp][] = [
    [{ direction: 'round-trip', size: 4096, method: 'common-buffer', fault: 'use-after-unmap' }, /common buffer has no mapping/],
    [{ direction: 'round-trip', size: 8192, method: 'common-buffer', fault: 'short-mapping' }, /common buffer has no mapping/],
    [{ direction: 'to-device', size: 4096, fault: 'use-after-unmap' }, /to-device has none/],
    [{ direction: 'to-device', size: 8192, method: 'scatter-gather', fault: 'short-mapping' }, /to-device has none/],
    [{ direction: 'round-trip', size: 4000, offset: 96, fault: 'short-mapping' }, /nothing would be short/],
    [{ direction: 'from-device', size: 4096, fault: 'other-mapping' }, /needs a round trip/],
    [{ direction: 'round-trip', size: 4096, method: 'common-buffer', fault: 'other-mapping' }, /needs a round trip/],
  ];
  for (const [s, why] of refused) {
    it(`refuses ${s.fault} for ${s.direction} ${s.method ?? 'streaming'} ${s.size} B at offset ${s.offset ?? 0}: unsupported`, async () => {
      const { result } = await run(s);
      expect(result.ok).to.equal(false);
      expect(result.error?.code).to.equal('unsupported');
      expect(result.error?.message).to.match(why);
    });
  }

  it('use-after-unmap: unmaps once, before the device writes; without an IOMMU the data still arrives', async () => {
    const { result, destination } = await run({ direction: 'round-trip', size: 4096, fault: 'use-after-unmap' });
    expect(result.ok, JSON.stringify(result.error)).to.equal(true);
    expect(result.calls.find((c) => c.name === 'dma_unmap_single')?.count).to.equal(2);
    expect(result.calls.map((c) => c.name)).not.to.include('dma_sync_single_for_cpu');
    expect(result.buffers.every((b) => !b.translated && !b.bounced)).to.equal(true);
    expect(destination!.equals(pattern(5, 4096))).to.equal(true);
  });

  it('short-mapping: the device is given the whole transfer from the short mapping on', async () => {
    const { result, destination } = await run({ direction: 'from-device', size: 9000, offset: 300, method: 'scatter-gather', fault: 'short-mapping' });
    expect(result.ok, JSON.stringify(result.error)).to.equal(true);
    const dst = result.buffers.find((b) => b.role === 'destination')!;
    expect(dst.translated).to.equal(false);
    expect(dst.pages).to.have.length(3);
    // One mapping: device addresses run on from the first segment's, over all 9000 bytes.
    for (const g of dst.segments) expect(g.device).to.equal(dst.segments[0].device + g.offset);
    expect(dst.segments.reduce((n, g) => n + g.length, 0)).to.equal(9000);
    expect(destination!.equals(pattern(5, 9000))).to.equal(true);
  });
});

describe('guest-driver/linux: edudma behind intel-iommu (the iommu variant)', function () {
  this.timeout(60_000);
  let session: LinuxSession;

  before(async function () {
    this.timeout(BOOT_TIMEOUT_MS);
    session = await startReferenceGuest('edudma-iommu', false, { variant: VARIANTS.iommu.machine });
  });

  after(async function () {
    if (!session) return;
    await session.collectLogs().catch(() => undefined);
    await session.close();
  });

  /** QEMU's rejected device writes so far (-d guest_errors: one line per access of up to 4 bytes). */
  async function rejectedWrites(): Promise<number> {
    const log = await readFile(path.join(session.artifactsDir, 'qemu-stderr.log'), 'utf8').catch(() => '');
    return log.split('\n').filter((l) => /^Invalid write at addr .*reason: rejected/.test(l)).length;
  }

  /** Rejected writes logged since `before`, waiting up to 2 s for QEMU's log to catch up. */
  async function rejectedSince(before: number): Promise<number> {
    for (let i = 0; i < 20 && (await rejectedWrites()) === before; i++) await new Promise((r) => setTimeout(r, 100));
    return (await rejectedWrites()) - before;
  }

  // First, while no IOVA has been freed: the allocator then places each mapping just below the previous one.
  it('short-mapping, from-device on a fresh guest: the overrun is rejected and misses the staging buffer', async () => {
    const before = await rejectedWrites();
    const held = await session.run(makeScenario({ direction: 'from-device', size: 12288, seed: 5, fault: 'short-mapping' }));
    try {
      expect(held.result.ok, JSON.stringify(held.result.error)).to.equal(true);
      const [staging, dst] = await Promise.all(held.result.buffers.map((b) => readThroughCpu(session.memory, b)));
      expect(staging.equals(pattern(5, 12288)), 'the staging buffer was overwritten').to.equal(true);
      expect(dst.subarray(0, 4096).equals(pattern(5, 4096))).to.equal(true);
      expect(dst.subarray(4096).equals(Buffer.alloc(8192, 0xa5))).to.equal(true);
    } finally {
      await held.release();
    }
    expect(await rejectedSince(before)).to.be.greaterThan(0);
  });

  it('every buffer is translated, none bounced, and the data arrives', async () => {
    for (const s of [{ size: 4096 }, { size: 8192, offset: 100, method: 'scatter-gather' as const }, { direction: 'from-device' as const, size: 5000, method: 'common-buffer' as const }]) {
      const { result, destination } = await runOn(session, s);
      expect(result.ok, JSON.stringify(result.error)).to.equal(true);
      for (const b of result.buffers) expect([b.role, b.translated, b.bounced]).to.deep.equal([b.role, true, false]);
      expect(destination!.equals(pattern(5, s.size))).to.equal(true);
    }
  });

  it('use-after-unmap: the writes are rejected and the destination keeps its fill', async () => {
    const before = await rejectedWrites();
    const { result, destination } = await runOn(session, { direction: 'from-device', size: 4096, fault: 'use-after-unmap' });
    expect(result.ok, JSON.stringify(result.error)).to.equal(true);
    expect(destination!.equals(Buffer.alloc(4096, 0xa5))).to.equal(true);
    expect(await rejectedSince(before)).to.be.greaterThan(0);
  });

  it('short-mapping: the first page arrives, the overrun into the source is rejected, the rest keeps its fill', async () => {
    const before = await rejectedWrites();
    const { result, destination } = await runOn(session, { direction: 'round-trip', size: 12288, fault: 'short-mapping' });
    expect(result.ok, JSON.stringify(result.error)).to.equal(true);
    expect(destination!.subarray(0, 4096).equals(pattern(5, 4096))).to.equal(true);
    expect(destination!.subarray(4096).equals(Buffer.alloc(8192, 0xa5))).to.equal(true);
    expect(await rejectedSince(before)).to.be.greaterThan(0);
  });
});
