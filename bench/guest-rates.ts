// Benchmarks on a driver-loaded reference guest: restoring a saved guest, and 4 KiB round trips
// with and without cheap waits (-icount ... sleep=off lets virtual time jump while the guest waits
// for the edu's 100 ms timer).
import path from 'node:path';
import { makeScenario } from '../harness/contract/scenario.js';
import { runScenario } from '../harness/dma/run-scenario.js';
import { restoreLinuxGuest, startLinuxGuest } from '../harness/guest/linux/profile.js';
import type { IcountConfig } from '../harness/machine/config.js';
import { CHEAP_WAITS, saveSnapshot } from '../harness/snapshot/index.js';

export interface GuestBenchContext {
  repoRoot: string;
  artifacts: string;
  log: (m: string) => void;
}

function boot(ctx: GuestBenchContext, name: string, icount?: IcountConfig) {
  return startLinuxGuest({
    repoRoot: ctx.repoRoot,
    cacheDir: path.join(ctx.repoRoot, '.cache'),
    artifactsDir: path.join(ctx.artifacts, name),
    forceBounce: false,
    accel: 'auto',
    bootTimeoutMs: 180_000,
    icount,
  });
}

/** Seconds from starting QEMU on a saved state to a guest whose edu is back and checked. */
export async function restoreSamples(ctx: GuestBenchContext, n: number): Promise<number[]> {
  const source = await boot(ctx, 'restore-source');
  const snapshot = await saveSnapshot(source, { key: 'bench' }).finally(() => source.close());
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      const s = await restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(ctx.artifacts, `restore-${i}`), readyTimeoutMs: 60_000 });
      out.push((performance.now() - started) / 1000);
      await s.close();
      ctx.log(`restore ${i + 1}/${n}: ${out.at(-1)!.toFixed(2)} s`);
    }
  } finally {
    await snapshot.discard();
  }
  return out;
}

/** Verified 4 KiB round trips per second, each judged from guest RAM like any scenario. */
export async function roundTripRate(ctx: GuestBenchContext, label: string, icount: IcountConfig | undefined, n: number): Promise<number> {
  const session = await boot(ctx, `rate-${label}`, icount);
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

/** Verified 4 KiB round trips per second over all guests, each guest running its share at the same time. */
export async function parallelThroughput(ctx: GuestBenchContext, guests: number, perGuest: number): Promise<number> {
  const sessions = await Promise.all(Array.from({ length: guests }, (_, g) => boot(ctx, `parallel-${guests}-${g}`, CHEAP_WAITS)));
  try {
    const started = performance.now();
    await Promise.all(
      sessions.map(async (session, g) => {
        for (let i = 0; i < perGuest; i++) {
          const v = await runScenario(session, { name: `parallel ${g}.${i}`, scenario: makeScenario({ size: 4096, seed: 2000 + g * 1000 + i }) });
          if (v.status !== 'pass') throw new Error(`guest ${g} round trip ${i} did not verify: ${v.summary}`);
        }
      }),
    );
    const rate = (guests * perGuest) / ((performance.now() - started) / 1000);
    ctx.log(`${guests} guest(s) at once: ${rate.toFixed(1)} round trips/s`);
    return rate;
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
  }
}

export { CHEAP_WAITS };
