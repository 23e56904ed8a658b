// Benchmarks of dmahil explore beside the fixed catalog: scenarios per second on live guests (one per
// variant, and --jobs 2), and per planted bug (the driver's test build) the time to find and to shrink,
// each next to the catalog run on the same driver, as `dmahil run --all` runs it (a restore per scenario).
import path from 'node:path';
import { guestSource } from '../harness/cli/guests.js';
import { CATALOG, VARIANTS, windowsOnly } from '../harness/dma/catalog.js';
import { notApplicable, notOnImage } from '../harness/dma/applicability.js';
import { runSuite } from '../harness/dma/run-suite.js';
import { outcome, type Verdict } from '../harness/dma/verdict.js';
import { explore, type ExploreResult } from '../harness/explore/explore.js';
import { caseName, type VariantId } from '../harness/explore/generate.js';
import { ExploreGuests } from '../harness/explore/guests.js';
import type { LinuxGuestOptions } from '../harness/guest/linux/profile.js';
import { probeEduBehaviour } from '../harness/machine/edu-behaviour.js';
import { DEFAULT_QEMU_BINARY } from '../harness/machine/cmdline.js';
import type { GuestBenchContext } from './guest-rates.js';

type Driver = LinuxGuestOptions['driverOverride'];
// The reference guest's: the verifier variant is a Windows golden image's.
const VARIANT_IDS = Object.values(VARIANTS).filter((v) => !windowsOnly(v)).map((v) => v.id) as VariantId[];

const source = (ctx: GuestBenchContext, name: string, driverOverride: Driver) =>
  guestSource({ image: 'linux', accel: 'auto', bootTimeoutMs: 180_000, artifacts: path.join(ctx.artifacts, name), progress: () => undefined, reuse: false, driverOverride });

export interface CatalogRun {
  seconds: number;
  perS: number;
  /** Scenarios that did not verify (on a planted bug: the ones that caught it). */
  caught: string[];
}

/** The whole catalog on pristine restores, after both snapshots are made (off the clock). */
export async function catalogRun(ctx: GuestBenchContext, name: string, driverOverride?: Driver): Promise<CatalogRun> {
  const s = source(ctx, name, driverOverride);
  const edu = await probeEduBehaviour(DEFAULT_QEMU_BINARY);
  try {
    for (const v of Object.values(VARIANTS).filter((x) => !windowsOnly(x))) await s.release(await s.acquire(v), { status: 'pass' } as Verdict);
    const started = performance.now();
    const verdicts = await runSuite(CATALOG, { source: s, notApplicable: (c) => notOnImage(c, 'linux') ?? notApplicable(c, edu) });
    const seconds = (performance.now() - started) / 1000;
    const caught = verdicts.filter((v) => outcome(v) === 'not-ok').map((v) => `${v.variant} ${v.name}`);
    ctx.log(`catalog (${name}): ${CATALOG.length} scenarios in ${seconds.toFixed(1)} s, ${caught.length ? `not ok: ${caught.join('; ')}` : 'all ok'}`);
    return { seconds, perS: CATALOG.length / seconds, caught };
  } finally {
    await s.close();
  }
}

/** dmahil explore for a while, or until a failure is found and shrunk; the guests' boot is off the clock. */
export async function exploreRun(ctx: GuestBenchContext, name: string, opts: { jobs: number; budgetMs: number; seed: number; driverOverride?: Driver }): Promise<ExploreResult> {
  const s = source(ctx, name, opts.driverOverride);
  const guests = new ExploreGuests(s, opts.jobs);
  try {
    const r = await explore({ guests, seed: opts.seed, budgetMs: opts.budgetMs, variants: VARIANT_IDS, jobs: opts.jobs });
    const f = r.failure;
    ctx.log(
      `explore (${name}): ${r.runs} scenarios, ${r.scenariosPerS.toFixed(1)}/s` +
        (f ? `; found in ${(f.findMs / 1000).toFixed(1)} s, shrunk in ${(f.shrinkMs / 1000).toFixed(1)} s to ${f.minimal.variant} ${caseName(f.minimal)}` : '; no failure'),
    );
    return r;
  } finally {
    await guests.close();
  }
}
