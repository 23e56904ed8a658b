// A reference image shared by the image specs that only need one (the build spec makes its own).
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { buildReferenceImage, type ReferenceImage } from '../../images/linux/build.js';

let shared: Promise<ReferenceImage> | undefined;

/** Built once per process into a cache under the system temp dir, so later runs hit the cache. */
export function sharedReferenceImage(): Promise<ReferenceImage> {
  shared ??= buildReferenceImage({ cacheDir: path.join(os.tmpdir(), 'dmahil-spec-image-cache') });
  return shared;
}

/** Names in the newc archive that starts at `offset` of `file`, via GNU cpio -itv. */
export async function listArchive(data: Buffer): Promise<string[]> {
  const r = await execa('cpio', ['--quiet', '-itv'], { input: data, env: { LC_ALL: 'C', TZ: 'UTC' } });
  return r.stdout.split('\n');
}

export async function extractFromArchive(data: Buffer, name: string): Promise<Buffer> {
  const r = await execa('cpio', ['--quiet', '-i', '--to-stdout', name], { input: data, encoding: 'buffer', stripFinalNewline: false });
  return Buffer.from(r.stdout);
}
