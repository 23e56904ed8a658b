// A per-run copy-on-write disk over the golden image: `qemu-img create -f qcow2 -b BASE -F qcow2`.
// QEMU opens a backing file read-only, so the golden image is never written; every change of a run
// (the driver install, logs, a crash dump) lands in the overlay, which is kept in the artifacts.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError, UsageError } from '../../errors.js';

const run = promisify(execFile);

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize?: number;
  backingFile?: string;
  backingFormat?: string;
}

/** `qemu-img info --output=json`, the fields dmahil uses. */
export async function imageInfo(file: string, qemuImg = 'qemu-img'): Promise<ImageInfo> {
  let stdout: string;
  try {
    ({ stdout } = await run(qemuImg, ['info', '--output=json', '-U', file], { maxBuffer: 1 << 20 }));
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new EnvironmentError(`${qemuImg} not found`, { hint: 'install it: apt-get install -y qemu-utils' });
    throw new UsageError(`${file} is not a disk image qemu-img can read: ${(err.stderr ?? err.message).trim().split('\n')[0]}`, {
      hint: 'pass the golden image made by "make windows-image" (a qcow2 file)',
    });
  }
  const j = JSON.parse(stdout) as Record<string, unknown>;
  return {
    format: String(j.format),
    virtualSize: Number(j['virtual-size']),
    actualSize: j['actual-size'] === undefined ? undefined : Number(j['actual-size']),
    backingFile: j['backing-filename'] === undefined ? undefined : String(j['backing-filename']),
    backingFormat: j['backing-filename-format'] === undefined ? undefined : String(j['backing-filename-format']),
  };
}

/** The qemu-img arguments that create `overlay` over `base` (absolute paths, explicit backing format). */
export function overlayArgs(base: string, overlay: string): string[] {
  return ['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', '-b', path.resolve(base), '-F', 'qcow2', path.resolve(overlay)];
}

/**
 * Create a fresh overlay over a qcow2 golden image. Refuses a base that is missing, not qcow2, or is
 * itself the overlay path; an existing overlay is replaced (a run never inherits another run's disk).
 */
export async function createOverlay(base: string, overlay: string, qemuImg = 'qemu-img'): Promise<ImageInfo> {
  const absBase = path.resolve(base);
  const absOverlay = path.resolve(overlay);
  if (absBase === absOverlay) throw new UsageError(`the overlay ${absOverlay} would replace its own base image`, { hint: 'put the overlay in the run artifacts' });
  try {
    await fs.access(absBase, fs.constants.R_OK);
  } catch (e) {
    throw new UsageError(`Windows golden image ${absBase} is not readable (${(e as NodeJS.ErrnoException).code})`, {
      hint: 'build it with "make windows-image ISO=…" or point DMAHIL_WINDOWS_IMAGE at it',
    });
  }
  const info = await imageInfo(absBase, qemuImg);
  if (info.format !== 'qcow2') {
    throw new UsageError(`Windows golden image ${absBase} is ${info.format}, not qcow2`, { hint: `convert it: qemu-img convert -O qcow2 ${absBase} image.qcow2` });
  }
  await fs.mkdir(path.dirname(absOverlay), { recursive: true });
  await fs.rm(absOverlay, { force: true });
  try {
    await run(qemuImg, overlayArgs(absBase, absOverlay));
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new EnvironmentError(`qemu-img could not create the overlay ${absOverlay}: ${(err.stderr ?? err.message).trim()}`, { hint: 'check free space and permissions in the artifacts folder' });
  }
  const made = await imageInfo(absOverlay, qemuImg);
  if (made.backingFile !== absBase || made.backingFormat !== 'qcow2') {
    throw new EnvironmentError(`overlay ${absOverlay} does not name ${absBase} (qcow2) as its backing file`, { hint: 'qemu-img misbehaved; check its version' });
  }
  return made;
}
