// dmahil.config.json: defaults for the command's options, so a project keeps its QEMU, driver, scenarios
// and guest settings in one file. Found in the current directory, or named with --config FILE; checked
// against config.schema.json (shipped in the package) before anything starts. Every key but "variants"
// (reference-guest variants of the user's own) is an option's value; the command line wins over it. Paths
// in it are relative to its own folder, so it works from anywhere. A bad key or value is one UsageError
// line naming the file, the line, the key and the fix.
import fs from 'node:fs';
import path from 'node:path';
import { VARIANTS, type GuestVariant } from '../dma/catalog.js';
import type { VariantMachine } from '../guest/linux/variant-machine.js';
import { UsageError } from '../errors.js';
import schema from './config.schema.json' with { type: 'json' };
import { compileSchema, describeSchemaError, firstError, lineOfPointer, readJsonFile } from './json-file.js';

export const CONFIG_FILE = 'dmahil.config.json';

type PathKind = 'executable' | 'file' | 'driver-folder' | 'folder' | 'image';

interface ConfigKey {
  /** The command-line option it stands for (parseArgs' name); none for variants. */
  option?: string;
  /** The commands it applies to; the others ignore it (one config serves every command). */
  commands: readonly string[];
  /** A path, resolved against the config's folder and checked for its kind. */
  path?: PathKind;
}

const GUEST = ['run', 'explore', 'shell'];

/** Every key of config.schema.json and its option (a spec keeps both lists equal). */
export const CONFIG_KEYS: Record<string, ConfigKey> = {
  image: { option: 'image', commands: ['run', 'explore'], path: 'image' },
  accel: { option: 'accel', commands: GUEST },
  qemu: { option: 'qemu', commands: [...GUEST, 'doctor'], path: 'executable' },
  driver: { option: 'driver', commands: [...GUEST, 'doctor'], path: 'driver-folder' },
  kernel: { option: 'kernel', commands: [...GUEST, 'doctor'], path: 'driver-folder' },
  artifacts: { option: 'artifacts', commands: GUEST, path: 'folder' },
  bootTimeout: { option: 'boot-timeout', commands: GUEST },
  jobs: { option: 'jobs', commands: ['run', 'explore'] },
  all: { option: 'all', commands: ['run'] },
  grep: { option: 'grep', commands: ['run', 'explore'] },
  scenarios: { option: 'scenarios', commands: ['run'], path: 'file' },
  json: { option: 'json', commands: ['run', 'explore', 'doctor'] },
  boot: { option: 'boot', commands: ['run'] },
  variants: { commands: ['run', 'explore'] },
};

const validate = compileSchema(schema);

export interface Config {
  /** Option values by config key (strings as parseArgs gives them, booleans), paths made absolute. */
  options: Partial<Record<string, string | boolean>>;
  /** The guest variants it declares (reference guest), in its order. */
  variants: GuestVariant[];
}

/** Read and check a config file; `label` is how errors name it. */
export function readConfig(file: string, label: string): Config {
  const { text, value } = readJsonFile(file, label, `fix ${label} (keys: ${Object.keys(CONFIG_KEYS).join(', ')}; docs/config.md)`);
  // A key's line; nested keys ("variants.big.cpus") are JSON pointers with dots.
  const at = (key: string): string => {
    const line = lineOfPointer(text, key ? `/${key.replaceAll('.', '/')}` : '');
    return line ? ` (line ${line})` : '';
  };
  if (!validate(value)) {
    const e = firstError(validate.errors!);
    const parent = e.instancePath.slice(1).replaceAll('/', '.');
    const key = e.keyword === 'additionalProperties' ? `${parent ? `${parent}.` : ''}${(e.params as { additionalProperty: string }).additionalProperty}` : parent;
    const { what, fix } = describeSchemaError(e, parent);
    if (e.instancePath === '' && e.keyword === 'type') throw new UsageError(`${label}: not a JSON object of settings`, { hint: 'write { "key": value, … } (docs/config.md)' });
    throw new UsageError(`${label}${at(key)}: ${what}`, { hint: fix ? (e.keyword === 'additionalProperties' ? fix : `${key}: ${fix}`) : 'see docs/config.md' });
  }
  const raw = value as Record<string, unknown>;
  const describeKey = (key: string): string => (schema.properties as Record<string, { description?: string }>)[key]?.description ?? 'see docs/config.md';
  const bad = (key: string, what: string, hint = `${key}: ${describeKey(key)}`): UsageError => new UsageError(`${label}${at(key)}: ${what}`, { hint });
  if (raw.all === true && raw.scenarios !== undefined) throw bad('all', '"all": true and "scenarios" both say what runs (the catalog, or the file)', 'keep one of them');
  if (typeof raw.grep === 'string') {
    try {
      new RegExp(raw.grep);
    } catch (e) {
      throw bad('grep', `grep ${JSON.stringify(raw.grep)} is not a valid regular expression: ${(e as Error).message}`);
    }
  }
  const folder = path.dirname(path.resolve(file));
  const options: Config['options'] = {};
  for (const [key, v] of Object.entries(raw)) {
    if (key === '$schema' || key === 'variants') continue;
    const spec = CONFIG_KEYS[key]!;
    if (spec.path && typeof v === 'string') options[key] = checkPath(v, spec.path, folder, (what) => bad(key, `${key} ${JSON.stringify(v)}${what}`));
    else options[key] = typeof v === 'number' ? String(v) : (v as string | boolean);
  }
  const variants = Object.entries((raw.variants ?? {}) as Record<string, VariantMachine & { description?: string }>).map(([id, v]) => {
    if (id in VARIANTS) throw bad(`variants.${id}`, `variants.${id}: "${id}" is a built-in variant`, `give your variant another name; the built-in ${Object.keys(VARIANTS).join(', ')} cannot be redefined`);
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(id)) throw bad(`variants.${id}`, `variants: "${id}" is not a variant name`, 'name it with lower-case letters, digits and dashes, starting with a letter (it names artifact folders)');
    const { description, ...machine } = v;
    return { id, forceBounce: machine.swiotlb === 'force', description: description ?? describeMachine(machine), machine };
  });
  return { options, variants };
}

