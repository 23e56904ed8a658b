// Checks that need the file system, done before spawning so the user gets one clear line instead of
// a QEMU error buried in a log: tools present, images readable.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { MachineConfig } from './config.js';
import { EnvironmentError, UsageError } from '../errors.js';

/** Absolute path of an executable: as given when it contains '/', else the first match on PATH. */
export function findExecutable(name: string): string | undefined {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((d) => path.join(d, name));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return path.resolve(candidate);
    } catch {
      // next
    }
  }
  return undefined;
}

export function requireQemu(binary: string): string {
  const found = findExecutable(binary);
  if (found) return found;
  throw new EnvironmentError(`QEMU binary ${binary} not found${binary.includes('/') ? '' : ' on PATH'}`, {
    hint: 'install the Debian package qemu-system-x86: apt-get install -y qemu-system-x86 (or set qemuBinary)',
  });
}

const invalidMemLog = new Map<string, boolean>();

/**
 * Does this QEMU have the -d item invalid_mem? On QEMU 10.0 (measured), "Invalid write … rejected" (an unbacked
 * address, and every access an IOMMU refuses) is logged under it, no longer under guest_errors; 7.2 has
 * no such item and refuses to start with it. Asked once per binary (`-d help`, a few ms).
 */
export function logsInvalidMem(binary: string): boolean {
  let has = invalidMemLog.get(binary);
  if (has === undefined) {
    // `-d help` lists the items on stdout and exits 1 (7.2 and 10.0 alike).
    const r = spawnSync(binary, ['-d', 'help'], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] });
    has = /^invalid_mem\b/m.test(r.stdout ?? '');
    invalidMemLog.set(binary, has);
  }
  return has;
}

export function requireSetpriv(): string {
  const found = findExecutable('setpriv');
  if (found) return found;
  throw new EnvironmentError('setpriv not found on PATH (needed so QEMU dies with the harness)', {
    hint: 'install the Debian package util-linux: apt-get install -y util-linux',
  });
}

/** Every file the config names must exist and be readable. */
export function checkConfigFiles(c: MachineConfig): void {
  const files: Array<[string, string]> = [];
  if (c.kernel !== undefined) files.push(['kernel', c.kernel]);
  if (c.initrd !== undefined) files.push(['initrd', c.initrd]);
  (c.drives ?? []).forEach((d, i) => files.push([`drives[${i}].file`, d.file]));
  (c.cdroms ?? []).forEach((d, i) => files.push([`cdroms[${i}].file`, d.file]));
  for (const [field, file] of files) {
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      throw new UsageError(`machine config: ${field} ${file} is not readable (${(err as NodeJS.ErrnoException).code ?? err})`, {
        hint: `build or download it first, or fix the path in ${field}`,
      });
    }
  }
}
