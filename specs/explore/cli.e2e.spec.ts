// dmahil explore and dmahil run --repro / --repeat / --until-fail as a user types them (child processes,
// the shipped driver on the reference guest): every bad input is one line and exit 2 before any guest
// boots; a repro file replays alone; Ctrl-C leaves reports and no QEMU. (A whole explore run on the command line, with its reports, is in
// planted-bugs.e2e.spec.ts: the shipped driver's 60 s.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { BOOT_TIMEOUT_MS, cliPath } from '../e2e/support.js';
import { GOOD_REPRO } from './repro-fixture.js';

describe('e2e: dmahil explore and run --repro/--repeat/--until-fail on the command line', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-explore-cli-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: unknown): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
    return f;
  };

  const badInputs = (): Array<[string[], RegExp]> => [
    [['run', '--repro', file('truncated.json', '{"format":')], /--repro .*truncated\.json: not JSON/],
    [['run', '--repro', file('foreign.json', { name: 'dmahil', version: '0.1.0' })], /not a dmahil repro file/],
    [['run', '--repro', file('contract2.json', { ...GOOD_REPRO, contract: 2 })], /written for contract version 2; this dmahil speaks contract 1/],
    [['run', '--repro', path.join(dir, 'missing.json')], /missing\.json: no such file/],
    [['explore', '--seed', 'twelve'], /--seed "twelve" is not a number/],
    [['explore', '--budget', '0'], /--budget "0" is zero/],
    [['explore', '--budget', '0s'], /--budget "0s" is zero/],
    [['explore', '--runs', 'many'], /--runs "many" is not a whole number/],
    [['explore', '--grep', 'no explored scenario looks like this'], /no explored scenario matches --grep/],
    [['explore', '--repeat', '3'], /--repeat is not an option of dmahil explore/],
  ];
  it('bad input: a malformed or foreign repro file, another contract, a seed that is not a number, a zero budget: one line each, exit 2', async () => {
    for (const [argv, message] of badInputs()) {
      const r = await execa('node', [cliPath, ...argv], { reject: false });
      expect(r.exitCode, `${argv.join(' ')}: ${r.stderr}`).to.equal(2);
      expect(r.stderr.trim().split('\n'), argv.join(' ')).to.have.length(1);
      expect(r.stderr, argv.join(' ')).to.match(message);
    }
  });

  it('run --repro replays the one scenario alone on its guest variant (the shipped driver passes it); --repeat runs it again', async () => {
    const repro = file('repro.json', GOOD_REPRO);
    const r = await execa('node', [cliPath, 'run', '--repro', repro, '--repeat', '3', '--until-fail', '--artifacts', path.join(dir, 'replay')], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    const rows = r.stdout.split('\n').filter((l) => /^(direct|bounce) /.test(l));
    expect(rows).to.have.length(3);
    expect(rows.every((l) => /^bounce\s+repro: from-device scatter-gather 2 B at offset 4095, full sync, seed 0 #\d\s+pass\s+pass/.test(l)), rows.join('\n')).to.equal(true);
    expect(r.stderr).to.match(/1 scenarios × 3, until the first failure/);
    // Found on another host (the fixture's QEMU has no package): said, not refused.
    expect(r.stderr).to.match(/note: the repro was found with QEMU 7\.2\.22, replayed with \d/);
    expect(fs.existsSync(path.join(dir, 'replay', 'direct'))).to.equal(false);
  });

  it('Ctrl-C while its guests boot: exit 130, the reports say it was interrupted, no QEMU of the run is left', async () => {
    const artifacts = path.join(dir, 'interrupted');
    const p = execa('node', [cliPath, 'explore', '--budget', '10m', '--seed', '3', '--artifacts', artifacts], { reject: false });
    let stderr = '';
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    for (const deadline = Date.now() + 120_000; qemusOf(artifacts).length === 0; ) {
      if (Date.now() > deadline || p.exitCode !== null) throw new Error(`no QEMU of the run started: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    p.kill('SIGINT');
    const r = await p;
    expect(r.exitCode, r.stderr).to.equal(130);
    expect(r.stderr).to.match(/explored 0 scenarios before exploring began with seed 3: interrupted \(SIGINT\)/);
    expect(r.stderr).to.contain(`interrupted (SIGINT after 0 scenarios); results so far in ${artifacts}`);
    const results = JSON.parse(fs.readFileSync(path.join(artifacts, 'results.json'), 'utf8')) as { ok: boolean; interrupted: string; explore: { stoppedBy: string; runs: number } };
    expect(results).to.deep.include({ ok: false, interrupted: 'SIGINT after 0 scenarios' });
    expect(results.explore).to.deep.include({ stoppedBy: 'interrupted', runs: 0 });
    expect(fs.readFileSync(path.join(artifacts, 'junit.xml'), 'utf8')).to.match(/<property name="interrupted" value="SIGINT after 0 scenarios"\/>/);
    expect(fs.readFileSync(path.join(artifacts, 'report.html'), 'utf8')).to.contain('interrupted: SIGINT after 0 scenarios');
    expect(qemusOf(artifacts)).to.deep.equal([]);
  });
});

/** QEMU processes whose command line names a path under dir (their serial log is in the run's artifacts). */
function qemusOf(dir: string): number[] {
  const pids: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(dir)) pids.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
