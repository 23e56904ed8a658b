// --driver DIR without a guest: the host reads what the driver files declare (checked against kmod's own
// modinfo), the option's bad input, the Windows package folder's checks, and the kernel's words picked out
// of dmesg. specs/e2e/driver-option.e2e.spec.ts runs the same checks through the CLI with real builds.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { execa } from 'execa';
import { parseCommandLine } from '../../harness/cli/args.js';
import { driverCheck } from '../../harness/cli/doctor.js';
import { CONTRACT_VERSION } from '../../harness/contract/scenario.js';
import { VARIANTS } from '../../harness/dma/catalog.js';
import { SnapshotSessionSource } from '../../harness/dma/snapshot-session-source.js';
import { contractTag } from '../../harness/driver/contract-tag.js';
import { EM_X86_64, ET_REL, modinfo, readElf, type ElfFile } from '../../harness/driver/elf.js';
import { checkLinuxDriver, checkModuleKernel, vermagicKernel } from '../../harness/driver/linux-driver.js';
import { checkWindowsDriver } from '../../harness/driver/windows-driver.js';
import { DriverLoadError, UsageError } from '../../harness/errors.js';
import { kernelWordsAboutModule } from '../../harness/guest/linux/profile.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const builtLinux = path.join(repoRoot, 'build/linux');
const builtWindows = (arch: string): string => path.join(repoRoot, 'build/windows', arch);

const usageError = (f: () => unknown): UsageError => {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(UsageError);
    expect((e as UsageError).describe().split('\n')).to.have.length(1);
    return e as UsageError;
  }
  throw new Error('no UsageError');
};

