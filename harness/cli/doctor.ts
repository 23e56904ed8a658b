// dmahil doctor: is this machine (a developer's, or a self-hosted CI runner) ready to run dmahil and its
// tests? Each check says what it found and, when something is missing, the command that fixes it.
// Exit status 0 only when nothing required is missing (a warning, such as no KVM, is not fatal).
// Every probe of the machine goes through a Probes object, so the checks are unit-tested with fakes.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { kvmVerdict, KVM_BROKEN_HINT, type KvmVerdict } from '../machine/accel.js';
import { describeEdu, probeEduBehaviour, type EduBehaviour } from '../machine/edu-behaviour.js';
import { findExecutable } from '../machine/launch-checks.js';
import { MIN_QEMU, versionAtLeast } from '../machine/qemu-check.js';
import { UsageError } from '../errors.js';
import { checkLinuxDriver, checkModuleKernel, vermagicKernel } from '../driver/linux-driver.js';
import { checkWindowsDriver } from '../driver/windows-driver.js';
import type { KernelRoot } from '../kernel/kernel-root.js';
import { parsePe } from '../windows-package/pe.js';

export type CheckStatus = 'ok' | 'warn' | 'missing';

export interface Check {
  name: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** The command (or step) that fixes it; only when status is not ok. */
  fix?: string;
}

export interface Probes {
  /** Run a program; ok false when it cannot be run or exits non-zero. */
  run(cmd: string, args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }>;
  /** fs.accessSync with R_OK|W_OK: undefined when allowed, else the error code. */
  readWrite(file: string): string | undefined;
  exists(file: string): boolean;
  /** Entries of a directory, [] when missing. */
  list(dir: string): string[];
  /** Free bytes for unprivileged users on the file system holding dir (nearest existing parent), undefined when unknown. */
  freeBytes(dir: string): number | undefined;
  nodeVersion: string;
  /** /dev/kvm opens, and a guest executes under KVM (the same probe a run uses). */
  kvm(): Promise<KvmVerdict>;
  /** The edu's behaviour, measured (edu-behaviour.ts); an Error when the probe could not run. */
  edu(): Promise<EduBehaviour | Error>;
}

export interface DoctorOptions {
  repoRoot: string;
  /** Default <repoRoot>/.cache. */
  cacheDir?: string;
  /** --qemu: the QEMU binary to check (default qemu-system-x86_64 on PATH). */
  qemu?: string;
  /** --driver: a driver folder to check as dmahil run --driver would, before any guest boots. */
  driver?: string;
  /** --kernel: the kernel root the reference guest boots instead of the installed kernel (checked when parsed). */
  kernel?: KernelRoot;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const APT = 'apt-get install -y';
/** One 256 MiB guest RAM file per job plus margin; two jobs on a two-core runner. */
const SHM_NEEDED = 2 * (256 + 64) * MiB;
const CACHE_NEEDED = 2 * GiB;

/** The reference kernel in the image cache, newest first: the KVM probe boots it when there is one. */
function cachedReferenceKernel(cacheDir: string): string | undefined {
  const dir = path.join(cacheDir, 'images');
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  const kernels = entries.filter((e) => e.isDirectory() && e.name.startsWith('linux-kernel-')).map((e) => path.join(dir, e.name, 'vmlinux')).filter((f) => fs.existsSync(f));
  return kernels.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
}

export function realProbes(cacheDir?: string, qemu = 'qemu-system-x86_64'): Probes {
  return {
    run: (cmd, args) =>
      new Promise((resolve) => {
        execFile(cmd, args, { timeout: 20_000, maxBuffer: 4 * MiB }, (err, stdout, stderr) => resolve({ ok: !err, stdout: String(stdout), stderr: String(stderr) }));
      }),
    readWrite: (file) => {
      try {
        fs.accessSync(file, fs.constants.R_OK | fs.constants.W_OK);
        return undefined;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code ?? 'error';
      }
    },
    exists: (file) => fs.existsSync(file),
    list: (dir) => {
      try {
        return fs.readdirSync(dir);
      } catch {
        return [];
      }
    },
    freeBytes: (dir) => {
      for (let d = path.resolve(dir); ; d = path.dirname(d)) {
        try {
          const st = fs.statfsSync(d);
          return st.bavail * st.bsize;
        } catch {
          if (d === path.dirname(d)) return undefined;
        }
      }
    },
    nodeVersion: process.versions.node,
    kvm: () => kvmVerdict(findExecutable(qemu) ?? qemu, findExecutable('setpriv') ?? 'setpriv', cacheDir && cachedReferenceKernel(cacheDir)),
    edu: () => probeEduBehaviour(qemu).catch((e: unknown) => e as Error),
  };
}


const gib = (n: number): string => `${(n / GiB).toFixed(1)} GiB`;

export async function runChecks(p: Probes, opts: DoctorOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check): void => void checks.push(c.status === 'ok' ? { name: c.name, status: c.status, detail: c.detail } : c);

