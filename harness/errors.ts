// Every error dmahil raises on purpose is a DmahilError: a one-line message that names the cause,
// a hint that names the fix, and, where one exists, the log file to read.

export interface ErrorContext {
  /** What to do about it, in one sentence. */
  hint?: string;
  /** The file that holds the detail (serial log, QEMU stderr, ...). */
  logFile?: string;
  cause?: unknown;
}

export class DmahilError extends Error {
  readonly hint?: string;
  readonly logFile?: string;

  constructor(message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.hint = context.hint;
    this.logFile = context.logFile;
  }

  /** The one line a user sees: cause, fix, log. */
  describe(): string {
    const parts = [this.message];
    if (this.hint) parts.push(this.hint);
    if (this.logFile) parts.push(`see ${this.logFile}`);
    return parts.join(' — ');
  }
}

/** Bad input from the user: options, config, paths. */
export class UsageError extends DmahilError {}

/** Something the machine lacks: a package, a tool, a free port. */
export class EnvironmentError extends DmahilError {}

/** The driver under test did not load or bind in the guest: another boot of the same guest fails the same way. */
export class DriverLoadError extends DmahilError {}

/** What a guest reported does not hold up; nothing was read on its word. */
export class GuestContractError extends DmahilError {}

/** The guest stopped itself: a kernel panic or a bug check (the NT model's Driver Verifier-like rules). */
export class GuestPanicError extends DmahilError {}