describe('--driver: what the host reads of a driver folder, without booting', function () {
  this.timeout(60_000);
  let scratch: string;
  before(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-driver-unit-'));
    // make test builds both (driver-linux, driver) before the specs.
    for (const f of ['edudma.ko', 'dmactl']) await fs.access(path.join(builtLinux, f));
  });
  after(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  describe('the Linux module and dmactl', () => {
    let ko: ElfFile;
    before(async () => {
      const elf = readElf(await fs.readFile(path.join(builtLinux, 'edudma.ko')));
      if (typeof elf === 'string') throw new Error(elf);
      ko = elf;
    });

    it("edudma.ko's .modinfo as this reader sees it is what kmod's modinfo says, contract included", async () => {
      expect([ko.type, ko.machine]).to.deep.equal([ET_REL, EM_X86_64]);
      const info = modinfo(ko);
      for (const key of ['dmahil_contract', 'vermagic', 'license', 'version']) {
        const kmod = (await execa('modinfo', ['-F', key, path.join(builtLinux, 'edudma.ko')])).stdout;
        expect(info.get(key)?.join('\n'), key).to.equal(kmod);
      }
      expect(info.get('dmahil_contract')).to.deep.equal([String(CONTRACT_VERSION)]);
    });

    it('dmactl is static and carries the contract tag; the header and the harness name the same version', async () => {
      const tool = await fs.readFile(path.join(builtLinux, 'dmactl'));
      const elf = readElf(tool);
      expect(typeof elf === 'string' ? elf : elf.interpreter).to.equal(undefined);
      expect(contractTag(tool)).to.equal(CONTRACT_VERSION);
      const header = await fs.readFile(path.join(repoRoot, 'guest-driver/common/dmahil_abi.h'), 'utf8');
      expect(/#define DMAHIL_CONTRACT_NUMBER (\d+)\n/.exec(header)?.[1]).to.equal(String(CONTRACT_VERSION));
      expect(checkLinuxDriver(builtLinux)).to.include({ contract: CONTRACT_VERSION, module: path.join(builtLinux, 'edudma.ko') });
    });

    it('not an ELF file, or a truncated one: a reason, not an exception', async () => {
      expect(readElf(Buffer.from('this is not an ELF module\n'.repeat(4)))).to.equal('not an ELF file');
      const whole = await fs.readFile(path.join(builtLinux, 'edudma.ko'));
      expect(readElf(whole.subarray(0, 200))).to.match(/^a truncated ELF file/);
    });

    it('a module built for another kernel: both kernels and the KVER to build with', () => {
      const d = checkLinuxDriver(builtLinux);
      const e = usageError(() => checkModuleKernel(d, '9.9.9-1-amd64'));
      expect(e.describe()).to.match(/edudma\.ko was built for kernel \S+ \(vermagic ".*"\), but the reference guest runs 9\.9\.9-1-amd64 — rebuild it against linux-headers-9\.9\.9-1-amd64: make -C <your copy of guest-driver\/linux> KVER=9\.9\.9-1-amd64$/);
    });
  });

  describe('the option', () => {
    it('run, explore, shell and doctor take a folder, made absolute', async () => {
      const rel = path.relative(process.cwd(), builtLinux);
      for (const command of ['run', 'explore', 'shell', 'doctor']) expect(parseCommandLine([command, '--driver', rel])).to.include({ driver: builtLinux });
    });

    it('doctor --driver: one line for the folder, ok or missing with the fix, as run would judge it', () => {
      const kver = vermagicKernel(checkLinuxDriver(builtLinux).vermagic);
      expect(driverCheck(builtLinux, kver)).to.deep.equal({ name: 'driver (--driver)', status: 'ok', detail: `${builtLinux}: edudma.ko and dmactl, contract ${CONTRACT_VERSION}, built for ${kver}` });
      const other = driverCheck(builtLinux, '9.9.9-1-amd64');
      expect(`${other.status}: ${other.detail} — fix: ${other.fix}`).to.match(/^missing: .*but the reference guest runs 9\.9\.9-1-amd64 — fix: rebuild it against linux-headers-9\.9\.9-1-amd64/);
      expect(driverCheck(builtWindows('x86'), kver)).to.include({ status: 'ok', detail: `${builtWindows('x86')}: a Windows package, contract ${CONTRACT_VERSION} (run it with --image windows)` });
      expect(driverCheck(scratch, kver)).to.include({ status: 'missing' }).and.have.property('detail').that.matches(/^the folder has no edudma\.ko/);
    });

    it('missing, empty, or a file: one line naming --driver and the fix', async () => {
      const file = path.join(scratch, 'a-file');
      await fs.writeFile(file, '');
      expect(usageError(() => parseCommandLine(['run', '--driver', path.join(scratch, 'none')])).describe()).to.match(/^--driver \S+none: no such folder — pass --driver the folder of your driver build: edudma\.ko and dmactl/);
      expect(usageError(() => parseCommandLine(['run', '--driver', file])).message).to.match(/^--driver \S+a-file is a file, not a folder$/);
      expect(usageError(() => parseCommandLine(['run', '--driver', ' '])).message).to.equal('--driver is empty');
    });

    it('a folder without edudma.ko or dmactl names the missing file; a Windows package says --image windows', async () => {
      const onlyKo = path.join(scratch, 'only-ko');
      await fs.mkdir(onlyKo);
      await fs.copyFile(path.join(builtLinux, 'edudma.ko'), path.join(onlyKo, 'edudma.ko'));
      expect(usageError(() => checkLinuxDriver(scratch)).message).to.match(/^--driver: the folder has no edudma\.ko/);
      expect(usageError(() => checkLinuxDriver(onlyKo)).message).to.match(/^--driver: the folder has no dmactl/);
      expect(usageError(() => checkLinuxDriver(builtWindows('x64'))).hint).to.match(/add --image windows/);
    });
  });

  describe('a Windows package folder', () => {
    /** A copy of the built x64 package with one file replaced. */
    const packageWith = async (name: string, file: string, content: Buffer | null): Promise<string> => {
      const dir = path.join(scratch, `win-${name}`);
      await fs.cp(builtWindows('x64'), dir, { recursive: true });
      if (content === null) await fs.rm(path.join(dir, file));
      else await fs.writeFile(path.join(dir, file), content);
      return dir;
    };

    it('the package make driver builds passes, for its own architecture only', () => {
      expect(checkWindowsDriver(builtWindows('x64'), 'x64')).to.deep.equal({ dir: builtWindows('x64'), contract: CONTRACT_VERSION });
      expect(usageError(() => checkWindowsDriver(builtWindows('x86'), 'x64')).message).to.match(/edudma\.sys is not a signed x64 kernel driver: machine \(machine 0x14c/);
    });

    it('a missing file, a certificate that is not one, an INF the catalog does not list, a dmactl.exe that is not a console program or has no contract', async () => {
      const sys = await fs.readFile(path.join(builtWindows('x64'), 'edudma.sys'));
      const exe = await fs.readFile(path.join(builtWindows('x64'), 'dmactl.exe'));
      const inf = await fs.readFile(path.join(builtWindows('x64'), 'edudma.inf'));
      const untagged = Buffer.from(exe);
      untagged.write('dmahil_kontract=', untagged.indexOf('dmahil_contract=', 0, 'latin1'), 'latin1');
      const cases: Array<[string, string, Buffer | null, RegExp]> = [
        ['no-cat', 'edudma.cat', null, /the Windows driver package \S+ lacks edudma\.cat — a package folder holds edudma\.sys, edudma\.inf, edudma\.cat, edudma-test\.cer, dmactl\.exe/],
        ['bad-cer', 'edudma-test.cer', Buffer.from('not a certificate'), /edudma-test\.cer is not an X\.509 certificate/],
        ['edited-inf', 'edudma.inf', Buffer.concat([inf, Buffer.from('; edited after signing\r\n')]), /edudma\.cat does not list edudma\.inf as it is in the folder/],
        ['sys-as-exe', 'dmactl.exe', sys, /dmactl\.exe is not a console program \(PE subsystem 1/],
        ['untagged-exe', 'dmactl.exe', untagged, new RegExp(`dmactl\\.exe declares no dmahil contract .*; this dmahil speaks contract ${CONTRACT_VERSION}`)],
      ];
      for (const [name, file, content, message] of cases) {
        const dir = await packageWith(name, file, content);
        expect(usageError(() => checkWindowsDriver(dir, 'x64')).describe(), name).to.match(/^--driver: /).and.match(message);
      }
    });
  });

  it("the kernel's words about a module that did not load: its own lines, without timestamps, repeats or taint notices", () => {
    const dmesg = [
      '[    1.000000] virtio_net virtio0 eth0: renamed',
      '[   74.240542] edudma: loading out-of-tree module taints kernel.',
      '[   74.240542] edudma: module verification failed: signature and/or required key missing - tainting kernel',
      '[   74.242113] edudma: Unknown symbol pcim_iomap_tablX (err -2)',
      '[   74.261637] edudma: Unknown symbol pcim_iomap_tablX (err -2)',
    ].join('\n');
    expect(kernelWordsAboutModule(dmesg)).to.deep.equal(['edudma: Unknown symbol pcim_iomap_tablX (err -2)']);
    expect(kernelWordsAboutModule('[ 1.0] a\n[ 2.0] b\n[ 3.0] c\n[ 4.0] d\n')).to.deep.equal(['b', 'c', 'd']);
  });

  it('a driver that does not load is not booted again for the snapshot fallback: the variant does not start, once', async () => {
    let boots = 0;
    const source = new SnapshotSessionSource({
      boot: async () => {
        boots++;
        throw new DriverLoadError('insmod edudma.ko failed: unknown symbol in module');
      },
      restore: () => Promise.reject(new Error('no snapshot to restore')),
      key: () => 'spec',
    });
    let err: unknown;
    await source.acquire(VARIANTS.direct).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(DriverLoadError);
    expect(boots).to.equal(1);
    await source.close();
  });
});
