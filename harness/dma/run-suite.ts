// Run catalog entries variant by variant, each scenario on a guest from a SessionSource.
// A variant whose guest cannot start is tried once: that scenario and the rest of the variant are
// reported not-run with the one cause, instead of a boot (and its timeout) per scenario.
// With `jobs` > 1 and a source whose guests are independent (`concurrent`, e.g. SnapshotSessionSource),
// up to `jobs` scenarios run at once; verdicts come back in catalog order either way.
import { DmahilError, UsageError } from '../errors.js';
import { knownVariants, type CatalogEntry, type GuestVariant } from './catalog.js';
import { runScenario, type ScenarioCase } from './run-scenario.js';
import type { SessionSource } from './session-source.js';
import type { Verdict } from './verdict.js';

export interface SuiteVerdict extends Verdict {
  variant: GuestVariant['id'];
}

export interface SuiteOptions {
  source: SessionSource;
  onVerdict?: (v: SuiteVerdict) => void;
  onProgress?: (message: string) => void;
  /** Scenarios at once (default 1). Only a source with `concurrent: true` gets more than 1. */
  jobs?: number;
  /** Why an entry cannot apply on this host (applicability.ts): it is reported skipped with that reason, not run. */
  notApplicable?: (c: CatalogEntry) => string | undefined;
  /** Asked before each scenario starts: true leaves the rest unrun and unreported (--until-fail). */
  stop?: () => boolean;
  /** Guest variants besides the built-in direct and bounce (dmahil.config.json "variants"), run after them. */
  variants?: readonly GuestVariant[];
}

function describeError(e: unknown): string {
  return e instanceof DmahilError ? e.describe() : (e as Error).message;
}

/** Does the source hand out independent guests, so several scenarios may hold one each at once? */
export function isConcurrentSource(source: SessionSource): boolean {
  return (source as { concurrent?: unknown }).concurrent === true;
}

export async function runSuite(entries: CatalogEntry[], opts: SuiteOptions): Promise<SuiteVerdict[]> {
  const verdicts: SuiteVerdict[] = [];
  const record = (v: SuiteVerdict): void => {
    verdicts.push(v);
    opts.onVerdict?.(v);
  };
  const jobs = isConcurrentSource(opts.source) ? Math.max(1, Math.floor(opts.jobs ?? 1)) : 1;
  if ((opts.jobs ?? 1) > 1 && jobs === 1) opts.onProgress?.('this guest source reuses one guest per variant: running one scenario at a time');
  const order = new Map(entries.map((e, i) => [e, i]));
  const variants = knownVariants(opts.variants);
  const unknown = entries.find((e) => !variants.some((v) => v.id === e.variant));
  if (unknown) throw new UsageError(`"${unknown.name}" runs on guest variant "${unknown.variant}", which is not one of ${variants.map((v) => v.id).join(', ')}`, { hint: 'declare it under "variants" in dmahil.config.json, or use direct or bounce' });
  const cannotStart = new Map<GuestVariant['id'], string>();
  const notRun = (variant: GuestVariant, c: CatalogEntry, cause: string): void =>
    record({ ...c, variant: variant.id, expectSeed: c.expectSeed ?? c.scenario.seed, status: 'not-run', summary: `not run: the ${variant.id} guest did not start: ${cause}`, findings: [], mismatch: null, durationMs: 0 });

  const runOne = async (variant: GuestVariant, c: CatalogEntry): Promise<void> => {
    const na = opts.notApplicable?.(c);
    if (na !== undefined) {
      return record({ ...c, variant: variant.id, expectSeed: c.expectSeed ?? c.scenario.seed, status: 'skip', summary: na, findings: [], mismatch: null, durationMs: 0 });
    }
    const known = cannotStart.get(variant.id);
    if (known !== undefined) return notRun(variant, c, known);
    let session;
    try {
      session = await opts.source.acquire(variant);
    } catch (e) {
      const cause = cannotStart.get(variant.id) ?? describeError(e);
      if (!cannotStart.has(variant.id)) opts.onProgress?.(`the ${variant.id} guest did not start; its scenarios are not run: ${cause}`);
      cannotStart.set(variant.id, cause);
      return notRun(variant, c, cause);
    }
    opts.onProgress?.(`running "${c.name}"`);
    const v = await runScenario(session, variantCase(variant, c, session.profile));
    record({ ...v, variant: variant.id, ...(c.rerun ? { rerun: c.rerun } : {}) });
    await opts.source.release(session, v);
  };

  try {
    for (const variant of variants) {
      const mine = entries.filter((e) => e.variant === variant.id);
      if (mine.length > 0) opts.onProgress?.(`${variant.id} guest: ${variant.description}`);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < mine.length && !opts.stop?.()) await runOne(variant, mine[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(jobs, mine.length) }, worker));
    }
  } finally {
    await opts.source.close();
  }
  const index = new Map(entries.map((e) => [`${e.variant}\0${e.name}`, order.get(e)!]));
  const byCatalog = (v: SuiteVerdict): number => index.get(`${v.variant}\0${v.name}`) ?? 0;
  return verdicts.sort((a, b) => byCatalog(a) - byCatalog(b));
}

/**
 * The case as the variant's machine qualifies it. On the reference guest, swiotlb=noforce or a vIOMMU
 * (Linux bounces only untrusted devices there) means no mapping can bounce, so a bounced address in the
 * report is a finding, as on direct. A Windows guest under intel-iommu may leave remapping off and use
 * map registers, so bouncing stays allowed there, as on its direct guest. Behind a vIOMMU, an access nothing answered is a
 * refused IOVA (an iommu-fault), not a DMA into a hole.
 */
export function variantCase(variant: GuestVariant, c: CatalogEntry, profile: string): ScenarioCase {
  // Windows' direct guest has 2 GiB and a 28-bit adapter: the HAL bounces pages beyond the width, so
  // "nothing bounces on direct" is the reference guest's rule (docs/windows.md, direct and bounce).
  if (profile === 'windows' && c.variant === 'direct') {
    const { variant: _direct, ...rest } = c;
    return rest;
  }
  const iommu = variant.machine?.iommu !== undefined || variant.windows?.iommu !== undefined;
  const nothingBounces = profile !== 'windows' && (variant.machine?.swiotlb === 'off' || variant.machine?.iommu !== undefined);
  if (!iommu && !nothingBounces) return c;
  return { ...c, ...(iommu ? { behindIommu: true } : {}), ...(nothingBounces ? { nothingBounces: true } : {}) };
}

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

/** Parse "i/n" (1 <= i <= n). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new UsageError(`--shard "${text}" is not i/n with 1 <= i <= n`, { hint: 'e.g. --shard 1/2 on one CI runner and --shard 2/2 on the other' });
  }
  return { index, count };
}

/**
 * The entries one CI runner takes: round-robin over the selection in catalog order, so every scenario
 * lands in exactly one shard, the shards differ in size by at most one, and the split depends only on
 * the selection (the same options on every runner) — never on timing or the machine.
 */
export function shardEntries<T>(entries: T[], shard: Shard): T[] {
  return entries.filter((_, i) => i % shard.count === shard.index - 1);
}
