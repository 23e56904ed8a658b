// A SessionSource that hands every scenario a pristine guest: boot each variant once, save it
// (harness/snapshot), and restore a fresh QEMU from that state per scenario. Each restore is proven
// before use: the edu is re-attached and checked (LinuxSession.reattachDevice) and a small round trip is
// verified byte for byte from the host. Restores are independent QEMUs (own run dir, RAM file copy,
// port, QMP socket), so several can run at once (`concurrent`).
//
// Fallback: when the snapshot cannot be made or a restore fails for a reason that is not the scenario's
// (corrupt or mismatched state, no room), the snapshot is discarded and the variant continues on a
// booted guest reused between scenarios (ReusingSessionSource) — slower, never less checked.
import type { GuestSession } from '../guest/session.js';
import type { LinuxSession } from '../guest/linux/profile.js';
import { saveSnapshot, type Snapshot } from '../snapshot/snapshot.js';
import { DmahilError, DriverLoadError } from '../errors.js';
import { makeScenario } from '../contract/scenario.js';
import type { GuestVariant } from './catalog.js';
import { runScenario } from './run-scenario.js';
import { ReusingSessionSource, type SessionSource } from './session-source.js';
import type { Verdict } from './verdict.js';

export interface SnapshotSourceOptions {
  /** Cold-boot a driver-loaded guest (also used by the fallback). */
  boot: (variant: GuestVariant) => Promise<LinuxSession>;
  /** Restore a guest from the variant's snapshot; `n` numbers the restores (artifact folders). */
  restore: (snapshot: Snapshot, variant: GuestVariant, n: number) => Promise<LinuxSession>;
  /** Identifies what a variant's boot is (image, variant, icount): part of the snapshot's manifest. */
  key: (variant: GuestVariant) => string;
  /** Where snapshots go (default: /dev/shm when it has room). */
  base?: string;
  onProgress?: (message: string) => void;
  /** Test hook: called on each snapshot right after it is saved (specs corrupt it here). */
  afterSave?: (snapshot: Snapshot) => Promise<void>;
}

/** The round trip every restored guest must pass before it gets a scenario. */
export const RESTORE_PROBE = { name: 'restore probe: 64-byte round trip', scenario: makeScenario({ size: 64, seed: 0x5eed }) };

/** Restores tried in a row before a variant gives up its snapshot. */
const RESTORE_ATTEMPTS = 2;

export class SnapshotSessionSource implements SessionSource {
  /** Several acquire() calls may be outstanding at once: every guest is its own QEMU. */
  readonly concurrent = true;
  private readonly snapshots = new Map<GuestVariant['id'], Promise<Snapshot | undefined>>();
  /** Fallback guests in use, with the function that lets the next worker have the variant's guest. */
  private readonly fellBack = new Map<GuestSession, () => void>();
  /** Why each fallback guest handed out is one (the variant's fallback reason when it was handed out). */
  private readonly fellBackWhy = new Map<GuestSession, string>();
  /** The reused fallback guest serves one scenario at a time: a queue per variant. */
  private readonly fallbackQueue = new Map<GuestVariant['id'], Promise<void>>();
  private readonly fallback: ReusingSessionSource;
  private readonly restored = new Set<GuestSession>();
  private restores = 0;
  /** Why a variant runs on the fallback, for the report. */
  readonly fallbackReasons = new Map<GuestVariant['id'], string>();

  constructor(private readonly opts: SnapshotSourceOptions) {
    this.fallback = new ReusingSessionSource((v) => opts.boot(v));
  }

