// What a dmahil CLI process left running or lying around, found from /proc and the run-dir bases: the
// QEMU processes it started (by parent pid), its run and key directories, and polling for a condition.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** QEMU processes whose parent is pid (setpriv exec()s QEMU, so QEMU is the CLI's child). */
export function qemuChildren(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
      if (m && Number(m[2]) === pid && m[1]!.startsWith('qemu')) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Everything the harness process owns in tmpfs or /tmp: machine run dirs, key dirs. */
export function runDirsOf(cliPid: number): string[] {
  return ['/dev/shm', '/tmp'].flatMap((base) => fs.readdirSync(base).filter((d) => d.startsWith(`dmahil-run-${cliPid}-`)).map((d) => path.join(base, d)));
}

/** Poll f every 50 ms until it returns something other than undefined or false. */
export async function until<T>(what: string, f: () => T | undefined | false, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
