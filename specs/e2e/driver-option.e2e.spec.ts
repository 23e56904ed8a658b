// --driver DIR (issue 14): a driver team's own build of edudma.ko and dmactl, made from a copy of
// guest-driver/linux, is what the run loads and verifies; a folder whose contract differs, or whose module
// was built for another kernel, is refused before any QEMU starts; a module that does not load fails with
// the kernel's own words. One guest boot passes, one boots to fail the insmod; the refusals boot nothing.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { CONTRACT_VERSION } from '../../harness/contract/scenario.js';
import { readElf } from '../../harness/driver/elf.js';
import { findExecutable } from '../../harness/machine/launch-checks.js';
import { findKernelVersion } from '../../images/linux/build.js';
import { BOOT_TIMEOUT_MS, cliPath, repoRoot } from './support.js';

/** guest-driver/{linux,common} copied to dir, patched, and built there (linux.mk writes dir/build/linux). */
async function buildCopy(dir: string, kver: string, patches: Array<[file: string, from: string, to: string]>): Promise<string> {
  await fs.mkdir(path.join(dir, 'guest-driver'), { recursive: true });
  for (const part of ['linux', 'common']) await fs.cp(path.join(repoRoot, 'guest-driver', part), path.join(dir, 'guest-driver', part), { recursive: true });
  for (const [file, from, to] of patches) {
    const f = path.join(dir, 'guest-driver', file);
    const text = await fs.readFile(f, 'utf8');
    if (!text.includes(from)) throw new Error(`${file} has no ${JSON.stringify(from)} to patch`);
    await fs.writeFile(f, text.replace(from, to));
  }
  const r = await execa('make', ['-s', '-C', path.join(dir, 'guest-driver', 'linux'), `KVER=${kver}`, 'driver-linux'], { reject: false, all: true, env: { LC_ALL: 'C' } });
  if (r.exitCode !== 0) throw new Error(`building the copy in ${dir} failed: ${r.all}`);
  return path.join(dir, 'build', 'linux');
}

/** A copy of the module with one string of its .strtab (a symbol's name) replaced by another of the same length. */
async function renameSymbol(module: string, out: string, from: string, to: string): Promise<void> {
  const buf = await fs.readFile(module);
  const elf = readElf(buf);
  if (typeof elf === 'string') throw new Error(elf);
  const strtab = elf.sections.get('.strtab')!;
  const at = strtab.indexOf(`\0${from}\0`, 0, 'latin1');
  if (at < 0 || from.length !== to.length) throw new Error(`no symbol ${from} to rename`);
  strtab.write(to, at + 1, 'latin1'); // a view into buf
  await fs.writeFile(out, buf);
}

