// Every live machine in this process, so none outlives the harness. Covers normal exit and
// SIGINT/SIGTERM; SIGKILL of the harness is covered by setpriv --pdeathsig in launch.

import { atLastMoment } from './last-moment.js';
import { removeRunDir } from './run-dir.js';

export interface RegisteredMachine {
  readonly runDir: string;
  /** Synchronous last resort: SIGKILL QEMU if it still runs. */
  killNow(): void;
}

const live = new Set<RegisteredMachine>();
let unregisterCleanup: (() => void) | undefined;

export function registerMachine(m: RegisteredMachine): void {
  live.add(m);
  unregisterCleanup ??= atLastMoment(killAllMachines);
}

export function unregisterMachine(m: RegisteredMachine): void {
  live.delete(m);
  if (live.size === 0) {
    unregisterCleanup?.();
    unregisterCleanup = undefined;
  }
}

export function liveMachineCount(): number {
  return live.size;
}

/** Kill every live QEMU and remove its run directory, synchronously. */
export function killAllMachines(): void {
  for (const m of [...live]) {
    try {
      m.killNow();
    } catch {
      // already gone
    }
    try {
      removeRunDir(m.runDir);
    } catch {
      // best effort: a later launch sweeps it
    }
    live.delete(m);
  }
}
