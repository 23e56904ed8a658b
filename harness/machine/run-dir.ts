// The private run directory: RAM file, QMP socket, pmemsave scratch. tmpfs (/dev/shm) when it has room,
// because the RAM file must not hit a disk; else os.tmpdir(). Named after the owning harness pid so a
// later launch can remove directories left by a harness that was SIGKILLed (exit handlers never ran).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import { atLastMoment } from './last-moment.js';

export const RUN_DIR_PREFIX = 'dmahil-run-';
/** Unix socket paths are limited to 108 bytes (sun_path). */
const MAX_SOCKET_PATH = 107;

export interface RunDirChoice {
  base: string;
  reason: string;
}

/** Pick where to create run directories: an explicit base, else /dev/shm if it fits the RAM, else os.tmpdir(). */
export function chooseRunDirBase(ramBytes: number, explicitBase?: string): RunDirChoice {
  if (explicitBase !== undefined) return { base: explicitBase, reason: 'runDirBase option' };
  const margin = 64 * 1024 * 1024;
  for (const base of ['/dev/shm', os.tmpdir()]) {
    try {
      fs.accessSync(base, fs.constants.W_OK);
      const st = fs.statfsSync(base);
      if (st.bavail * st.bsize >= ramBytes + margin) return { base, reason: base === '/dev/shm' ? 'tmpfs' : 'os.tmpdir()' };
    } catch {
      // not usable; try the next
    }
  }
  throw new EnvironmentError(`no directory with ${Math.ceil(ramBytes / 2 ** 20)} MiB free for the guest RAM file (tried /dev/shm, ${os.tmpdir()})`, {
    hint: 'free space in /dev/shm, lower memoryMiB, or pass runDirBase',
  });
}

/**
 * mkdir -p, one level at a time: Node's recursive mkdirSync spins forever on a path under /proc
 * (procfs answers ENOENT to every create), which would hang the harness on a bad runDirBase.
 */
function ensureDir(dir: string): void {
  try {
    if (fs.statSync(dir).isDirectory()) return;
    throw new EnvironmentError(`run directory base ${dir} is not a directory`, { hint: 'pass a directory as runDirBase' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e instanceof EnvironmentError) throw e;
    if (code !== 'ENOENT') throw new EnvironmentError(`run directory base ${dir} is unusable (${code})`, { hint: 'pass a writable directory as runDirBase', cause: e });
  }
  const parent = path.dirname(dir);
  if (parent !== dir) ensureDir(parent);
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    throw new EnvironmentError(`cannot create run directory base ${dir} (${code})`, { hint: 'pass a writable directory as runDirBase', cause: e });
  }
}

/** Create a 0700 run directory under base. */
export function createRunDir(base: string, name: string): string {
  ensureDir(path.resolve(base));
  const dir = fs.mkdtempSync(path.join(base, `${RUN_DIR_PREFIX}${process.pid}-${name}-`));
  fs.chmodSync(dir, 0o700);
  if (Buffer.byteLength(path.join(dir, 'qmp.sock')) > MAX_SOCKET_PATH) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new EnvironmentError(`run directory path ${dir} is too long for a unix socket (108 bytes)`, {
      hint: 'pass a shorter runDirBase or a shorter machine name',
    });
  }
  return dir;
}

/**
 * A private 0700 directory owned by this harness process, for files that belong to a run but not to
 * one machine (per-run keys). Named like run directories, so if the harness is killed before it can
 * remove it, the next launch's sweep does.
 */
export function createPrivateDir(name: string): string {
  const dir = createRunDir(chooseRunDirBase(0).base, name);
  removeAtLastMoment(dir);
  return dir;
}

/** Remove dir (a run directory this process made) at exit, SIGINT or SIGTERM, unless removePrivateDir did first. */
export function removeAtLastMoment(dir: string): void {
  unregisterPrivateDirs ??= atLastMoment(removePrivateDirsNow);
  privateDirs.add(dir);
}

/** Remove a directory made by createPrivateDir or passed to removeAtLastMoment. */
export function removePrivateDir(dir: string): void {
  privateDirs.delete(dir);
  if (privateDirs.size === 0) {
    unregisterPrivateDirs?.();
    unregisterPrivateDirs = undefined;
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

const privateDirs = new Set<string>();
let unregisterPrivateDirs: (() => void) | undefined;

// At exit, SIGINT or SIGTERM (last-moment.ts): synchronous, best effort.
function removePrivateDirsNow(): void {
  for (const dir of privateDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // a later launch sweeps it
    }
  }
}

/** Pre-create the RAM file 0600 so it is private; QEMU opens it O_RDWR and sizes it. */
export function createRamFile(file: string): void {
  fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o600));
}

export function removeRunDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Remove run directories under base whose owning harness process is gone. Returns what was removed.
 * Only this user's directories are touched.
 */
export function sweepStaleRunDirs(base: string): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(base);
  } catch {
    return removed;
  }
  const uid = process.getuid?.();
  for (const entry of entries) {
    const m = new RegExp(`^${RUN_DIR_PREFIX}(\\d+)-`).exec(entry);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || isProcessAlive(owner)) continue;
    const dir = path.join(base, entry);
    try {
      if (uid !== undefined && fs.statSync(dir).uid !== uid) continue;
      removeRunDir(dir);
      removed.push(dir);
    } catch {
      // raced with another sweeper; fine
    }
  }
  return removed;
}

/** Alive and not a zombie (a zombie in a container whose init never reaps still answers kill(pid, 0)). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
