// Command-line parsing with node:util parseArgs (strict: unknown options are errors).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { GuestVariant } from '../dma/catalog.js';
import { UsageError } from '../errors.js';
import { applyConfig, optionsGiven } from './config-file.js';
import { exploredVariants } from '../explore/variants.js';
import { driverOption } from './driver-option.js';
import { kernelRootOption } from './kernel-option.js';
import type { KernelRoot } from '../kernel/kernel-root.js';
import { UNTIL_FAIL_MAX_REPEATS } from './selection.js';

export const USAGE = `Usage: dmahil <command> [options]

Commands:
  run                 boot the guest, run the DMA scenarios, verify every byte from the host, print the verdict
  explore             generate scenarios from the whole contract until one fails; confirm it on a pristine
                      guest, shrink it to the smallest failing scenario and write a repro file (docs/explore.md)
  shell               boot the guest with the driver loaded and open a shell in it (stdin scripted or a terminal)
  doctor              check this machine is ready to run dmahil (QEMU, KVM, toolchains, cache, disk); exit 0 when ready
  setup               install the Debian packages dmahil run needs (QEMU, the reference guest's kernel and
                      headers, the toolchain), as root or with passwordless sudo: scripts/install-deps.sh run
  help                show this text

Options for run:
  --image <name>      guest to test: "linux" (default), the reference guest built from Debian packages;
                      "windows" (the golden image in DMAHIL_WINDOWS_IMAGE) or a golden image's .json/.qcow2
  --all               run the full scenario catalog (default: the quick set)
  --grep <regex>      only scenarios whose name matches
  --json              print the results as JSON on stdout (progress stays on stderr)
  --accel <mode>      auto (default: KVM when /dev/kvm is usable, else TCG), kvm or tcg
  --artifacts <dir>   where logs and results go (default: reports/runs/<time>); needs 32 MiB free
  --boot-timeout <s>  seconds to wait for the guest's SSH login (default: 120)
  --jobs <n>          scenarios at once, each on its own restored guest (default: 1)
  --shard <i/n>       run only shard i of n (CI matrix): every scenario is in exactly one shard
  --boot              boot one guest per variant and reuse it, instead of restoring a pristine
                      snapshot per scenario (the default, which falls back to this when it cannot)
  --keep              leave the guest of the first failed scenario running and print how to reach it
                      (ssh, QMP, serial log, gdb); Ctrl-C stops it
  --repro <file>      replay the scenario of a repro file (written by dmahil explore) alone, on a pristine guest
  --scenarios <file>  run the scenarios of this file instead of the catalog, each with its variant and expected
                      outcome (format: docs/config.md, examples/scenarios.json); --grep, --shard, --repeat apply
  --repeat <n>        run the selection n times in a row
  --until-fail        stop at the first scenario that does not verify (with --repeat: at most n times,
                      else at most ${UNTIL_FAIL_MAX_REPEATS} times)
  --qemu <path>       the QEMU binary to use, e.g. your own build's qemu-system-x86_64 (default: the one on
                      PATH); checked like any QEMU (7.2+, edu device) and named in results.json
                      (also an option of explore, shell and doctor)
  --driver <dir>      your own build of the driver instead of the one dmahil builds (also for explore, shell, doctor):
                      for the reference guest a folder with edudma.ko (built for the guest's kernel) and its
                      static dmactl; with --image windows a package folder (edudma.sys, .inf, .cat,
                      edudma-test.cer, dmactl.exe). Its contract version is checked before any guest boots
  --kernel <dir>      the reference guest's kernel from a kernel root instead of the installed one (also for
                      explore, shell, doctor): boot/vmlinuz-<ver>, lib/modules/<ver>/ and its headers
                      (lib/modules/<ver>/build or usr/src/linux-headers-<ver>), as dpkg -x of linux-image-*
                      and linux-headers-* gives; the image and edudma are built for it (cached)

Options for explore (and --image, --grep, --json, --accel, --artifacts, --boot-timeout, --jobs, --qemu as for run):
  --budget <time>     how long to explore, e.g. 60s, 10m, 1h (default: 10m; the guests' boot is not counted)
  --runs <n>          stop after n scenarios (with --budget: whichever comes first)
  --seed <n>          the sequence of scenarios (default: random, printed); the same seed explores the same way
  --variants <ids>    the guest variants to explore, comma-separated (default: direct,bounce); any built-in
                      variant of the image, e.g. high-memory or iommu, or one declared in dmahil.config.json
  --version           print the version
  -h, --help          show this text

Config file: defaults for these options come from ./dmahil.config.json when there is one, or from
  --config <file>     (any command); the command line wins; paths in it are relative to its folder
                      (keys and format: docs/config.md, examples/dmahil.config.json)

Exit status: 0 when every scenario verified (and every negative control was caught),
1 when any did not, 2 on bad input or a missing tool.`;

