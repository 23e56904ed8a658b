#!/usr/bin/env node
// dmahil command line: parse, run, print the verdict, exit 0 only when every scenario verified.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectCatalog, type GuestVariant } from '../dma/catalog.js';
import { parseShard, runSuite, shardEntries, type SuiteVerdict } from '../dma/run-suite.js';
import { SnapshotSessionSource } from '../dma/snapshot-session-source.js';
import { CHEAP_WAITS } from '../snapshot/index.js';
import { ReusingSessionSource } from '../dma/session-source.js';
import { DmahilError, UsageError } from '../errors.js';
import { restoreLinuxGuest, startLinuxGuest, type LinuxSession } from '../guest/linux/profile.js';
import { resultsJson } from '../report/results-json.js';
import { tally, verdictTable } from '../report/verdict-table.js';
import { parseCommandLine, USAGE, type RunOptions } from './args.js';
import { stderrProgress } from './progress.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

async function version(): Promise<string> {
  const pkg = JSON.parse(await fs.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

async function run(opts: RunOptions): Promise<number> {
  const progress = stderrProgress(true);
  const selected = selectCatalog({ all: opts.all, grep: opts.grep });
  const entries = opts.shard ? shardEntries(selected, parseShard(opts.shard)) : selected;
  if (entries.length === 0) throw new UsageError(`no scenario matches --grep ${opts.grep}`, { hint: 'drop --grep, or add --all to search the full catalog' });
  const artifacts = path.resolve(opts.artifacts ?? path.join(repoRoot, 'reports', 'runs', timestamp()));
  await fs.mkdir(artifacts, { recursive: true });
  progress(`${entries.length} scenarios${opts.shard ? ` (shard ${opts.shard} of ${selected.length})` : ''}; artifacts in ${artifacts}`);
  const boot = (variant: GuestVariant): Promise<LinuxSession> =>
    startLinuxGuest({
      repoRoot,
      cacheDir: path.join(repoRoot, '.cache'),
      artifactsDir: path.join(artifacts, variant.id),
      forceBounce: variant.forceBounce,
      accel: opts.accel,
      bootTimeoutMs: opts.bootTimeoutMs,
      onProgress: progress,
      icount: CHEAP_WAITS,
    });

  const verdicts: SuiteVerdict[] = await runSuite(entries, {
    onProgress: progress,
    onVerdict: (v) => progress(`${v.status.padEnd(5)} ${v.name}: ${v.summary}`),
    jobs: opts.jobs,
    source: opts.boot ? new ReusingSessionSource(boot) : new SnapshotSessionSource({
      boot,
      restore: (snapshot, variant, n) =>
        restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(artifacts, variant.id, `restore-${n}`), readyTimeoutMs: opts.bootTimeoutMs }),
      key: (variant) => `linux ${variant.id} accel=${opts.accel} icount=${JSON.stringify(CHEAP_WAITS)}`,
      onProgress: progress,
    }),
  });

  const report = resultsJson(verdicts, { version: await version(), artifacts });
  await fs.writeFile(path.join(artifacts, 'results.json'), JSON.stringify(report, null, 2) + '\n');
  const t = tally(verdicts);
  if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
  else {
    process.stdout.write('\n' + verdictTable(verdicts) + '\n\n');
    process.stdout.write(`${t.notOk === 0 ? 'PASS' : 'FAIL'}: ${t.ok} ok, ${t.notOk} failed, ${t.skipped} skipped — artifacts in ${artifacts}\n`);
  }
  return t.notOk === 0 && t.ok > 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const cmd = parseCommandLine(argv);
  switch (cmd.command) {
    case 'help':
      process.stdout.write(USAGE + '\n');
      return 0;
    case 'version':
      process.stdout.write((await version()) + '\n');
      return 0;
    case 'run':
      return run(cmd);
  }
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    const line = e instanceof DmahilError ? e.describe() : (e as Error).stack ?? String(e);
    process.stderr.write(`dmahil: ${line}\n`);
    process.exitCode = 2;
  },
);