describe('e2e: dmahil run --driver DIR', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let scratch: string;
  let kver: string;
  let team: string;
  let contract2: string;
  /** A QEMU that writes each of its command lines to a log, then runs the real one. */
  let qemuLog: string;
  let loggingQemu: string;

  before(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-driver-'));
    kver = await findKernelVersion();
    const next = CONTRACT_VERSION + 1;
    // Both builds at once: each is mostly one compiler.
    [team, contract2] = await Promise.all([
      buildCopy(path.join(scratch, 'team'), kver, [
        ['linux/edudma_ioctl.h', '#define EDUDMA_DRIVER_VERSION "0.1.0"', '#define EDUDMA_DRIVER_VERSION "0.1.0-team"'],
        ['common/dmactl/dmactl.c', '\\"driver\\":{\\"name\\":\\"edudma\\"', '\\"driver\\":{\\"name\\":\\"edudma-team\\"'],
      ]),
      buildCopy(path.join(scratch, 'contract2'), kver, [['common/dmahil_abi.h', `#define DMAHIL_CONTRACT_NUMBER ${CONTRACT_VERSION}\n`, `#define DMAHIL_CONTRACT_NUMBER ${next}\n`]]),
    ]);
    const system = findExecutable('qemu-system-x86_64');
    if (!system) throw new Error('qemu-system-x86_64 is not on PATH');
    qemuLog = path.join(scratch, 'qemu-invocations.log');
    loggingQemu = path.join(scratch, 'qemu-system-x86_64');
    await fs.writeFile(loggingQemu, `#!/bin/sh\necho "$*" >> '${qemuLog}'\nexec '${system}' "$@"\n`, { mode: 0o755 });
  });
  after(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  /** A folder holding these two files (copied), as a user would lay out a build. */
  const folder = async (name: string, module: string, tool: string): Promise<string> => {
    const dir = path.join(scratch, name);
    await fs.mkdir(dir, { recursive: true });
    await fs.copyFile(module, path.join(dir, 'edudma.ko'));
    await fs.copyFile(tool, path.join(dir, 'dmactl'));
    return dir;
  };
  const qemuCommandLines = async (): Promise<string[]> => (await fs.readFile(qemuLog, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const dmahil = (args: string[]) => execa('node', [cliPath, 'run', '--qemu', loggingQemu, '--grep', '^round-trip 4096 B$', ...args], { reject: false, input: '' });

  it('a module and dmactl built from a copy of guest-driver/linux: the run loads both, verifies, and names the driver', async () => {
    const artifacts = path.join(scratch, 'run-team');
    const r = await dmahil(['--driver', team, '--json', '--artifacts', artifacts]);
    expect(r.exitCode, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; host: { driver: unknown }; scenarios: Array<{ status: string; driver: { name: string; version: string } }> };
    expect(report.ok).to.equal(true);
    expect(report.host.driver).to.deep.equal({ path: team, contract: CONTRACT_VERSION, builtFor: kver });
    // The copy's module says 0.1.0-team through its ioctl, and the copy's dmactl names it edudma-team.
    expect(report.scenarios.map((s) => [s.status, s.driver.name, s.driver.version])).to.deep.equal([['pass', 'edudma-team', '0.1.0-team']]);
    expect(r.stderr).to.include(`driver: ${team} (--driver; contract ${CONTRACT_VERSION}, built for ${kver})`);
    expect(r.stderr, 'built the shipped module although --driver gave one').to.not.match(/building the edudma module/);
  });

  const refusals = (): Array<[string, () => Promise<string>, RegExp]> => [
    ['a module whose contract differs', () => folder('module-contract', path.join(contract2, 'edudma.ko'), path.join(team, 'dmactl')),
      new RegExp(`edudma\\.ko speaks contract "${CONTRACT_VERSION + 1}"; this dmahil speaks contract ${CONTRACT_VERSION} \\(CONTRACT_VERSION in harness/contract/scenario\\.ts, DMAHIL_CONTRACT_VERSION in guest-driver/common/dmahil_abi\\.h\\) — rebuild the driver against`)],
    ['a dmactl whose contract differs', () => folder('tool-contract', path.join(team, 'edudma.ko'), path.join(contract2, 'dmactl')),
      new RegExp(`dmactl speaks contract ${CONTRACT_VERSION + 1}; this dmahil speaks contract ${CONTRACT_VERSION}`)],
    ['a module that declares no contract (one of the kernel\'s own)', async () => {
      const foreign = (await execa('sh', ['-c', `find /lib/modules/${kver}/kernel -name '*.ko*' | sort | head -n 1`])).stdout.trim();
      const ko = path.join(scratch, 'foreign.ko');
      if (foreign.endsWith('.xz')) await fs.writeFile(ko, (await execa('xz', ['-dc', foreign], { encoding: 'buffer' })).stdout);
      else await fs.copyFile(foreign, ko);
      return folder('no-contract', ko, path.join(team, 'dmactl'));
    }, /edudma\.ko declares no dmahil contract \(no dmahil_contract in its \.modinfo\), so it does not speak the contract; this dmahil speaks contract/],
    ['a dynamically linked dmactl', () => folder('dynamic-tool', path.join(team, 'edudma.ko'), '/bin/true'), /dmactl is dynamically linked \(it needs \/lib64\/ld-linux-x86-64\.so\.2\).* — link it with -static/],
  ];

  for (const [what, make, message] of refusals()) {
    it(`${what}: one line naming it, the versions and the fix, exit 2, no QEMU started`, async () => {
      const dir = await make();
      await fs.rm(qemuLog, { force: true });
      const artifacts = path.join(scratch, `refused-${path.basename(dir)}`);
      const r = await dmahil(['--driver', dir, '--artifacts', artifacts]);
      expect(r.exitCode, r.stderr).to.equal(2);
      expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
      expect(r.stderr).to.match(/^dmahil: --driver: /).and.match(message);
      expect(await qemuCommandLines(), 'QEMU was started').to.deep.equal([]);
      expect(await fs.access(artifacts).then(() => true, () => false), 'the run created its artifacts').to.equal(false);
    });
  }

  it('a module built for another kernel: names both kernels, exit 2, no guest started', async () => {
    const other = kver.replace(/^(\d+)\.(\d+)/, (_, a: string, b: string) => `${a}.${Number(b) === 9 ? 8 : 9}`);
    const ko = path.join(scratch, 'other-kernel.ko');
    const buf = await fs.readFile(path.join(team, 'edudma.ko'));
    const at = buf.indexOf(`vermagic=${kver} `, 0, 'latin1');
    expect(at, 'no vermagic in the module').to.be.at.least(0);
    buf.write(`vermagic=${other} `, at, 'latin1');
    await fs.writeFile(ko, buf);
    const dir = await folder('other-kernel', ko, path.join(team, 'dmactl'));
    await fs.rm(qemuLog, { force: true });
    const r = await dmahil(['--driver', dir, '--artifacts', path.join(scratch, 'refused-other-kernel')]);
    expect(r.exitCode, r.stderr).to.equal(2);
    expect(r.stderr.trim().split('\n').at(-1)).to.include(`edudma.ko was built for kernel ${other} (vermagic "${other} `).and.include(`but the reference guest runs ${kver}`).and.include(`KVER=${kver}`);
    // The QEMU check asks the binary its version and devices; no guest was launched (it would have -kernel).
    expect((await qemuCommandLines()).filter((l) => /-kernel /.test(l))).to.deep.equal([]);
  });

  it('a module that does not load (an unresolved symbol): the run fails with the kernel\'s words and keeps the artifacts', async () => {
    const ko = path.join(scratch, 'unresolved.ko');
    await renameSymbol(path.join(team, 'edudma.ko'), ko, 'pcim_iomap_table', 'pcim_iomap_tablX');
    const dir = await folder('unresolved', ko, path.join(team, 'dmactl'));
    const artifacts = path.join(scratch, 'run-unresolved');
    const r = await dmahil(['--driver', dir, '--json', '--artifacts', artifacts]);
    expect(r.exitCode, r.stderr).to.not.equal(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; scenarios: Array<{ status: string; summary: string }> };
    expect(report.ok).to.equal(false);
    const [s] = report.scenarios;
    expect(s.status).to.equal('not-run');
    // insmod's stderr and the kernel's own line about the module.
    expect(s.summary).to.match(/insmod edudma\.ko failed: insmod: .*(unknown symbol|No such file)/i).and.match(/the kernel said: .*edudma: Unknown symbol pcim_iomap_tablX/);
    expect(await fs.readFile(path.join(artifacts, 'direct', 'serial.log'), 'utf8')).to.match(/Unknown symbol pcim_iomap_tablX/);
  });
});
