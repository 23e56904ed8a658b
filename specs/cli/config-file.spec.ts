// dmahil.config.json (issue 14): defaults for the command's options from ./dmahil.config.json or --config
// FILE; the command line wins; paths are relative to the config's folder. Each kind of bad config (not
// there, a path of the wrong kind, an unknown key, a value out of range, the wrong type) is one line naming
// the key and the fix, exit 2, nothing started: run as the real command, which must exit before QEMU
// is even asked its version. The shipped example config and its schema are checked here too.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { parseCommandLine, type RunOptions } from '../../harness/cli/args.js';
import type { GuestVariant } from '../../harness/dma/catalog.js';
import { CONFIG_KEYS, readConfig } from '../../harness/cli/config-file.js';
import schema from '../../harness/cli/config.schema.json' with { type: 'json' };
import { readScenariosFile } from '../../harness/cli/scenarios-file.js';
import { runSelection } from '../../harness/cli/selection.js';
import { UsageError } from '../../harness/errors.js';
import { cliPath, repoRoot } from '../e2e/support.js';

describe('cli: dmahil.config.json and --config FILE', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-config-'));
    fs.mkdirSync(path.join(dir, 'project', 'tools'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'project', 'tools', 'qemu'), '#!/bin/sh\n', { mode: 0o755 });
    fs.copyFileSync(path.join(repoRoot, 'examples', 'scenarios.json'), path.join(dir, 'project', 'mine.json'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = (name: string, value: unknown): string => {
    const f = path.join(dir, 'project', name);
    fs.writeFileSync(f, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
    return f;
  };

  it('gives the options the command line left out; paths are relative to the config, not the current folder', () => {
    const f = config('a.json', { qemu: 'tools/qemu', scenarios: 'mine.json', jobs: 2, bootTimeout: 300, accel: 'tcg', json: true, boot: true, grep: 'my' });
    const c = parseCommandLine(['run', '--config', f]) as RunOptions;
    expect(c).to.include({ command: 'run', qemu: path.join(dir, 'project', 'tools', 'qemu'), scenarios: path.join(dir, 'project', 'mine.json'), jobs: 2, bootTimeoutMs: 300_000, accel: 'tcg', json: true, boot: true });
    expect(c.grep!.source).to.equal('my');
  });

  it('the command line wins; its --all, --scenarios or --repro replaces the config\'s choice of what runs', () => {
    const f = config('b.json', { jobs: 2, accel: 'tcg', scenarios: 'mine.json', grep: 'my' });
    expect(parseCommandLine(['run', '--config', f, '--jobs', '4', '--accel', 'auto'])).to.include({ jobs: 4, accel: 'auto' });
    const all = parseCommandLine(['run', '--config', f, '--all']) as RunOptions;
    expect(all.all).to.equal(true);
    expect(all.scenarios).to.equal(undefined);
    expect(all.grep!.source).to.equal('my');
    // --repro is one scenario: neither the config's file nor its grep is refused alongside it.
    const repro = parseCommandLine(['run', '--config', f, '--repro', 'r.json']) as RunOptions;
    expect([repro.repro, repro.scenarios, repro.grep]).to.deep.equal(['r.json', undefined, undefined]);
  });

  it('one config serves every command: a key another command has no use for is left out, not refused', () => {
    const f = config('c.json', { all: true, boot: true, jobs: 3, qemu: 'tools/qemu', driver: 'tools' });
    expect(parseCommandLine(['explore', '--config', f, '--runs', '1'])).to.include({ command: 'explore', jobs: 3, driver: path.join(dir, 'project', 'tools') });
    expect(parseCommandLine(['doctor', '--config', f])).to.deep.equal({ command: 'doctor', json: false, qemu: path.join(dir, 'project', 'tools', 'qemu'), driver: path.join(dir, 'project', 'tools') });
    expect(parseCommandLine(['--help', '--config', path.join(dir, 'absent.json')])).to.deep.equal({ command: 'help' });
  });

  it('names the key and the fix for each kind of bad value', () => {
    const bad = (value: unknown): string => {
      const f = config('bad.json', value);
      try {
        readConfig(f, 'dmahil.config.json');
      } catch (e) {
        expect(e).to.be.instanceOf(UsageError);
        return (e as UsageError).describe();
      }
      throw new Error(`${JSON.stringify(value)} was accepted`);
    };
    expect(bad({ accel: 'tcg', jobz: 2 })).to.match(/^dmahil\.config\.json \(line 3\): unknown key "jobz" \(did you mean "jobs"\?\) — the keys are: image, accel/);
    expect(bad({ jobs: 0 })).to.match(/\(line 2\): jobs 0 is out of range: it must be from 1 to 16 — jobs: /);
    expect(bad({ bootTimeout: 0 })).to.match(/bootTimeout 0 is out of range: it must be above 0 and at most 86400/);
    expect(bad({ jobs: '2' })).to.match(/jobs "2" is not a whole number/);
    expect(bad({ all: 'yes' })).to.match(/all "yes" is not a boolean — all: true for the full scenario catalog/);
    expect(bad({ accel: 'hvf' })).to.match(/accel "hvf" is not one of "auto", "kvm", "tcg"/);
    expect(bad({ qemu: 'tools/nope' })).to.match(/qemu "tools\/nope": no such file \(\S+project\/tools\/nope\) — qemu: the path of a qemu-system-x86_64/);
    expect(bad({ qemu: 'tools' })).to.match(/qemu "tools" is not a file/);
    expect(bad({ qemu: 'mine.json' })).to.match(/qemu "mine.json" is not executable/);
    expect(bad({ scenarios: 'tools' })).to.match(/scenarios "tools" is not a file/);
    expect(bad({ artifacts: 'mine.json' })).to.match(/artifacts "mine.json" is not a folder/);
    expect(bad({ driver: 'no-driver' })).to.match(/driver "no-driver": no such folder/);
    expect(bad({ driver: 'mine.json' })).to.match(/driver "mine.json" is not a folder \(\S+\) — driver: the folder of your driver build/);
    expect(bad({ image: 'win.vhdx' })).to.match(/image "win.vhdx" is not "linux", "windows" or a golden image/);
    expect(bad({ grep: '(' })).to.match(/grep "\(" is not a valid regular expression/);
    expect(bad({ all: true, scenarios: 'mine.json' })).to.match(/"all": true and "scenarios" both say what runs/);
    expect(bad('{"jobs": 2,}')).to.match(/not valid JSON \(line 1\)/);
    expect(bad('[]')).to.match(/not a JSON object of settings/);
  });

  for (const [kind, cfg, message] of [
    ['a missing path', { qemu: './no-such-qemu' }, /^dmahil: dmahil\.config\.json \(line 2\): qemu "\.\/no-such-qemu": no such file/],
    ['a path of the wrong kind', { scenarios: '.' }, /^dmahil: dmahil\.config\.json \(line 2\): scenarios "\." is not a file/],
    ['an unknown key', { bootTimeout: 60, accell: 'tcg' }, /^dmahil: dmahil\.config\.json \(line 3\): unknown key "accell" \(did you mean "accel"\?\)/],
    ['a value out of range', { jobs: 99 }, /^dmahil: dmahil\.config\.json \(line 2\): jobs 99 is out of range: it must be from 1 to 16 — jobs: /],
  ] as const) {
    it(`dmahil run in a folder whose dmahil.config.json has ${kind}: one line, exit 2, nothing started`, async () => {
      const cwd = fs.mkdtempSync(path.join(dir, 'cwd-'));
      fs.writeFileSync(path.join(cwd, 'dmahil.config.json'), JSON.stringify(cfg, null, 2));
      // An empty PATH: were anything started (QEMU's version, an image build), the error would be another.
      const r = await execa(process.execPath, [cliPath, 'run'], { cwd, reject: false, env: { PATH: '' } });
      expect(r.exitCode, r.stderr).to.equal(2);
      expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
      expect(r.stderr).to.match(message);
      expect(fs.readdirSync(cwd)).to.deep.equal(['dmahil.config.json']);
    });
  }

  it('--config naming a file that is not there: one line, exit 2', async () => {
    const r = await execa(process.execPath, [cliPath, 'run', '--config', path.join(dir, 'none.json')], { reject: false, env: { PATH: '' } });
    expect(r.exitCode).to.equal(2);
    expect(r.stderr.trim()).to.match(/^dmahil: --config \S+none\.json: no such file — /).and.not.match(/\n/);
  });

  it('the shipped example config is valid, and so is the scenarios file it names', () => {
    const example = path.join(repoRoot, 'examples', 'dmahil.config.json');
    const c = readConfig(example, 'examples/dmahil.config.json');
    expect(c.options.scenarios).to.equal(path.join(repoRoot, 'examples', 'scenarios.json'));
    expect(readScenariosFile(c.options.scenarios as string, undefined, ['direct', 'bounce', ...c.variants.map((v) => v.id)])).to.have.length.above(1);
  });

  it('declares guest variants of the reference guest, which a scenarios file may name', () => {
    const f = config('variants.json', { scenarios: 'own.json', variants: { 'big-ram': { memoryMiB: 512, swiotlb: 'default' }, smp: { cpus: 2, eduDmaMask: '0xffffffff', description: 'two CPUs' } } });
    fs.writeFileSync(path.join(dir, 'project', 'own.json'), JSON.stringify({ scenarios: [{ name: 'big', variant: 'big-ram', scenario: {}, expect: 'pass' }] }));
    const c = parseCommandLine(['run', '--config', f]) as RunOptions;
    expect(c.variants).to.deep.equal([
      { id: 'big-ram', forceBounce: false, description: 'declared in the config: 512 MiB, 1 CPU', machine: { memoryMiB: 512, swiotlb: 'default' } },
      { id: 'smp', forceBounce: false, description: 'two CPUs', machine: { cpus: 2, eduDmaMask: '0xffffffff' } },
    ]);
    expect(runSelection(c).selected.map((e) => [e.name, e.variant])).to.deep.equal([['big', 'big-ram']]);
    // Without the config, the file names a variant there is not.
    expect(() => runSelection({ ...c, variants: [] })).to.throw(UsageError, /variant "big-ram" is not one of direct, bounce, iommu, iommu-lazy, amd-iommu, virtio-iommu, high-memory, verifier$/);
    // A golden image brings its own machine.
    expect(() => runSelection({ ...c, image: '/img/win11.qcow2' })).to.throw(UsageError, /"big" runs on guest variant "big-ram", a reference-guest variant of the config, not one for \/img\/win11\.qcow2/);
    // Explore searches them when --variants names them; its default stays direct and bounce. Shell has no use for them.
    const ids = (argv: string[]) => (parseCommandLine(argv) as { variants: GuestVariant[] }).variants.map((v) => v.id);
    expect(ids(['explore', '--config', f, '--runs', '1'])).to.deep.equal(['direct', 'bounce']);
    expect(ids(['explore', '--config', f, '--runs', '1', '--variants', 'smp,bounce'])).to.deep.equal(['smp', 'bounce']);
    expect(() => parseCommandLine(['explore', '--runs', '1', '--variants', 'smp'])).to.throw(UsageError, /"smp" is not a guest variant/);
  });

  it('refuses a variant that is built in, badly named or set out of range, naming the key', () => {
    const bad = (variants: unknown): string => {
      try {
        readConfig(config('bad-variant.json', { variants }), 'dmahil.config.json');
      } catch (e) {
        return (e as UsageError).describe();
      }
      throw new Error(`${JSON.stringify(variants)} was accepted`);
    };
    expect(bad({ bounce: { cpus: 2 } })).to.match(/variants\.bounce: "bounce" is a built-in variant/);
    expect(bad({ 'Big RAM': { cpus: 2 } })).to.match(/variants: "Big RAM" is not a variant name — name it with lower-case letters/);
    expect(bad({ big: { memoryMiB: 16384 } })).to.match(/\(line 4\): variants\.big\.memoryMiB 16384 is out of range: it must be from 128 to 8192/);
    expect(bad({ big: { memorymib: 512 } })).to.match(/unknown key "variants\.big\.memorymib" \(did you mean "memoryMiB"\?\)/);
    expect(bad({ big: { swiotlb: 'yes' } })).to.match(/variants\.big\.swiotlb "yes" is not one of "default", "force", "off"/);
    expect(bad({ big: { eduDmaMask: 'ffff' } })).to.match(/variants\.big\.eduDmaMask "ffff" is not in the form it takes — variants\.big\.eduDmaMask: the edu device's dma_mask in hex/);
  });

  it('its schema has exactly the keys the command maps to options', () => {
    expect(Object.keys(schema.properties).filter((k) => k !== '$schema')).to.deep.equal(Object.keys(CONFIG_KEYS));
  });
});