/** What run and explore share: which guest, how it boots, where its evidence goes. */
interface GuestSelectionOptions {
  /** 'linux' (the reference guest) or the path of a Windows golden image (manifest .json or .qcow2). */
  image: string;
  grep?: RegExp;
  json: boolean;
  accel: 'auto' | 'kvm' | 'tcg';
  artifacts?: string;
  bootTimeoutMs: number;
  jobs: number;
  /** --qemu: the QEMU binary instead of qemu-system-x86_64 on PATH (absolute). */
  qemu?: string;
  /** --driver: the folder of the user's driver build (absolute); its files are checked by preflight. */
  driver?: string;
  /** --kernel: the reference guest's kernel root, checked at parse time. */
  kernel?: KernelRoot;
}

export interface RunOptions extends GuestSelectionOptions {
  command: 'run';
  all: boolean;
  shard?: string;
  /** Reuse a booted guest per variant instead of restoring per scenario. */
  boot: boolean;
  /** Keep the guest of the first scenario that did not verify, for debugging. */
  keep: boolean;
  /** A repro file whose scenario runs alone instead of a catalog selection. */
  repro?: string;
  /** --scenarios: a file of the user's own scenarios, run instead of the catalog (absolute). */
  scenarios?: string;
  /** Guest variants declared in the config ("variants"), which a scenarios file may name. */
  variants?: GuestVariant[];
  /** Times the selection runs (1: once). */
  repeat: number;
  /** No new scenario after the first that did not verify. */
  untilFail: boolean;
}

export interface ExploreCliOptions extends GuestSelectionOptions {
  command: 'explore';
  budgetMs?: number;
  runs?: number;
  seed: number;
  /** True when --seed was given (else the seed is random and printed). */
  seedGiven: boolean;
  /** --variants: the guest variants explored, in order (default direct and bounce). */
  variants: GuestVariant[];
}

export interface ShellOptions {
  command: 'shell';
  accel: 'auto' | 'kvm' | 'tcg';
  bootTimeoutMs: number;
  artifacts?: string;
  /** --qemu, as for run. */
  qemu?: string;
  /** --driver, as for run. */
  driver?: string;
  /** --kernel, as for run. */
  kernel?: KernelRoot;
}

export interface DoctorCliOptions {
  command: 'doctor';
  json: boolean;
  /** --qemu: check this QEMU binary instead of the one on PATH. */
  qemu?: string;
  /** --driver: check this driver folder as run would. */
  driver?: string;
  /** --kernel: the kernel root the guest would boot; its layout and headers are checked when parsed, as for run. */
  kernel?: KernelRoot;
}

export type Command = RunOptions | ExploreCliOptions | ShellOptions | DoctorCliOptions | { command: 'help' } | { command: 'version' } | { command: 'setup' };

/** "windows" means the image named by DMAHIL_WINDOWS_IMAGE; a path must look like a golden image. */
function resolveImage(image: string): string {
  if (image === 'linux') return image;
  if (image === 'windows') {
    const fromEnv = process.env.DMAHIL_WINDOWS_IMAGE;
    if (!fromEnv) {
      throw new UsageError('--image windows needs DMAHIL_WINDOWS_IMAGE set to a golden image', {
        hint: 'build one with "dmahil image windows --iso PATH" (docs/windows.md), then export DMAHIL_WINDOWS_IMAGE=<its manifest or qcow2>',
      });
    }
    return fromEnv;
  }
  if (!/\.(json|qcow2)$/.test(image)) {
    throw new UsageError(`unknown image "${image}"`, {
      hint: 'use "linux" (the reference guest), "windows", or the path of a Windows golden image (.json manifest or .qcow2)',
    });
  }
  return image;
}

