// The reference Linux guest, built from the host's Debian packages only:
//   - the installed linux-image kernel, unpacked from its bzImage into the ELF vmlinux so QEMU can boot
//     it through the PVH entry (skips ~4 s of in-guest xz decompression under TCG);
//   - a newc initramfs with busybox-static, dropbear-bin (+ its libraries), openssh's sftp-server
//     (+ libraries), the virtio-net/e1000 module chains and /init (images/linux/init.sh).
// The test driver and dmactl are NOT in the image: the harness uploads them over SFTP.
// Per-run keys go into a second archive appended by makeRunInitrd (run-keys.ts).
//
// Cached under cacheDir, keyed by a hash of every input: package versions (dpkg-query), the kernel
// version, the file list, /init and this builder's own code. A changed input gives a new key and a rebuild.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { EnvironmentError } from '../../harness/errors.js';
import type { KernelRoot } from '../../harness/kernel/kernel-root.js';
import { CpioEntry, writeCpio } from './cpio.js';
import { PRUNE_AFTER_MS, stampAndPrune } from './cache-prune.js';

export interface ReferenceImage {
  /** PVH-bootable ELF vmlinux (pass to -kernel). */
  kernel: string;
  /** Base newc initramfs; boot it through makeRunInitrd, which adds the per-run keys. */
  initrd: string;
  kernelVersion: string;
  /** Base kernel command line. */
  append: string;
  cacheKey: string;
  /** Whether this kernel can drive QEMU's virtio-iommu-pci (the image carries and loads the module). */
  virtioIommu: VirtioIommuSupport;
}

/** The guest kernel's virtio-iommu driver: built in, a module /init loads, or none (and the evidence). */
export interface VirtioIommuSupport {
  driver: 'builtin' | 'module' | 'absent';
  /** What says so: the kernel config's CONFIG_VIRTIO_IOMMU line, or modprobe's answer. */
  evidence: string;
}

export interface BuildReferenceImageOptions {
  cacheDir: string;
  onProgress?: (msg: string) => void;
  /** Rebuild even when the cache holds an image for the same inputs. */
  force?: boolean;
  /** An alternative /init script (default images/linux/init.sh); one more input of the cache key. */
  initScript?: string;
  /** --kernel: a kernel root other than the installed system's (harness/kernel/kernel-root.ts). */
  kernelRoot?: KernelRoot;
}

/** `-cpu qemu64,+rdrand` makes the kernel's RNG ready at once; ttyS0 is where the markers appear. */
export const REFERENCE_APPEND = 'console=ttyS0 panic=-1 rdinit=/init';

/**
 * Modules /init loads, with their dependency chains: the NIC drivers, pvpanic_mmio (the ISA/ACPI
 * pvpanic device), so a guest kernel panic reaches the host at once as QMP GUEST_PANICKED, and
 * virtio_console for the agent port (a channel that survives a snapshot restore).
 */
const GUEST_MODULES = ['virtio_pci', 'virtio_net', 'e1000', 'pvpanic_mmio', 'virtio_console'];
/**
 * Loaded where the kernel has it, before the NIC drivers. Behind a virtio-iommu-pci every PCI driver's
 * probe waits (-EPROBE_DEFER, ACPI VIOT) until this driver registers; without that device it does nothing.
 */
const VIRTIO_IOMMU_MODULE = 'virtio_iommu';
/** The guest's dropbear looks for the SFTP server here (compiled into Debian's dropbear-bin). */
const DROPBEAR_SFTP_PATH = '/usr/lib/sftp-server';
const CACHE_FORMAT = 1;

interface Requirement {
  path: string;
  pkg: string;
  what: string;
}

const REQUIREMENTS: Requirement[] = [
  { path: '/bin/busybox', pkg: 'busybox-static', what: 'static busybox' },
  { path: '/usr/sbin/dropbear', pkg: 'dropbear-bin', what: 'the dropbear SSH server' },
  { path: '/usr/lib/openssh/sftp-server', pkg: 'openssh-sftp-server', what: 'the SFTP server' },
  { path: '/usr/bin/xz', pkg: 'xz-utils', what: 'xz (to unpack the kernel)' },
  { path: '/usr/sbin/modprobe', pkg: 'kmod', what: 'modprobe (to resolve module dependencies)' },
  { path: '/usr/bin/ldd', pkg: 'libc-bin', what: 'ldd (to find shared libraries)' },
];

