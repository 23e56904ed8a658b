import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLinuxDriver } from '../../guest-driver/linux/build.js';
import { findKernelVersion } from '../../images/linux/build.js';
import { EnvironmentError } from '../../harness/errors.js';
import { escapeRegExp } from '../support/regexp.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('guest-driver/linux: buildLinuxDriver', function () {
  this.timeout(180_000);

  it('names the missing headers package for a kernel without headers', async () => {
    let err: unknown;
    try {
      await buildLinuxDriver({ kernelVersion: '0.0.0-0-nonexistent', repoRoot });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(EnvironmentError);
    expect((err as Error).message).to.match(/linux-headers-0\.0\.0-0-nonexistent/);
    expect((err as Error).message).to.match(/apt-get install -y linux-headers-0\.0\.0-0-nonexistent/);
  });

  it('builds edudma.ko for the image kernel and a static dmactl', async () => {
    const kver = await findKernelVersion();
    if (!existsSync(`/lib/modules/${kver}/build/Makefile`)) throw new Error(`no headers for ${kver}; apt-get install linux-headers-${kver}`);
    const progress: string[] = [];
    const out = await buildLinuxDriver({ kernelVersion: kver, repoRoot, onProgress: (m) => progress.push(m) });
    expect(out.module).to.equal(path.join(repoRoot, 'build/linux/edudma.ko'));
    expect(out.tool).to.equal(path.join(repoRoot, 'build/linux/dmactl'));
    const info = await execa('modinfo', ['-F', 'vermagic', out.module]);
    expect(info.stdout.split(' ')[0]).to.equal(kver);
    expect((await execa('modinfo', ['-F', 'license', out.module])).stdout).to.equal('GPL');
    expect((await execa('modinfo', ['-F', 'alias', out.module])).stdout).to.match(/^pci:v00001234d000011E8/);
    // dma_bits is the only parameter: the planted bugs' (edudma_planted.h) are in the test build only.
    expect((await execa('modinfo', ['-F', 'parm', out.module])).stdout).to.match(/^dma_bits:[^\n]*\(uint\)$/);
    expect((await execa('modinfo', ['-F', 'version', out.module])).stdout).to.equal('0.1.0');
    expect(progress.join('\n')).to.match(new RegExp(`edudma\\.ko for ${escapeRegExp(kver)} `));
  });

  it('rejects a kernel version that is not a plain version string', async () => {
    let err: unknown;
    try {
      await buildLinuxDriver({ kernelVersion: '6.1; rm -rf /', repoRoot });
    } catch (e) {
      err = e;
    }
    expect((err as Error)?.message).to.match(/odd kernel version/);
  });
});
