// A DMA v3 adapter whose DmaOperations table has no usable FlushDmaBuffer: the pointer is NULL though Size
// covers it, or Size ends before it (a table older than the member). The driver must see that before it
// calls anything (src/dma.c reads Size, then the pointer; src/run.c calls only a non-NULL one), say so in
// `dmactl info`, run without it, and refuse the fault that needs it with the reason. The model offers such
// tables with DMAHIL_MODEL_V3_FLUSH (model/README.md); the unchanged table calls FlushDmaBuffer, and two
// mutants that drop one of the driver's checks are caught, so the spec can fail.
import { expect } from 'chai';
import fs from 'node:fs/promises';
import { CATALOG } from '../../harness/dma/catalog.js';
import { runScenario, type ScenarioCase } from '../../harness/dma/run-scenario.js';
import type { NtModelSession } from '../../harness/guest/nt-model/session.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import type { WinePrefix } from '../windows-package/support.js';
import { buildModel, buildMutant, modelCase, modelPrefix, startModel } from './support.js';

const world = NT_MODEL_WORLDS.direct;
const RUNS = ['round-trip 4096 B', 'scatter-gather round-trip 12 KiB'];
/** DmaOperations->Size of each table on x64: the full FE table, and one that ends after CancelMappedTransfer. */
const TABLES = { present: 0x140, null: 0x140, short: 0xe8 } as const;

function entry(name: string): ScenarioCase {
  return modelCase(world, CATALOG.find((e) => e.variant === 'direct' && e.name === name)!);
}

function flushCalls(v: Awaited<ReturnType<typeof runScenario>>): number {
  return v.result?.calls.find((c) => c.name === 'FlushDmaBuffer')?.count ?? 0;
}

describe('windows driver in the NT DMA model: a v3 adapter without a usable FlushDmaBuffer', function () {
  this.timeout(300_000);
  let prefix: WinePrefix;

  before(async () => {
    await buildModel();
    prefix = modelPrefix();
  });

  for (const flush of ['null', 'short'] as const) {
    describe(`DMAHIL_MODEL_V3_FLUSH=${flush} (Size 0x${TABLES[flush].toString(16)})`, () => {
      let session: NtModelSession;
      before(async () => {
        session = await startModel(world, `v3-flush-${flush}`, prefix, { env: { DMAHIL_MODEL_V3_FLUSH: flush } });
      });
      after(async () => {
        await session?.close();
      });

      it('dmactl info reports DMA v3 with FlushDmaBuffer absent and the table size', async () => {
        const info = await session.info();
        expect(info.driver).to.include({ api: 'wdm-dma-v3', adapterVersion: 3, dmaOpsSize: TABLES[flush], flushDmaBuffer: false });
      });

      for (const name of RUNS) {
        it(`"${name}" passes without calling FlushDmaBuffer`, async () => {
          const v = await runScenario(session, entry(name));
          expect(v.status, v.summary).to.equal('pass');
          expect(flushCalls(v)).to.equal(0);
          expect(session.bugchecks).to.deep.equal([]);
        });
      }

      it('the skip-flush-dma-buffer fault is refused, naming the absent routine and the table size', async () => {
        const base = entry('round-trip 4096 B');
        const v = await runScenario(session, { ...base, name: 'skip-flush-dma-buffer without FlushDmaBuffer', scenario: { ...base.scenario, fault: 'skip-flush-dma-buffer' } });
        expect(v.status, v.summary).to.equal('skip');
        expect(v.summary).to.include(`FlushDmaBuffer absent (DMA v3, DmaOperations->Size ${TABLES[flush]})`);
        expect(session.bugchecks).to.deep.equal([]);
      });
    });
  }

  describe('the full table (present): the same runs call FlushDmaBuffer', () => {
    let session: NtModelSession;
    before(async () => {
      session = await startModel(world, 'v3-flush-present', prefix);
    });
    after(async () => {
      await session?.close();
    });
    it('info says present, and a round trip calls it on the destination', async () => {
      const info = await session.info();
      expect(info.driver).to.include({ api: 'wdm-dma-v3', dmaOpsSize: TABLES.present, flushDmaBuffer: true });
      const v = await runScenario(session, entry('round-trip 4096 B'));
      expect(v.status, v.summary).to.equal('pass');
      expect(flushCalls(v)).to.be.greaterThan(0);
    });
  });

  // Each mutant drops one of the two checks; the model must stop it where the real kernel would crash.
  const MUTANTS = [
    {
      name: 'no-null-check',
      file: 'run.c',
      flush: 'null',
      edit: (t: string) => t.replace(/ \|\| dev->FlushDmaBuffer == NULL\)/, ')'),
      rule: /^access-violation$/,
    },
    {
      name: 'no-size-check',
      file: 'dma.c',
      flush: 'short',
      edit: (t: string) => t.replace(/ && Dev->DmaOpsSize >= EDU_FLUSH_DMA_BUFFER_MIN_SIZE\)/, ')'),
      rule: /^dma-ops-beyond-size$/,
    },
  ] as const;
  for (const m of MUTANTS) {
    describe(`a mutant without the driver's ${m.name === 'no-null-check' ? 'NULL' : 'Size'} check`, () => {
      let root = '';
      after(async () => {
        if (root) await fs.rm(root, { recursive: true, force: true });
      });
      it(`DMAHIL_MODEL_V3_FLUSH=${m.flush}: the round trip is stopped by a bug check, not passed`, async () => {
        const mutant = await buildMutant(m.name, m.file, m.edit);
        root = mutant.root;
        let session: NtModelSession | undefined;
        try {
          session = await startModel(world, `v3-flush-mutant-${m.name}`, prefix, { exe: mutant.exe, env: { DMAHIL_MODEL_V3_FLUSH: m.flush } });
          const v = await runScenario(session, entry('round-trip 4096 B'));
          expect(v.status, v.summary).to.not.equal('pass');
          const rules = session.bugchecks.map((b) => b.rule);
          expect(rules.some((r) => m.rule.test(r)), `bug checks: ${(await session.describeBugchecks()).join('; ') || 'none'}`).to.equal(true);
        } finally {
          await session?.close();
        }
      });
    });
  }
});
