import { DmahilError } from '../../errors.js';

/** The guest never offered an SSH login in time. */
export class GuestNotReadyError extends DmahilError {}

/** A command in the guest ran past its time limit; its channel was closed. */
export class GuestCommandTimeoutError extends DmahilError {}

/** The SSH connection broke (guest crashed, QEMU died, network gone). */
export class GuestConnectionError extends DmahilError {}
