// Benchmarks on a driver-loaded reference guest: restoring a saved guest, and 4 KiB round trips
// with and without cheap waits (-icount ... sleep=off lets virtual time jump while the guest waits
// for the edu's 100 ms timer).
import path from 'node:path';
import { makeScenario } from '../harness/contract/scenario.js';
import { runScenario } from '../harness/dma/run-scenario.js';
import { restoreLinuxGuest, startLinuxGuest } from '../harness/guest/linux/profile.js';
import type { IcountConfig } from '../harness/machine/config.js';
import { CHEAP_WAITS, saveSnapshot } from '../harness/snapshot/index.js';
import { RESTORE_PROBE, SnapshotSessionSource } from '../harness/dma/snapshot-session-source.js';
import { VARIANTS, type CatalogEntry, type GuestVariant } from '../harness/dma/catalog.js';
import { runSuite } from '../harness/dma/run-suite.js';
import type { Verdict } from '../harness/dma/verdict.js';
import { median } from './table.js';

export interface GuestBenchContext {
  repoRoot: string;
  artifacts: string;
  log: (m: string) => void;
}

function boot(ctx: GuestBenchContext, name: string, icount?: IcountConfig, accel: 'auto' | 'kvm' | 'tcg' = 'auto', variant: GuestVariant = VARIANTS.direct) {
  return startLinuxGuest({
    repoRoot: ctx.repoRoot,
    cacheDir: path.join(ctx.repoRoot, '.cache'),
    artifactsDir: path.join(ctx.artifacts, name),
    forceBounce: variant.forceBounce,
    accel,
    bootTimeoutMs: 180_000,
    icount,
    ...(variant.machine ? { variant: variant.machine } : {}),
  });
}

export interface RestoreSamples {
  /** Seconds from starting QEMU on the saved state to a guest that passed its verified probe round trip. */
  seconds: number[];
  /** Median milliseconds of each step, in order. */
  stepsMs: Record<string, number>;
}

/**
 * Restores as `dmahil run` does them (cheap waits on, the edu re-attached and checked, then the 64-byte
 * round trip verified from host memory that every restored guest must pass before it gets a scenario).
 */
export async function restoreSamples(ctx: GuestBenchContext, n: number): Promise<RestoreSamples> {
  const source = await boot(ctx, 'restore-source', CHEAP_WAITS);
  const snapshot = await saveSnapshot(source, { key: 'bench' }).finally(() => source.close());
  const seconds: number[] = [];
  const steps: Record<string, number[]> = { launch: [], loadState: [], sshLogin: [], eduReattach: [], probe: [] };
  try {
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      const s = await restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(ctx.artifacts, `restore-${i}`), readyTimeoutMs: 60_000 });
      const restored = performance.now();
      const probe = await runScenario(s, RESTORE_PROBE);
      const ready = performance.now();
      await s.close();
      if (probe.status !== 'pass') throw new Error(`restore ${i}: the probe round trip did not verify: ${probe.summary}`);
      seconds.push((ready - started) / 1000);
      const t = s.restoreTimings!;
      steps.launch!.push(t.launchMs);
      steps.loadState!.push(t.loadStateMs);
      steps.sshLogin!.push(t.sshMs);
      steps.eduReattach!.push(t.eduMs);
      steps.probe!.push(ready - restored);
      ctx.log(`restore ${i + 1}/${n}: ${seconds.at(-1)!.toFixed(2)} s`);
    }
  } finally {
    await snapshot.discard();
  }
  return { seconds, stepsMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, Math.round(median(v))])) };
}

/** Verified 4 KiB round trips per second, each judged from guest RAM like any scenario. */
export async function roundTripRate(ctx: GuestBenchContext, label: string, icount: IcountConfig | undefined, n: number, accel: 'auto' | 'kvm' | 'tcg' = 'auto', variant?: GuestVariant): Promise<number> {
  const session = await boot(ctx, `rate-${label}`, icount, accel, variant);
  try {
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const v = await runScenario(session, { name: `bench ${i}`, scenario: makeScenario({ size: 4096, seed: 1000 + i }) });
      if (v.status !== 'pass') throw new Error(`round trip ${i} did not verify: ${v.summary}`);
    }
    const rate = n / ((performance.now() - started) / 1000);
    ctx.log(`4 KiB round trips, ${label}: ${rate.toFixed(1)}/s`);
    return rate;
  } finally {
    await session.close();
  }
}

/**
 * Scenarios per second the way `dmahil run --jobs N` runs them: every scenario (a verified 4 KiB round
 * trip) on its own restored guest, N guests at once. The snapshot is made before the clock starts.
 */
export async function parallelThroughput(ctx: GuestBenchContext, jobs: number, scenarios: number): Promise<number> {
  const source = new SnapshotSessionSource({
    boot: () => boot(ctx, `parallel-${jobs}-boot`, CHEAP_WAITS),
    restore: (snapshot, _v, n) => restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(ctx.artifacts, `parallel-${jobs}`, `restore-${n}`), readyTimeoutMs: 60_000 }),
    key: () => `bench parallel ${jobs}`,
  });
  try {
    await source.release(await source.acquire(VARIANTS.direct), { status: 'pass' } as Verdict); // boot + save, off the clock
    const entries: CatalogEntry[] = Array.from({ length: scenarios }, (_, i) => ({
      variant: 'direct', quick: true, name: `parallel ${i}`, scenario: makeScenario({ size: 4096, seed: 2000 + i }),
    }));
    const started = performance.now();
    const verdicts = await runSuite(entries, { source, jobs });
    const rate = scenarios / ((performance.now() - started) / 1000);
    const bad = verdicts.find((v) => v.status !== 'pass');
    if (bad) throw new Error(`--jobs ${jobs}: "${bad.name}" did not verify: ${bad.summary}`);
    if (source.fallbackReasons.size > 0) throw new Error(`--jobs ${jobs}: fell back to a reused guest: ${[...source.fallbackReasons.values()].join('; ')}`);
    ctx.log(`--jobs ${jobs}: ${rate.toFixed(2)} scenarios/s, each on a freshly restored guest`);
    return rate;
  } finally {
    await source.close();
  }
}

export { CHEAP_WAITS };
