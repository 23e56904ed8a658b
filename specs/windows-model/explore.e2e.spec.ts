// dmahil explore on the Windows driver, through the same session interface as a golden image's guest:
// the NT DMA model runs edudma.sys's own sources (no Windows image can be had here). The direct variant is
// the model's direct world, bounce its map-registers world; each guest handed out is a new model process,
// which starts from nothing, so a confirmation runs on a pristine guest. A mutant without the streaming
// FlushAdapterBuffers is found, confirmed and shrunk; the unchanged driver explores clean.
import fs from 'node:fs/promises';
import { expect } from 'chai';
import type { GuestVariant } from '../../harness/dma/catalog.js';
import type { SessionSource } from '../../harness/dma/session-source.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { outcome, type Verdict } from '../../harness/dma/verdict.js';
import { explore } from '../../harness/explore/explore.js';
import { ExploreGuests } from '../../harness/explore/guests.js';
import type { NtModelSession } from '../../harness/guest/nt-model/session.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import type { GuestSession } from '../../harness/guest/session.js';
import type { WinePrefix } from '../windows-package/support.js';
import { buildModel, buildMutant, modelPrefix, startModel, withoutFlushAdapterBuffers } from './support.js';

/** A fresh model process per guest asked for: every guest is pristine. */
class ModelSource implements SessionSource {
  private readonly open = new Set<NtModelSession>();
  private started = 0;

  constructor(
    private readonly prefix: WinePrefix,
    private readonly name: string,
    private readonly exe?: string,
  ) {}

  async acquire(variant: GuestVariant): Promise<GuestSession> {
    const world = variant.id === 'bounce' ? NT_MODEL_WORLDS['map-registers'] : NT_MODEL_WORLDS.direct;
    const s = await startModel(world, `explore/${this.name}/${variant.id}-${++this.started}`, this.prefix, this.exe ? { exe: this.exe } : {});
    this.open.add(s);
    return s;
  }

  async release(session: GuestSession, verdict: Verdict): Promise<void> {
    if (verdict.status === 'error' || !session.isHealthy()) await this.drop(session as NtModelSession);
  }

  async close(): Promise<void> {
    for (const s of [...this.open]) await this.drop(s);
  }

  notPristine(): undefined {
    return undefined;
  }

  private async drop(s: NtModelSession): Promise<void> {
    this.open.delete(s);
    await s.close();
  }
}

describe('explore on the Windows driver in the NT DMA model (same session interface as a golden image)', function () {
  this.timeout(600_000);
  let prefix: WinePrefix;
  let mutantExe: string;
  let mutantRoot: string;

  before(async () => {
    await buildModel();
    ({ exe: mutantExe, root: mutantRoot } = await buildMutant('explore-no-flush', 'run.c', withoutFlushAdapterBuffers));
    prefix = modelPrefix();
  });
  after(async () => {
    if (mutantRoot) await fs.rm(mutantRoot, { recursive: true, force: true });
  });

  const run = async (name: string, maxRuns: number, exe?: string, grep?: RegExp) => {
    const source = new ModelSource(prefix, name, exe);
    const guests = new ExploreGuests(source, 1);
    try {
      return await explore({ guests, seed: 1, maxRuns, variants: ['direct', 'bounce'], ...(grep ? { grep } : {}) });
    } finally {
      await guests.close();
      await source.close();
    }
  };

  it('the mutant without FlushAdapterBuffers (--grep from-device): found with seed 1, confirmed on a fresh model, shrunk to from-device streaming 1 B, the Driver Verifier rule named', async () => {
    const r = await run('no-flush', 300, mutantExe, /from-device/);
    const f = r.failure;
    expect(f, `nothing found in ${r.runs} scenarios`).to.not.equal(undefined);
    expect(f!.confirmation.pristine, f!.confirmation.notPristine).to.equal(true);
    expect(f!.minimalConfirmation.pristine).to.equal(true);
    // Stricter than x86's coherence: freeing map registers whose transfer was never flushed is a bug check
    // in any world, so the smallest case needs no bouncing.
    expect({ variant: f!.minimal.variant, ...f!.minimal.scenario }).to.deep.include({ variant: 'direct', direction: 'from-device', method: 'streaming', fault: 'none', size: 1, offset: 0 });
    const v = f!.minimalConfirmation.verdict;
    expect(v.summary).to.match(/^the model bug-checked: MODEL BUGCHECK rule=free-map-registers-still-mapped ddi=FreeMapRegisters .*FlushAdapterBuffers first/);
    // A bug check is the guest's panic: "the same failure" while shrinking is that, not any error.
    expect(v.trouble).to.equal('guest-panic');
    expect(f!.confirmation.verdict.trouble).to.equal('guest-panic');
  });

  it('the unchanged driver: 150 explored scenarios on both worlds, no failure', async () => {
    const r = await run('shipped', 150);
    expect(r.failure, r.failure ? `${r.failure.minimal.variant} ${r.failure.minimalConfirmation.verdict.summary}` : '').to.equal(undefined);
    expect(r.unconfirmed).to.deep.equal([]);
    expect(r.runs).to.equal(150);
  });

  it('what explore found first: a round trip needing 17 + 17 of 32 map registers runs in two windows that reuse them, and verifies', async () => {
    // Before the per-window rule the host called the second window's reused registers an overlap
    // (bounce-ranges-overlap), a false failure on the Windows path for any transfer larger than the registers.
    const world = NT_MODEL_WORLDS['map-registers'];
    const s = await startModel(world, 'explore/windowed-round-trip', prefix);
    try {
      const v = await runScenario(s, { name: 'bounced round-trip 61442 B at offset 4095', scenario: makeScenario({ size: 61442, offset: 4095, seed: 3 }), variant: world.catalogVariant });
      expect(outcome(v), v.summary).to.equal('ok');
      const [src, dst] = v.result!.buffers;
      const reused = dst!.segments.filter((d) => src!.segments.some((x) => d.device < x.device + x.length && x.device < d.device + d.length));
      expect(reused.length, 'the second window reuses registers the first one used').to.be.greaterThan(0);
    } finally {
      await s.close();
    }
  });
});
