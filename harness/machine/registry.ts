// Every live machine in this process, so none outlives the harness. Covers normal exit and
// SIGINT/SIGTERM; SIGKILL of the harness is covered by setpriv --pdeathsig in launch.

import { removeRunDir } from './run-dir.js';

export interface RegisteredMachine {
  readonly runDir: string;
  /** Synchronous last resort: SIGKILL QEMU if it still runs. */
  killNow(): void;
}

const live = new Set<RegisteredMachine>();
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let installed = false;

export function registerMachine(m: RegisteredMachine): void {
  live.add(m);
  if (!installed) install();
}

export function unregisterMachine(m: RegisteredMachine): void {
  live.delete(m);
  if (live.size === 0 && installed) uninstall();
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

function onExit(): void {
  killAllMachines();
}

function onSignal(signal: NodeJS.Signals): void {
  killAllMachines();
  uninstall();
  // If nobody else handles the signal, behave as if we had not been here: die of it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  installed = true;
  process.on('exit', onExit);
  for (const s of FORWARDED_SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  installed = false;
  process.off('exit', onExit);
  for (const s of FORWARDED_SIGNALS) process.off(s, onSignal);
}
