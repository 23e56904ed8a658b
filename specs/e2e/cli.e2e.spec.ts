// The command a user types, run as a child process.
import { expect } from 'chai';
import { execa } from 'execa';
import { BOOT_TIMEOUT_MS, cliPath } from './support.js';

describe('e2e: the dmahil command', function () {
  this.timeout(BOOT_TIMEOUT_MS);

  it('runs a scenario on the reference guest and prints machine-readable results', async () => {
    const r = await execa('node', [cliPath, 'run', '--grep', '^round-trip 4096 B$', '--json'], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; host: { qemu: string; accel: string }; scenarios: Array<{ name: string; status: string; buffers: unknown[] }> };
    expect(report.ok).to.equal(true);
    expect(report.scenarios.map((s) => [s.name, s.status])).to.deep.equal([['round-trip 4096 B', 'pass']]);
    expect(r.stderr).to.match(/booting QEMU/).and.match(/waiting for the guest's SSH login \(TCG\)/);
    // Where it ran, and what 'auto' meant: TCG with -icount for the reference guest, said once.
    expect(report.host.qemu).to.match(/^\d+\.\d+\.\d+/);
    expect(report.host.accel).to.equal('auto: tcg for the reference guest');
    expect(r.stderr.match(/accelerator: TCG with -icount/g)).to.have.length(1);
  });

  it('prints the verdict table and exits 0', async () => {
    const r = await execa('node', [cliPath, 'run', '--grep', '^control: wrong seed$'], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/control: wrong seed\s+caught: wrong-seed\s+fail/).and.match(/^PASS: 1 ok, 0 failed/m);
  });

  for (const [argv, message] of [
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['run', '--grep', 'no scenario is called this'], /no scenario matches/],
    [['run', '--image', 'windows.vhdx'], /unknown image "windows.vhdx"/],
    [['run', '--grep', '^round-trip 1 B$', '--shard', '2/3'], /shard 2\/3 has none of the 1 selected scenarios/],
    [["run", "--image", "/nonexistent/golden.qcow2"], /no Windows image manifest at \/nonexistent\/golden/],
  ] as const) {
    it(`dmahil ${argv.join(' ')}: one clear line, exit 2`, async () => {
      const r = await execa('node', [cliPath, ...argv], { reject: false });
      expect(r.exitCode).to.equal(2);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(message);
    });
  }

  it('--help lists the commands and options', async () => {
    const r = await execa('node', [cliPath, '--help']);
    expect(r.stdout).to.match(/dmahil <command>/).and.match(/--json/).and.match(/Exit status/);
  });
});
