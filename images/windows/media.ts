// The config medium (a small ISO Windows Setup searches at its root, facts §6.1) and the checks on the
// user's Windows ISO. xorriso (Debian package xorriso) writes the ISO with Joliet names and reads it back.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError, UsageError } from '../../harness/errors.js';

const run = promisify(execFile);
export const CONFIG_VOLUME_ID = 'DMAHIL_CFG';

export interface MediumFile {
  /** Path on the medium, '/' separated, e.g. "Autounattend.xml" or "pvpanic/pvpanic.inf". */
  name: string;
  /** Content, or a host file to copy. */
  data?: string | Buffer;
  from?: string;
}

async function xorriso(args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run('xorriso', args, { maxBuffer: 16 << 20 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new EnvironmentError('xorriso not found (it writes the config ISO)', { hint: 'install it: apt-get install -y xorriso' });
    throw new EnvironmentError(`xorriso failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' | ')}`, { hint: 'check free space in the output folder' });
  }
}

/** Write the files into an ISO 9660 + Joliet + Rock Ridge image, then verify every file reads back byte for byte. */
export async function buildConfigIso(files: MediumFile[], isoPath: string): Promise<Array<{ name: string; sha256: string; size: number }>> {
  const stage = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-medium-'));
  try {
    const expected: Array<{ name: string; sha256: string; size: number }> = [];
    for (const f of files) {
      if (f.name.startsWith('/') || f.name.split('/').includes('..')) throw new UsageError(`medium file name ${f.name} must be relative`);
      const dest = path.join(stage, ...f.name.split('/'));
      await fs.mkdir(path.dirname(dest), { recursive: true });
      if (f.from !== undefined) await fs.copyFile(f.from, dest);
      else await fs.writeFile(dest, f.data ?? '');
      const data = await fs.readFile(dest);
      expected.push({ name: f.name, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') });
    }
    await fs.rm(isoPath, { force: true });
    await xorriso(['-as', 'mkisofs', '-quiet', '-o', isoPath, '-V', CONFIG_VOLUME_ID, '-J', '-joliet-long', '-r', '-iso-level', '3', stage]);
    const found = await verifyConfigIso(isoPath, expected);
    return found;
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

/** Extract the ISO with xorriso and compare each file with what was meant to be there; nothing extra, nothing missing. */
export async function verifyConfigIso(isoPath: string, expected: Array<{ name: string; sha256: string; size: number }>): Promise<Array<{ name: string; sha256: string; size: number }>> {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-medium-check-'));
  try {
    await xorriso(['-osirrox', 'on', '-indev', isoPath, '-extract', '/', path.join(out, 'x')]);
    const seen: Array<{ name: string; sha256: string; size: number }> = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const e of await fs.readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p, `${prefix}${e.name}/`);
        else {
          const data = await fs.readFile(p);
          seen.push({ name: `${prefix}${e.name}`, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') });
        }
      }
    };
    await walk(path.join(out, 'x'), '');
    const key = (l: Array<{ name: string }>) => l.map((f) => f.name).sort();
    const missing = key(expected).filter((n) => !seen.some((s) => s.name === n));
    const extra = key(seen).filter((n) => !expected.some((s) => s.name === n));
    const differ = expected.filter((f) => seen.some((s) => s.name === f.name && s.sha256 !== f.sha256)).map((f) => f.name);
    if (missing.length || extra.length || differ.length) {
      throw new EnvironmentError(`config ISO ${isoPath} does not hold what was written: missing [${missing}], extra [${extra}], different [${differ}]`, { hint: 'rerun; if it persists, check xorriso' });
    }
    const vol = await xorriso(['-indev', isoPath, '-pvd_info']);
    if (!new RegExp(`Volume Id\\s*:\\s*${CONFIG_VOLUME_ID}`).test(vol.stdout + vol.stderr)) throw new EnvironmentError(`config ISO ${isoPath} lacks the volume ID ${CONFIG_VOLUME_ID}`);
    return seen.sort((a, b) => a.name.localeCompare(b.name));
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
}

export interface IsoCheck {
  size: number;
  /** 'udf' for Microsoft's media (UDF with a minimal ISO 9660 bridge), 'iso9660' otherwise. */
  filesystem: 'udf' | 'iso9660';
}

/**
 * The user's Windows ISO: present, readable, an optical image. Microsoft's ISOs keep install.wim in
 * their UDF tree (the ISO 9660 part holds only a README), so the volume descriptors are what can be
 * checked without mounting.
 */
export async function checkWindowsIso(isoPath: string | undefined): Promise<IsoCheck> {
  const next = 'download a Windows 10/11 or Windows Server ISO from Microsoft and pass its path: make windows-image ISO=path/to/windows.iso';
  if (!isoPath) throw new UsageError('no Windows ISO given', { hint: next });
  let st;
  try {
    st = await fs.stat(isoPath);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`Windows ISO ${isoPath} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`, { hint: next });
  }
  if (!st.isFile()) throw new UsageError(`Windows ISO ${isoPath} is not a file`, { hint: next });
  let fh;
  try {
    fh = await fs.open(isoPath, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`Windows ISO ${isoPath} cannot be read (${code})`, { hint: code === 'EACCES' ? `give this user read access: chmod a+r ${isoPath}` : next });
  }
  try {
    const head = Buffer.alloc(16 * 2048);
    const { bytesRead } = await fh.read(head, 0, head.length, 16 * 2048);
    const ids = new Set<string>();
    for (let s = 0; s + 6 <= bytesRead; s += 2048) ids.add(head.subarray(s + 1, s + 6).toString('latin1'));
    if (!ids.has('CD001') && !ids.has('BEA01')) {
      throw new UsageError(`${isoPath} is not an ISO image (no ISO 9660 or UDF volume descriptor at 32 KiB)`, { hint: `is it the right file? ${next}` });
    }
    if (st.size < 1024 ** 3) throw new UsageError(`${isoPath} has only ${Math.round(st.size / 1024 ** 2)} MiB; Windows installation ISOs have several GiB`, { hint: next });
    return { size: st.size, filesystem: ids.has('NSR02') || ids.has('NSR03') ? 'udf' : 'iso9660' };
  } finally {
    await fh.close();
  }
}