function missingPackage(what: string, path: string, pkg: string): EnvironmentError {
  return new EnvironmentError(
    `reference image: ${what} is missing (${path}); it comes from the Debian package ${pkg}: apt-get install -y ${pkg}`,
    { hint: `apt-get install -y ${pkg}` },
  );
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Natural order for kernel versions: 6.1.0-9 < 6.1.0-10. */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] === pb[i]) continue;
    const na = Number(pa[i]);
    const nb = Number(pb[i]);
    if (i % 2 === 1 && !Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
    return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** The newest kernel with both /boot/vmlinuz-<ver> and /lib/modules/<ver>. */
export async function findKernelVersion(): Promise<string> {
  let versions: string[] = [];
  try {
    versions = (await readdir('/lib/modules')).filter((v) => existsSync(`/boot/vmlinuz-${v}`));
  } catch {
    // no /lib/modules at all
  }
  if (versions.length === 0) {
    throw missingPackage('a kernel image with modules', '/boot/vmlinuz-*, /lib/modules/*', 'linux-image-amd64');
  }
  return versions.sort(compareVersions)[versions.length - 1];
}

function findOwnFile(rel: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, rel);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`reference image: cannot find ${rel} above ${fileURLToPath(import.meta.url)}`);
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  return !!x && !!y && x.dev === y.dev && x.ino === y.ino;
}

/** Owning package and version for each host path (dpkg -S), trying the /usr-merged twin of a path too. */
async function packagesOf(paths: string[]): Promise<Map<string, string>> {
  const candidates = new Map<string, string[]>();
  for (const p of paths) {
    const alts = new Set([p]);
    const real = await realpath(p).catch(() => p);
    alts.add(real);
    for (const a of [p, real]) {
      if (a.startsWith('/usr/')) alts.add(a.slice(4));
      else alts.add(`/usr${a}`);
    }
    // Newer kernel packages (7.x in trixie-backports) ship /usr/lib/modules/<ver>/vmlinuz and make
    // /boot/vmlinuz-<ver> a hard link that no package owns: the same file, so the same owner.
    const boot = /^\/boot\/vmlinuz-(.+)$/.exec(p);
    if (boot) {
      const twin = `/usr/lib/modules/${boot[1]}/vmlinuz`;
      if (await sameFile(p, twin)) alts.add(twin).add(twin.slice(4));
    }
    candidates.set(p, [...alts]);
  }
  const all = [...new Set([...candidates.values()].flat())];
  const owners = new Map<string, string>();
  const res = await execa('dpkg-query', ['-S', ...all], { reject: false });
  for (const line of res.stdout.split('\n')) {
    const m = /^(.+?): (\/.*)$/.exec(line);
    if (m && !m[1].includes('diversion')) owners.set(m[2], m[1].split(',')[0].trim());
  }
  const pkgOf = new Map<string, string>();
  for (const [p, alts] of candidates) {
    const owner = alts.map((a) => owners.get(a)).find((o) => o !== undefined);
    if (owner) pkgOf.set(p, owner);
  }
  return pkgOf;
}

async function packageVersions(pkgs: string[]): Promise<Map<string, string>> {
  const res = await execa('dpkg-query', ['-W', '-f=${Package}:${Architecture}\t${db:Status-Abbrev}\t${Version}\n', ...pkgs], {
    reject: false,
  });
  const out = new Map<string, string>();
  for (const line of res.stdout.split('\n')) {
    const [name, status, version] = line.split('\t');
    if (!name || !status?.startsWith('ii')) continue;
    out.set(name, version);
    out.set(name.replace(/:.*$/, ''), version);
  }
  return out;
}

