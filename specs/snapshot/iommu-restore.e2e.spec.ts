// A restored iommu guest still translates (issue 15). The vIOMMU's state (root and context tables, the
// guest's page tables in RAM) travels with the snapshot; QEMU 7.2's edu does not, and is re-attached as on
// every restore. Two restores of one snapshot: a round trip verifies through IOVAs (device addresses that
// are not the CPU pages, reported translated and not bounced), and a use after unmap is blocked by the
// restored IOMMU and explained as an IOMMU fault. A restore that lost the IOMMU would fail both.
import path from 'node:path';
import { expect } from 'chai';
import { makeScenario } from '../../harness/contract/scenario.js';
import { VARIANTS } from '../../harness/dma/catalog.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { restoreLinuxGuest, type LinuxSession } from '../../harness/guest/linux/profile.js';
import { CHEAP_WAITS, saveSnapshot, type Snapshot } from '../../harness/snapshot/index.js';
import { repoRoot, startReferenceGuest, BOOT_TIMEOUT_MS } from '../e2e/support.js';

const art = (name: string): string => path.join(repoRoot, 'reports', 'e2e', 'snapshot-iommu', name);

describe('snapshot restore of an iommu guest (real QEMU, intel-iommu) @e2e', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let snap: Snapshot | undefined;
  const open: LinuxSession[] = [];
  const restore = async (name: string): Promise<LinuxSession> => {
    const r = await restoreLinuxGuest(snap!.point, { artifactsDir: art(name), readyTimeoutMs: 120_000 });
    open.push(r);
    return r;
  };

  before(async () => {
    const booted = await startReferenceGuest('snapshot-iommu/boot', false, { icount: CHEAP_WAITS, variant: VARIANTS.iommu.machine! });
    try {
      snap = await saveSnapshot(booted, { key: 'spec iommu', resume: false });
    } finally {
      await booted.close();
    }
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  after(async () => snap?.discard());

  it('the restored machine has its IOMMU, and a round trip verifies through IOVAs', async () => {
    const s = await restore('round-trip');
    expect(s.machine.config.iommu).to.equal('intel-iommu');
    const v = await runScenario(s, { name: 'restored translated round trip', scenario: makeScenario({ size: 8192, offset: 9, seed: 151 }) });
    expect(v.status, v.summary).to.equal('pass');
    for (const b of v.result!.buffers) {
      expect([b.role, b.translated, b.bounced]).to.deep.equal([b.role, true, false]);
      expect(b.segments[0]!.device).to.not.equal(b.pages[0]! + b.offset);
    }
  });

  it('a use after unmap on the restored guest is blocked by the IOMMU and explained as such', async () => {
    const s = await restore('use-after-unmap');
    const v = await runScenario(s, { name: 'restored use after unmap', scenario: makeScenario({ direction: 'from-device', size: 4096, seed: 152, fault: 'use-after-unmap' }), expectFinding: 'iommu-fault' });
    expect(v.status, v.summary).to.equal('fail');
    expect(v.findings[0]?.kind, v.summary).to.equal('iommu-fault');
    expect(v.summary).to.match(/IOVA 0x[0-9a-f]+ is the destination's device address/);
  });
});
