// Run catalog entries grouped by guest variant: one boot per variant, scenarios in order on it.
// A guest that cannot start fails its scenarios with the reason instead of stopping the others.
import { DmahilError } from '../errors.js';
import type { GuestSession } from '../guest/session.js';
import { VARIANTS, type CatalogEntry, type GuestVariant } from './catalog.js';
import { runScenario } from './run-scenario.js';
import type { Verdict } from './verdict.js';

export interface SuiteVerdict extends Verdict {
  variant: GuestVariant['id'];
}

export interface SuiteOptions {
  startSession: (variant: GuestVariant) => Promise<GuestSession>;
  onVerdict?: (v: SuiteVerdict) => void;
  onProgress?: (message: string) => void;
}

export async function runSuite(entries: CatalogEntry[], opts: SuiteOptions): Promise<SuiteVerdict[]> {
  const verdicts: SuiteVerdict[] = [];
  const record = (v: SuiteVerdict): void => {
    verdicts.push(v);
    opts.onVerdict?.(v);
  };
  for (const variant of Object.values(VARIANTS)) {
    const mine = entries.filter((e) => e.variant === variant.id);
    if (mine.length === 0) continue;
    let session: GuestSession;
    try {
      opts.onProgress?.(`booting the ${variant.id} guest (${variant.description})`);
      session = await opts.startSession(variant);
    } catch (e) {
      const why = e instanceof DmahilError ? e.describe() : (e as Error).message;
      for (const c of mine) {
        record({ ...c, variant: variant.id, expectSeed: c.expectSeed ?? c.scenario.seed, status: 'error', summary: `guest did not start: ${why}`, findings: [], mismatch: null, durationMs: 0 });
      }
      continue;
    }
    try {
      for (const c of mine) {
        opts.onProgress?.(`running "${c.name}"`);
        record({ ...(await runScenario(session, c)), variant: variant.id });
      }
      await session.collectLogs().catch(() => undefined);
    } finally {
      await session.close();
    }
  }
  return verdicts;
}
