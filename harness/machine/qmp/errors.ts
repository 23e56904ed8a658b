// Typed QMP failures. Each names the command it belongs to, so a caller's log line says what was asked.

import { DmahilError, type ErrorContext } from '../../errors.js';

/** QEMU answered a command with {"error": {class, desc}}. */
export class QmpError extends DmahilError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
    context: ErrorContext = {},
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`, context);
  }
}

/** No answer within the command's timeout. The connection stays usable. */
export class QmpTimeoutError extends DmahilError {
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
    context: ErrorContext = {},
  ) {
    super(`QMP ${command} got no answer within ${timeoutMs} ms`, context);
  }
}

/** The connection closed (QEMU exited, or close() was called) while a command or wait was pending. */
export class QmpClosedError extends DmahilError {
  constructor(
    readonly command: string | undefined,
    reason: string,
    context: ErrorContext = {},
  ) {
    super(command ? `QMP connection closed before ${command} was answered: ${reason}` : `QMP connection closed: ${reason}`, context);
  }
}

/** QEMU sent something that is not QMP (bad JSON, no greeting, unknown reply id). */
export class QmpProtocolError extends DmahilError {}
