// Reading guest-physical memory from the host. Two readers behind one interface: the shared RAM file
// (pread at the mapped offset; µs per read) and QMP pmemsave (QEMU writes a file; ms per read), the
// fallback when the machine has no shared file. Both bounds-check every read against the RAM layout.

import type { RamLayout } from './address-map.js';
import { GuestMemoryError } from './errors.js';
import { SharedFileMemory } from './shared-file-memory.js';
import { PmemsaveMemory, type QmpExecutor } from './pmemsave-memory.js';

export type GuestMemoryKind = 'shared-file' | 'pmemsave';

export interface GuestMemory {
  readonly kind: GuestMemoryKind;
  readonly ramBytes: number;
  readonly layout: RamLayout;
  /**
   * Bytes [gpa, gpa + length) of guest-physical memory, as they are now. Not atomic against a running
   * guest or device. Rejects with GuestRangeError, before touching anything, unless the range is wholly RAM.
   */
  read(gpa: number, length: number): Promise<Buffer>;
  /**
   * Like read, into a caller's buffer (target.length bytes). For large or repeated reads: a fresh
   * multi-MiB buffer costs more in page faults than the read itself.
   */
  readInto(gpa: number, target: Buffer): Promise<void>;
  /** Whether a read of [gpa, gpa + length) would be allowed: the range lies wholly in guest RAM. */
  contains(gpa: number, length: number): boolean;
  /** Later reads reject. Does not affect the machine. */
  close(): Promise<void>;
}

/** What openGuestMemory needs from a machine; Machine satisfies it. */
export interface GuestMemoryHost {
  readonly qmp: QmpExecutor;
  readonly ramFile: string | undefined;
  readonly memoryLayout: RamLayout;
  /** Private directory QEMU can write pmemsave output to. */
  readonly runDir: string;
}

export interface OpenGuestMemoryOptions {
  /** Force a reader; default: the shared file when the machine has one, else pmemsave. */
  kind?: GuestMemoryKind;
}

export async function openGuestMemory(host: GuestMemoryHost, options: OpenGuestMemoryOptions = {}): Promise<GuestMemory> {
  const kind = options.kind ?? (host.ramFile !== undefined ? 'shared-file' : 'pmemsave');
  if (kind === 'shared-file') {
    if (host.ramFile === undefined) {
      throw new GuestMemoryError('this machine has no shared RAM file', {
        hint: "launch it with sharedRam: true (the default), or use kind 'pmemsave'",
      });
    }
    return SharedFileMemory.open(host.ramFile, host.memoryLayout);
  }
  return new PmemsaveMemory(host.qmp, host.memoryLayout, host.runDir);
}