/**
 * --qemu PATH: an existing executable file, made absolute. Whether it is a QEMU dmahil supports (version,
 * edu device) is checkQemuOption's (guests.ts), before anything is built or booted.
 */
export function qemuOption(text: string): string {
  const fix = 'pass --qemu the path of a qemu-system-x86_64 binary (e.g. <your QEMU build>/qemu-system-x86_64), or leave it out for the one on PATH';
  if (text.trim() === '') throw new UsageError('--qemu is empty', { hint: fix });
  const file = path.resolve(text);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new UsageError(`--qemu ${text}: no such file (${(e as NodeJS.ErrnoException).code ?? e})`, { hint: fix });
  }
  if (!st.isFile()) throw new UsageError(`--qemu ${text} is not a file`, { hint: fix });
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    throw new UsageError(`--qemu ${text} is not executable`, { hint: `chmod +x it, or ${fix}` });
  }
  return file;
}

/** The default exploration budget. */
export const DEFAULT_BUDGET_MS = 10 * 60 * 1000;

/** "60s", "10m", "1.5h", "500ms" or plain seconds; zero or anything else is a UsageError. */
export function parseBudget(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new UsageError(`--budget "${text}" is not a duration`, { hint: 'e.g. --budget 60s, --budget 10m or --budget 1h' });
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  if (ms < 1) throw new UsageError(`--budget "${text}" is zero: nothing would be explored`, { hint: 'e.g. --budget 60s, or --runs N for a number of scenarios' });
  return ms;
}

/** A seed is a whole number from 0 to 2^32 - 1, in decimal. */
export function parseSeed(text: string): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new UsageError(`--seed "${text}" is not a number from 0 to 4294967295`, { hint: 'e.g. --seed 42; the seed of a run is printed at its start' });
  return n;
}

function positiveInt(option: string, text: string, max: number): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`${option} "${text}" is not a whole number from 1 to ${max}`);
  return n;
}

/** Options of one command given to the other: a clear error, not a silent no-op. */
function refuse(values: Record<string, unknown>, options: string[], command: string, hint: string): void {
  const given = options.find((o) => values[o] !== undefined && values[o] !== false);
  if (given) throw new UsageError(`--${given} is not an option of dmahil ${command}`, { hint });
}

