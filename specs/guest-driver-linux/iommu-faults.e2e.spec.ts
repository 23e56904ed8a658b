// edudma's two IOMMU faults on the direct reference guest (no IOMMU): info lists them, the driver refuses
// them where there is no client destination mapping to undo or shorten, and where it runs them nothing
// translates, so the data still arrives (what the IOMMU variant catches is in the catalog's controls).
import { expect } from 'chai';
import { pattern } from '../../harness/contract/pattern.js';
import { makeScenario, type Scenario } from '../../harness/contract/scenario.js';
import type { RunResult } from '../../harness/contract/result.js';
import { readThroughCpu } from '../../harness/dma/guest-buffer.js';
import type { LinuxSession } from '../../harness/guest/linux/profile.js';
import { BOOT_TIMEOUT_MS, startReferenceGuest } from '../e2e/support.js';

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

  async function run(s: Partial<Scenario>): Promise<{ result: RunResult; destination: Buffer | undefined }> {
    const held = await session.run(makeScenario({ seed: 5, ...s }));
    try {
      const dst = held.result.buffers.find((b) => b.role === 'destination');
      return { result: held.result, destination: held.result.ok && dst ? await readThroughCpu(session.memory, dst) : undefined };
    } finally {
      await held.release();
    }
  }

  it('info lists both faults', async () => {
    const info = await session.info();
    expect(info.faults).to.include.members(['use-after-unmap', 'short-mapping']);
  });

  const refused: [Partial<Scenario>, RegExp][] = [
    [{ direction: 'round-trip', size: 4096, method: 'common-buffer', fault: 'use-after-unmap' }, /common buffer has no mapping/],
    [{ direction: 'round-trip', size: 8192, method: 'common-buffer', fault: 'short-mapping' }, /common buffer has no mapping/],
    [{ direction: 'to-device', size: 4096, fault: 'use-after-unmap' }, /to-device has none/],
    [{ direction: 'to-device', size: 8192, method: 'scatter-gather', fault: 'short-mapping' }, /to-device has none/],
    [{ direction: 'round-trip', size: 4000, offset: 96, fault: 'short-mapping' }, /nothing would be short/],
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
