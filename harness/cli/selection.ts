// What `dmahil run` runs besides a catalog selection: the scenario of a repro file (--repro), and a
// selection repeated (--repeat N, --until-fail).
import type { CatalogEntry } from '../dma/catalog.js';
import { readRepro, type Repro } from '../explore/repro.js';
import { rerunCommand } from '../report/verdict-table.js';

/** --until-fail without --repeat: repetitions at most. */
export const UNTIL_FAIL_MAX_REPEATS = 1000;

/** The repro file's scenario as a catalog entry of its own; re-run alone is the same --repro. */
export function reproEntry(file: string): { entry: CatalogEntry; repro: Repro } {
  const repro = readRepro(file);
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