  add(
    versionAtLeast(p.nodeVersion.replace(/^v/, ''), [20, 19])
      ? { name: 'Node.js', status: 'ok', detail: `v${p.nodeVersion.replace(/^v/, '')}` }
      : { name: 'Node.js', status: 'missing', detail: `v${p.nodeVersion.replace(/^v/, '')}, 20.19 or newer is needed`, fix: 'install Node.js 20.19+ (Debian: the nodejs.org or NodeSource packages)' },
  );

  const qemuBinary = opts.qemu ?? 'qemu-system-x86_64';
  const qemu = await p.run(qemuBinary, ['--version']);
  const qv = /version (\d+\.\d+(?:\.\d+)?)/.exec(qemu.stdout)?.[1];
  const QEMU_FIX = `${APT} qemu-system-x86 qemu-utils`;
  let qemuOk = false;
  if (!qemu.ok || !qv) {
    add({ name: 'QEMU', status: 'missing', detail: `${qemuBinary} not found`, fix: QEMU_FIX });
  } else if (!versionAtLeast(qv, MIN_QEMU)) {
    add({ name: 'QEMU', status: 'missing', detail: `QEMU ${qv} is older than ${MIN_QEMU.join('.')}`, fix: `${QEMU_FIX} (Debian 12 has 7.2, Debian 13 has 10.0)` });
  } else if (!(await p.run(qemuBinary, ['-machine', 'q35', '-device', 'help'])).stdout.includes('"edu"')) {
    add({ name: 'QEMU', status: 'missing', detail: `QEMU ${qv} has no edu device`, fix: `${QEMU_FIX} (Debian's build has -device edu)` });
  } else {
    qemuOk = true;
    const edu = await p.edu();
    if (edu instanceof Error) add({ name: 'QEMU', status: 'missing', detail: `QEMU ${qv}, but its edu could not be probed: ${edu.message}`, fix: 'run dmahil doctor again; if it persists, read the error above' });
    else {
      const silentControl = !(edu.clamps && edu.clampMessage);
      add({
        name: 'QEMU',
        status: silentControl ? 'warn' : 'ok',
        detail: describeEdu(edu) + (silentControl ? ': the beyond-mask control is reported not applicable' : ''),
        ...(silentControl ? { fix: "use Debian's qemu-system-x86 (7.2 or 10.x), whose edu clamps and says so" } : {}),
      });
    }
  }

  const kvm = p.readWrite('/dev/kvm');
  if (kvm === 'ENOENT') add({ name: '/dev/kvm', status: 'warn', detail: 'absent: guests run under TCG (slower, still correct)', fix: 'enable hardware virtualisation (nested virtualisation on a cloud VM), then modprobe kvm_intel or kvm_amd' });
  else if (kvm !== undefined) add({ name: '/dev/kvm', status: 'warn', detail: `present but not usable (${kvm}): guests run under TCG`, fix: 'sudo usermod -aG kvm "$USER" and log in again (or run the runner service in group kvm)' });
  else if (!qemuOk) add({ name: '/dev/kvm', status: 'warn', detail: 'opens, but without a working QEMU nothing can tell whether KVM runs a guest' });
  else {
    const v = await p.kvm();
    if (v.execution?.works) add({ name: '/dev/kvm', status: 'ok', detail: `works: ${v.execution.detail} in ${v.execution.ms} ms; Windows guests and --accel kvm use it (the reference guest runs under TCG with -icount: faster for the edu)` });
    else add({ name: '/dev/kvm', status: 'warn', detail: `present but not working: ${v.execution?.detail ?? v.device.reason ?? 'unknown'}; guests run under TCG`, fix: KVM_BROKEN_HINT });
  }

