// dmahil run --scenarios FILE (issue 14): the user's own scenarios, in the contract's format, each with its
// guest variant and expected outcome. A good file becomes exactly its entries; a bad one is one line naming
// the file, the entry (index, name, line) and the field, with the fix. The schema shipped in the package
// and the contract's TypeScript lists must not drift apart. (The real run is scenarios-file.e2e.spec.ts.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { parseCommandLine } from '../../harness/cli/args.js';
import { FINDING_KINDS, readScenariosFile } from '../../harness/cli/scenarios-file.js';
import schema from '../../harness/cli/scenarios.schema.json' with { type: 'json' };
import { runSelection } from '../../harness/cli/selection.js';
import { DIRECTIONS, FAULTS, MAX_SIZE, METHODS, SYNC_MODES } from '../../harness/contract/scenario.js';
import { UsageError } from '../../harness/errors.js';
import { cliPath, repoRoot } from '../e2e/support.js';

const EXAMPLE = path.join(repoRoot, 'examples', 'scenarios.json');

describe('cli: --scenarios FILE', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-scenarios-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  const error = (f: string): string => {
    try {
      readScenariosFile(f);
    } catch (e) {
      expect(e).to.be.instanceOf(UsageError);
      const line = (e as UsageError).describe();
      expect(line.split('\n'), line).to.have.length(1);
      return line;
    }
    throw new Error(`${f} was accepted`);
  };

  it('the shipped example reads as its entries: variant, scenario with defaults, expected outcome, re-run by the same file', () => {
    const entries = readScenariosFile(EXAMPLE);
    expect(entries.map((e) => [e.name, e.variant, e.expectFinding ?? 'pass'])).to.deep.equal([
      ['my round trip 8 KiB at offset 12', 'direct', 'pass'],
      ['my bounced from-device 6000 B', 'bounce', 'pass'],
      ['control: my wrong seed', 'direct', 'wrong-seed'],
      ['control: my skipped sync after the device wrote', 'bounce', 'stale-client-buffer'],
    ]);
    expect(entries[0]!.scenario).to.deep.equal({ direction: 'round-trip', method: 'streaming', sync: 'full', fault: 'none', size: 8192, offset: 12, seed: 101 });
    expect(entries[2]).to.include({ expectSeed: 104 });
    expect(entries[0]!.expectSeed).to.equal(undefined);
    expect(entries[3]!.rerun).to.equal(`dmahil run --scenarios '${EXAMPLE}' --grep '^control: my skipped sync after the device wrote$'`);
  });

  it('runs exactly the file (nothing from the catalog), narrowed by --grep', () => {
    const all = runSelection({ scenarios: EXAMPLE, all: false });
    expect(all.selected.map((e) => e.name)).to.have.length(4).and.to.satisfy((n: string[]) => n.every((x) => x.includes('my ')));
    expect(runSelection({ scenarios: EXAMPLE, all: false, grep: /wrong seed/i }).selected.map((e) => e.name)).to.deep.equal(['control: my wrong seed']);
    expect(() => runSelection({ scenarios: EXAMPLE, all: false, grep: /^round-trip 1 B$/ })).to.throw(UsageError, /no scenario of .*scenarios\.json matches --grep/);
  });

  for (const [what, text, message] of [
    ['a field out of range: its entry, name, line and field', '{"scenarios": [\n  {"name": "ok", "scenario": {}, "expect": "pass"},\n  {"name": "big",\n   "scenario": {\n     "size": 2000000}, "expect": "pass"}\n]}', /\.json: scenarios\[1\] "big" \(line 5\): scenario\.size 2000000 is out of range: it must be from 1 to 1048576 — scenario\.size: bytes transferred/],
    ['a value not in the contract', '{"scenarios": [{"name": "x", "scenario": {"method": "dma-engine"}, "expect": "pass"}]}', /scenarios\[0\] "x" \(line 1\): scenario\.method "dma-engine" is not one of "streaming", "scatter-gather", "common-buffer"/],
    ['a misspelt key, with the one it meant', '{"scenarios": [\n {"name": "x",\n  "scenario": {"size": 4096},\n  "expcet": "pass"}]}', /scenarios\[0\] "x" \(line 4\): unknown key "expcet" \(did you mean "expect"\?\)/],
    ['a misspelt scenario field', '{"scenarios": [{"name": "x", "scenario": {"sise": 4096}, "expect": "pass"}]}', /unknown key "scenario\.sise" \(did you mean "size"\?\)/],
    ['no expected outcome', '{"scenarios": [{"name": "x", "scenario": {}}]}', /scenarios\[0\] "x" \(line 1\): lacks "expect" — add "expect": "pass"/],
    ['an expected finding that does not exist', '{"scenarios": [{"name": "x", "scenario": {}, "expect": "caught: bug"}]}', /expect "caught: bug" is not one of "pass", "caught: wrong-seed"/],
    ['a wrong-seed control without another seed', '{"scenarios": [{"name": "x", "scenario": {"seed": 5}, "expect": "caught: wrong-seed"}]}', /"caught: wrong-seed" needs "expectSeed", a seed other than scenario\.seed \(5\) — add e\.g\. "expectSeed": 6/],
    ['a pass checked against another seed', '{"scenarios": [{"name": "x", "scenario": {"seed": 5}, "expect": "pass", "expectSeed": 6}]}', /expectSeed 6 differs from scenario\.seed 5/],
    ['two entries of one name', '{"scenarios": [\n{"name": "x", "scenario": {}, "expect": "pass"},\n{"name": "x", "scenario": {}, "expect": "pass"}]}', /scenarios\[1\] "x" \(line 3\): the name is also scenarios\[0\]'s/],
    ['a guest variant there is not', '{"scenarios": [{"name": "x", "variant": "vtd", "scenario": {}, "expect": "pass"}]}', /variant "vtd" is not one of direct, bounce, iommu, iommu-lazy, amd-iommu, virtio-iommu, high-memory/],
    ['no scenarios', '{"scenarios": []}', /scenarios is empty/],
    ['a list instead of the object', '[{"name": "x"}]', /is not an object/],
    ['JSON with a trailing comma: its line', '{"scenarios": [\n {"name": "x", "scenario": {}, "expect": "pass"},\n]}', /not valid JSON \(line 3\)/],
  ] as const) {
    it(`refuses ${what}`, () => {
      expect(error(file(`${what.replace(/\W+/g, '-')}.json`, text))).to.match(message);
    });
  }

  it('refuses a file that is not there, or a folder', () => {
    expect(error(path.join(dir, 'nope.json'))).to.match(/--scenarios \S+nope\.json: no such file/);
    expect(error(dir)).to.match(/is a directory, not a file/);
  });

  it('dmahil run --scenarios with a malformed file: one line naming the entry, its line and the field; exit 2, nothing started', async () => {
    const f = file('cli.json', '{"scenarios": [\n  {"name": "ok", "scenario": {}, "expect": "pass"},\n  {"name": "odd", "scenario": {"offset": 4096}, "expect": "pass"}\n]}');
    // An empty PATH: were anything started (QEMU's version, an image build), the error would be another.
    const r = await execa(process.execPath, [cliPath, 'run', '--scenarios', f], { reject: false, env: { PATH: '' } });
    expect(r.exitCode, r.stderr).to.equal(2);
    expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
    expect(r.stderr).to.match(/^dmahil: --scenarios \S+cli\.json: scenarios\[1\] "odd" \(line 3\): scenario\.offset 4096 is out of range: it must be from 0 to 4095 — scenario\.offset: /);
  });

  it('and --all, explore or --repro with it: one clear refusal each', () => {
    expect(() => parseCommandLine(['run', '--scenarios', EXAMPLE, '--all'])).to.throw(UsageError, /--all and --scenarios both say what runs/);
    expect(() => parseCommandLine(['explore', '--scenarios', EXAMPLE])).to.throw(UsageError, /--scenarios is not an option of dmahil explore/);
    expect(() => parseCommandLine(['run', '--repro', 'r.json', '--scenarios', EXAMPLE])).to.throw(UsageError, /--scenarios is not an option of dmahil run --repro/);
    expect(parseCommandLine(['run', '--scenarios', 'examples/scenarios.json', '--shard', '1/2', '--grep', 'my'])).to.include({ scenarios: path.resolve('examples/scenarios.json'), shard: '1/2' });
  });

  it('its schema lists what the contract and the verifier know', () => {
    const p = schema.properties.scenarios.items.properties;
    expect(p.scenario.properties.direction.enum).to.deep.equal([...DIRECTIONS]);
    expect(p.scenario.properties.method.enum).to.deep.equal([...METHODS]);
    expect(p.scenario.properties.sync.enum).to.deep.equal([...SYNC_MODES]);
    expect(p.scenario.properties.fault.enum).to.deep.equal([...FAULTS]);
    expect(p.scenario.properties.size.maximum).to.equal(MAX_SIZE);
    expect(p.expect.enum).to.deep.equal(['pass', ...FINDING_KINDS.map((k) => `caught: ${k}`)]);
  });
});
