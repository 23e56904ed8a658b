// Where run-suite gets a guest for each scenario. The simple source boots one guest per variant and
// reuses it; a guest that broke (QEMU died, SSH gone, a hang) is closed and the next scenario gets a
// fresh boot. A snapshot-based source restores a pristine guest per scenario instead.
import type { GuestSession } from '../guest/session.js';
import type { GuestVariant } from './catalog.js';
import type { Verdict } from './verdict.js';

export interface SessionSource {
  /** A guest ready for the next scenario of this variant. */
  acquire(variant: GuestVariant): Promise<GuestSession>;
  /** The scenario is over. After an error the guest is never handed out again. */
  release(session: GuestSession, verdict: Verdict): Promise<void>;
  /** Close every guest still open. */
  close(): Promise<void>;
  /** For a guest this source handed out: undefined when it is a pristine restore, else why it is not. */
  notPristine(session: GuestSession): string | undefined;
}

export type StartSession = (variant: GuestVariant) => Promise<GuestSession>;

/** One booted guest per variant, reused while healthy. */
export class ReusingSessionSource implements SessionSource {
  private readonly open = new Map<GuestVariant['id'], GuestSession>();

  constructor(
    private readonly start: StartSession,
    private readonly opts: {
      /** Asked after each scenario: true hands the guest over to the caller (--keep), never closed here. */
      keep?: (session: GuestSession, verdict: Verdict) => boolean;
    } = {},
  ) {}

  async acquire(variant: GuestVariant): Promise<GuestSession> {
    const existing = this.open.get(variant.id);
    if (existing?.isHealthy()) return existing;
    if (existing) await this.drop(variant.id, existing);
    const session = await this.start(variant);
    this.open.set(variant.id, session);
    return session;
  }

  async release(session: GuestSession, verdict: Verdict): Promise<void> {
    if (this.opts.keep?.(session, verdict)) {
      for (const [id, s] of this.open) if (s === session) this.open.delete(id); // the next scenario boots its own
      return;
    }
    if (verdict.status !== 'error' && session.isHealthy()) return;
    // A hung or panicked guest cannot answer for its logs (its serial console is in the artifacts).
    const logs = verdict.trouble !== 'hang' && verdict.trouble !== 'guest-panic';
    for (const [id, s] of this.open) if (s === session) await this.drop(id, s, logs);
  }

  async close(): Promise<void> {
    for (const [id, s] of [...this.open]) await this.drop(id, s);
  }

  notPristine(): string {
    return 'a booted guest reused between scenarios';
  }

  private async drop(id: GuestVariant['id'], s: GuestSession, collectLogs = true): Promise<void> {
    this.open.delete(id);
    if (collectLogs) await s.collectLogs().catch(() => undefined);
    await s.close().catch(() => undefined);
  }
}
