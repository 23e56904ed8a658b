// The model's specs can fail: a driver with its streaming FlushAdapterBuffers removed (the missing
// flush that is invisible on x86 until map registers are in play) must not pass where map registers
// bounce every page, while the unchanged driver passes the same scenarios (catalog.e2e.spec.ts).
import { expect } from 'chai';
import fs from 'node:fs/promises';
import { CATALOG } from '../../harness/dma/catalog.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { outcome } from '../../harness/dma/verdict.js';
import type { NtModelSession } from '../../harness/guest/nt-model/session.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import type { WinePrefix } from '../windows-package/support.js';
import { buildMutant, modelCase, modelPrefix, startModel, withoutFlushAdapterBuffers } from './support.js';

describe('windows driver in the NT DMA model: a mutant without FlushAdapterBuffers fails', function () {
  this.timeout(300_000);
  let prefix: WinePrefix;
  let exe: string;
  let root: string;

  before(async () => {
    ({ exe, root } = await buildMutant('no-flush', 'run.c', withoutFlushAdapterBuffers));
    prefix = modelPrefix();
  });
  after(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  const world = NT_MODEL_WORLDS['map-registers'];
  for (const name of ['bounced from-device 5000 B at offset 3', 'bounced round-trip 4096 B']) {
    it(`${world.id}: "${name}" does not pass, and the reason is the missing flush`, async () => {
      const entry = CATALOG.find((e) => e.name === name)!;
      let session: NtModelSession | undefined;
      try {
        session = await startModel(world, `mutant-no-flush/${name.replace(/\W+/g, '-')}`, prefix, { exe });
        const v = await runScenario(session, modelCase(world, entry));
        expect(outcome(v), v.summary).to.equal('not-ok');
        const rules = session.bugchecks.map((b) => b.rule);
        // Either the model's DMA checks stop it (map registers freed with data never flushed back), or the
        // host reads the stale client buffer the missing copy-back leaves.
        const caught = rules.some((r) => /flush|still-mapped/.test(r)) || v.findings.some((f) => f.kind === 'stale-client-buffer');
        expect(caught, `${v.status}: ${v.summary}; bug checks: ${rules.join(', ')}`).to.equal(true);
        // A bug check names the driver's own line that made the call.
        if (rules.length > 0) expect((await session.describeBugchecks()).join('\n')).to.match(/\[at Edu\w+ \(run\.c:\d+\)\]/);
      } finally {
        await session?.close();
      }
    });
  }
});
