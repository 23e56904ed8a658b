// Command-line parsing with node:util parseArgs (strict: unknown options are errors).
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';

export const USAGE = `Usage: dmahil <command> [options]

Commands:
  run                 boot the guest, run the DMA scenarios, verify every byte from the host, print the verdict
  shell               boot the guest with the driver loaded and open a shell in it (stdin scripted or a terminal)
  doctor              check this machine is ready to run dmahil (QEMU, KVM, toolchains, cache, disk); exit 0 when ready
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
  --version           print the version
  -h, --help          show this text

Exit status: 0 when every scenario verified (and every negative control was caught),
1 when any did not, 2 on bad input or a missing tool.`;

export interface RunOptions {
  command: 'run';
  /** 'linux' (the reference guest) or the path of a Windows golden image (manifest .json or .qcow2). */
  image: string;
  all: boolean;
  grep?: RegExp;
  json: boolean;
  accel: 'auto' | 'kvm' | 'tcg';
  artifacts?: string;
  bootTimeoutMs: number;
  jobs: number;
  shard?: string;
  /** Reuse a booted guest per variant instead of restoring per scenario. */
  boot: boolean;
  /** Keep the guest of the first scenario that did not verify, for debugging. */
  keep: boolean;
}

export interface ShellOptions {
  command: 'shell';
  accel: 'auto' | 'kvm' | 'tcg';
  bootTimeoutMs: number;
  artifacts?: string;
}

export type Command = RunOptions | ShellOptions | { command: 'doctor'; json: boolean } | { command: 'help' } | { command: 'version' };

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

export function parseCommandLine(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
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
        version: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/, ''), { hint: 'run "dmahil --help" for the options' });
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help' };
  if (values.version) return { command: 'version' };
  const command = positionals[0] ?? 'run';
  if (command === 'help') return { command: 'help' };
  if (command === 'doctor') return { command: 'doctor', json: values.json ?? false };
  if (command !== 'run' && command !== 'shell') throw new UsageError(`unknown command "${command}"`, { hint: 'the commands are: run, shell, doctor, help' });
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
  if (command === 'shell') return { command: 'shell', accel, bootTimeoutMs: bootTimeout * 1000, artifacts: values.artifacts };
  let grep: RegExp | undefined;
  if (values.grep !== undefined) {
    try {
      grep = new RegExp(values.grep, 'i');
    } catch (e) {
      throw new UsageError(`--grep "${values.grep}" is not a valid regular expression: ${(e as Error).message}`);
    }
  }
  return {
    command: 'run',
    image,
    all: values.all ?? false,
    grep,
    json: values.json ?? false,
    accel,
    artifacts: values.artifacts,
    bootTimeoutMs: bootTimeout * 1000,
    jobs,
    shard: values.shard,
    boot: values.boot ?? false,
    keep: values.keep ?? false,
  };
}
