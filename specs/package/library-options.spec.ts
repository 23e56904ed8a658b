// The library's own options beside the CLI's (issue 14): startGuest's `driver` is judged by the same checks
// as `dmahil run --driver` (harness/driver/), with the same one-line errors, before any guest boots; a
// variant object of the user's own by the config's rules for "variants" (config.schema.json); and
// useGuest's restore 'per-test' is refused for a Windows golden image when the spec file loads, and
// guest.restore() on a fixture that saved nothing (restore 'per-file') is a UsageError. No guest
// boots here: every case is refused before QEMU starts. The passing driver and
// per-test restore boot in specs/package/pack.e2e.spec.ts.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { UsageError } from '../../harness/errors.js';
import { startGuest } from '../../harness/lib/guest.js';
import { useGuest, type GuestFixture } from '../../harness/lib/mocha.js';
import { cacheDir } from '../../harness/lib/paths.js';
import { buildReferenceImage } from '../../images/linux/build.js';
import { buildLinuxDriver } from '../../guest-driver/linux/build.js';
import { repoRoot } from '../e2e/support.js';

async function refusal(p: Promise<unknown>): Promise<UsageError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e, 'startGuest did not refuse').to.be.instanceOf(UsageError);
  return e as UsageError;
}

describe("library options: startGuest's driver, useGuest's restore", function () {
  this.timeout(300_000);
  let scratch: string;
  let kver: string;
  let built: { module: string; tool: string };
  const savedPath = process.env.PATH;

  before(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-lib-options-'));
    // Cached after the first build (make test builds both before this spec).
    kver = (await buildReferenceImage({ cacheDir: path.join(cacheDir(repoRoot), 'images') })).kernelVersion;
    built = await buildLinuxDriver({ kernelVersion: kver, repoRoot });
  });
  afterEach(() => {
    process.env.PATH = savedPath;
  });
  after(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  const start = (driver: string, noTools = true): Promise<unknown> => {
    // Were a check to let the folder through, no QEMU could start: the refusal must come first. (The
    // kernel check needs the reference image, whose cache lookup runs host tools: PATH stays for it.)
    if (noTools) process.env.PATH = '/nonexistent';
    return startGuest({ profile: 'linux', driver, artifactsDir: path.join(scratch, 'artifacts') });
  };

  it('a driver folder that does not exist, or is a file: named, with the fix', async () => {
    const e = await refusal(start(path.join(scratch, 'nowhere')));
    expect(e.describe()).to.match(/^driver \S+nowhere: no such folder — give driver the folder of your driver build: edudma\.ko and dmactl/);
    const file = path.join(scratch, 'a-file');
    await fs.writeFile(file, '');
    expect((await refusal(start(file))).describe()).to.match(/^driver \S+a-file is a file, not a folder/);
  });

  it("a folder without edudma.ko: the CLI's --driver error", async () => {
    const empty = path.join(scratch, 'empty');
    await fs.mkdir(empty);
    expect((await refusal(start(empty))).describe()).to.match(/^--driver: the folder has no edudma\.ko \(\S+empty\) — build both from guest-driver\/linux/);
  });

  it('a module built for another kernel than the reference guest runs: both kernels named, and the KVER to build with', async () => {
    const other = kver.replace(/^(\d+)\.(\d+)/, (_, a: string, b: string) => `${a}.${Number(b) === 9 ? 8 : 9}`);
    const dir = path.join(scratch, 'other-kernel');
    await fs.mkdir(dir);
    const buf = await fs.readFile(built.module);
    const at = buf.indexOf(`vermagic=${kver} `, 0, 'latin1');
    expect(at, 'no vermagic in the module').to.be.at.least(0);
    buf.write(`vermagic=${other} `, at, 'latin1');
    await fs.writeFile(path.join(dir, 'edudma.ko'), buf);
    await fs.copyFile(built.tool, path.join(dir, 'dmactl'));
    const text = (await refusal(start(dir, false))).describe();
    expect(text).to.include(`edudma.ko was built for kernel ${other}`).and.include(`but the reference guest runs ${kver}`).and.include(`KVER=${kver}`);
  });

  it("a variant of the user's own is held to the config's rules before anything boots: the setting, its range, the fix", async () => {
    const variant = (id: string, machine: Record<string, unknown>) => ({ id, forceBounce: false, description: '', machine });
    const refused = async (v: ReturnType<typeof variant>): Promise<string> => {
      process.env.PATH = '/nonexistent';
      return (await refusal(startGuest({ profile: 'linux', variant: v as never, artifactsDir: path.join(scratch, 'artifacts') }))).describe();
    };
    expect(await refused(variant('big', { memoryMiB: 16384 }))).to.equal('variant "big": machine.memoryMiB must be <= 8192 — memoryMiB: guest RAM in MiB, 128 to 8192; above 2816 q35 puts all but 2 GiB above 4 GiB (the built-in variants: 256, all of it under the edu\'s 28-bit reach; high-memory: 4608)');
    expect(await refused(variant('big', { cpu: 2 }))).to.match(/^variant "big": machine\.cpu is not a setting of the guest's machine — the settings are memoryMiB, cpus, swiotlb, eduDmaMask/);
    expect(await refused(variant('wide', { eduDmaMask: 'ffffffff' }))).to.match(/^variant "wide": machine\.eduDmaMask must match pattern .* — eduDmaMask: the edu device's dma_mask in hex/);
    expect(await refused(variant('Big RAM', {}))).to.match(/^variant "Big RAM": the id is not a variant name/);
  });

  it('virtio-iommu on a guest kernel without its driver: refused before QEMU starts, with the kernel config line', async function () {
    const image = await buildReferenceImage({ cacheDir: path.join(cacheDir(repoRoot), 'images') });
    if (image.virtioIommu.driver !== 'absent') this.skip(); // Debian 13's 6.12 has it: nothing to refuse
    const e = await refusal(startGuest({ profile: 'linux', variant: 'virtio-iommu', artifactsDir: path.join(scratch, 'artifacts') }));
    expect(e.message).to.equal(`guest kernel ${kver} has no virtio-iommu driver (${image.virtioIommu.evidence}): a virtio-iommu guest would not translate`);
    expect(e.hint).to.match(/CONFIG_VIRTIO_IOMMU/);
  });

  // A per-file fixture that never boots: mocha runs no hooks for a block without tests.
  let perFile: GuestFixture | undefined;
  describe('(a per-file fixture, never booted: its block has no tests)', () => {
    perFile = useGuest({ profile: 'linux' });
  });

  it("guest.restore() on a fixture with restore 'per-file': a UsageError naming the option that saves the guest", async () => {
    const e = await perFile!.restore().then(() => undefined, (err: unknown) => err);
    expect(e, 'restore() did not refuse').to.be.instanceOf(UsageError);
    expect((e as UsageError).describe()).to.match(/^useGuest: guest\.restore\(\) needs a saved guest, and restore 'per-file' saves none — use useGuest\(\{ \.\.\., restore: 'per-test' \}\)/);
  });

  it("restore 'per-test' on a Windows golden image: refused when useGuest is called, naming why (no snapshots of a golden image)", () => {
    expect(() => useGuest({ profile: 'windows', image: '/nonexistent/golden.json', restore: 'per-test' }))
      .to.throw(UsageError, /restore 'per-test' needs a snapshot of the booted guest, and only the reference guest \(profile 'linux'\) has snapshots, not a Windows golden image/);
  });
});
