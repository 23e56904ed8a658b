// Ctrl-C or SIGTERM during `dmahil run` or `dmahil explore`: the reports of what ran so far are written
// (synchronously: nothing async runs after a signal), then the process exits 130 or 143. The machine
// registry's exit hook kills every QEMU.
import { DmahilError } from '../errors.js';
import type { Progress } from './progress.js';

/**
 * From now until the returned function is called: on a signal, `write(why)` the reports (why: "SIGINT
 * after N scenarios", from `count()`), say where they are, and exit.
 */
export function reportOnInterrupt(opts: { artifacts: string; progress: Progress; count: () => string; write: (why: string, signal: NodeJS.Signals) => void }): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    const why = `${signal} after ${opts.count()}`;
    try {
      opts.write(why, signal);
      opts.progress(`interrupted (${why}); results so far in ${opts.artifacts}`);
    } catch (e) {
      opts.progress(`interrupted (${why}); ${e instanceof DmahilError ? e.describe() : (e as Error).message}`);
    }
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
