// The Windows driver's own DMA code, run in the NT DMA model (guest-driver/windows/model): every
// catalog scenario a golden image runs, in each world a Windows guest may present (map registers, direct, a v2 HAL with a
// NULL FlushDmaBuffer), verified from the model's guest RAM by the same host code as a real guest.
// A DMA-rule violation ends the model like a Driver Verifier bug check and fails the scenario.
import { expect } from 'chai';
import { CATALOG } from '../../harness/dma/catalog.js';
import { notOnImage } from '../../harness/dma/applicability.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { outcome } from '../../harness/dma/verdict.js';
import type { NtModelSession } from '../../harness/guest/nt-model/session.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import type { WinePrefix } from '../windows-package/support.js';
import { buildModel, modelCase, modelPrefix, startModel } from './support.js';

describe('windows driver in the NT DMA model: the catalog in every world', function () {
  this.timeout(300_000);
  let prefix: WinePrefix;

  before(async () => {
    await buildModel();
    prefix = modelPrefix();
  });

  for (const world of Object.values(NT_MODEL_WORLDS)) {
    describe(`${world.id}: ${world.description}`, () => {
      let session: NtModelSession;
      let n = 0;
      const fresh = async (): Promise<NtModelSession> => (session = await startModel(world, `${world.id}-${++n}`, prefix));

      before(fresh);
      after(async () => session?.close());

      it('the driver reports the adapter this HAL grants', async () => {
        const info = await session.info();
        expect(info.ok, JSON.stringify(info)).to.equal(true);
        const d = info.driver!;
        if (world.id === 'v2-null-flush') {
          expect(d).to.include({ api: 'wdm-dma-v2', adapterVersion: 2, flushDmaBuffer: false, dmaMaskBits: 32 });
          expect(info.faults).to.not.include('skip-flush-dma-buffer');
        } else {
          expect(d).to.include({ api: 'wdm-dma-v3', adapterVersion: 3, flushDmaBuffer: true, dmaMaskBits: 28 });
          expect(info.faults).to.include('skip-flush-dma-buffer');
        }
      });

      // What `dmahil run --image <golden> --all` runs on Windows; the rest it reports skipped (applicability.ts).
      for (const entry of CATALOG.filter((e) => notOnImage(e, 'windows') === undefined)) {
        const c = modelCase(world, entry);
        it(`${entry.variant} catalog: ${entry.name}`, async () => {
          if (!session.isHealthy()) {
            await session.close();
            await fresh();
          }
          const v = await runScenario(session, c);
          const said = `${v.status}: ${v.summary}`;
          expect(await session.describeBugchecks(), said).to.deep.equal([]);
          if (c.expectSkip) {
            expect(v.status, said).to.equal('skip');
            expect(v.summary).to.match(c.expectSkip);
            return;
          }
          expect(outcome(v), said).to.equal('ok');
          if (world.catalogVariant === 'bounce' && !c.expectFinding && entry.scenario.fault === 'none') {
            const dst = v.result!.buffers.find((b) => b.role === 'destination')!;
            if (dst.kind === 'client') expect(dst.bounced, 'a map-register world bounces every client mapping').to.equal(true);
          }
        });
      }
    });
  }
});
