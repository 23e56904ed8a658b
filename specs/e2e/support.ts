// Boot the reference guest for a spec, with artifacts kept under reports/e2e/<name>.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** Time for a scenario: 100 ms of virtual time per edu operation, both legs, with room for TCG. */
export function scenarioTimeoutMs(size: number): number {
  return 60_000 + Math.ceil(size / 4095) * 2 * 400;
}
