// A guest kernel as a folder laid out the way Debian installs one: boot/vmlinuz-<ver> (or
// usr/lib/modules/<ver>/vmlinuz), lib/modules/<ver>/
// (or usr/lib/modules/<ver>/) and the build tree edudma compiles against (lib/modules/<ver>/build or
// usr/src/linux-headers-<ver>). The installed system is the root `/`; `--kernel DIR` is any other: `dpkg -x`
// of Debian's linux-image-* and linux-headers-* packages, or a custom build's `make install
// INSTALL_PATH=DIR/boot` and `make modules_install INSTALL_MOD_PATH=DIR`. The image builder
// (images/linux/build.ts) and the module build (guest-driver/linux/build.ts) take one of these.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';

export interface KernelRoot {
  /** The folder (absolute); '/' for the installed system. */
  root: string;
  version: string;
  /** The bzImage the reference image unpacks. */
  vmlinuz: string;
  /** lib/modules/<ver> (or usr/lib/modules/<ver>), with modules.dep. */
  modulesDir: string;
  /** The folder modprobe -d takes: modulesDir is <modulesBase>/lib/modules/<ver>. */
  modulesBase: string;
  /** The kernel build tree (headers) for edudma; absent for the installed system until the build looks. */
  buildDir?: string;
}

const FIX = 'pass --kernel a kernel root: boot/vmlinuz-<ver>, lib/modules/<ver>/ and the headers (lib/modules/<ver>/build or usr/src/linux-headers-<ver>), as dpkg -x of linux-image-<ver> and linux-headers-<ver> gives, or leave it out for the installed kernel';

function refuse(dir: string, what: string, fix = FIX): UsageError {
  return new UsageError(`--kernel ${dir}: ${what}`, { hint: fix });
}

/** A path inside the root: an absolute symlink in a dpkg -x tree means the root's own copy, when it has one. */
export function resolveInRoot(root: string, p: string): string | undefined {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(p);
  } catch {
    return undefined;
  }
  if (!st.isSymbolicLink()) return p;
  const target = fs.readlinkSync(p);
  if (!path.isAbsolute(target)) return fs.existsSync(p) ? fs.realpathSync(p) : undefined;
  const inRoot = path.join(root, target);
  if (fs.existsSync(inRoot)) return fs.realpathSync(inRoot);
  // A custom build's modules_install links build to its own tree on this host.
  return fs.existsSync(target) ? fs.realpathSync(target) : undefined;
}

/** The release string a build tree was configured for (include/generated/utsrelease.h), or undefined. */
export function buildTreeRelease(buildDir: string): string | undefined {
  try {
    const text = fs.readFileSync(path.join(buildDir, 'include/generated/utsrelease.h'), 'utf8');
    return /UTS_RELEASE\s+"([^"]+)"/.exec(text)?.[1];
  } catch {
    return undefined;
  }
}