export function parseCommandLine(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      tokens: true,
      allowPositionals: true,
      strict: true,
      options: {
        image: { type: 'string' },
        all: { type: 'boolean', default: false },
        grep: { type: 'string' },
        json: { type: 'boolean', default: false },
        accel: { type: 'string', default: 'auto' },
        artifacts: { type: 'string' },
        'boot-timeout': { type: 'string', default: '120' },
        jobs: { type: 'string', default: '1' },
        shard: { type: 'string' },
        boot: { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
        repro: { type: 'string' },
        scenarios: { type: 'string' },
        config: { type: 'string' },
        repeat: { type: 'string' },
        'until-fail': { type: 'boolean', default: false },
        budget: { type: 'string' },
        runs: { type: 'string' },
        seed: { type: 'string' },
        variants: { type: 'string' },
        qemu: { type: 'string' },
        driver: { type: 'string' },
        kernel: { type: 'string' },
        version: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/, ''), { hint: 'run "dmahil --help" for the options' });
  }
  const { values, positionals, tokens } = parsed;
  if (values.help) return { command: 'help' };
  if (values.version) return { command: 'version' };
  const command = positionals[0] ?? 'run';
  if (command === 'help') return { command: 'help' };
  // Before the config file: setup prepares the machine whatever a project's config says.
  if (command === 'setup') {
    const option = tokens.find((t) => t.kind === 'option');
    if (option || positionals.length > 1) throw new UsageError(`${option ? `--${option.name}` : `"${positionals[1]}"`} is not an option of dmahil setup`, { hint: 'run "dmahil setup" alone: it installs what dmahil run needs' });
    return { command: 'setup' };
  }
  // dmahil.config.json (or --config FILE): what the command line left out.
  const fromConfig = applyConfig(values, optionsGiven(tokens), command);
  const qemu = values.qemu !== undefined ? qemuOption(values.qemu) : undefined;
  const withQemu = qemu !== undefined ? { qemu } : {};
  const withDriver = values.driver !== undefined ? { driver: driverOption(values.driver) } : {};
  // The kernel root's layout and headers are checked here, before anything is built or booted.
  const withKernel = values.kernel !== undefined ? { kernel: kernelRootOption(values.kernel) } : {};
  if (command === 'doctor') return { command: 'doctor', json: values.json ?? false, ...withQemu, ...withDriver, ...withKernel };
  if (command !== 'run' && command !== 'shell' && command !== 'explore') throw new UsageError(`unknown command "${command}"`, { hint: 'the commands are: run, explore, shell, doctor, setup, help' });
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`, { hint: 'run "dmahil --help" for the options' });

  const image = resolveImage(values.image ?? 'linux');
  const accel = values.accel;
  if (accel !== 'auto' && accel !== 'kvm' && accel !== 'tcg') {
    throw new UsageError(`--accel "${accel}" is not one of auto, kvm, tcg`);
  }
  const bootTimeout = Number(values['boot-timeout']);
  if (!Number.isFinite(bootTimeout) || bootTimeout <= 0) {
    throw new UsageError(`--boot-timeout "${values['boot-timeout']}" is not a positive number of seconds`);
  }
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 16) throw new UsageError(`--jobs "${values.jobs}" is not a whole number from 1 to 16`);
  if (values.shard !== undefined && !/^\d+\/\d+$/.test(values.shard)) throw new UsageError(`--shard "${values.shard}" is not i/n`, { hint: 'e.g. --shard 1/2' });
  if (command === 'shell') return { command: 'shell', accel, bootTimeoutMs: bootTimeout * 1000, artifacts: values.artifacts, ...withQemu, ...withDriver, ...withKernel };
  let grep: RegExp | undefined;
  if (values.grep !== undefined) {
    try {
      grep = new RegExp(values.grep, 'i');
    } catch (e) {
      throw new UsageError(`--grep "${values.grep}" is not a valid regular expression: ${(e as Error).message}`);
    }
  }
  const selection: GuestSelectionOptions = { image, grep, json: values.json ?? false, accel, artifacts: values.artifacts, bootTimeoutMs: bootTimeout * 1000, jobs, ...withQemu, ...withDriver, ...withKernel };
  if (command === 'explore') {
    refuse(values, ['all', 'shard', 'boot', 'keep', 'repro', 'scenarios', 'repeat', 'until-fail'], 'explore', 'run "dmahil --help" for the options of explore');
    return {
      command: 'explore',
      ...selection,
      budgetMs: values.budget !== undefined ? parseBudget(values.budget) : values.runs !== undefined ? undefined : DEFAULT_BUDGET_MS,
      runs: values.runs !== undefined ? positiveInt('--runs', values.runs, 100_000_000) : undefined,
      seed: values.seed !== undefined ? parseSeed(values.seed) : Math.floor(Math.random() * 0x80000000),
      seedGiven: values.seed !== undefined,
      variants: exploredVariants(values.variants, image, fromConfig.variants),
    };
  }
  refuse(values, ['budget', 'runs', 'seed', 'variants'], 'run', 'they are options of dmahil explore');
  if (values.repro !== undefined) refuse(values, ['all', 'grep', 'shard', 'scenarios'], 'run --repro', 'a repro file names one scenario: drop the selection options');
  if (values.scenarios !== undefined && values.all) {
    throw new UsageError('--all and --scenarios both say what runs (the whole catalog, or the file\'s scenarios)', { hint: 'drop one of them; --grep selects among the file\'s scenarios' });
  }
  if (values.scenarios !== undefined && values.scenarios.trim() === '') throw new UsageError('--scenarios is empty', { hint: 'pass --scenarios the path of a scenarios file (docs/config.md)' });
  const repeat = values.repeat !== undefined ? positiveInt('--repeat', values.repeat, 100_000) : values['until-fail'] ? UNTIL_FAIL_MAX_REPEATS : 1;
  return {
    command: 'run',
    ...selection,
    all: values.all ?? false,
    shard: values.shard,
    boot: values.boot ?? false,
    keep: values.keep ?? false,
    repro: values.repro,
    ...(values.scenarios !== undefined ? { scenarios: path.resolve(values.scenarios) } : {}),
    ...(fromConfig.variants.length > 0 ? { variants: fromConfig.variants } : {}),
    repeat,
    untilFail: values['until-fail'] ?? false,
  };
}
