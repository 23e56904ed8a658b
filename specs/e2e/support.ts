// Boot the reference guest for a spec, with artifacts kept under reports/e2e/<name>.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Scenario } from '../../harness/contract/scenario.js';
import { scenarioDeadlineMs } from '../../harness/dma/run-scenario.js';
import { startLinuxGuest, type LinuxGuestOptions, type LinuxSession } from '../../harness/guest/linux/profile.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const cliPath = path.join(repoRoot, 'dist/harness/cli/main.js');

/** Boot plus image and driver build on a cold cache: generous, so only a real hang fails it. */
export const BOOT_TIMEOUT_MS = 10 * 60 * 1000;

export function startReferenceGuest(name: string, forceBounce: boolean, extra: Partial<LinuxGuestOptions> = {}): Promise<LinuxSession> {
  return startLinuxGuest({
    repoRoot,
    cacheDir: path.join(repoRoot, '.cache'),
    artifactsDir: path.join(repoRoot, 'reports', 'e2e', name),
    forceBounce,
    accel: 'auto',
    bootTimeoutMs: 180_000,
    ...extra,
  });
}

/** A spec's time limit: the harness's own scenario deadline plus room, so a hang is caught by the harness, with evidence, not by mocha. */
export function scenarioTimeoutMs(s: Scenario): number {
  return scenarioDeadlineMs(s) + 30_000;
}