/** A declared variant's settings in words, for its progress line. */
function describeMachine(m: VariantMachine): string {
  const parts = [`${m.memoryMiB ?? 256} MiB`, `${m.cpus ?? 1} CPU${(m.cpus ?? 1) > 1 ? 's' : ''}`];
  if (m.swiotlb && m.swiotlb !== 'default') parts.push(m.swiotlb === 'force' ? 'swiotlb=force' : 'swiotlb off');
  if (m.eduDmaMask) parts.push(`edu dma_mask ${m.eduDmaMask}`);
  if (m.iommu) parts.push(`${m.iommu} (${m.iommuMode ?? 'strict'})`);
  return `declared in the config: ${parts.join(', ')}`;
}

/** The path made absolute against the config's folder, or the error of the wrong kind of path. */
function checkPath(value: string, kind: PathKind, folder: string, bad: (what: string) => UsageError): string {
  if (kind === 'image') {
    if (value === 'linux' || value === 'windows') return value;
    if (!/\.(json|qcow2)$/.test(value)) throw bad(' is not "linux", "windows" or a golden image (.json manifest or .qcow2)');
  }
  const file = path.resolve(folder, value);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (kind === 'folder' && code === 'ENOENT') return file; // created by the run
    throw bad(`: no such ${kind === 'driver-folder' ? 'folder' : 'file'} (${file})`);
  }
  if ((kind === 'folder' || kind === 'driver-folder') && !st.isDirectory()) throw bad(` is not a folder (${file})`);
  if ((kind === 'file' || kind === 'executable' || kind === 'image') && !st.isFile()) throw bad(` is not a file (${file})`);
  if (kind === 'executable') {
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      throw bad(` is not executable (${file})`);
    }
  }
  return file;
}

/**
 * Fill in from the config (--config FILE, else ./dmahil.config.json when there is one) what the command
 * line left out. The command line's choice of what runs (--all, --scenarios, --repro) replaces the
 * config's (all, scenarios) as a whole, and --repro, one scenario, drops the config's grep too.
 */
export function applyConfig(values: Record<string, unknown>, given: ReadonlySet<string>, command: string, cwd = process.cwd()): { variants: GuestVariant[] } {
  const explicit = values.config as string | undefined;
  if (explicit !== undefined && explicit.trim() === '') throw new UsageError('--config is empty', { hint: `pass --config the path of a config file, or leave it out for ./${CONFIG_FILE}` });
  const file = explicit !== undefined ? path.resolve(cwd, explicit) : path.join(cwd, CONFIG_FILE);
  if (explicit === undefined && !fs.existsSync(file)) return { variants: [] };
  const config = readConfig(file, explicit !== undefined ? `--config ${explicit}` : CONFIG_FILE);
  const cliSelects = ['all', 'scenarios', 'repro'].some((o) => given.has(o));
  for (const [key, v] of Object.entries(config.options)) {
    const option = CONFIG_KEYS[key]!.option!;
    if (!CONFIG_KEYS[key]!.commands.includes(command) || given.has(option)) continue;
    if (cliSelects && (key === 'all' || key === 'scenarios')) continue;
    if (given.has('repro') && key === 'grep') continue;
    values[option] = v;
  }
  return { variants: CONFIG_KEYS.variants!.commands.includes(command) ? config.variants : [] };
}

/** The options the command line itself gave (parseArgs tokens), as opposed to defaults. */
export function optionsGiven(tokens: ReadonlyArray<{ kind: string; name?: string }>): Set<string> {
  return new Set(tokens.filter((t) => t.kind === 'option' && t.name !== undefined).map((t) => t.name!));
}