  async acquire(variant: GuestVariant): Promise<GuestSession> {
    // A restore that fails once may be the host's (a port taken, a slow moment): one more try before the
    // variant gives up its snapshot for good.
    let first: string | undefined;
    for (let attempt = 1; attempt <= RESTORE_ATTEMPTS; attempt++) {
      const snapshot = await this.snapshotFor(variant);
      if (!snapshot) break;
      const n = ++this.restores;
      let session: LinuxSession | undefined;
      try {
        session = await this.opts.restore(snapshot, variant, n);
        const probe = await runScenario(session, RESTORE_PROBE);
        if (probe.status !== 'pass') throw new DmahilError(`the restored guest failed its verified round trip: ${probe.summary}`);
        this.restored.add(session);
        return session;
      } catch (e) {
        await session?.close().catch(() => undefined);
        const why = `restore ${n} failed: ${e instanceof DmahilError ? e.describe() : (e as Error).message}`;
        if (attempt < RESTORE_ATTEMPTS) this.opts.onProgress?.(`${variant.id}: ${why}; trying another restore`);
        else this.giveUp(variant, first ? `${first}; then ${why}` : why);
        first ??= why;
      }
    }
    return this.fromFallback(variant);
  }

  notPristine(session: GuestSession): string | undefined {
    if (this.restored.has(session)) return undefined;
    return `a booted guest reused between scenarios (${this.fellBackWhy.get(session) ?? 'not from the snapshot'})`;
  }

  async release(session: GuestSession, verdict: Verdict): Promise<void> {
    const unlock = this.fellBack.get(session);
    if (unlock) {
      this.fellBack.delete(session);
      this.fellBackWhy.delete(session);
      try {
        await this.fallback.release(session, verdict);
      } finally {
        unlock();
      }
      return;
    }
    this.restored.delete(session);
    if (verdict.status === 'error') await session.collectLogs().catch(() => undefined);
    await session.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const s of [...this.restored]) await s.close().catch(() => undefined);
    this.restored.clear();
    await this.fallback.close();
    for (const p of this.snapshots.values()) await (await p.catch(() => undefined))?.discard();
    this.snapshots.clear();
  }

  private snapshotFor(variant: GuestVariant): Promise<Snapshot | undefined> {
    let p = this.snapshots.get(variant.id);
    if (!p) {
      p = this.save(variant);
      this.snapshots.set(variant.id, p);
    }
    return p;
  }

  private async save(variant: GuestVariant): Promise<Snapshot | undefined> {
    let booted: LinuxSession | undefined;
    try {
      booted = await this.opts.boot(variant);
      this.opts.onProgress?.(`saving the booted ${variant.id} guest; every scenario starts from this state`);
      const snapshot = await saveSnapshot(booted, { key: this.opts.key(variant), base: this.opts.base });
      await this.opts.afterSave?.(snapshot);
      return snapshot;
    } catch (e) {
      // A driver that does not load fails the fallback's boot the same way: the variant does not start, once.
      if (e instanceof DriverLoadError && !booted) throw e;
      this.fallbackReasons.set(variant.id, `snapshot failed: ${e instanceof DmahilError ? e.describe() : (e as Error).message}`);
      this.opts.onProgress?.(`${variant.id}: cannot snapshot (${this.fallbackReasons.get(variant.id)}); booting a guest reused between scenarios instead`);
      return undefined;
    } finally {
      await booted?.close().catch(() => undefined);
    }
  }

  /** Stop using the variant's snapshot: later scenarios get the fallback. */
  private giveUp(variant: GuestVariant, why: string): void {
    this.fallbackReasons.set(variant.id, why);
    this.opts.onProgress?.(`${variant.id}: ${why}; falling back to a booted guest reused between scenarios`);
    const p = this.snapshots.get(variant.id);
    this.snapshots.set(variant.id, Promise.resolve(undefined));
    void p?.then((s) => s?.discard()).catch(() => undefined);
  }

  private async fromFallback(variant: GuestVariant): Promise<GuestSession> {
    const previous = this.fallbackQueue.get(variant.id) ?? Promise.resolve();
    let unlock!: () => void;
    this.fallbackQueue.set(variant.id, new Promise<void>((resolve) => (unlock = resolve)));
    await previous;
    try {
      const s = await this.fallback.acquire(variant);
      this.fellBack.set(s, unlock);
      this.fellBackWhy.set(s, this.fallbackReasons.get(variant.id) ?? 'no snapshot');
      return s;
    } catch (e) {
      unlock();
      throw e;
    }
  }
}
