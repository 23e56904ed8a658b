// useGuest's restore 'per-test': one boot, saved, and a guest restored from it for each test. It is the
// SnapshotSessionSource `dmahil run` uses (saveSnapshot, restoreLinuxGuest, the verified probe round trip
// and the fallback), so the library has no restore path of its own. The reference guest only.
import path from 'node:path';
import { DEFAULT_SCENARIO } from '../contract/scenario.js';
import { SnapshotSessionSource } from '../dma/snapshot-session-source.js';
import type { Verdict } from '../dma/verdict.js';
import { restoreLinuxGuest, type LinuxSession } from '../guest/linux/profile.js';
import type { GuestSession } from '../guest/session.js';
import { guestVariant, startGuest, type StartGuestOptions } from './guest.js';

export interface PristineGuests {
  /** A guest restored from the saved boot; the first call boots the guest and saves it. */
  next(): Promise<GuestSession>;
  /** The test is over: its guest is closed (a fallback guest is kept unless the test failed). */
  done(session: GuestSession, testName: string, failed: boolean): Promise<void>;
  /** Undefined for a pristine restore, else why the guest is not one (the snapshot failed: a reused boot). */
  notPristine(session: GuestSession): string | undefined;
  close(): Promise<void>;
}

export function pristineGuests(opts: StartGuestOptions): PristineGuests {
  const variant = guestVariant(opts.variant);
  let boots = 0;
  const source = new SnapshotSessionSource({
    // A later boot (the fallback) logs beside the first one, never over its evidence.
    boot: () => startGuest({ ...opts, variant, artifactsDir: path.join(opts.artifactsDir, ++boots === 1 ? 'boot' : `boot-${boots}`) }) as Promise<LinuxSession>,
    restore: (snapshot, _v, n) =>
      restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(opts.artifactsDir, `restore-${n}`), readyTimeoutMs: opts.bootTimeoutMs ?? 120_000, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) }),
    key: () => `library linux ${variant.id} ${JSON.stringify({ machine: variant.machine ?? null, accel: opts.accel ?? 'auto', driver: opts.driver ?? null, qemu: opts.qemuBinary ?? null })}`,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  return {
    next: () => source.acquire(variant),
    // The source releases by a scenario's verdict; here the test is the scenario, and only its status counts.
    done: (session, testName, failed) => source.release(session, testVerdict(testName, failed)),
    notPristine: (session) => source.notPristine(session),
    close: () => source.close(),
  };
}

function testVerdict(name: string, failed: boolean): Verdict {
  return {
    name,
    scenario: DEFAULT_SCENARIO,
    expectSeed: 0,
    status: failed ? 'fail' : 'pass',
    summary: failed ? 'the test failed' : 'the test passed',
    findings: [],
    mismatch: null,
    durationMs: 0,
  };
}
