// Mocha fixtures: one guest per spec file, or one boot per file and a pristine restored guest per test;
// logs of a failed test collected from that test's guest and named in its error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import type { GuestSession } from '../guest/session.js';
import { startGuest, type StartGuestOptions } from './guest.js';
import { pristineGuests, type PristineGuests } from './pristine-guests.js';

/** {@link useGuest}'s options: those of startGuest, with artifactsDir optional. */
export interface UseGuestOptions extends Omit<StartGuestOptions, 'artifactsDir'> {
  /** Default: a new directory under DMAHIL_ARTIFACTS, else under the system's temp directory. */
  artifactsDir?: string;
  /**
   * 'per-file' (default): every test of the block shares the guest booted in `before`. 'per-test' (the
   * reference guest only): `before` boots once and saves the driver-loaded guest, and each test gets its
   * own guest restored from that state (proven by a verified 64-byte round trip), closed after the test.
   */
  restore?: 'per-file' | 'per-test';
}

/** The guest of a spec file: valid between the file's `before` and `after` hooks. */
export interface GuestFixture {
  /** The booted guest (with restore 'per-test', this test's own); throws when read outside the tests. */
  readonly session: GuestSession;
  /** Where the guests' logs go; a test's own guest logs to a folder under it (session.artifactsDir). */
  readonly artifactsDir: string;
  /**
   * Restore the guest to its saved state within a test (restore 'per-test' only): this test's guest is
   * closed and `session` becomes another one restored from the saved boot, checked as every restore is
   * (the edu re-attached, a verified 64-byte round trip). No boot: a restore takes well under a second
   * under TCG. When the snapshot could not be made or restored it is the reused booted guest again, with
   * the note `useGuest: this test's guest is not a pristine restore: <why>` on stderr. With restore
   * 'per-file' (nothing saved) it throws a UsageError.
   */
  restore(): Promise<GuestSession>;
}

/**
 * Boot one guest for the spec file (or `describe` block) it is called in: mocha `before` starts it,
 * `after` closes it, and after each failed test the guest's logs (driver log, dmesg, serial log) are
 * collected and its artifacts folder is named in the test's error. Call it at the top of a `describe`.
 * With `restore: 'per-test'` (reference guest) each test gets a pristine guest restored from the boot,
 * and `guest.restore()` restores it again within a test.
 *
 * @example
 * describe('my driver', function () {
 *   this.timeout(600_000);
 *   const guest = useGuest({ profile: 'linux', restore: 'per-test' });
 *   it('round trip', async () => {
 *     const v = await runScenario(guest.session, { name: 'rt', scenario: makeScenario({ direction: 'round-trip', size: 4096 }) });
 *     expect(outcome(v), v.summary).to.equal('ok');
 *   });
 * });
 */
export function useGuest(opts: UseGuestOptions): GuestFixture {
  const { restore = 'per-file', ...start } = opts;
  if (restore !== 'per-file' && restore !== 'per-test') throw new UsageError(`useGuest: restore ${JSON.stringify(restore)} is not 'per-file' or 'per-test'`, { hint: "use restore: 'per-test' for a pristine guest per test, or leave it out for one guest per file" });
  // Refused when the spec file loads, before anything boots: only the reference guest can be saved.
  if (restore === 'per-test' && opts.profile !== 'linux') {
    throw new UsageError(`useGuest: restore 'per-test' needs a snapshot of the booted guest, and only the reference guest (profile 'linux') has snapshots, not a Windows golden image`, {
      hint: "leave restore out for a Windows guest (one guest per file), or call useGuest in each describe block for a fresh boot per block",
    });
  }
  const variantId = typeof opts.variant === 'object' ? opts.variant.id : (opts.variant ?? 'direct');
  const artifactsDir =
    opts.artifactsDir ?? path.join(process.env.DMAHIL_ARTIFACTS ?? path.join(os.tmpdir(), 'dmahil-artifacts'), `${new Date().toISOString().replace(/[:.]/g, '-')}-${opts.profile}-${variantId}-${process.pid}`);
  let session: GuestSession | undefined;
  let pristine: PristineGuests | undefined;
  before(async function () {
    this.timeout(Math.max(this.timeout(), (opts.bootTimeoutMs ?? 120_000) + 600_000));
    fs.mkdirSync(artifactsDir, { recursive: true });
    if (restore === 'per-file') {
      session = await startGuest({ ...start, artifactsDir });
      return;
    }
    // The boot and the save belong to the file, not to its first test: that test gets the first restore.
    pristine = pristineGuests({ ...start, artifactsDir });
    session = await pristine.next();
  });
  beforeEach(async function () {
    if (!pristine) return;
    session ??= await pristine.next();
    const why = pristine.notPristine(session);
    if (why) process.stderr.write(`      useGuest: this test's guest is not a pristine restore: ${why}\n`);
  });
  afterEach(async function () {
    const test = this.currentTest;
    const failed = test?.state === 'failed';
    if (session && test && failed) {
      await session.collectLogs().catch(() => undefined);
      // This test's guest: with restore 'per-test' a folder of its own under artifactsDir.
      const note = `guest artifacts (logs, dmesg, serial): ${session.artifactsDir}`;
      // Beside the failure as it happens, and in the error where the reporter keeps one.
      process.stderr.write(`      ${note}\n`);
      if (test.err) test.err.message = `${test.err.message}\n${note}`;
      (test as unknown as { artifacts?: string }).artifacts = session.artifactsDir;
    }
    if (pristine && session) {
      const used = session;
      session = undefined;
      await pristine.done(used, test?.fullTitle() ?? 'test', failed);
    }
  });
  after(async () => {
    const s = session;
    session = undefined;
    await s?.close();
    await pristine?.close();
  });
  return {
    get session(): GuestSession {
      if (!session) throw new Error('useGuest: no guest here (read guest.session inside a test, after the before hook booted it)');
      return session;
    },
    artifactsDir,
    async restore(): Promise<GuestSession> {
      if (restore !== 'per-test') {
        throw new UsageError("useGuest: guest.restore() needs a saved guest, and restore 'per-file' saves none", { hint: "use useGuest({ ..., restore: 'per-test' }) (the reference guest): one boot, saved, and a restore per test and per guest.restore()" });
      }
      if (!pristine || !session) throw new Error('useGuest: no guest to restore here (call guest.restore() inside a test, after the before hook booted it)');
      const used = session;
      session = undefined;
      await pristine.done(used, 'guest.restore()', false);
      const next = await pristine.next();
      session = next;
      const why = pristine.notPristine(next);
      if (why) process.stderr.write(`      useGuest: this test's guest is not a pristine restore: ${why}\n`);
      return next;
    },
  };
}
