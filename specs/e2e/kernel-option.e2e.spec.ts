// --kernel DIR (issue 14): the reference guest boots a kernel other than the installed one, from a kernel
// root made of Debian's packages by apt-get download and dpkg -x (specs/kernel/debian-kernel-root.ts); the
// image and edudma are built for it, the quick set verifies, and results.json and the guest's own boot log
// name that kernel. A second build for the same root rebuilds nothing. One boot (~20 s; the first run
// also downloads ~85 MB and unpacks, then cached).
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { buildLinuxDriver } from '../../guest-driver/linux/build.js';
import { buildReferenceImage, findKernelVersion } from '../../images/linux/build.js';
import { kernelDriverBuild, kernelRootOption } from '../../harness/kernel/kernel-root.js';
import { specKernelRoot, type SpecKernelRoot } from '../kernel/debian-kernel-root.js';
import { BOOT_TIMEOUT_MS, cliPath, repoRoot } from './support.js';

const cacheDir = path.join(repoRoot, '.cache');

describe('e2e: dmahil run --kernel DIR', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let kernel: SpecKernelRoot;
  let installed: string;

  before(async () => {
    kernel = await specKernelRoot(cacheDir);
    installed = await findKernelVersion();
    // Said in the spec's output: which proof this host allowed (another kernel, or the installed one's).
    console.log(`      kernel root: ${kernel.dir} (${kernel.version}, ${kernel.kind}; installed ${installed})`);
  });

  it('boots that kernel, builds edudma for it and verifies the quick set; results.json and the serial log name it', async () => {
    const artifacts = path.join(repoRoot, 'reports', 'e2e', 'kernel-option');
    await fs.rm(artifacts, { recursive: true, force: true });
    const r = await execa('node', [cliPath, 'run', '--kernel', kernel.dir, '--json', '--artifacts', artifacts], { reject: false, cwd: repoRoot });
    expect(r.exitCode, r.stderr.split('\n').slice(-15).join('\n')).to.equal(0);
    expect(r.stderr).to.include(`guest kernel: ${kernel.version} (--kernel ${kernel.dir})`);
    const results = JSON.parse(r.stdout) as { ok: boolean; counts: { ok: number; notOk: number }; host: { guestKernel: { version: string; root: string } } };
    expect(results.ok).to.equal(true);
    expect(results.counts.notOk).to.equal(0);
    expect(results.host.guestKernel).to.deep.equal({ version: kernel.version, root: kernel.dir });
    // What the guest itself printed as it booted: the kernel that ran, not what the host meant to boot.
    const serial = await fs.readFile(path.join(artifacts, 'direct', 'serial.log'), 'utf8');
    expect(serial).to.match(new RegExp(`Linux version ${kernel.version.replace(/[.+]/g, '\\$&')} `));
    if (kernel.kind === 'other-debian-kernel') expect(kernel.version).to.not.equal(installed);
  });

  it('a second build for the same root rebuilds nothing: the image is cached and the module untouched', async () => {
    const root = kernelRootOption(kernel.dir);
    const log: string[] = [];
    const image = await buildReferenceImage({ cacheDir: path.join(cacheDir, 'images'), kernelRoot: root, onProgress: (m) => log.push(m) });
    expect(image.kernelVersion).to.equal(kernel.version);
    expect(log.join('\n')).to.include(`reference image: cached (${kernel.version},`);
    const build = kernelDriverBuild(root, cacheDir);
    const before = (await fs.stat(path.join(build.outDir, 'edudma.ko'))).mtimeMs;
    const built = await buildLinuxDriver({ kernelVersion: root.version, repoRoot, kernel: build });
    expect((await fs.stat(built.module)).mtimeMs).to.equal(before);
    const vermagic = await execa('modinfo', ['-F', 'vermagic', built.module]);
    expect(vermagic.stdout.split(' ')[0]).to.equal(kernel.version);
  });
});
