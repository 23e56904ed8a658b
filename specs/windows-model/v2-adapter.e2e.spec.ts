// The driver's v2 fallback (a HAL that refuses DMA v3, as ReactOS's does) declares 32-bit addressing.
// With an edu that masks to QEMU's default 28 bits, DMA lands on the wrong pages: the host must catch
// it as the edu's clamp, never pass it (and the Windows profile refuses such a guest before any run:
// requireDmaAdapter, specs/windows-guest/session.spec.ts).
import { expect } from 'chai';
import { CATALOG } from '../../harness/dma/catalog.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import type { NtModelSession } from '../../harness/guest/nt-model/session.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import type { WinePrefix } from '../windows-package/support.js';
import { buildModel, modelCase, modelPrefix, startModel } from './support.js';

describe('windows driver in the NT DMA model: a v2 adapter on a 28-bit edu is caught', function () {
  this.timeout(300_000);
  let prefix: WinePrefix;
  let session: NtModelSession;
  const world = NT_MODEL_WORLDS['v2-null-flush'];

  before(async () => {
    await buildModel();
    prefix = modelPrefix();
    session = await startModel(world, 'v2-on-28-bit-edu', prefix, { eduDmaBits: 28 });
  });
  after(async () => {
    await session?.close();
  });

  for (const name of ['round-trip 4096 B', 'scatter-gather round-trip 12 KiB']) {
    it(`"${name}" fails with the edu's clamp named, not a pass`, async () => {
      const entry = CATALOG.find((e) => e.name === name)!;
      const info = await session.info();
      expect(info.driver).to.include({ api: 'wdm-dma-v2', dmaMaskBits: 32 });
      const v = await runScenario(session, modelCase(world, entry));
      expect(v.status, v.summary).to.equal('fail');
      expect(v.findings.map((f) => f.kind), v.summary).to.include('device-model-clamp');
      expect(session.bugchecks).to.deep.equal([]);
    });
  }
});
