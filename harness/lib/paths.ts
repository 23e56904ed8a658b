// Where dmahil finds what it ships (guest driver sources, image recipes) and where it caches what it
// builds (the reference guest image): the same from a checkout and from an installed package.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The root of the dmahil package: the checkout, or node_modules/dmahil when installed. guest-driver/,
 * images/ and package.json are found here (this file is dist/harness/lib/paths.js under it).
 */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The cache of built guest images: DMAHIL_CACHE when set; `.cache` in a checkout (as always); else the
 * user's cache directory ($XDG_CACHE_HOME/dmahil or ~/.cache/dmahil), so an installed package does not
 * write its images into node_modules.
 */
export function cacheDir(root = packageRoot): string {
  const fromEnv = process.env.DMAHIL_CACHE;
  if (fromEnv) return path.resolve(fromEnv);
  if (fs.existsSync(path.join(root, '.git'))) return path.join(root, '.cache');
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'dmahil');
}
