// Shared helpers for the Windows package specs: tool lookup with the skip/fail policy, the package build,
// and a throw-away Wine prefix.
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'mocha';
import { repoRoot } from '../../harness/windows-package/package.js';

export const ROOT = repoRoot();

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
}

/**
 * A missing tool skips the test with the reason, unless CI is set: then it fails, because CI must run
 * every check.
 */
export function needTools(ctx: Context, tools: Record<string, string>): void {
  const missing = Object.entries(tools).filter(([tool]) => !hasTool(tool));
  if (missing.length === 0) return;
  const reason = `missing ${missing.map(([t, p]) => `${t} (Debian package ${p})`).join(', ')}`;
  if (process.env.CI) throw new Error(`${reason}: CI must run this check; install with make deps`);
  console.log(`      skipped: ${reason}`);
  ctx.skip();
}

export const BUILD_TOOLS = {
  'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64-win32',
  'i686-w64-mingw32-gcc': 'gcc-mingw-w64-i686-win32',
  osslsigncode: 'osslsigncode',
  openssl: 'openssl',
};

let built = false;

/** Build (or bring up to date) build/windows with the package's own makefile. */
export function ensurePackage(ctx: Context): void {
  needTools(ctx, BUILD_TOOLS);
  if (built) return;
  ctx.timeout(300_000);
  const r = spawnSync('make', ['-s', '-f', 'guest-driver/windows/windows.mk', 'driver'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make driver failed:\n${r.stdout}\n${r.stderr}`);
  built = true;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}

export interface WinePrefix {
  dir: string;
  env: NodeJS.ProcessEnv;
  wine(args: string[], extraEnv?: NodeJS.ProcessEnv): SpawnSyncReturns<string>;
  dispose(): void;
}

/** A new 64-bit Wine prefix in a temporary directory (wineboot takes ~15 s). */
export function createWinePrefix(): WinePrefix {
  const dir = mkdtempSync(join(tmpdir(), 'dmahil-wine-'));
  const env: NodeJS.ProcessEnv = { ...process.env, WINEPREFIX: dir, WINEARCH: 'win64', WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' };
  delete env.DISPLAY;
  const boot = run('wine', ['wineboot', '--init'], { env });
  if (boot.status !== 0) throw new Error(`wineboot failed (${boot.status}): ${boot.stderr.slice(-2000)}`);
  // No persistent wineserver: the driver's service processes inherit stdout, and only a server that
  // shuts down with the last ordinary process closes that pipe.
  run('wineserver', ['-w'], { env });
  return {
    dir,
    env,
    wine: (args, extraEnv = {}) => run('wine', args, { env: { ...env, ...extraEnv }, cwd: dir }),
    dispose: () => {
      try {
        execFileSync('wineserver', ['-k'], { env, stdio: 'ignore' });
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
