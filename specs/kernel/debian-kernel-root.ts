// A kernel root for the --kernel specs, made the way a platform team would: Debian's linux-image and
// linux-headers packages (with their -common and linux-kbuild) fetched with apt-get download and unpacked
// with dpkg -x, then depmod. Preferably a kernel other than the installed one (another version this host's
// suite offers for linux-image-amd64); where the suite offers none, the installed kernel's own packages;
// where nothing can be downloaded, the installed kernel linked into a root. The .debs and the unpacked root
// are cached under .cache/kernel-roots, so only the first run downloads (~85 MB) and unpacks (~6 s).
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { findKernelVersion } from '../../images/linux/build.js';

export interface SpecKernelRoot {
  dir: string;
  version: string;
  /** How it was had: another Debian kernel, the installed kernel's packages, or the installed files linked. */
  kind: 'other-debian-kernel' | 'installed-kernel-packages' | 'installed-kernel-linked';
}

interface KernelPackages {
  abi: string;
  version: string;
}

async function sh(cmd: string, args: string[], cwd?: string): Promise<string | undefined> {
  const r = await execa(cmd, args, { reject: false, ...(cwd ? { cwd } : {}), env: { LC_ALL: 'C' } });
  return r.exitCode === 0 ? r.stdout : undefined;
}

/** Every (ABI, package version) the suite's linux-image-amd64 offers, newest first. */
async function offeredKernels(): Promise<KernelPackages[]> {
  const out = (await sh('apt-cache', ['show', 'linux-image-amd64'])) ?? '';
  const found: KernelPackages[] = [];
  for (const stanza of out.split('\n\n')) {
    const m = /^Depends:.*\blinux-image-(\S+?) \(= ([^)]+)\)/m.exec(stanza);
    if (m) found.push({ abi: m[1], version: m[2] });
  }
  return found;
}

/** The four packages of a kernel and its headers, at one version, downloaded into debs (cached). */
async function download(k: KernelPackages, debs: string): Promise<string[] | undefined> {
  const headers = await sh('apt-cache', ['show', `linux-headers-${k.abi}=${k.version}`]);
  const depends = /^Depends: (.*)$/m.exec(headers ?? '')?.[1] ?? '';
  const common = /\b(linux-headers-[\w.+~-]+-common)\b/.exec(depends)?.[1];
  const kbuild = /\b(linux-kbuild-[\w.+~-]+)/.exec(depends)?.[1];
  if (!common || !kbuild) return undefined;
  const pkgs = [`linux-image-${k.abi}`, `linux-headers-${k.abi}`, common, kbuild];
  fs.mkdirSync(debs, { recursive: true });
  const files = (): string[] => pkgs.map((p) => fs.readdirSync(debs).find((f) => f.startsWith(`${p}_`))).filter((f): f is string => !!f);
  if (files().length < pkgs.length) {
    await sh('apt-get', ['download', ...pkgs.map((p) => `${p}=${k.version}`)], debs);
  }
  const got = files();
  return got.length === pkgs.length ? got.map((f) => path.join(debs, f)) : undefined;
}

async function unpack(debFiles: string[], dir: string, abi: string): Promise<boolean> {
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  for (const f of debFiles) if ((await sh('dpkg', ['-x', f, tmp])) === undefined) return false;
  // dpkg -x runs no postinst, so no depmod: the step a user of --kernel does too (the refusal says so).
  const base = fs.existsSync(path.join(tmp, 'lib/modules', abi)) ? tmp : path.join(tmp, 'usr');
  if ((await sh('depmod', ['-b', base, abi])) === undefined) return false;
  fs.renameSync(tmp, dir);
  return true;
}

/** The installed kernel's files linked into a root: the last resort, proving the plumbing, not another kernel. */
function linkInstalled(dir: string, abi: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'boot'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'lib/modules'), { recursive: true });
  fs.symlinkSync(`/boot/vmlinuz-${abi}`, path.join(dir, 'boot', `vmlinuz-${abi}`));
  fs.symlinkSync(fs.realpathSync(`/lib/modules/${abi}`), path.join(dir, 'lib/modules', abi));
}

export async function specKernelRoot(cacheDir: string): Promise<SpecKernelRoot> {
  const installed = await findKernelVersion();
  const base = path.join(cacheDir, 'kernel-roots');
  const others = (await offeredKernels()).filter((k) => k.abi !== installed);
  const installedVersion = await sh('dpkg-query', ['-W', '-f=${Version}', `linux-image-${installed}`]);
  const tries: Array<[KernelPackages, SpecKernelRoot['kind']]> = [
    ...others.slice(0, 1).map((k) => [k, 'other-debian-kernel'] as [KernelPackages, SpecKernelRoot['kind']]),
    ...(installedVersion ? [[{ abi: installed, version: installedVersion }, 'installed-kernel-packages'] as [KernelPackages, SpecKernelRoot['kind']]] : []),
  ];
  for (const [k, kind] of tries) {
    const dir = path.join(base, `${k.abi}_${k.version}`);
    if (fs.existsSync(dir)) return { dir, version: k.abi, kind };
    const debs = await download(k, path.join(base, 'debs'));
    if (debs && (await unpack(debs, dir, k.abi))) return { dir, version: k.abi, kind };
  }
  const dir = path.join(base, `linked-${installed}`);
  linkInstalled(dir, installed);
  return { dir, version: installed, kind: 'installed-kernel-linked' };
}
