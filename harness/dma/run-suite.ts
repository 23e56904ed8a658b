// Run catalog entries variant by variant, each scenario on a guest from a SessionSource.
// A guest that cannot start fails the scenario with the reason; the next scenario tries again.
import { DmahilError } from '../errors.js';
import { VARIANTS, type CatalogEntry, type GuestVariant } from './catalog.js';
import { runScenario } from './run-scenario.js';
import type { SessionSource } from './session-source.js';
import type { Verdict } from './verdict.js';

export interface SuiteVerdict extends Verdict {
  variant: GuestVariant['id'];
}

export interface SuiteOptions {
  source: SessionSource;
  onVerdict?: (v: SuiteVerdict) => void;
  onProgress?: (message: string) => void;
}

function describeError(e: unknown): string {
  return e instanceof DmahilError ? e.describe() : (e as Error).message;
}

export async function runSuite(entries: CatalogEntry[], opts: SuiteOptions): Promise<SuiteVerdict[]> {
  const verdicts: SuiteVerdict[] = [];
  const record = (v: SuiteVerdict): void => {
    verdicts.push(v);
    opts.onVerdict?.(v);
  };
  try {
    for (const variant of Object.values(VARIANTS)) {
      const mine = entries.filter((e) => e.variant === variant.id);
      if (mine.length > 0) opts.onProgress?.(`${variant.id} guest: ${variant.description}`);
      for (const c of mine) {
        let session;
        try {
          session = await opts.source.acquire(variant);
        } catch (e) {
          record({ ...c, variant: variant.id, expectSeed: c.expectSeed ?? c.scenario.seed, status: 'error', summary: `guest did not start: ${describeError(e)}`, findings: [], mismatch: null, durationMs: 0 });
          continue;
        }
        opts.onProgress?.(`running "${c.name}"`);
        const v = await runScenario(session, c);
        record({ ...v, variant: variant.id });
        await opts.source.release(session, v);
      }
    }
  } finally {
    await opts.source.close();
  }
  return verdicts;
}