  const tools: Array<[string, string, string[], string]> = [
    ['setpriv (QEMU dies with the harness)', 'setpriv', ['--version'], `${APT} util-linux`],
    ['mingw-w64 x86_64', 'x86_64-w64-mingw32-gcc', ['--version'], `${APT} gcc-mingw-w64-x86-64-win32 mingw-w64-tools`],
    ['mingw-w64 i686', 'i686-w64-mingw32-gcc', ['--version'], `${APT} gcc-mingw-w64-i686-win32`],
    ['Wine', 'wine', ['--version'], `${APT} wine wine64`],
    ['osslsigncode', 'osslsigncode', ['--version'], `${APT} osslsigncode`],
    ['ssh client (dmahil shell, --keep)', 'ssh', ['-V'], `${APT} openssh-client`],
  ];
  for (const [name, cmd, args, fix] of tools) {
    const r = await p.run(cmd, args);
    const first = (r.stdout || r.stderr).trim().split('\n')[0] ?? '';
    add(r.ok ? { name, status: 'ok', detail: first || cmd } : { name, status: 'missing', detail: `${cmd} not found`, fix });
  }
  add(p.exists('/usr/bin/chromium') ? { name: 'Chromium (HTML report spec)', status: 'ok', detail: '/usr/bin/chromium' } : { name: 'Chromium (HTML report spec)', status: 'missing', detail: '/usr/bin/chromium not found', fix: `${APT} chromium` });

  const kernels = p.list('/lib/modules').filter((v) => p.exists(`/boot/vmlinuz-${v}`));
  const withHeaders = kernels.filter((v) => p.exists(`/lib/modules/${v}/build`));
  if (kernels.length === 0) add({ name: 'guest kernel', status: 'missing', detail: 'no /boot/vmlinuz-* with modules', fix: `${APT} linux-image-amd64 linux-headers-amd64` });
  else if (withHeaders.length === 0) add({ name: 'guest kernel', status: 'missing', detail: `no headers for ${kernels.join(', ')} (edudma is built against them)`, fix: `${APT} ${kernels.map((k) => `linux-headers-${k}`).join(' ')}` });
  else add({ name: 'guest kernel', status: 'ok', detail: `${withHeaders.join(', ')} with headers` });
  if (opts.kernel) add({ name: 'guest kernel (--kernel)', status: 'ok', detail: `${opts.kernel.version} in ${opts.kernel.root}, headers ${opts.kernel.buildDir}` });
  // The reference guest boots the newest kernel image (findKernelVersion), or --kernel's: a --driver module must be built for it.
  if (opts.driver !== undefined) add(driverCheck(opts.driver, opts.kernel?.version ?? [...kernels].sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).at(-1)));

  const cacheDir = opts.cacheDir ?? path.join(opts.repoRoot, '.cache');
  const images = p.list(path.join(cacheDir, 'images')).filter((d) => d.startsWith('linux-image-'));
  add(
    images.length > 0
      ? { name: 'reference image', status: 'ok', detail: `cached in ${path.join(cacheDir, 'images')} (${images.length} build${images.length > 1 ? 's' : ''})` }
      : { name: 'reference image', status: 'warn', detail: 'not cached: the first run builds it (about 5 s)', fix: 'make run ARGS="--grep \'^round-trip 4096 B$\'" (builds and caches it)' },
  );

  const cacheFree = p.freeBytes(cacheDir);
  add(
    cacheFree === undefined
      ? { name: 'free disk (cache, artifacts)', status: 'warn', detail: `cannot tell for ${cacheDir}` }
      : cacheFree >= CACHE_NEEDED
        ? { name: 'free disk (cache, artifacts)', status: 'ok', detail: `${gib(cacheFree)} free at ${cacheDir}` }
        : { name: 'free disk (cache, artifacts)', status: 'missing', detail: `${gib(cacheFree)} free at ${cacheDir}, ${gib(CACHE_NEEDED)} needed (image cache, snapshots, memory dumps)`, fix: `free space, or remove old runs: rm -rf ${path.join(opts.repoRoot, 'reports', 'runs')}` },
  );
  const shmFree = p.exists('/dev/shm') ? p.freeBytes('/dev/shm') : undefined;
  add(
    shmFree !== undefined && shmFree >= SHM_NEEDED
      ? { name: 'free /dev/shm (guest RAM files)', status: 'ok', detail: `${gib(shmFree)} free` }
      : {
          name: 'free /dev/shm (guest RAM files)',
          status: 'warn',
          detail: `${shmFree === undefined ? 'no /dev/shm' : `${(shmFree / MiB).toFixed(0)} MiB free`}, ${(SHM_NEEDED / MiB).toFixed(0)} MiB wanted: guest RAM goes to the temp directory instead (slower)`,
          fix: 'mount -o remount,size=1G /dev/shm (in a container: --shm-size=1g)',
        },
  );
  return checks;
}

