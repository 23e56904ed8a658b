// What `dmahil run` runs besides a catalog selection: the scenario of a repro file (--repro), the
// scenarios of a user's file (--scenarios), and a selection repeated (--repeat N, --until-fail).
import { knownVariants, selectCatalog, VARIANTS, type CatalogEntry, type GuestVariant } from '../dma/catalog.js';
import { UsageError } from '../errors.js';
import { readRepro, type Repro } from '../explore/repro.js';
import { rerunCommand } from '../report/verdict-table.js';
import { readScenariosFile } from './scenarios-file.js';

/** --until-fail without --repeat: repetitions at most. */
export const UNTIL_FAIL_MAX_REPEATS = 1000;

/**
 * What a run runs, before sharding and repeating: a repro file's one scenario, a scenarios file's (all
 * of them, or those --grep matches), or the catalog's quick set (or all of it) that --grep matches.
 * Every one of them goes through the same runSuite, verdicts and reports.
 */
export function runSelection(opts: { repro?: string; scenarios?: string; all: boolean; grep?: RegExp; variants?: readonly GuestVariant[]; image?: string }): { selected: CatalogEntry[]; repro?: { entry: CatalogEntry; repro: Repro } } {
  if (opts.repro) {
    const repro = reproEntry(opts.repro, (opts.variants ?? []).map((v) => v.id));
    return { selected: [repro.entry], repro };
  }
  if (opts.scenarios) {
    const all = readScenariosFile(opts.scenarios, undefined, knownVariants(opts.variants).map((v) => v.id));
    const selected = opts.grep ? all.filter((e) => opts.grep!.test(e.name)) : all;
    if (selected.length === 0) throw new UsageError(`no scenario of ${opts.scenarios} matches --grep ${opts.grep}`, { hint: `its scenarios are: ${all.map((e) => JSON.stringify(e.name)).join(', ')}` });
    // A declared variant sets the reference guest's machine; a golden image brings its own.
    const declared = opts.image !== undefined && opts.image !== 'linux' ? selected.find((e) => !(e.variant in VARIANTS)) : undefined;
    if (declared) throw new UsageError(`"${declared.name}" runs on guest variant "${declared.variant}", a reference-guest variant of the config, not one for ${opts.image}`, { hint: 'run it with --image linux, or use the direct and bounce variants with a golden image' });
    return { selected };
  }
  const selected = selectCatalog({ all: opts.all, grep: opts.grep });
  if (selected.length === 0) throw new UsageError(`no scenario matches --grep ${opts.grep}`, { hint: 'drop --grep, or add --all to search the full catalog' });
  return { selected };
}

/** The repro file's scenario as a catalog entry of its own; re-run alone is the same --repro. */
export function reproEntry(file: string, declared: readonly string[] = []): { entry: CatalogEntry; repro: Repro } {
  const repro = readRepro(file, declared);
  const entry: CatalogEntry = {
    variant: repro.variant,
    quick: true,
    name: `repro: ${repro.name}`,
    scenario: repro.scenario,
    rerun: `dmahil run --repro '${file.replaceAll("'", `'\\''`)}'`,
  };
  return { entry, repro };
}

/** Where this run's host differs from the one the repro was found on: worth a line, not a refusal. */
export function reproDifferences(repro: Repro, now: { image: string; qemu: string; guestKernel: string | null; dmahil: string }): string[] {
  const out: string[] = [];
  if (repro.image !== now.image) out.push(`found on image ${repro.image}, replayed on ${now.image}`);
  if (repro.versions.qemu !== now.qemu) out.push(`found with QEMU ${repro.versions.qemu}, replayed with ${now.qemu}`);
  if (now.guestKernel && repro.versions.guestKernel && repro.versions.guestKernel !== now.guestKernel) out.push(`found on guest kernel ${repro.versions.guestKernel}, replayed on ${now.guestKernel}`);
  if (repro.versions.dmahil !== now.dmahil) out.push(`found by dmahil ${repro.versions.dmahil}, replayed by ${now.dmahil}`);
  return out;
}

/** The selection n times in a row, each repetition named "#r"; re-run alone names the original scenario. */
export function repeatedEntries(entries: CatalogEntry[], n: number): CatalogEntry[] {
  if (n <= 1) return entries;
  const out: CatalogEntry[] = [];
  for (let r = 1; r <= n; r++) for (const e of entries) out.push({ ...e, name: `${e.name} #${r}`, rerun: e.rerun ?? rerunCommand(e.name) });
  return out;
}
