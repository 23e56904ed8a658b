// dmahil run --scenarios FILE: the user's own scenario list, run instead of the catalog. Each entry is a
// catalog entry written by hand: a name, the guest variant, the contract's scenario (makeScenario's
// defaults and checks) and the expected outcome, "pass" or "caught: <finding>" (the verdict table's
// "expected" column). The file is checked against scenarios.schema.json (shipped in the package).
import { makeScenario } from '../contract/scenario.js';
import { VARIANTS, type CatalogEntry } from '../dma/catalog.js';
import type { FindingKind } from '../dma/explain.js';
import { UsageError } from '../errors.js';
import { rerunCommand } from '../report/verdict-table.js';
import schema from './scenarios.schema.json' with { type: 'json' };
import { compileSchema, describeSchemaError, firstError, lineOfPointer, readJsonFile } from './json-file.js';

const validate = compileSchema(schema);

/** Every finding a negative control may expect, as the schema's "expect" lists them (a spec keeps both equal). */
export const FINDING_KINDS = [
  'wrong-seed',
  'device-model-clamp',
  'beyond-dma-mask',
  'stale-client-buffer',
  'stale-source-bounce',
  'never-written',
  'stale-source',
  'mismatch',
  'inconsistent-report',
  'written-before-dma',
  'wrong-pages',
  'source-not-ready',
  'pages-changed',
  'iommu-fault',
] as const satisfies readonly FindingKind[];
// A FindingKind added to explain.ts and not here fails to compile.
const allFindingKinds: Exclude<FindingKind, (typeof FINDING_KINDS)[number]> extends never ? true : false = true;
void allFindingKinds;

interface EntryJson {
  name: string;
  variant?: string;
  scenario: Record<string, unknown>;
  expect: string;
  expectSeed?: number;
}

const HINT = 'see examples/scenarios.json and docs/config.md for the format';

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The entries of a scenarios file, in its order, or a UsageError naming the file, the entry (index, name
 * and line), the field and the fix. `label` is how the user named the file (e.g. "--scenarios x.json");
 * `variants` the guest variants an entry may name (the built-in ones and the config's).
 */
export function readScenariosFile(file: string, label = `--scenarios ${file}`, variants: readonly string[] = Object.keys(VARIANTS)): CatalogEntry[] {
  const { text, value } = readJsonFile(file, label, HINT);
  const where = (index: number, name: unknown, pointer: string): string => {
    const line = lineOfPointer(text, pointer);
    return `scenarios[${index}]${typeof name === 'string' ? ` "${name}"` : ''}${line ? ` (line ${line})` : ''}`;
  };
  if (!validate(value)) {
    const e = firstError(validate.errors!);
    const m = /^\/scenarios\/(\d+)(\/.*)?$/.exec(e.instancePath);
    if (!m) {
      const key = e.instancePath.slice(1).replaceAll('/', '.');
      const { what, fix } = describeSchemaError(e, key);
      throw new UsageError(`${label}: ${what}`, { hint: fix ? `${key ? `${key}: ` : ''}${fix}` : HINT });
    }
    const index = Number(m[1]);
    const entry = (value as { scenarios: Array<{ name?: unknown }> }).scenarios[index];
    const key = (m[2] ?? '').slice(1).replaceAll('/', '.');
    const { what, fix } = describeSchemaError(e, key);
    const extra = e.keyword === 'additionalProperties' ? `/${(e.params as { additionalProperty: string }).additionalProperty}` : '';
    throw new UsageError(`${label}: ${where(index, entry?.name, e.instancePath + extra)}: ${what}`, { hint: fix ? `${key ? `${key}: ` : ''}${fix}` : HINT });
  }
  const entries = (value as { scenarios: EntryJson[] }).scenarios;
  const seen = new Map<string, number>();
  return entries.map((raw, index) => {
    const bad = (what: string, pointer: string, hint: string): UsageError => new UsageError(`${label}: ${where(index, raw.name, `/scenarios/${index}${pointer}`)}: ${what}`, { hint });
    const first = seen.get(raw.name);
    if (first !== undefined) throw bad(`the name is also scenarios[${first}]'s`, '/name', 'give every entry a name of its own (--grep and the report select by name)');
    seen.set(raw.name, index);
    const variant = raw.variant ?? 'direct';
    if (!variants.includes(variant)) {
      throw bad(`variant ${JSON.stringify(variant)} is not one of ${variants.join(', ')}`, '/variant', 'variant: "direct" (device addresses are the CPU pages), "bounce" (every mapping bounced), or one declared under "variants" in dmahil.config.json');
    }
    let scenario;
    try {
      scenario = makeScenario(raw.scenario);
    } catch (e) {
      throw bad((e as Error).message, '/scenario', 'see docs/contract.md for the scenario fields');
    }
    const expectFinding = raw.expect === 'pass' ? undefined : (raw.expect.replace(/^caught: /, '') as FindingKind);
    // A wrong-seed control needs a seed to get wrong; a pass checked against another seed cannot pass.
    if (expectFinding === 'wrong-seed' && (raw.expectSeed === undefined || raw.expectSeed === scenario.seed)) {
      throw bad(`"caught: wrong-seed" needs "expectSeed", a seed other than scenario.seed (${scenario.seed})`, '/expect', `add e.g. "expectSeed": ${(scenario.seed + 1) % 2 ** 32}`);
    }
    if (raw.expectSeed !== undefined && raw.expectSeed !== scenario.seed && expectFinding !== 'wrong-seed') {
      throw bad(`expectSeed ${raw.expectSeed} differs from scenario.seed ${scenario.seed}: only a "caught: wrong-seed" control checks against another seed`, '/expectSeed', 'drop expectSeed, or expect "caught: wrong-seed"');
    }
    const entry: CatalogEntry = {
      variant,
      quick: true,
      name: raw.name,
      scenario,
      ...(expectFinding ? { expectFinding } : {}),
      ...(raw.expectSeed !== undefined && raw.expectSeed !== scenario.seed ? { expectSeed: raw.expectSeed } : {}),
    };
    // Re-run alone: this file, this entry (rerunCommand's --grep is anchored and escaped).
    entry.rerun = rerunCommand(raw.name).replace(/^dmahil run /, `dmahil run --scenarios ${shellQuote(file)} `);
    return entry;
  });
}
