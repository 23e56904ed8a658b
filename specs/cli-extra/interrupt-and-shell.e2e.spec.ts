// The dmahil command interrupted (SIGINT while it boots, SIGTERM while a scenario runs) or killed
// (SIGKILL mid-run): no QEMU outlives it, checked by pid and by who maps the run's guest-RAM file, and
// the artifacts stay. And `dmahil shell` with a scripted stdin: a shell in a guest with edudma loaded.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import { isProcessAlive, sweepStaleRunDirs } from '../../harness/machine/index.js';
import { BOOT_TIMEOUT_MS, cliPath, repoRoot } from '../e2e/support.js';
import { qemuChildren, runDirsOf, until } from './processes.js';

const artifactsRoot = path.join(repoRoot, 'reports', 'e2e', 'cli-extra');

/** Live processes that map (or hold open) file: a QEMU still using the guest's RAM. */
function holders(file: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || !isProcessAlive(Number(e))) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/maps`, 'utf8').includes(file)) out.push(Number(e));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** The RAM file QEMU runs on (a snapshot directory holds a guest-ram copy too, which no QEMU maps). */
function ramFileOf(cliPid: number, qemu: number): string | undefined {
  return runDirsOf(cliPid).map((d) => path.join(d, 'guest-ram')).find((f) => fs.existsSync(f) && holders(f).includes(qemu));
}

describe('cli-extra: dmahil interrupted or killed leaves no QEMU and keeps the artifacts', function () {
  this.timeout(BOOT_TIMEOUT_MS);

  for (const c of [
    { signal: 'SIGINT', when: /booting QEMU/, phase: 'while it boots', code: 130, boot: true },
    { signal: 'SIGTERM', when: /running "/, phase: 'while a scenario runs', code: 143, boot: true },
    { signal: 'SIGTERM', when: /running "/, phase: 'while a scenario runs on a restored guest (the snapshot goes too)', code: 143, boot: false },
    { signal: 'SIGKILL', when: /running "/, phase: 'while a scenario runs', code: null, boot: true },
  ] as const) {
    // 1 MiB: 1028 edu operations, long enough (seconds, even with cheap waits) for the signal to land mid-run.
    it(`${c.signal} ${c.phase}`, async () => {
      const artifacts = path.join(artifactsRoot, `${c.signal.toLowerCase()}${c.boot ? '' : '-restored'}`);
      fs.rmSync(artifacts, { recursive: true, force: true });
      const cli: ResultPromise = execa('node', [cliPath, 'run', ...(c.boot ? ['--boot'] : []), '--grep', '^round-trip 1 MiB$', '--all', '--artifacts', artifacts], { reject: false, buffer: true });
      let stderr = '';
      cli.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      await until(`"${c.when.source}" on stderr`, () => c.when.test(stderr), 300_000);
      const [qemu, ram] = await until('a QEMU on its RAM file', () => {
        for (const q of qemuChildren(cli.pid!)) {
          const f = ramFileOf(cli.pid!, q);
          if (f) return [q, f] as const;
        }
        return undefined;
      }, 30_000);

      process.kill(cli.pid!, c.signal);
      const r = await cli;
      if (c.code === null) expect(r.signal).to.equal('SIGKILL');
      else expect(r.exitCode, r.stderr as string).to.equal(c.code);

      // pdeathsig (SIGKILL) or the registry (SIGINT/SIGTERM): QEMU is gone, and nothing maps its RAM.
      await until(`QEMU ${qemu} to end`, () => !isProcessAlive(qemu!) || undefined, 10_000);
      expect(holders(ram)).to.deep.equal([]);
      if (c.signal === 'SIGKILL') {
        // No exit handler ran: the run directory stays until the next launch sweeps it.
        const left = runDirsOf(cli.pid!);
        expect(left).to.include(path.dirname(ram));
        expect(sweepStaleRunDirs(path.dirname(path.dirname(ram)))).to.include.members(left);
      } else {
        expect(fs.existsSync(ram), 'the run directory is removed').to.equal(false);
        expect(runDirsOf(cli.pid!), 'nothing of the run is left in tmpfs (keys included)').to.deep.equal([]);
        const results = JSON.parse(fs.readFileSync(path.join(artifacts, 'results.json'), 'utf8')) as { ok: boolean; interrupted: string };
        expect(results.ok).to.equal(false);
        expect(results.interrupted).to.match(new RegExp(`^${c.signal} after 0 of 1 scenarios`));
        expect(fs.readFileSync(path.join(artifacts, 'report.html'), 'utf8')).to.match(/interrupted: SIG/);
      }
      expect(fs.existsSync(path.join(artifacts, 'direct', 'serial.log')), 'the serial log is kept').to.equal(true);
      expect(fs.existsSync(path.join(artifacts, 'direct', 'qemu-stderr.log'))).to.equal(true);
    });
  }
});

describe('cli-extra: dmahil shell', function () {
  this.timeout(BOOT_TIMEOUT_MS);

  it('opens a shell in a guest with edudma loaded; stdin scripted, exit status passed through', async () => {
    const artifacts = path.join(artifactsRoot, 'shell');
    const r = await execa('node', [cliPath, 'shell', '--artifacts', artifacts], {
      input: 'grep -c "^edudma " /proc/modules\n/tmp/dmahil/dmactl info\nexit 7\n',
      reject: false,
    });
    expect(r.exitCode, r.stderr).to.equal(7);
    expect(r.stdout.split('\n')[0]).to.equal('1');
    expect(r.stdout).to.match(/"ok":\s*true/);
    expect(r.stderr).to.match(/ssh: +ssh -i \S+client_ed25519 -p \d+ .*UserKnownHostsFile=\S+known_hosts .*root@127\.0\.0\.1/);
    expect(r.stderr).to.match(/gdb: +gdb -ex 'target remote 127\.0\.0\.1:\d+'/).and.match(/QMP: +\S+qmp\.sock/);
    const pid = Number(/QEMU: +pid (\d+)/.exec(r.stderr)![1]);
    expect(isProcessAlive(pid), 'the guest ends with the shell').to.equal(false);
  });
});
