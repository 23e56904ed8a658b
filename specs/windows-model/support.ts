// Shared by the NT DMA model specs: build the model (or a mutant of the driver in it), a Wine prefix,
// sessions per world, and what each catalog entry must give in each world.
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CatalogEntry } from '../../harness/dma/catalog.js';
import type { ScenarioCase } from '../../harness/dma/run-scenario.js';
import { NtModelSession } from '../../harness/guest/nt-model/session.js';
import { requireSetpriv } from '../../harness/machine/launch-checks.js';
import type { NtModelWorld } from '../../harness/guest/nt-model/worlds.js';
import { repoRoot } from '../e2e/support.js';
import { createWinePrefix, type WinePrefix } from '../windows-package/support.js';

export { repoRoot };

export async function buildModel(vars: Record<string, string> = {}): Promise<void> {
  const r = await execa('make', ['-s', 'windows-model', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`)], { cwd: repoRoot, reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`make windows-model failed:\n${r.all}`);
}

let shared: WinePrefix | undefined;
let server: ChildProcess | undefined;
let serverEnded: string | undefined;
const WINESERVER_LOG = path.join(repoRoot, 'reports', 'nt-model', 'wineserver.log');

/**
 * One Wine prefix for every model spec of this process (wineboot takes ~15 s), removed when it exits.
 * The model keeps nothing in it: each run gets its own RAM file and its own artifacts folder.
 */
export function modelPrefix(): WinePrefix {
  if (!shared) {
    const p = createWinePrefix();
    shared = p;
    keepWineserver(p);
    process.once('exit', () => {
      server?.removeAllListeners('exit');
      p.dispose();
    });
  }
  return shared;
}

/**
 * A wineserver that stays up for the whole run. One that a model process starts ends as soon as its last
 * process does (Debian's wrapper even says -p0): the specs kill a model and start the next within
 * milliseconds, and a new process that connected before the server saw the old one die had its connection
 * reset when the server quit ("wine client error:0: recvmsg: Connection reset by peer", CI 2026-12-04).
 * Started before any client of the new prefix, so no client can start another; setpriv ties it to this
 * process, its log is kept with the model's artifacts.
 */
function keepWineserver(p: WinePrefix): void {
  mkdirSync(path.dirname(WINESERVER_LOG), { recursive: true });
  const log = openSync(WINESERVER_LOG, 'a');
  server = spawn(requireSetpriv(), ['--pdeathsig', 'SIGKILL', '--', 'wineserver', '-f', '-p'], { env: p.env, stdio: ['ignore', log, log] });
  closeSync(log);
  server.unref();
  server.once('exit', (code, signal) => {
    serverEnded = `the specs' wineserver ended (${signal ?? `exit ${code}`}); its log: ${WINESERVER_LOG}`;
  });
}

export async function startModel(world: NtModelWorld, name: string, prefix: WinePrefix, extra: Partial<Parameters<typeof NtModelSession.start>[0]> = {}): Promise<NtModelSession> {
  if (prefix === shared && serverEnded) throw new Error(serverEnded);
  return NtModelSession.start({
    repoRoot,
    artifactsDir: path.join(repoRoot, 'reports', 'nt-model', name),
    world,
    winePrefix: prefix.dir,
    ...extra,
  });
}

/**
 * A catalog entry as it must come out in a world. A world whose device reaches every CPU page is
 * coherent, as x86 is: a skipped sync or flush changes nothing there, so the bounce controls must pass
 * (that they are caught where map registers are in play is the other half of the proof). A control
 * the adapter cannot produce is refused by the driver and reported skipped.
 */
export function modelCase(world: NtModelWorld, e: CatalogEntry): ScenarioCase & { expectSkip?: RegExp } {
  const invisibleHere = world.catalogVariant === 'direct' && e.variant === 'bounce';
  const c: ScenarioCase & { expectSkip?: RegExp } = { ...e, variant: world.catalogVariant };
  if (invisibleHere) delete c.expectFinding;
  if (e.scenario.fault === 'addr-beyond-mask' && world.eduDmaBits >= 32) c.expectSkip = /addr-beyond-mask/;
  // NT copies to the map registers in MapTransfer: nothing a driver skips can leave the device stale data.
  if (e.scenario.fault === 'skip-sync' && e.scenario.direction === 'to-device') c.expectSkip = /MapTransfer copies the data into the map registers/;
  return c;
}

/** A copy of the driver sources with one edit, for a mutation test; returns the copy's src folder. */
export async function mutateDriver(name: string, file: string, edit: (text: string) => string): Promise<{ src: string; out: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `dmahil-mutant-${name}-`));
  await fs.cp(path.join(repoRoot, 'guest-driver'), path.join(dir, 'guest-driver'), { recursive: true });
  const target = path.join(dir, 'guest-driver/windows/src', file);
  const before = await fs.readFile(target, 'utf8');
  const after = edit(before);
  if (after === before) throw new Error(`the mutation "${name}" changed nothing in ${file}: the driver moved on, update the mutation`);
  await fs.writeFile(target, after);
  return { src: path.join(dir, 'guest-driver/windows/src'), out: path.join(dir, 'out') };
}

/** A mutant of the driver built into the model: its program, and the folder to remove afterwards. */
export async function buildMutant(name: string, file: string, edit: (text: string) => string): Promise<{ exe: string; root: string }> {
  const m = await mutateDriver(name, file, edit);
  await buildModel({ MODEL_DRV_SRC: m.src, MODEL_OUT: m.out });
  return { exe: path.join(m.out, 'edudma-model.exe'), root: path.dirname(m.out) };
}

/** The streaming path without its FlushAdapterBuffers: the missing flush x86 hides until map registers. */
export const withoutFlushAdapterBuffers = (t: string): string =>
  t.replace(/ok = EDU_OPS\(dev\)->FlushAdapterBuffers\([^;]*\);/, 'ok = TRUE; (void)dev; /* mutant: FlushAdapterBuffers removed */');
