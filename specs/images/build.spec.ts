import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildReferenceImage, findKernelVersion, hasPvhNote, type ReferenceImage } from '../../images/linux/build.js';
import { escapeRegExp } from '../support/regexp.js';
import { extractFromArchive, listArchive } from './support.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('images: reference Linux image build', function () {
  this.timeout(180_000);
  let cacheDir: string;
  let first: ReferenceImage;
  let firstLog: string[];
  let listing: string[];

  before(async () => {
    cacheDir = await mkdtemp(path.join(os.tmpdir(), 'dmahil-image-spec-'));
    firstLog = [];
    first = await buildReferenceImage({ cacheDir, onProgress: (m) => firstLog.push(m) });
    listing = await listArchive(await readFile(first.initrd));
  });

  after(async () => {
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  const has = (re: RegExp) => listing.some((l) => re.test(l));

  it('boots the newest installed kernel, unpacked to an ELF vmlinux with a PVH entry', async () => {
    expect(first.kernelVersion).to.equal(await findKernelVersion());
    expect((await readdir('/lib/modules'))).to.include(first.kernelVersion);
    const elf = await readFile(first.kernel);
    expect(elf.subarray(0, 4).toString('latin1')).to.equal('\x7fELF');
    expect(hasPvhNote(elf)).to.equal(true);
    expect(firstLog.some((m) => /extracting the PVH vmlinux/.test(m))).to.equal(true);
  });

  it('gives a console on ttyS0 in the base command line', () => {
    expect(first.append).to.match(/(^| )console=ttyS0( |$)/);
    expect(first.cacheKey).to.match(/^[0-9a-f]{16,}$/);
  });

  it('packs /init from images/linux/init.sh, busybox, dropbear, sftp-server and device nodes', async () => {
    const init = await extractFromArchive(await readFile(first.initrd), 'init');
    expect(init.toString()).to.equal(await readFile(path.join(repoRoot, 'images/linux/init.sh'), 'utf8'));
    expect(has(/^-rwxr-xr-x .* init$/)).to.equal(true);
    expect(has(/^-rwxr-xr-x .* bin\/busybox$/)).to.equal(true);
    expect(has(/ bin\/sh -> \/bin\/busybox$/)).to.equal(true);
    expect(has(/ sbin\/insmod -> \/bin\/busybox$/)).to.equal(true);
    expect(has(/^-rwxr-xr-x .* usr\/sbin\/dropbear$/)).to.equal(true);
    expect(has(/ usr\/lib\/sftp-server -> \/usr\/lib\/openssh\/sftp-server$/)).to.equal(true);
    expect(has(/^crw------- .* 5, +1 .* dev\/console$/)).to.equal(true);
    expect(has(/^crw-rw-rw- .* 1, +3 .* dev\/null$/)).to.equal(true);
  });

  it('carries every shared library ldd names for dropbear and sftp-server', async () => {
    for (const bin of ['/usr/sbin/dropbear', '/usr/lib/openssh/sftp-server']) {
      const ldd = (await execa('ldd', [bin])).stdout;
      const libs = [...ldd.matchAll(/(?:=>\s*|^\s*)(\/\S+)\s+\(/gm)].map((m) => m[1]);
      expect(libs.length).to.be.greaterThan(0);
      for (const lib of libs) expect(has(new RegExp(` ${escapeRegExp(lib.slice(1))}$`)), lib).to.equal(true);
    }
  });

  it('loads the virtio-net module chain in dependency order, except what the kernel has built in', async () => {
    const list = (await extractFromArchive(await readFile(first.initrd), 'etc/dmahil/modules')).toString().trim().split('\n');
    const names = list.map((p) => path.basename(p).replace(/^\d+-/, ''));
    // Debian 12 builds virtio, virtio_ring and virtio_pci as modules; Debian 13 builds them in (CONFIG_VIRTIO=y).
    const builtin = new Set(
      (await readFile(`/lib/modules/${first.kernelVersion}/modules.builtin`, 'utf8')).split('\n').filter(Boolean).map((p) => path.basename(p)),
    );
    for (const m of ['virtio_ring.ko', 'virtio.ko', 'virtio_pci.ko', 'failover.ko', 'net_failover.ko', 'virtio_net.ko']) {
      const listed = names.includes(m);
      expect(listed || builtin.has(m), `${m}: neither in the image's list nor built into ${first.kernelVersion}`).to.equal(true);
      expect(listed && builtin.has(m), `${m} is built into ${first.kernelVersion}; /init must not insmod it`).to.equal(false);
    }
    const before = (a: string, b: string) => {
      if (names.includes(a) && names.includes(b)) expect(names.indexOf(a), `${a} before ${b}`).to.be.lessThan(names.indexOf(b));
    };
    before('virtio_ring.ko', 'virtio.ko');
    before('virtio.ko', 'virtio_pci.ko');
    before('virtio_ring.ko', 'virtio_net.ko');
    before('virtio.ko', 'virtio_net.ko');
    before('failover.ko', 'net_failover.ko');
    before('net_failover.ko', 'virtio_net.ko');
    for (const p of list) expect(has(new RegExp(` ${escapeRegExp(p.slice(1))}$`)), p).to.equal(true);
  });

  it('says whether the kernel has the virtio-iommu driver, as its config does, and loads a module before the NIC drivers', async () => {
    const config = await readFile(`/boot/config-${first.kernelVersion}`, 'utf8').catch(() => '');
    const line = config.split('\n').find((l) => /^(# )?CONFIG_VIRTIO_IOMMU[= ]/.test(l));
    const names = (await extractFromArchive(await readFile(first.initrd), 'etc/dmahil/modules')).toString().trim().split('\n').map((p) => path.basename(p).replace(/^\d+-/, ''));
    const at = names.findIndex((n) => /^virtio[-_]iommu\.ko$/.test(n));
    // Debian 12's 6.1: "# CONFIG_VIRTIO_IOMMU is not set"; Debian 13's 6.12: =m.
    expect(first.virtioIommu.driver).to.equal(line === 'CONFIG_VIRTIO_IOMMU=m' ? 'module' : line === 'CONFIG_VIRTIO_IOMMU=y' ? 'builtin' : 'absent');
    if (line) expect(first.virtioIommu.evidence).to.contain(line);
    expect(at >= 0).to.equal(first.virtioIommu.driver === 'module');
    for (const nic of ['virtio_net.ko', 'e1000.ko']) if (at >= 0 && names.includes(nic)) expect(at, nic).to.be.lessThan(names.indexOf(nic));
  });

  it('leaves the driver under test and dmactl out of the image', () => {
    expect(has(/edudma/)).to.equal(false);
    expect(has(/dmactl/)).to.equal(false);
  });

  it('answers a second call from the cache without rebuilding', async () => {
    const before = await stat(first.initrd);
    const log: string[] = [];
    const again = await buildReferenceImage({ cacheDir, onProgress: (m) => log.push(m) });
    expect(again).to.deep.equal(first);
    expect(log.some((m) => /cached/.test(m))).to.equal(true);
    expect(log.some((m) => /extracting|writing/.test(m))).to.equal(false);
    expect((await stat(first.initrd)).mtimeMs).to.equal(before.mtimeMs);
  });

  it('rebuilds the initramfs when an input (/init) changes, reusing the kernel', async () => {
    const altInit = path.join(cacheDir, 'alt-init.sh');
    const text = `${await readFile(path.join(repoRoot, 'images/linux/init.sh'), 'utf8')}\n# spec variant ${Date.now()}\n`;
    await writeFile(altInit, text);
    const log: string[] = [];
    const changed = await buildReferenceImage({ cacheDir, initScript: altInit, onProgress: (m) => log.push(m) });
    expect(changed.cacheKey).to.not.equal(first.cacheKey);
    expect(changed.initrd).to.not.equal(first.initrd);
    expect(changed.kernel).to.equal(first.kernel);
    expect(log.some((m) => /writing the initramfs/.test(m))).to.equal(true);
    expect(log.some((m) => /extracting/.test(m))).to.equal(false);
    expect((await extractFromArchive(await readFile(changed.initrd), 'init')).toString()).to.equal(text);

    await writeFile(altInit, `${text}# one more change\n`);
    const changedAgain = await buildReferenceImage({ cacheDir, initScript: altInit });
    expect(changedAgain.cacheKey).to.not.equal(changed.cacheKey);
  });

  it('rebuilds on force even when the cache is current', async () => {
    const log: string[] = [];
    const forced = await buildReferenceImage({ cacheDir, force: true, onProgress: (m) => log.push(m) });
    expect(forced.cacheKey).to.equal(first.cacheKey);
    expect(log.some((m) => /writing the initramfs/.test(m))).to.equal(true);
    expect((await readFile(forced.initrd)).equals(await readFile(first.initrd))).to.equal(true);
  });
});
