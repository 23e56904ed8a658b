// A control the device model cannot produce is skipped with its reason, never run into a silent miss.
import { expect } from 'chai';
import { CATALOG, VARIANTS } from '../../harness/dma/catalog.js';
import { needsEduBehaviour, notApplicable, notOnGuestKernel } from '../../harness/dma/applicability.js';
import { runSuite } from '../../harness/dma/run-suite.js';
import { outcome } from '../../harness/dma/verdict.js';
import type { SessionSource } from '../../harness/dma/session-source.js';
import type { EduBehaviour } from '../../harness/machine/edu-behaviour.js';

const qemu72: EduBehaviour = { qemuVersion: '7.2.22', clamps: true, clampMessage: 'stdout', fullBufferAborts: true, outOfRange: 'aborts', ms: 1 };
const qemu10: EduBehaviour = { qemuVersion: '10.0.13', clamps: true, clampMessage: 'stderr', fullBufferAborts: false, outOfRange: 'logged', ms: 1 };
const beyondMask = CATALOG.find((c) => c.scenario.fault === 'addr-beyond-mask')!;

describe('dma: which controls apply on this QEMU', () => {
  it('the beyond-mask control applies wherever the edu clamps and says so, on stdout or stderr', () => {
    expect(needsEduBehaviour(beyondMask)).to.equal(true);
    expect(notApplicable(beyondMask, qemu72)).to.equal(undefined);
    expect(notApplicable(beyondMask, qemu10)).to.equal(undefined);
  });
  it('a silent clamp, or none, makes it not applicable, with the reason', () => {
    expect(notApplicable(beyondMask, { ...qemu10, clampMessage: undefined })).to.equal('not applicable on QEMU 10.0.13: its edu clamps out-of-mask DMA without a message, so there is no clamp for the harness to catch');
    expect(notApplicable(beyondMask, { ...qemu10, clamps: false, clampMessage: undefined })).to.match(/does not clamp out-of-mask DMA/);
  });
  it('every other catalog entry applies everywhere', () => {
    for (const c of CATALOG.filter((e) => e !== beyondMask)) {
      expect(needsEduBehaviour(c), c.name).to.equal(false);
      expect(notApplicable(c, { ...qemu10, clamps: false }), c.name).to.equal(undefined);
    }
  });
  it('virtio-iommu scenarios are skipped on a guest kernel without its driver, with the config line that says so', () => {
    const virtio = CATALOG.filter((c) => c.variant === 'virtio-iommu');
    expect(virtio.length).to.be.greaterThan(1);
    const absent = { driver: 'absent' as const, evidence: '/boot/config-6.1.0-57-amd64: # CONFIG_VIRTIO_IOMMU is not set' };
    for (const c of virtio) {
      expect(notOnGuestKernel(c, '6.1.0-57-amd64', absent), c.name).to.equal(
        'not applicable on guest kernel 6.1.0-57-amd64: it has no virtio-iommu driver (/boot/config-6.1.0-57-amd64: # CONFIG_VIRTIO_IOMMU is not set), so the edu\'s DMA would bypass virtio-iommu-pci untranslated; a kernel with CONFIG_VIRTIO_IOMMU (Debian 13\'s 6.12) runs it',
      );
      expect(notOnGuestKernel(c, '6.12.118+deb13-amd64', { driver: 'module', evidence: 'CONFIG_VIRTIO_IOMMU=m' }), c.name).to.equal(undefined);
    }
    for (const c of CATALOG.filter((e) => e.variant !== 'virtio-iommu')) expect(notOnGuestKernel(c, '6.1.0-57-amd64', absent), c.name).to.equal(undefined);
    // A config's own variant with virtio-iommu is skipped the same way.
    const own = { ...virtio[0]!, variant: 'my-viommu' };
    expect(notOnGuestKernel(own, '6.1.0-57-amd64', absent, [{ id: 'my-viommu', forceBounce: false, description: '', machine: { iommu: 'virtio-iommu' } }])).to.match(/no virtio-iommu driver/);
  });
  it('run-suite reports a not-applicable entry skipped with the reason and starts no guest for it', async () => {
    let acquired = 0;
    const source: SessionSource = { acquire: async () => (acquired++, Promise.reject(new Error('no guest'))), release: async () => undefined, close: async () => undefined, notPristine: () => 'a test source' };
    const [v] = await runSuite([beyondMask], { source, notApplicable: (c) => notApplicable(c, { ...qemu10, clamps: false }) });
    expect(v).to.include({ status: 'skip', variant: VARIANTS.direct.id });
    expect(outcome(v!)).to.equal('skipped');
    expect(v!.summary).to.match(/^not applicable on QEMU 10\.0\.13/);
    expect(acquired).to.equal(0);
  });
});
