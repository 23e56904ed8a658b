// A user's project (issue 14): a dmahil.config.json in the folder dmahil runs in names the user's scenarios
// file, a grep, an artifacts folder (both paths relative to the config) and a guest variant of its own.
// `dmahil run` with no options must run exactly the file's scenarios that the grep keeps (nothing from
// the catalog), on the reference guest, catch the file's negative control for its reason, and boot the
// declared variant with its machine (memory, CPUs, swiotlb, the edu's mask on QEMU's command line). Two
// boots, each guest reused (boot: true); the bounce entry is left out by the grep.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { BOOT_TIMEOUT_MS, cliPath } from './support.js';

const SCENARIOS = {
  scenarios: [
    { name: 'mine: round trip 5000 B at offset 7', variant: 'direct', scenario: { size: 5000, offset: 7, seed: 201 }, expect: 'pass' },
    { name: 'mine: control wrong seed', variant: 'direct', scenario: { direction: 'from-device', size: 100, seed: 202 }, expect: 'caught: wrong-seed', expectSeed: 203 },
    { name: 'not mine: bounced round trip', variant: 'bounce', scenario: { size: 4096 }, expect: 'pass' },
    { name: 'mine: round trip on two CPUs', variant: 'two-cpus', scenario: { size: 4096, seed: 204 }, expect: 'pass' },
  ],
};

describe('e2e: a config file naming the user\'s scenarios', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let project: string;

  before(async () => {
    project = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-project-'));
    await fs.mkdir(path.join(project, 'dma'));
    await fs.writeFile(path.join(project, 'dma', 'scenarios.json'), JSON.stringify(SCENARIOS, null, 2));
    await fs.writeFile(path.join(project, 'dmahil.config.json'), JSON.stringify({ scenarios: 'dma/scenarios.json', grep: '^mine:', boot: true, json: true, artifacts: 'reports/run', variants: { 'two-cpus': { memoryMiB: 192, cpus: 2, swiotlb: 'off', eduDmaMask: '0xfffffff' } } }, null, 2));
  });
  after(async () => {
    await fs.rm(project, { recursive: true, force: true });
  });

  it('dmahil run runs exactly the file\'s scenarios the config selects, and catches its control', async () => {
    const r = await execa(process.execPath, [cliPath, 'run'], { cwd: project, reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; scenarios: Array<{ name: string; guest: string; status: string; outcome: string; expectFinding: string | null; findings: Array<{ kind: string }> }> };
    expect(report.ok).to.equal(true);
    expect(report.scenarios.map((s) => [s.name, s.guest, s.status, s.outcome, s.expectFinding])).to.deep.equal([
      ['mine: round trip 5000 B at offset 7', 'direct', 'pass', 'ok', null],
      ['mine: control wrong seed', 'direct', 'fail', 'ok', 'wrong-seed'],
      ['mine: round trip on two CPUs', 'two-cpus', 'pass', 'ok', null],
    ]);
    expect(report.scenarios[1]!.findings.map((f) => f.kind)).to.include('wrong-seed');
    expect(r.stderr).to.match(/\s3 scenarios; artifacts in /).and.match(/two-cpus guest: declared in the config: 192 MiB, 2 CPUs, swiotlb off, edu dma_mask 0xfffffff/);
    // The artifacts folder is the config's, relative to the config's folder.
    const onDisk = JSON.parse(await fs.readFile(path.join(project, 'reports', 'run', 'results.json'), 'utf8')) as { scenarios: unknown[]; host: { variants: unknown } };
    expect(onDisk.scenarios).to.have.length(3);
    expect(onDisk.host.variants).to.deep.equal([{ id: 'two-cpus', description: 'declared in the config: 192 MiB, 2 CPUs, swiotlb off, edu dma_mask 0xfffffff', machine: { memoryMiB: 192, cpus: 2, swiotlb: 'off', eduDmaMask: '0xfffffff' } }]);
    // The declared variant's machine, as QEMU was told it.
    const cmdline = await fs.readFile(path.join(project, 'reports', 'run', 'two-cpus', 'cmdline.txt'), 'utf8');
    expect(cmdline).to.match(/-smp 2 /).and.match(/-m 192M /).and.match(/edu,dma_mask=0xfffffff/).and.match(/swiotlb=noforce/);
  });
});
