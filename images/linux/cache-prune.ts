// The image cache keeps what is in use: each build or cache hit stamps its entries (mtime), and entries no
// run has used for a while are removed. Without this a nightly runner gains a 63 MB kernel entry with every
// kernel update and a 7 MB initramfs entry with every change to the recipe.
import { readdir, rm, stat, utimes } from 'node:fs/promises';
import { basename, join } from 'node:path';

/** Entries unused this long go. A run in progress stamped its own at its start, so it keeps them. */
export const PRUNE_AFTER_MS = 14 * 24 * 3600 * 1000;
const ENTRY = /^linux-(image|kernel)-/;

/** Stamp `used` (entry directories in cacheDir) as used now; remove other entries unused for maxAgeMs. Returns the removed names. */
export async function stampAndPrune(cacheDir: string, used: string[], maxAgeMs = PRUNE_AFTER_MS, now = new Date()): Promise<string[]> {
  for (const dir of used) await utimes(dir, now, now);
  const keep = new Set(used.map((d) => basename(d)));
  const removed: string[] = [];
  for (const name of await readdir(cacheDir)) {
    if (!ENTRY.test(name) || keep.has(name)) continue;
    const path = join(cacheDir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isDirectory() || now.getTime() - st.mtimeMs < maxAgeMs) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
