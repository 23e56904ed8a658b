// The explorer's guests, from the same SessionSource `dmahil run` uses. Explored scenarios run on live
// guests, kept between scenarios (the fast path: one `dmactl serve` answers them all); a confirmation
// gets a guest of its own from the source, which for the reference guest is a pristine restore. A
// variant's live guest is let go first, so a source that has one guest per variant never waits on itself.
import { DEFAULT_SCENARIO } from '../contract/scenario.js';
import { knownVariants, type GuestVariant } from '../dma/catalog.js';
import { runScenario } from '../dma/run-scenario.js';
import { isConcurrentSource, type SuiteVerdict } from '../dma/run-suite.js';
import type { SessionSource } from '../dma/session-source.js';
import type { Verdict } from '../dma/verdict.js';
import type { GuestSession } from '../guest/session.js';
import { caseName, type ExploreCase, type VariantId } from './generate.js';

export interface FreshGuestRuns {
  verdicts: SuiteVerdict[];
  /** Undefined: the runs were on a pristine restore; else why the guest was not one. */
  notPristine: string | undefined;
}

interface Live {
  session: GuestSession;
  last?: Verdict;
  busy: boolean;
}

/** What the explorer needs of its guests (specs give it simulated ones). */
export type ExploreGuestPool = Pick<ExploreGuests, 'run' | 'onFreshGuest' | 'warm'>;

export class ExploreGuests {
  private readonly live = new Map<VariantId, Live[]>();

  constructor(
    private readonly source: SessionSource,
    /** Live guests per variant at most (--jobs). */
    private readonly perVariant = 1,
    /** The variants beyond the built-in ones that cases may name (declared in dmahil.config.json). */
    private readonly declared: readonly GuestVariant[] = [],
  ) {}

  private variant(id: VariantId): GuestVariant {
    const v = knownVariants(this.declared).find((k) => k.id === id);
    if (!v) throw new Error(`no guest variant "${id}" among the built-in and declared ones`);
    return v;
  }

  /** Run one case on a live guest of its variant, starting one when none is free. */
  async run(c: ExploreCase, name = caseName(c)): Promise<SuiteVerdict> {
    const g = await this.take(c.variant);
    try {
      const v = await runScenario(g.session, { name, scenario: c.scenario, variant: c.variant });
      g.last = v;
      if (v.status === 'error' || !g.session.isHealthy()) await this.drop(c.variant, g, v);
      return { ...v, variant: c.variant };
    } finally {
      g.busy = false;
    }
  }

  /**
   * Run a case `repeats` times on one fresh guest from the source (a pristine restore where the source
   * restores), stopping early when `stop` says so. The variant's live guests are let go first. Says
   * what the guest was: `notPristine` is why it was not a pristine restore, from the source that gave it.
   */
  async onFreshGuest(c: ExploreCase, repeats: number, stop: (v: SuiteVerdict) => boolean, name = caseName(c)): Promise<FreshGuestRuns> {
    for (const g of [...(this.live.get(c.variant) ?? [])]) await this.drop(c.variant, g, g.last);
    const session = await this.source.acquire(this.variant(c.variant));
    const notPristine = this.source.notPristine(session);
    const out: SuiteVerdict[] = [];
    try {
      for (let i = 0; i < repeats; i++) {
        const v = await runScenario(session, { name, scenario: c.scenario, variant: c.variant });
        out.push({ ...v, variant: c.variant });
        if (v.status === 'error' || !session.isHealthy() || stop(out.at(-1)!)) break;
      }
    } finally {
      await this.source.release(session, out.at(-1) ?? passed(name));
    }
    return { verdicts: out, notPristine };
  }

  /** Start a live guest of each variant: at once where the source's guests are independent QEMUs. */
  async warm(variants: readonly VariantId[]): Promise<void> {
    const taken: Array<PromiseSettledResult<Live>> = [];
    if (isConcurrentSource(this.source)) taken.push(...(await Promise.allSettled(variants.map((v) => this.take(v)))));
    else for (const v of variants) taken.push(...(await Promise.allSettled([this.take(v)])));
    for (const t of taken) if (t.status === 'fulfilled') t.value.busy = false;
    const failed = taken.find((t): t is PromiseRejectedResult => t.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async close(): Promise<void> {
    for (const [variant, list] of this.live) for (const g of [...list]) await this.drop(variant, g, g.last);
    await this.source.close();
  }

  private async take(variant: VariantId): Promise<Live> {
    const list = this.live.get(variant) ?? [];
    this.live.set(variant, list);
    let g = list.find((x) => !x.busy && x.session.isHealthy());
    if (!g && list.length >= this.perVariant) {
      const broken = list.find((x) => !x.busy);
      if (broken) await this.drop(variant, broken, broken.last);
    }
    if (!g) {
      g = { session: await this.source.acquire(this.variant(variant)), busy: false };
      list.push(g);
    }
    g.busy = true;
    return g;
  }

  private async drop(variant: VariantId, g: Live, last: Verdict | undefined): Promise<void> {
    const list = this.live.get(variant) ?? [];
    const i = list.indexOf(g);
    if (i < 0) return;
    list.splice(i, 1);
    await this.source.release(g.session, last ?? passed('idle')).catch(() => undefined);
  }
}

/** What a source is told about a guest that ran nothing: it may be kept. */
function passed(name: string): Verdict {
  return { name, scenario: DEFAULT_SCENARIO, expectSeed: DEFAULT_SCENARIO.seed, status: 'pass', summary: 'ran nothing', findings: [], mismatch: null, durationMs: 0 };
}