/** `--kernel DIR`: the kernel root, checked before anything is built or booted (refusals are UsageErrors). */
export function kernelRootOption(text: string): KernelRoot {
  if (text.trim() === '') throw new UsageError('--kernel is empty', { hint: FIX });
  const root = path.resolve(text);
  const st = fs.statSync(root, { throwIfNoEntry: false });
  if (!st) throw refuse(text, 'no such folder');
  if (!st.isDirectory()) throw refuse(text, 'is a file, not a folder');

  const bootDir = path.join(root, 'boot');
  // Newer Debian kernels (7.x in trixie-backports) ship usr/lib/modules/<ver>/vmlinuz; their postinst makes
  // boot/vmlinuz-<ver>, which dpkg -x does not run.
  const shipped = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir) : []).filter((v) => fs.existsSync(path.join(dir, v, 'vmlinuz')));
  const vmlinuzOf = (v: string): string =>
    [path.join(bootDir, `vmlinuz-${v}`), path.join(root, 'lib/modules', v, 'vmlinuz'), path.join(root, 'usr/lib/modules', v, 'vmlinuz')].find((f) => fs.existsSync(f)) ?? path.join(bootDir, `vmlinuz-${v}`);
  const images = [
    ...new Set([
      ...(fs.existsSync(bootDir) ? fs.readdirSync(bootDir) : []).filter((f) => /^vmlinuz-[\w.+~-]+$/.test(f)).map((f) => f.slice('vmlinuz-'.length)),
      ...shipped(path.join(root, 'lib/modules')),
      ...shipped(path.join(root, 'usr/lib/modules')),
    ]),
  ];
  if (images.length === 0) throw refuse(text, `no kernel image (${path.join(text, 'boot/vmlinuz-<ver>')} is missing)`);
  const modulesDirOf = (v: string): string | undefined =>
    [path.join(root, 'lib/modules', v), path.join(root, 'usr/lib/modules', v)].find((d) => fs.existsSync(path.join(d, 'modules.order')) || fs.existsSync(path.join(d, 'kernel')));
  const withModules = images.filter((v) => modulesDirOf(v) !== undefined);
  if (withModules.length === 0) {
    throw refuse(text, `boot/vmlinuz-${images.join(', boot/vmlinuz-')} but no modules (${path.join(text, `lib/modules/${images[0]}`)} is missing)`, `add the kernel's modules (dpkg -x linux-image-${images[0]}_*.deb DIR, or make modules_install INSTALL_MOD_PATH=DIR)`);
  }
  if (withModules.length > 1) {
    throw refuse(text, `holds several kernels (${withModules.join(', ')}) and dmahil cannot tell which one to boot`, 'keep one kernel per folder (boot/vmlinuz-<ver> and lib/modules/<ver>) and pass that folder');
  }
  const version = withModules[0];
  const modulesDir = modulesDirOf(version)!;
  const modulesBase = path.dirname(path.dirname(path.dirname(modulesDir)));
  if (!fs.existsSync(path.join(modulesDir, 'modules.dep'))) {
    // dpkg -x does not run the package's postinst, which runs depmod.
    throw refuse(text, `${path.relative(root, modulesDir)} has no modules.dep, so the guest's modules cannot be resolved`, `run depmod -b ${modulesBase} ${version}`);
  }

  const candidates = [path.join(modulesDir, 'build'), path.join(root, 'usr/src', `linux-headers-${version}`)];
  const buildDir = candidates.map((c) => resolveInRoot(root, c)).find((d) => d !== undefined && fs.existsSync(path.join(d, 'Makefile')));
  if (!buildDir) {
    throw refuse(text, `no headers for ${version} (neither lib/modules/${version}/build nor usr/src/linux-headers-${version} is a kernel build tree)`,
      `add them: dpkg -x linux-headers-${version}_*.deb DIR with its linux-headers-*-common and linux-kbuild-* packages, or link lib/modules/${version}/build to your kernel's build tree`);
  }
  const release = buildTreeRelease(buildDir);
  if (release !== version) {
    throw refuse(text, release ? `the headers in ${buildDir} are for ${release}, not ${version}` : `${buildDir} is not a prepared build tree (no include/generated/utsrelease.h)`,
      release ? `use the headers of ${version} (linux-headers-${version}, or the tree the kernel was built in)` : 'run make modules_prepare in it, or use the linux-headers package of that kernel');
  }
  return { root, version, vmlinuz: vmlinuzOf(version), modulesDir, modulesBase, buildDir };
}

/**
 * The build tree make -C can use. Debian's linux-headers-<ver> Makefile is one line, `include
 * /usr/src/linux-headers-<ver>-common/Makefile`: an absolute path that in an unpacked root means the
 * root's copy, not this host's. So such a tree is shadowed under cacheDir (links to its files, that one
 * line re-rooted); any other tree is used as it is.
 */
export function kbuildDir(kernel: KernelRoot, cacheDir: string): string {
  const dir = kernel.buildDir;
  if (!dir) throw new Error('kbuildDir: the kernel root has no build tree');
  if (kernel.root === '/') return dir;
  const makefile = fs.readFileSync(path.join(dir, 'Makefile'), 'utf8');
  const m = /^include\s+(\/\S+)\s*$/.exec(makefile.trim());
  if (!m) return dir;
  const inRoot = path.join(kernel.root, m[1]);
  if (!fs.existsSync(inRoot)) return dir;
  const shadow = path.join(cacheDir, `kbuild-${kernel.version}-${Buffer.from(dir).toString('base64url').slice(-24)}`);
  fs.mkdirSync(shadow, { recursive: true });
  for (const name of fs.readdirSync(dir)) {
    if (name === 'Makefile') continue;
    const target = resolveInRoot(kernel.root, path.join(dir, name));
    if (!target) continue;
    const link = path.join(shadow, name);
    if (fs.lstatSync(link, { throwIfNoEntry: false })) {
      if (fs.readlinkSync(link) === target) continue;
      fs.rmSync(link);
    }
    fs.symlinkSync(target, link);
  }
  const text = `include ${inRoot}\n`;
  const current = fs.existsSync(path.join(shadow, 'Makefile')) ? fs.readFileSync(path.join(shadow, 'Makefile'), 'utf8') : '';
  if (current !== text) fs.writeFileSync(path.join(shadow, 'Makefile'), text);
  return shadow;
}

/** Where edudma is built for a --kernel root: its build tree and an output folder of its own, under cacheDir/kernels. */
export function kernelDriverBuild(kernel: KernelRoot, cacheDir: string): { buildDir: string; outDir: string } {
  const base = path.join(cacheDir, 'kernels');
  const key = createHash('sha256').update(`${kernel.buildDir}\0${kernel.version}`).digest('hex').slice(0, 16);
  return { buildDir: kbuildDir(kernel, base), outDir: path.join(base, `driver-${kernel.version}-${key}`) };
}
