// What dmahil run runs besides a catalog selection: a repro file's scenario (and every way a repro file
// can be bad input), a repeated selection, and --until-fail's stop. Also the explore options.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { parseBudget, parseCommandLine, parseSeed } from '../../harness/cli/args.js';
import { repeatedEntries, reproDifferences, reproEntry, UNTIL_FAIL_MAX_REPEATS } from '../../harness/cli/selection.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import type { CatalogEntry } from '../../harness/dma/catalog.js';
import { runSuite } from '../../harness/dma/run-suite.js';
import { ReusingSessionSource } from '../../harness/dma/session-source.js';
import { readRepro, writeRepro } from '../../harness/explore/repro.js';
import { exploredVariants } from '../../harness/explore/variants.js';
import { GOOD_REPRO } from '../explore/repro-fixture.js';
import { UsageError } from '../../harness/errors.js';
import type { GuestSession } from '../../harness/guest/session.js';

describe('cli: --repro, --repeat, --until-fail and the explore options', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-repro-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: unknown): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
    return f;
  };

  it('a repro file written by explore reads back as one entry of its variant, re-run alone by the same --repro', () => {
    const f = path.join(dir, 'repro.json');
    writeRepro(f, GOOD_REPRO);
    const { entry, repro } = reproEntry(f);
    expect(repro).to.deep.equal(GOOD_REPRO);
    expect(entry).to.deep.include({ variant: 'bounce', name: `repro: ${GOOD_REPRO.name}`, scenario: GOOD_REPRO.scenario, rerun: `dmahil run --repro '${f}'` });
  });

  for (const [what, content, message] of [
    ['not JSON', '{"format": "dmahil-repro",', /not JSON/],
    ['foreign JSON', { name: 'dmahil', version: '0.1.0' }, /not a dmahil repro file/],
    ['a JSON array', [GOOD_REPRO], /not a dmahil repro file/],
    ['another contract version', { ...GOOD_REPRO, contract: 2 }, /written for contract version 2; this dmahil speaks contract 1/],
    ['another repro format version', { ...GOOD_REPRO, version: 7 }, /repro format version 7; this dmahil reads version 1/],
    ['an unknown guest variant', { ...GOOD_REPRO, variant: 'vtd' }, /guest variant "vtd" is not one of direct, bounce, iommu, iommu-lazy, amd-iommu, virtio-iommu, high-memory/],
    ['a scenario out of range', { ...GOOD_REPRO, scenario: { ...GOOD_REPRO.scenario, size: 0 } }, /scenario size 0 must be an integer from 1 to 1048576/],
    ['a scenario without a field', { ...GOOD_REPRO, scenario: { ...GOOD_REPRO.scenario, offset: undefined } }, /its scenario lacks offset/],
  ] as const) {
    it(`a repro file with ${what} is a one-line UsageError naming the file`, () => {
      const f = file(`${what.replace(/ /g, '-')}.json`, content);
      expect(() => readRepro(f)).to.throw(UsageError, message).with.property('message').that.includes(f);
    });
  }

  it('a missing file or a directory is named as such', () => {
    expect(() => readRepro(path.join(dir, 'nope.json'))).to.throw(UsageError, /no such file/);
    expect(() => readRepro(dir)).to.throw(UsageError, /is a directory/);
  });

  it('says where the replaying host differs from the one that found it', () => {
    expect(reproDifferences(GOOD_REPRO, { image: 'linux', qemu: '7.2.22', guestKernel: '6.1.0-57-amd64', dmahil: '0.1.0' })).to.deep.equal([]);
    expect(reproDifferences(GOOD_REPRO, { image: 'linux', qemu: '10.0.2', guestKernel: '6.12.9-amd64', dmahil: '0.1.0' })).to.deep.equal([
      'found with QEMU 7.2.22, replayed with 10.0.2',
      'found on guest kernel 6.1.0-57-amd64, replayed on 6.12.9-amd64',
    ]);
  });

  it('--repeat n runs the selection n times, each named #r, each re-run alone as the original', () => {
    const entries: CatalogEntry[] = [{ variant: 'direct', quick: true, name: 'a', scenario: makeScenario({}) }];
    expect(repeatedEntries(entries, 1)).to.equal(entries);
    expect(repeatedEntries(entries, 3).map((e) => [e.name, e.rerun])).to.deep.equal([
      ['a #1', "dmahil run --grep '^a$'"],
      ['a #2', "dmahil run --grep '^a$'"],
      ['a #3', "dmahil run --grep '^a$'"],
    ]);
  });

  it('--until-fail: nothing starts after the first scenario that did not verify', async () => {
    let runs = 0;
    const session = { isHealthy: () => true, run: async () => { runs++; throw new Error('the guest fell over'); }, collectLogs: async () => undefined, close: async () => undefined, deviceModelEvents: () => [], artifactsDir: '/nonexistent' } as unknown as GuestSession;
    const entries = repeatedEntries([{ variant: 'direct', quick: true, name: 'a', scenario: makeScenario({}) }], 5);
    let failed = false;
    const verdicts = await runSuite(entries, { source: new ReusingSessionSource(async () => session), onVerdict: () => (failed = true), stop: () => failed });
    expect(verdicts.map((v) => v.name)).to.deep.equal(['a #1']);
    expect(runs).to.equal(1);
  });

  it('parses run --repro/--repeat/--until-fail and refuses what does not go together', () => {
    expect(parseCommandLine(['run', '--repro', 'r.json', '--repeat', '20'])).to.include({ command: 'run', repro: 'r.json', repeat: 20, untilFail: false });
    expect(parseCommandLine(['run', '--until-fail'])).to.include({ repeat: UNTIL_FAIL_MAX_REPEATS, untilFail: true });
    expect(parseCommandLine(['run', '--until-fail', '--repeat', '7'])).to.include({ repeat: 7, untilFail: true });
    expect(() => parseCommandLine(['run', '--repro', 'r.json', '--all'])).to.throw(UsageError, /--all is not an option of dmahil run --repro/);
    expect(() => parseCommandLine(['run', '--repeat', '0'])).to.throw(UsageError, /--repeat "0" is not a whole number/);
    expect(() => parseCommandLine(['run', '--budget', '1m'])).to.throw(UsageError, /--budget is not an option of dmahil run/);
  });

  it('parses explore: budget, runs, seed; a random seed when none is given', () => {
    expect(parseCommandLine(['explore', '--budget', '60s', '--seed', '42', '--grep', 'bounce'])).to.deep.include({ command: 'explore', budgetMs: 60_000, seed: 42, seedGiven: true, image: 'linux', jobs: 1 });
    expect(parseCommandLine(['explore', '--runs', '500'])).to.deep.include({ budgetMs: undefined, runs: 500 });
    const c = parseCommandLine(['explore']) as { budgetMs: number; seed: number; seedGiven: boolean };
    expect([c.budgetMs, c.seedGiven]).to.deep.equal([600_000, false]);
    expect(Number.isInteger(c.seed)).to.equal(true);
    expect(() => parseCommandLine(['explore', '--keep'])).to.throw(UsageError, /--keep is not an option of dmahil explore/);
  });

  it('--variants: direct and bounce by default; any built-in variant of the image or a declared one, in the order given', () => {
    const ids = (argv: string[]) => (parseCommandLine(argv) as { variants: Array<{ id: string }> }).variants.map((v) => v.id);
    expect(ids(['explore'])).to.deep.equal(['direct', 'bounce']);
    expect(ids(['explore', '--variants', 'high-memory,bounce,high-memory'])).to.deep.equal(['high-memory', 'bounce']);
    expect(ids(['explore', '--variants', ' iommu-lazy '])).to.deep.equal(['iommu-lazy']);
    const big = { id: 'big', forceBounce: false, description: 'declared', machine: { memoryMiB: 2048 } };
    expect(exploredVariants('big,direct', 'linux', [big]).map((v) => v.id)).to.deep.equal(['big', 'direct']);
    expect(exploredVariants('verifier,iommu,bounce', '/images/win11.qcow2', [big]).map((v) => v.id)).to.deep.equal(['verifier', 'iommu', 'bounce']);
  });

  for (const [what, list, image, message] of [
    ['an unknown id', 'vtd', 'linux', /--variants: "vtd" is not a guest variant.*the variants for the reference guest are: direct, bounce, iommu/],
    ['an empty name', 'bounce,', 'linux', /--variants "bounce," has an empty name/],
    ['a Windows variant on the reference guest', 'verifier', 'linux', /"verifier" is a Windows golden image's/],
    ['a reference-guest machine on a golden image', 'high-memory', '/images/win11.qcow2', /"high-memory" is a machine of the reference guest's/],
    ['a declared variant on a golden image', 'big', '/images/win11.qcow2', /"big" is a machine of the reference guest's/],
  ] as const) {
    it(`--variants with ${what} is a one-line UsageError with the variants to choose from`, () => {
      const big = { id: 'big', forceBounce: false, description: 'declared', machine: { memoryMiB: 2048 } };
      let said = '';
      try {
        exploredVariants(list, image, [big]);
      } catch (e) {
        expect(e).to.be.instanceOf(UsageError);
        said = `${(e as UsageError).message} (${(e as UsageError).hint})`;
      }
      expect(said).to.match(message);
    });
  }

  it('--variants is an option of explore, not of run; a repro of a declared variant needs the declaration', () => {
    expect(() => parseCommandLine(['run', '--variants', 'bounce'])).to.throw(UsageError, /--variants is not an option of dmahil run/);
    const f = path.join(dir, 'declared-repro.json');
    writeRepro(f, { ...GOOD_REPRO, variant: 'big' });
    expect(() => readRepro(f)).to.throw(UsageError, /guest variant "big" is not one of/).with.property('hint').that.matches(/declared under "variants" in dmahil.config.json/);
    expect(reproEntry(f, ['big']).entry.variant).to.equal('big');
  });

  it('budgets and seeds: what is accepted, and one clear line for what is not', () => {
    expect([parseBudget('60s'), parseBudget('10m'), parseBudget('1.5h'), parseBudget('500ms'), parseBudget('90')]).to.deep.equal([60_000, 600_000, 5_400_000, 500, 90_000]);
    for (const bad of ['0', '0s', '0.0001ms']) expect(() => parseBudget(bad)).to.throw(UsageError, /is zero/);
    for (const bad of ['soon', '-5s', '10 minutes', '']) expect(() => parseBudget(bad)).to.throw(UsageError, /is not a duration/);
    expect([parseSeed('0'), parseSeed('4294967295')]).to.deep.equal([0, 4294967295]);
    for (const bad of ['abc', '-1', '1.5', '4294967296', '0x10']) expect(() => parseSeed(bad)).to.throw(UsageError, /is not a number from 0 to 4294967295/);
  });
});
