// Synchronous cleanups for the harness's last moment: a normal exit, or SIGINT/SIGTERM, after which the
// process dies of the signal unless something else handles it (the CLI writes its partial report and
// exits, which runs them again: each cleanup must be idempotent). SIGKILL runs nothing: QEMU dies by
// --pdeathsig, and the next launch sweeps what is left on disk.

const cleanups = new Set<() => void>();
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let installed = false;

/** Run `fn` at the last moment; returns what unregisters it. */
export function atLastMoment(fn: () => void): () => void {
  cleanups.add(fn);
  if (!installed) install();
  return () => {
    cleanups.delete(fn);
    if (cleanups.size === 0 && installed) uninstall();
  };
}

function runAll(): void {
  for (const fn of [...cleanups]) {
    try {
      fn();
    } catch {
      // best effort: a later launch sweeps what is left
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runAll();
  uninstall();
  // If nobody else handles the signal, behave as if we had not been here: die of it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  installed = true;
  process.on('exit', runAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  installed = false;
  process.off('exit', runAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}
