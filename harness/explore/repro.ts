// The repro file `dmahil explore` writes for a confirmed failure and `dmahil run --repro FILE` replays: the
// scenario and its guest variant, how it was found, what the verifier said, and the versions it was
// found with. Anything else handed to --repro is bad input: one line naming the problem, exit 2.
import fs from 'node:fs';
import { CONTRACT_VERSION, makeScenario, type Scenario } from '../contract/scenario.js';
import { VARIANTS } from '../dma/catalog.js';
import { UsageError } from '../errors.js';
import { caseName, type VariantId } from './generate.js';

export const REPRO_FORMAT = 'dmahil-repro';
export const REPRO_VERSION = 1;

export interface Repro {
  format: typeof REPRO_FORMAT;
  version: typeof REPRO_VERSION;
  contract: number;
  name: string;
  variant: VariantId;
  scenario: Scenario;
  /** The guest image it was found on: "linux" (the reference guest) or a golden image's path. */
  image: string;
  /** What the verifier said on the confirming guest. */
  verdict: { status: string; findings: string[]; summary: string };
  confirmation: { failed: number; repeats: number; kind: string; pristine: boolean; notPristine?: string };
  /** How to explore to it again: `dmahil explore --seed <seed>` found it at <index> (1-based) and shrank it in <shrinkSteps>. */
  explore: { seed: number; index: number; shrinkSteps: number; variants?: string[] };
  versions: { dmahil: string; qemu: string; guestKernel: string | null; driver: string | null };
  createdAt: string;
}

const SCENARIO_FIELDS = ['direction', 'method', 'sync', 'fault', 'size', 'offset', 'seed'] as const;

export function writeRepro(file: string, repro: Repro): void {
  fs.writeFileSync(`${file}.part`, JSON.stringify(repro, null, 2) + '\n');
  fs.renameSync(`${file}.part`, file);
}

/**
 * Read and check a repro file; every problem is a UsageError naming the file. `declared`: the ids of the
 * guest variants dmahil.config.json declares, which a repro found on one of them names.
 */
export function readRepro(file: string, declared: readonly string[] = []): Repro {
  const bad = (what: string, hint?: string): UsageError =>
    new UsageError(`--repro ${file}: ${what}`, { hint: hint ?? 'pass a repro.json written by dmahil explore' });
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw bad(code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot read it (${code ?? (e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  const r = raw as Partial<Record<keyof Repro, unknown>>;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || r.format !== REPRO_FORMAT) throw bad(`not a dmahil repro file (no "format": "${REPRO_FORMAT}")`);
  if (r.version !== REPRO_VERSION) throw bad(`repro format version ${JSON.stringify(r.version)}; this dmahil reads version ${REPRO_VERSION}`, 'replay it with the dmahil that wrote it, or explore again with this one');
  if (r.contract !== CONTRACT_VERSION) {
    throw bad(`written for contract version ${JSON.stringify(r.contract)}; this dmahil speaks contract ${CONTRACT_VERSION}`, 'replay it with the dmahil that wrote it, or explore again with this one');
  }
  const known = [...Object.keys(VARIANTS), ...declared];
  if (typeof r.variant !== 'string' || !known.includes(r.variant)) {
    throw bad(`guest variant ${JSON.stringify(r.variant)} is not one of ${known.join(', ')}`, 'a variant of your own must be declared under "variants" in dmahil.config.json, as when it was explored');
  }
  const s = r.scenario as Record<string, unknown> | undefined;
  if (typeof s !== 'object' || s === null) throw bad('it has no scenario');
  const missing = SCENARIO_FIELDS.filter((k) => !(k in s));
  if (missing.length > 0) throw bad(`its scenario lacks ${missing.join(', ')}`);
  let scenario: Scenario;
  try {
    scenario = makeScenario(s as Partial<Scenario>);
  } catch (e) {
    throw bad((e as Error).message);
  }
  const name = typeof r.name === 'string' && r.name.trim() !== '' ? r.name : caseName({ variant: r.variant as VariantId, scenario });
  return { ...(raw as Repro), name, variant: r.variant as VariantId, scenario };
}
