// The test build of edudma with planted coherency bugs (edudma_planted.h): build it and name its bugs.
// For the explorer's specs and benchmarks only; the shipped module never carries them.
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { DmahilError } from '../../harness/errors.js';

/** The bugs the module parameter `planted` chooses from, each with what it gets wrong. */
export const PLANTED_BUGS = {
  'first-page': 'the sync after the device wrote covers only the first page of each mapping',
  'last-chunk': 'page-by-page sync whose last piece is one byte short when the data crosses a page',
  'skip-64k': 'sync in 64 KiB windows that skips the last one when the size is a multiple of 64 KiB',
  'sg-last': 'a scatter-gather list of several entries whose last entry is not synced',
  race: 'one run in N hands the destination to the CPU before the last completion interrupt',
} as const;

export type PlantedBug = keyof typeof PLANTED_BUGS;

/**
 * build/linux/edudma-planted.ko for this kernel (make edudma-planted); for a --kernel root, `kernel` is its
 * build tree and output folder (harness/kernel/kernel-root.ts kernelDriverBuild), as for buildLinuxDriver.
 */
export async function buildPlantedDriver(opts: { kernelVersion: string; repoRoot: string; kernel?: { buildDir: string; outDir: string } }): Promise<string> {
  const root = resolve(opts.repoRoot);
  const own = opts.kernel ? [`KDIR=${opts.kernel.buildDir}`, `LINUX_OUT=${opts.kernel.outDir}`] : [];
  const res = await execa('make', ['-s', '-C', root, `KVER=${opts.kernelVersion}`, ...own, 'edudma-planted'], { reject: false, all: true, env: { LC_ALL: 'C' } });
  if (res.exitCode !== 0) throw new DmahilError(`make edudma-planted failed (exit ${res.exitCode}): ${(res.all ?? '').trim().split('\n').slice(-5).join(' | ')}`);
  return join(opts.kernel?.outDir ?? join(root, 'build/linux'), 'edudma-planted.ko');
}

/** insmod parameters that plant one bug (or none, the shipped behaviour, in the test build). */
export function plantedParams(bug: PlantedBug | 'none', raceEvery?: number): string {
  return `planted=${bug}${raceEvery === undefined ? '' : ` planted_race_every=${raceEvery}`}`;
}
