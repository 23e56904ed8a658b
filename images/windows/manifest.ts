// The golden image's manifest: written next to the qcow2 by the image builder, read by the Windows
// profile. Everything the profile needs to boot the image and log in, with paths relative to the manifest.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../harness/errors.js';

export const MANIFEST_KIND = 'dmahil-windows-image';

export interface WindowsImageManifest {
  kind: typeof MANIFEST_KIND;
  version: 1;
  /** The golden disk (qcow2), relative to the manifest. */
  disk: string;
  firmware: 'uefi' | 'bios';
  /** UEFI only: the variable store after the install (boot entries), relative; copied per run. */
  ovmfVars?: string;
  /** UEFI only: the code image the install used (absolute; Debian's OVMF_CODE_4M.fd). */
  ovmfCode?: string;
  arch: 'x64' | 'x86';
  /** The SSH login (a member of Administrators) and its private key, relative to the manifest. */
  username: string;
  privateKey: string;
  edition: string;
  driverVerifier: boolean;
  pvpanicDriver: boolean;
  createdAt: string;
}

export interface ResolvedWindowsImage {
  manifestFile: string;
  manifest: WindowsImageManifest;
  disk: string;
  ovmfVars?: string;
  ovmfCode?: string;
  privateKeyFile: string;
}

/** `win.qcow2` -> `win.json`; a .json path is taken as it is. */
export function manifestPathFor(imagePath: string): string {
  return imagePath.endsWith('.json') ? imagePath : imagePath.replace(/\.qcow2$/, '') + '.json';
}

/** Read and check a manifest (or the manifest next to a qcow2); every problem names the next step. */
export function readWindowsImage(imagePath: string): ResolvedWindowsImage {
  const file = path.resolve(manifestPathFor(imagePath));
  const next = 'build the image with "make windows-image ISO=path/to/windows.iso" and point DMAHIL_WINDOWS_IMAGE (or --image) at its .json or .qcow2';
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`no Windows image manifest at ${file} (${(e as NodeJS.ErrnoException).code})`, { hint: next });
  }
  let m: WindowsImageManifest;
  try {
    m = JSON.parse(text) as WindowsImageManifest;
  } catch (e) {
    throw new UsageError(`Windows image manifest ${file} is not JSON: ${(e as Error).message}`, { hint: next });
  }
  const problems: string[] = [];
  if (m.kind !== MANIFEST_KIND) problems.push(`kind is ${JSON.stringify(m.kind)}, not "${MANIFEST_KIND}"`);
  if (m.version !== 1) problems.push(`version ${JSON.stringify(m.version)} is not 1`);
  if (typeof m.disk !== 'string' || m.disk === '') problems.push('disk is missing');
  if (m.firmware !== 'uefi' && m.firmware !== 'bios') problems.push(`firmware ${JSON.stringify(m.firmware)} is not "uefi" or "bios"`);
  if (m.firmware === 'uefi' && !m.ovmfVars) problems.push('ovmfVars is missing for a UEFI image');
  if (m.arch !== 'x64' && m.arch !== 'x86') problems.push(`arch ${JSON.stringify(m.arch)} is not "x64" or "x86"`);
  if (typeof m.username !== 'string' || m.username === '') problems.push('username is missing');
  if (typeof m.privateKey !== 'string' || m.privateKey === '') problems.push('privateKey is missing');
  if (problems.length) throw new UsageError(`Windows image manifest ${file} is not usable: ${problems.join('; ')}`, { hint: next });
  const dir = path.dirname(file);
  const resolved: ResolvedWindowsImage = {
    manifestFile: file,
    manifest: m,
    disk: path.resolve(dir, m.disk),
    privateKeyFile: path.resolve(dir, m.privateKey),
    ovmfVars: m.ovmfVars ? path.resolve(dir, m.ovmfVars) : undefined,
    ovmfCode: m.ovmfCode,
  };
  for (const [what, f] of [['disk', resolved.disk], ['SSH private key', resolved.privateKeyFile], ['OVMF variable store', resolved.ovmfVars]] as const) {
    if (f === undefined) continue;
    try {
      fs.accessSync(f, fs.constants.R_OK);
    } catch (e) {
      throw new UsageError(`the Windows image's ${what} ${f} is not readable (${(e as NodeJS.ErrnoException).code})`, { hint: `keep the files the image build wrote next to ${file} together; or ${next}` });
    }
  }
  return resolved;
}

export function writeManifest(file: string, m: WindowsImageManifest): void {
  fs.writeFileSync(file, JSON.stringify(m, null, 2) + '\n');
}
