// dmahil explore and dmahil run --repro / --repeat / --until-fail as a user types them (child processes,
// the shipped driver on the reference guest): every bad input is one line and exit 2 before any guest
// boots; a repro file replays alone. (A whole explore run on the command line, with its reports, is in
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
});
