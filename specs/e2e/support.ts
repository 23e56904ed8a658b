// Boot the reference guest for a spec, with artifacts kept under reports/e2e/<name>, and reach it over SSH.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Scenario } from '../../harness/contract/scenario.js';
import { scenarioDeadlineMs } from '../../harness/dma/run-scenario.js';
import { startLinuxGuest, type LinuxGuestOptions, type LinuxSession } from '../../harness/guest/linux/profile.js';
import { SshChannel, type ExecResult } from '../../harness/guest/channel/ssh-channel.js';

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

/** A second SSH connection to a session's guest, as a person would open one, with the session's own key. */
export function openGuestShell(s: LinuxSession): Promise<SshChannel> {
  const t = s.debugTarget().ssh;
  const privateKey = t.privateKey ?? fs.readFileSync(t.privateKeyFile, 'utf8');
  // login, not connect: it tries again when dropbear hangs up mid-login (its auth timer under a loaded TCG guest),
  // or on every new connection for a while (bookworm CI: 30 s and more, with 5 logins unfinished in the guest?).
  return SshChannel.login({ host: t.host, port: t.port, username: t.user, privateKey, hostPublicKey: t.hostPublicKey }, { timeoutMs: 90_000 });
}

/** One command in a session's guest, over a connection of its own (the session's channels stay untouched). */
export async function guestExec(s: LinuxSession, command: string, timeoutMs = 10_000): Promise<ExecResult> {
  const ssh = await openGuestShell(s);
  try {
    return await ssh.exec(command, { timeoutMs });
  } finally {
    ssh.close();
  }
}