/** Shared libraries (and the loader) a binary needs, as ldd resolves them. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const res = await execa('ldd', [binary], { reject: false });
  if (/not a dynamic executable/.test(res.stdout + res.stderr)) return [];
  if (res.exitCode !== 0) throw new Error(`reference image: ldd ${binary} failed: ${res.stderr || res.stdout}`);
  const libs: string[] = [];
  for (const line of res.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]);
    else if (/not found/.test(line)) throw new Error(`reference image: ${binary} needs a library ldd cannot find: ${line.trim()}`);
  }
  return libs;
}

async function moduleChain(kernelVersion: string, modulesBase = '/', virtioIommu = false): Promise<string[]> {
  const names = virtioIommu ? [GUEST_MODULES[0]!, VIRTIO_IOMMU_MODULE, ...GUEST_MODULES.slice(1)] : GUEST_MODULES;
  const res = await execa('modprobe', ['-d', modulesBase, '-S', kernelVersion, '--show-depends', '-a', ...names], { reject: false });
  if (res.exitCode !== 0) {
    throw new EnvironmentError(
      `reference image: modprobe cannot resolve ${GUEST_MODULES.join(', ')} for kernel ${kernelVersion}: ${res.stderr.trim()}`,
      { hint: `reinstall the kernel package: apt-get install --reinstall linux-image-${kernelVersion}` },
    );
  }
  const mods: string[] = [];
  for (const line of res.stdout.split('\n')) {
    const m = /^insmod\s+(\S+)/.exec(line);
    if (m && !mods.includes(m[1])) mods.push(m[1]);
  }
  return mods;
}

/**
 * Does the kernel have the virtio-iommu driver? modprobe answers "builtin virtio_iommu", an insmod line, or
 * fails; the kernel config (boot/config-<ver> beside the vmlinuz, or in the modules folder) is quoted
 * when there is one, e.g. Debian 12's "# CONFIG_VIRTIO_IOMMU is not set".
 */