/** --driver DIR: the checks dmahil run makes before boot (harness/driver/), as a doctor line. */
export function driverCheck(dir: string, guestKernel: string | undefined): Check {
  const name = 'driver (--driver)';
  try {
    if (fs.existsSync(path.join(dir, 'edudma.sys')) && !fs.existsSync(path.join(dir, 'edudma.ko'))) {
      const d = checkWindowsDriver(dir, windowsPackageArch(dir));
      return { name, status: 'ok', detail: `${dir}: a Windows package, contract ${d.contract} (run it with --image windows)` };
    }
    const d = checkLinuxDriver(dir);
    if (guestKernel !== undefined) checkModuleKernel(d, guestKernel);
    return { name, status: 'ok', detail: `${dir}: edudma.ko and dmactl, contract ${d.contract}, built for ${vermagicKernel(d.vermagic)}` };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return { name, status: 'missing', detail: e.message.replace(/^--driver: /, ''), ...(e.hint ? { fix: e.hint } : {}) };
  }
}

/** The architecture a package's edudma.sys is built for (x64 when it cannot tell: the check then says why). */
function windowsPackageArch(dir: string): 'x64' | 'x86' {
  try {
    return parsePe(fs.readFileSync(path.join(dir, 'edudma.sys'))).machine === 0x14c ? 'x86' : 'x64';
  } catch {
    return 'x64';
  }
}

export function doctorText(checks: Check[]): string {
  const mark = { ok: 'ok  ', warn: 'warn', missing: 'MISS' } as const;
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => `${mark[c.status]}  ${c.name.padEnd(width)}  ${c.detail}${c.fix ? `\n      ${''.padEnd(width)}  fix: ${c.fix}` : ''}`);
  const missing = checks.filter((c) => c.status === 'missing').length;
  lines.push('', missing === 0 ? 'ready: dmahil can run here' : `not ready: ${missing} missing (scripts/install-deps.sh test installs the Debian packages)`);
  return lines.join('\n');
}

export function isReady(checks: Check[]): boolean {
  return checks.every((c) => c.status !== 'missing');
}

/** The command: prints the checks (or JSON), returns the exit status. */
export async function doctor(opts: DoctorOptions & { json?: boolean; probes?: Probes; write?: (s: string) => void }): Promise<number> {
  const checks = await runChecks(opts.probes ?? realProbes(opts.cacheDir ?? path.join(opts.repoRoot, '.cache'), opts.qemu), opts);
  const write = opts.write ?? ((s: string) => void process.stdout.write(s));
  write(opts.json ? JSON.stringify({ ready: isReady(checks), checks }) + '\n' : doctorText(checks) + '\n');
  return isReady(checks) ? 0 : 1;
}
