// Builds the Linux guest driver pieces on the host: build/linux/edudma.ko for one kernel version
// and the static build/linux/dmactl, through guest-driver/linux/Makefile (rules in linux.mk).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { DmahilError, EnvironmentError, UsageError } from '../../harness/errors.js';

export interface BuildLinuxDriverOptions {
  kernelVersion: string;
  repoRoot: string;
  /**
   * --kernel: the kernel's build tree (harness/kernel/kernel-root.ts kbuildDir) and a folder of its own for
   * the results (so two kernels of one version never share objects). Default: /lib/modules/<ver>/build
   * and build/linux.
   */
  kernel?: { buildDir: string; outDir: string };
  onProgress?: (m: string) => void;
}

export async function buildLinuxDriver(opts: BuildLinuxDriverOptions): Promise<{ module: string; tool: string }> {
  const progress = opts.onProgress ?? (() => {});
  const root = resolve(opts.repoRoot);
  const kver = opts.kernelVersion;
  if (!/^[\w.+~-]+$/.test(kver)) throw new DmahilError(`edudma: odd kernel version ${JSON.stringify(kver)}`);
  const headers = opts.kernel?.buildDir ?? `/lib/modules/${kver}/build`;
  if (!existsSync(join(headers, 'Makefile'))) {
    throw new EnvironmentError(
      `edudma: the kernel headers for ${kver} are missing (${headers}); install the Debian package linux-headers-${kver}: apt-get install -y linux-headers-${kver}`,
      { hint: `apt-get install -y linux-headers-${kver}` },
    );
  }
  for (const [tool, pkg] of [['make', 'make'], ['cc', 'gcc']] as const) {
    const found = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    if (found.exitCode !== 0) {
      throw new EnvironmentError(`edudma: ${tool} is missing; install build-essential: apt-get install -y build-essential`, {
        hint: `apt-get install -y build-essential ${pkg === 'make' ? '' : pkg}`.trim(),
      });
    }
  }

  progress(`building edudma.ko for ${kver} and dmactl`);
  const own = opts.kernel ? [`KDIR=${opts.kernel.buildDir}`, `LINUX_OUT=${opts.kernel.outDir}`] : [];
  const res = await execa('make', ['-C', join(root, 'guest-driver/linux'), `KVER=${kver}`, ...own, 'driver-linux'], {
    reject: false,
    all: true,
    env: { LC_ALL: 'C' },
  });
  if (res.exitCode !== 0) {
    const tail = (res.all ?? '').trim().split('\n').slice(-15).join('\n');
    const rerun = `make -C ${join(root, 'guest-driver/linux')} KVER=${kver}${own.map((a) => ` ${a}`).join('')}`;
    if (opts.kernel) {
      // A kernel of the user's own: bad input, said in one line with the compiler's first error.
      const first = (res.all ?? '').split('\n').find((l) => /\berror\b/i.test(l))?.trim() ?? tail.split('\n').at(-1);
      throw new UsageError(`--kernel: edudma does not build against ${opts.kernel.buildDir} (${kver}): ${first}`, {
        hint: `use a kernel edudma supports (6.1 or newer, with its own headers), or run "${rerun}" to see the whole output`,
      });
    }
    throw new DmahilError(`edudma: make driver-linux failed (exit ${res.exitCode}):\n${tail}`, {
      hint: `run "${rerun}" to see the whole output`,
    });
  }
  const out = opts.kernel?.outDir ?? join(root, 'build/linux');
  const module = join(out, 'edudma.ko');
  const tool = join(out, 'dmactl');
  const vermagic = await execa('modinfo', ['-F', 'vermagic', module], { reject: false });
  if (vermagic.exitCode === 0 && !vermagic.stdout.startsWith(`${kver} `)) {
    throw new DmahilError(`edudma: ${module} was built for "${vermagic.stdout.trim()}", not ${kver}`);
  }
  return { module, tool };
}
