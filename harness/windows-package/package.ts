// Where the Windows package lives and what it must contain.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InfCheckOptions } from './inf.js';

export const EDUDMA_HWID = 'PCI\\VEN_1234&DEV_11E8';

export const EDUDMA_INF_OPTIONS: InfCheckOptions = {
  hardwareId: EDUDMA_HWID,
  decorations: ['NTamd64', 'NTx86'],
  catalogFile: 'edudma.cat',
  driverFile: 'edudma.sys',
};

export const PACKAGE_FILES = ['edudma.sys', 'edudma.inf', 'edudma.cat', 'edudma-test.cer', 'dmactl.exe', 'install.cmd'] as const;
export const ARCHES = ['x64', 'x86'] as const;

/** The repository root: the nearest directory above this file with guest-driver/windows. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'guest-driver', 'windows', 'windows.mk'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (guest-driver/windows/windows.mk)');
    dir = up;
  }
}

export function packageDir(arch: 'x64' | 'x86', root = repoRoot()): string {
  return resolve(root, 'build', 'windows', arch);
}

export function signingCert(root = repoRoot()): string {
  return resolve(root, 'build', 'windows', 'signing', 'edudma-test.crt');
}