export async function virtioIommuSupport(kernelVersion: string, vmlinuz: string, modulesBase = '/'): Promise<VirtioIommuSupport> {
  const res = await execa('modprobe', ['-d', modulesBase, '-S', kernelVersion, '--show-depends', VIRTIO_IOMMU_MODULE], { reject: false });
  const driver = res.exitCode !== 0 ? 'absent' : /^builtin /m.test(res.stdout) ? 'builtin' : /^insmod /m.test(res.stdout) ? 'module' : 'absent';
  let configLine: string | undefined;
  for (const config of [join(dirname(vmlinuz), `config-${kernelVersion}`), join(modulesBase, 'lib/modules', kernelVersion, 'config')]) {
    const text = await readFile(config, 'utf8').catch(() => undefined);
    const line = text?.split('\n').find((l) => /^(# )?CONFIG_VIRTIO_IOMMU[= ]/.test(l));
    if (line) {
      configLine = `${config}: ${line}`;
      break;
    }
  }
  const modprobe = driver === 'absent' ? `modprobe: no ${VIRTIO_IOMMU_MODULE} for ${kernelVersion}` : `modprobe: ${driver} ${VIRTIO_IOMMU_MODULE}`;
  return { driver, evidence: configLine ?? modprobe };
}

async function readModule(path: string): Promise<Buffer> {
  if (path.endsWith('.ko')) return readFile(path);
  if (path.endsWith('.ko.xz')) {
    return Buffer.from((await execa('xz', ['-dc', path], { encoding: 'buffer' })).stdout);
  }
  if (path.endsWith('.ko.gz')) return gunzipSync(await readFile(path));
  if (path.endsWith('.ko.zst')) {
    if (!existsSync('/usr/bin/zstd')) throw missingPackage('zstd (to unpack modules)', '/usr/bin/zstd', 'zstd');
    return Buffer.from((await execa('zstd', ['-dc', path], { encoding: 'buffer' })).stdout);
  }
  throw new Error(`reference image: unknown module compression: ${path}`);
}

/** Finds the PVH entry note (Xen ELF note type 18) QEMU's -kernel needs to boot an ELF directly. */
export function hasPvhNote(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (elf.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    const off = Number(elf.readBigUInt64LE(ph + 8));
    const size = Number(elf.readBigUInt64LE(ph + 0x20));
    let p = off;
    while (p + 12 <= off + size) {
      const namesz = elf.readUInt32LE(p);
      const descsz = elf.readUInt32LE(p + 4);
      const type = elf.readUInt32LE(p + 8);
      const name = elf.subarray(p + 12, p + 12 + namesz).toString('latin1');
      if (name === 'Xen\0' && type === 18) return true;
      p += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
  }
  return false;
}

/** bzImage -> ELF vmlinux: the payload sits at (setup_sects+1)*512 + payload_offset (boot protocol 2.08+). */
export async function extractVmlinux(bzImage: string, out: string): Promise<void> {
  const img = await readFile(bzImage);
  if (img.length < 0x250 || img.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new Error(`reference image: ${bzImage} is not a bzImage (no HdrS header)`);
  }
  const setupSects = img[0x1f1] || 4;
  const payloadOffset = img.readUInt32LE(0x248);
  const payloadLength = img.readUInt32LE(0x24c);
  const start = (setupSects + 1) * 512 + payloadOffset;
  const payload = img.subarray(start, start + payloadLength);
  const tmp = `${out}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    // The payload ends with the 4-byte decompressed size; --single-stream stops before it.
    await execa('xz', ['-dc', '--single-stream'], { input: payload, stdout: { file: tmp } });
  } else if (payload[0] === 0x1f && payload[1] === 0x8b) {
    await writeFile(tmp, gunzipSync(payload.subarray(0, payload.length - 4)));
  } else if (payload.readUInt32LE(0) === 0xfd2fb528) {
    if (!existsSync('/usr/bin/zstd')) throw missingPackage('zstd (to unpack the kernel)', '/usr/bin/zstd', 'zstd');
    await execa('zstd', ['-dc'], { input: payload.subarray(0, payload.length - 4), stdout: { file: tmp } });
  } else {
    throw new Error(`reference image: ${bzImage}: unsupported kernel compression (magic ${payload.subarray(0, 4).toString('hex')})`);
  }
  const elf = await readFile(tmp);
  if (!hasPvhNote(elf)) {
    await rm(tmp, { force: true });
    throw new Error(`reference image: the vmlinux from ${bzImage} has no PVH entry note (needs CONFIG_PVH=y)`);
  }
  await rename(tmp, out);
}

interface Inputs {
  kernelVersion: string;
  bzImage: string;
  kernelPackage: string;
  files: { guest: string; host: string; mode: number }[];
  modules: string[];
  libraries: string[];
  initScript: string;
  initText: string;
  busyboxApplets: string[];
  key: string;
  kernelKey: string;
  virtioIommu: VirtioIommuSupport;
}

async function collectInputs(initScriptPath: string, kernelRoot?: KernelRoot): Promise<Inputs> {
  for (const r of REQUIREMENTS) {
    if (!existsSync(r.path)) throw missingPackage(r.what, r.path, r.pkg);
  }
  const required = await packageVersions(['busybox-static']);
  if (!required.has('busybox-static')) {
    throw missingPackage('static busybox', '/bin/busybox from busybox-static', 'busybox-static');
  }

  const kernelVersion = kernelRoot?.version ?? (await findKernelVersion());
  const bzImage = kernelRoot?.vmlinuz ?? `/boot/vmlinuz-${kernelVersion}`;
  const virtioIommu = await virtioIommuSupport(kernelVersion, bzImage, kernelRoot?.modulesBase);
  const modules = await moduleChain(kernelVersion, kernelRoot?.modulesBase, virtioIommu.driver === 'module');
  const libraries = [
    ...new Set([
      ...(await sharedLibraries('/usr/sbin/dropbear')),
      ...(await sharedLibraries('/usr/lib/openssh/sftp-server')),
    ]),
  ].sort();
  const applets = (await execa('/bin/busybox', ['--list-full'])).stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && s !== 'bin/busybox')
    .sort();
  const initText = await readFile(initScriptPath, 'utf8');

  const files = [
    { guest: 'bin/busybox', host: '/bin/busybox', mode: 0o755 },
    { guest: 'usr/sbin/dropbear', host: '/usr/sbin/dropbear', mode: 0o755 },
    { guest: 'usr/lib/openssh/sftp-server', host: '/usr/lib/openssh/sftp-server', mode: 0o755 },
    ...libraries.map((l) => ({ guest: l.slice(1), host: l, mode: 0o755 })),
  ];

  const hostPaths = [bzImage, ...files.map((f) => f.host), ...modules];
  const owners = await packagesOf(hostPaths);
  // A --kernel root's files belong to no installed package: they are known by their contents.
  if (kernelRoot) for (const p of [bzImage, ...modules]) owners.delete(p);
  const kernelPackage = kernelRoot ? `--kernel ${kernelRoot.root}` : owners.get(bzImage);
  if (!kernelPackage) {
    throw new EnvironmentError(`reference image: ${bzImage} does not belong to a Debian package; the image is built from linux-image-amd64 only`, {
      hint: 'apt-get install -y linux-image-amd64',
    });
  }
  const versions = await packageVersions([...new Set(owners.values())]);
  const provenance: Record<string, string> = {};
  for (const p of hostPaths) {
    const pkg = owners.get(p);
    if (pkg && versions.has(pkg)) {
      provenance[p] = `${pkg}=${versions.get(pkg)}`;
    } else if (kernelRoot && (p === bzImage || modules.includes(p))) {
      provenance[p] = `sha256=${sha256(await readFile(p))}`;
    } else {
      const st = await stat(p);
      provenance[p] = `unpackaged size=${st.size} mtime=${st.mtimeMs}`;
    }
  }
  const builderCode = await Promise.all(
    [fileURLToPath(import.meta.url), fileURLToPath(new URL('./cpio.js', import.meta.url))].map(async (f) =>
      sha256(await readFile(f).catch(() => Buffer.from(`missing ${f}`))),
    ),
  );
  const kernelKey = sha256(JSON.stringify({ CACHE_FORMAT, bzImage, pkg: provenance[bzImage], builderCode: builderCode[0] })).slice(0, 16);
  const key = sha256(
    JSON.stringify({
      CACHE_FORMAT,
      kernelVersion,
      provenance,
      files: files.map((f) => [f.guest, f.host, f.mode]),
      modules,
      applets,
      init: sha256(initText),
      append: REFERENCE_APPEND,
      builderCode,
    }),
  ).slice(0, 24);
  return {
    kernelVersion, bzImage, kernelPackage, files, modules, libraries,
    initScript: initScriptPath, initText, busyboxApplets: applets, key, kernelKey, virtioIommu,
  };
}

async function buildInitramfs(inp: Inputs): Promise<Buffer> {
  const entries: CpioEntry[] = [];
  const dir = (path: string, mode = 0o755) => entries.push({ type: 'dir', path, mode });
  const text = (path: string, data: string, mode = 0o644) => entries.push({ type: 'file', path, data: Buffer.from(data), mode });

  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'usr/lib', 'etc', 'lib', 'lib64', 'proc', 'sys', 'dev', 'run', 'var']) dir(d);
  dir('tmp', 0o1777);
  entries.push({ type: 'symlink', path: 'var/run', target: '/run' });
  entries.push({ type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 });
  entries.push({ type: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 });
  entries.push({ type: 'file', path: 'init', data: Buffer.from(inp.initText), mode: 0o755 });

  for (const f of inp.files) {
    entries.push({ type: 'file', path: f.guest, data: await readFile(f.host), mode: f.mode });
  }
  for (const applet of inp.busyboxApplets) {
    if (applet === 'linuxrc') continue;
    entries.push({ type: 'symlink', path: applet, target: '/bin/busybox' });
  }
  entries.push({ type: 'symlink', path: DROPBEAR_SFTP_PATH, target: '/usr/lib/openssh/sftp-server' });

  const moduleList: string[] = [];
  for (const [i, m] of inp.modules.entries()) {
    const name = basename(m).replace(/\.ko(\.(xz|gz|zst))?$/, '.ko');
    const guest = `lib/modules/dmahil/${String(i).padStart(2, '0')}-${name}`;
    entries.push({ type: 'file', path: guest, data: await readModule(m), mode: 0o644 });
    moduleList.push(`/${guest}`);
  }
  text('etc/dmahil/modules', `${moduleList.join('\n')}\n`);
  text('etc/dmahil/image', `kernel ${inp.kernelVersion}\ncache-key ${inp.key}\n`);
  text('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  text('etc/group', 'root:x:0:\ntty:x:5:\n');
  text('etc/shells', '/bin/sh\n');
  text('etc/hostname', 'dmahil\n');
  text('etc/hosts', '127.0.0.1 localhost\n10.0.2.15 dmahil\n');
  return writeCpio(entries);
}

async function writeAtomic(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}

/**
 * Builds (or finds in the cache) the reference guest: a PVH vmlinux and a base initramfs.
 * Throws an EnvironmentError naming the Debian package when a piece is missing.
 */
export async function buildReferenceImage(opts: BuildReferenceImageOptions): Promise<ReferenceImage> {
  const progress = opts.onProgress ?? (() => {});
  const cacheDir = resolve(opts.cacheDir);
  const initScript = resolve(opts.initScript ?? findOwnFile('images/linux/init.sh'));
  const inp = await collectInputs(initScript, opts.kernelRoot);

  const kernelDir = join(cacheDir, `linux-kernel-${inp.kernelVersion}-${inp.kernelKey}`);
  const imageDir = join(cacheDir, `linux-image-${inp.key}`);
  const kernel = join(kernelDir, 'vmlinux');
  const initrd = join(imageDir, 'base.cpio');
  const manifestPath = join(imageDir, 'image.json');
  const image: ReferenceImage = {
    kernel, initrd, kernelVersion: inp.kernelVersion, append: REFERENCE_APPEND, cacheKey: inp.key, virtioIommu: inp.virtioIommu,
  };

  if (!opts.force && existsSync(kernel) && existsSync(initrd) && existsSync(manifestPath)) {
    try {
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { cacheKey?: string; initrdSize?: number };
      if (manifest.cacheKey === inp.key && (await stat(initrd)).size === manifest.initrdSize) {
        progress(`reference image: cached (${inp.kernelVersion}, key ${inp.key})`);
        await pruneCache(cacheDir, [kernelDir, imageDir], progress);
        return image;
      }
    } catch {
      // unreadable manifest: rebuild
    }
  }

  await mkdir(kernelDir, { recursive: true });
  await mkdir(imageDir, { recursive: true });
  if (opts.force || !existsSync(kernel)) {
    progress(`reference image: extracting the PVH vmlinux from ${inp.bzImage} (${inp.kernelPackage})`);
    await extractVmlinux(inp.bzImage, kernel);
  }
  progress(`reference image: writing the initramfs (${inp.modules.length} modules, ${inp.libraries.length} libraries)`);
  const cpio = await buildInitramfs(inp);
  await writeAtomic(initrd, cpio);
  await writeAtomic(
    manifestPath,
    `${JSON.stringify({ ...image, initrdSize: cpio.length, kernelPackage: inp.kernelPackage, modules: inp.modules, libraries: inp.libraries, initScript: inp.initScript, builtAt: new Date().toISOString() }, null, 2)}\n`,
  );
  progress(`reference image: ready (${(cpio.length / 1048576).toFixed(1)} MiB initramfs, key ${inp.key})`);
  await pruneCache(cacheDir, [kernelDir, imageDir], progress);
  return image;
}

/** A cache that cannot be tidied still serves: pruning failures are reported, not thrown. */
async function pruneCache(cacheDir: string, used: string[], progress: (msg: string) => void): Promise<void> {
  try {
    const removed = await stampAndPrune(cacheDir, used);
    const days = Math.round(PRUNE_AFTER_MS / 86_400_000);
    if (removed.length) progress(`reference image cache: removed ${removed.length} entries unused for ${days} days (${removed.join(', ')})`);
  } catch (e) {
    progress(`reference image cache: could not prune ${cacheDir}: ${(e as Error).message}`);
  }
}
