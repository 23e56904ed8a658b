// Why a QEMU process ended, decided from what the harness saw: the exit status, its own shutdown request,
// QMP SHUTDOWN / GUEST_PANICKED events and QEMU's stderr. Pure, so every branch is unit-tested.

export type MachineExitCause =
  /** The harness asked (shutdown()), whichever step of quit → SIGTERM → SIGKILL ended it. */
  | 'requested'
  /** The guest powered off, or reset (-no-reboot turns a reset into an exit). */
  | 'guest-shutdown'
  /** pvpanic reported a guest kernel panic / bug check. */
  | 'guest-panic'
  /** A device model called hw_error() (edu range error) or QEMU otherwise aborted (SIGABRT). */
  | 'hardware-error'
  /** A signal the harness did not send: SIGKILL, SIGTERM, SIGINT, SIGHUP. */
  | 'killed'
  /** Anything else: a non-zero exit, SIGSEGV, or an unexplained exit. */
  | 'crashed';

export interface MachineExit {
  cause: MachineExitCause;
  /** Exit code, or null when a signal ended QEMU. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** One line for a report. */
  detail: string;
  /** Date.now() when the exit was seen. */
  at: number;
}

export interface ExitEvidence {
  code: number | null;
  signal: NodeJS.Signals | null;
  shutdownRequested: boolean;
  /** The `qemu: hardware error: ...` line, if one was printed. */
  hardwareError?: string;
  /** Data of the QMP SHUTDOWN event, if one arrived. */
  shutdownEvent?: { guest?: boolean; reason?: string };
  guestPanicked: boolean;
  /** From QEMU's "terminating on signal N from pid P". */
  terminatedBy?: { signal: number; fromPid?: number };
}

const EXTERNAL_KILL_SIGNALS: ReadonlySet<string> = new Set(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP']);

export function classifyExit(e: ExitEvidence): Pick<MachineExit, 'cause' | 'detail'> {
  const status = e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
  if (e.hardwareError !== undefined || e.signal === 'SIGABRT') {
    return {
      cause: 'hardware-error',
      detail: e.hardwareError ?? `QEMU aborted (${status}) without a hardware-error message; see qemu-stderr.log`,
    };
  }
  // Before 'requested': a guest paused on its panic (-action panic=pause) is shut down by the harness.
  if (e.guestPanicked || e.shutdownEvent?.reason === 'guest-panic') {
    return { cause: 'guest-panic', detail: `the guest panicked (pvpanic), QEMU ended with ${status}` };
  }
  if (e.shutdownRequested) return { cause: 'requested', detail: `shutdown requested (${status})` };
  if (e.shutdownEvent?.guest) {
    return { cause: 'guest-shutdown', detail: `the guest shut down (${e.shutdownEvent.reason ?? 'unknown reason'}), ${status}` };
  }
  if (e.terminatedBy || (e.signal && EXTERNAL_KILL_SIGNALS.has(e.signal)) || e.shutdownEvent?.reason === 'host-signal') {
    const by = e.terminatedBy?.fromPid !== undefined ? ` from pid ${e.terminatedBy.fromPid}` : '';
    const sig = e.terminatedBy ? `signal ${e.terminatedBy.signal}` : status;
    return { cause: 'killed', detail: `QEMU was killed by ${sig}${by}, not by the harness` };
  }
  return { cause: 'crashed', detail: `QEMU exited unexpectedly (${status}); see qemu-stderr.log` };
}
