// Where the Windows package lives and what it must contain.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkCrlf, checkInf, DRIVER_STORE_BUILD, INFVERIF_WBUILD, type InfCheck, type InfCheckOptions } from './inf.js';
import { checkDriver, type Arch } from './pe.js';

export const EDUDMA_HWID = 'PCI\\VEN_1234&DEV_11E8';

export const EDUDMA_INF_OPTIONS: InfCheckOptions = {
  hardwareId: EDUDMA_HWID,
  // Windows 10 1709 and later run the driver from the driver store; older Windows (7 on) use the rest.
  decorations: ['NTamd64', 'NTx86', `NTamd64.10.0...${DRIVER_STORE_BUILD}`, `NTx86.10.0...${DRIVER_STORE_BUILD}`],
  catalogFile: 'edudma.cat',
  driverFile: 'edudma.sys',
  windowsDriver: { enforceFromBuild: INFVERIF_WBUILD, downlevel: { major: 6, minor: 1, build: 7601 } },
  // The Windows iommu variant relies on it (docs/windows.md, "Windows variants").
  dmaRemappingOptIn: true,
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

/**
 * The built package folder as shipped: every file present, edudma.sys signed and well-formed, the INF's
 * checks (CRLF included), install.cmd with CRLF line endings. Each check's id names its file.
 */
export function checkPackage(dir: string, arch: Arch, opts: { driverUsesMsi?: boolean } = {}): InfCheck[] {
  const checks: InfCheck[] = [];
  const missing = PACKAGE_FILES.filter((f) => !existsSync(join(dir, f)));
  checks.push({ id: 'files', ok: missing.length === 0, detail: missing.length ? `missing ${missing.join(', ')} in ${dir}: run make driver` : PACKAGE_FILES.join(', ') });
  const read = (f: string) => (missing.includes(f as (typeof PACKAGE_FILES)[number]) ? undefined : readFileSync(join(dir, f)));
  const sys = read('edudma.sys');
  if (sys) for (const c of checkDriver(sys, { arch, expectSigned: true })) checks.push({ ...c, id: `edudma.sys: ${c.id}` });
  const inf = read('edudma.inf');
  if (inf) for (const c of checkInf(inf.toString('latin1'), { ...EDUDMA_INF_OPTIONS, driverUsesMsi: opts.driverUsesMsi })) checks.push({ ...c, id: `edudma.inf: ${c.id}` });
  const cmd = read('install.cmd');
  if (cmd) checks.push(checkCrlf(cmd.toString('latin1'), 'install.cmd: line-endings'));
  return checks;
}
