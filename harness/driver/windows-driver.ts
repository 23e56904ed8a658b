// dmahil run --image windows --driver DIR: DIR is a driver package folder as `make driver` builds one
// (build/windows/<arch>/): edudma.sys, edudma.inf, edudma.cat, the certificate edudma-test.cer and
// dmactl.exe. Checked on the host before a golden image boots, with the package build's own checks.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CONTRACT_VERSION } from '../contract/scenario.js';
import { UsageError } from '../errors.js';
import { PACKAGE_FILES } from '../guest/windows/profile.js';
import { catalogLists, readCatalog } from '../windows-package/catalog.js';
import { checkInf } from '../windows-package/inf.js';
import { EDUDMA_INF_OPTIONS } from '../windows-package/package.js';
import { checkDriver, parsePe, type Arch } from '../windows-package/pe.js';
import { contractTag } from './contract-tag.js';

export interface WindowsDriver {
  dir: string;
  /** The contract dmactl.exe declares (equal to CONTRACT_VERSION, or the folder was refused). */
  contract: number;
}

const IMAGE_SUBSYSTEM_WINDOWS_CUI = 3;
const BUILD_HINT = 'pass the folder of a package built like "make driver" builds build/windows/<arch>/ (guest-driver/windows/README.md)';

/** The package folder, checked for the image's architecture; throws a UsageError for the first problem. */
export function checkWindowsDriver(dir: string, arch: Arch): WindowsDriver {
  const missing = PACKAGE_FILES.filter((f) => !fs.statSync(path.join(dir, f), { throwIfNoEntry: false })?.isFile());
  if (missing.length) throw new UsageError(`--driver: the Windows driver package ${dir} lacks ${missing.join(', ')}`, { hint: `a package folder holds ${PACKAGE_FILES.join(', ')}; ${BUILD_HINT}` });
  const read = (f: string): Buffer => fs.readFileSync(path.join(dir, f));
  const bad = (file: string, what: string): UsageError => new UsageError(`--driver: ${path.join(dir, file)} ${what}`, { hint: BUILD_HINT });

  const sys = read('edudma.sys');
  const sysFailed = checkDriver(sys, { arch, expectSigned: true }).filter((c) => !c.ok);
  if (sysFailed.length) throw bad('edudma.sys', `is not a signed ${arch} kernel driver: ${sysFailed.map((c) => `${c.id} (${c.detail})`).join('; ')}`);
  const inf = read('edudma.inf');
  const infFailed = checkInf(inf.toString('latin1'), EDUDMA_INF_OPTIONS).filter((c) => !c.ok);
  if (infFailed.length) throw bad('edudma.inf', `does not install edudma for the edu: ${infFailed.map((c) => `${c.id} (${c.detail})`).join('; ')}`);
  const cat = read('edudma.cat');
  try {
    readCatalog(cat);
  } catch (e) {
    throw bad('edudma.cat', `is not a driver catalog: ${(e as Error).message}`);
  }
  for (const f of ['edudma.sys', 'edudma.inf']) {
    if (!catalogLists(cat, { name: f, data: read(f) })) throw bad('edudma.cat', `does not list ${f} as it is in the folder (was it rebuilt after the catalog was made?)`);
  }
  try {
    new X509Certificate(read('edudma-test.cer'));
  } catch (e) {
    throw bad('edudma-test.cer', `is not an X.509 certificate: ${(e as Error).message}`);
  }
  const exe = read('dmactl.exe');
  let subsystem: number;
  try {
    subsystem = parsePe(exe).subsystem;
  } catch (e) {
    throw bad('dmactl.exe', `is not a Windows program: ${(e as Error).message}`);
  }
  if (subsystem !== IMAGE_SUBSYSTEM_WINDOWS_CUI) throw bad('dmactl.exe', `is not a console program (PE subsystem ${subsystem}, a console program is ${IMAGE_SUBSYSTEM_WINDOWS_CUI})`);
  const contract = contractTag(exe);
  const speaks = `this dmahil speaks contract ${CONTRACT_VERSION} (CONTRACT_VERSION in harness/contract/scenario.ts, DMAHIL_CONTRACT_VERSION in guest-driver/common/dmahil_abi.h)`;
  if (contract === undefined) throw new UsageError(`--driver: ${path.join(dir, 'dmactl.exe')} declares no dmahil contract (no "dmahil_contract=N" string in it); ${speaks}`, { hint: 'build it from guest-driver/common/dmactl of this dmahil (make driver)' });
  if (contract !== CONTRACT_VERSION) {
    throw new UsageError(`--driver: ${path.join(dir, 'dmactl.exe')} speaks contract ${contract}; ${speaks}`, {
      hint: `rebuild the package against this dmahil's dmahil_abi.h (contract ${CONTRACT_VERSION}), or run it with the dmahil release that speaks contract ${contract}`,
    });
  }
  return { dir, contract };
}
