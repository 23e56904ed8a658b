import { DmahilError, type ErrorContext } from '../errors.js';

/** A guest-physical range that is not wholly inside guest RAM, or is not a valid range at all. */
export class GuestRangeError extends DmahilError {
  constructor(
    readonly gpa: number,
    readonly length: number,
    message: string,
    context: ErrorContext = {},
  ) {
    super(message, context);
  }
}

/** Guest memory could not be read (RAM file gone or wrong size, pmemsave failed). */
export class GuestMemoryError extends DmahilError {}
