// Mocha fixtures: one guest per spec file, its logs attached to each failed test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GuestSession } from '../guest/session.js';
import { startGuest, type StartGuestOptions } from './guest.js';

/** {@link useGuest}'s options: those of startGuest, with artifactsDir optional. */
export interface UseGuestOptions extends Omit<StartGuestOptions, 'artifactsDir'> {
  /** Default: a new directory under DMAHIL_ARTIFACTS, else under the system's temp directory. */
  artifactsDir?: string;
}

/** The guest of a spec file: valid between the file's `before` and `after` hooks. */
export interface GuestFixture {
  /** The booted guest; throws when read outside the tests (before boot or after close). */
  readonly session: GuestSession;
  /** Where the guest's logs go, and where a failed test's logs are collected. */
  readonly artifactsDir: string;
}

/**
 * Boot one guest for the spec file (or `describe` block) it is called in: mocha `before` starts it,
 * `after` closes it, and after each failed test the guest's logs (driver log, dmesg, serial log) are
 * collected and the artifacts folder is named in the test's error. Call it at the top of a `describe`.
 *
 * @example
 * describe('my driver', function () {
 *   this.timeout(600_000);
 *   const guest = useGuest({ profile: 'linux' });
 *   it('round trip', async () => {
 *     const v = await runScenario(guest.session, { name: 'rt', scenario: makeScenario({ direction: 'round-trip', size: 4096 }) });
 *     expect(outcome(v), v.summary).to.equal('ok');
 *   });
 * });
 */
export function useGuest(opts: UseGuestOptions): GuestFixture {
  let session: GuestSession | undefined;
  const artifactsDir =
    opts.artifactsDir ?? path.join(process.env.DMAHIL_ARTIFACTS ?? path.join(os.tmpdir(), 'dmahil-artifacts'), `${new Date().toISOString().replace(/[:.]/g, '-')}-${opts.profile}-${opts.variant ?? 'direct'}-${process.pid}`);
  before(async function () {
    this.timeout(Math.max(this.timeout(), (opts.bootTimeoutMs ?? 120_000) + 600_000));
    fs.mkdirSync(artifactsDir, { recursive: true });
    session = await startGuest({ ...opts, artifactsDir });
  });
  afterEach(async function () {
    const test = this.currentTest;
    if (!session || !test || test.state !== 'failed') return;
    await session.collectLogs().catch(() => undefined);
    const note = `guest artifacts (logs, dmesg, serial): ${artifactsDir}`;
    // Beside the failure as it happens, and in the error where the reporter keeps one.
    process.stderr.write(`      ${note}\n`);
    if (test.err) test.err.message = `${test.err.message}\n${note}`;
    (test as unknown as { artifacts?: string }).artifacts = artifactsDir;
  });
  after(async () => {
    const s = session;
    session = undefined;
    await s?.close();
  });
  return {
    get session(): GuestSession {
      if (!session) throw new Error('useGuest: no guest here (read guest.session inside a test, after the before hook booted it)');
      return session;
    },
    artifactsDir,
  };
}
