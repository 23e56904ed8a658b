// Guest RAM read straight from QEMU's shared memory-backend-file: a live view, no copy inside QEMU.
// The file is opened per read, so a forgotten close() cannot pin a multi-GiB tmpfs file after shutdown.

import fsp from 'node:fs/promises';
import { hex, isGuestRam, mapRange, type RamLayout } from './address-map.js';
import { GuestMemoryError } from './errors.js';
import type { GuestMemory } from './guest-memory.js';

export class SharedFileMemory implements GuestMemory {
  readonly kind = 'shared-file' as const;
  private closed = false;

  private constructor(
    readonly file: string,
    readonly layout: RamLayout,
  ) {}

  get ramBytes(): number {
    return this.layout.ramBytes;
  }

  /** Checks the file is there and exactly as large as the layout's RAM (else the offsets would be wrong). */
  static async open(file: string, layout: RamLayout): Promise<SharedFileMemory> {
    let size: number;
    try {
      size = (await fsp.stat(file)).size;
    } catch (err) {
      throw gone(file, err);
    }
    if (size !== layout.ramBytes) {
      throw new GuestMemoryError(`guest RAM file ${file} is ${size} bytes, but the machine has ${layout.ramBytes} bytes of RAM`, {
        hint: 'the file is not this machine’s RAM backend; open guest memory from the Machine that owns it',
      });
    }
    return new SharedFileMemory(file, layout);
  }

  async read(gpa: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readInto(gpa, out);
    return out;
  }

  async readInto(gpa: number, out: Buffer): Promise<void> {
    if (this.closed) throw new GuestMemoryError('guest memory reader is closed');
    const segments = mapRange(this.layout, gpa, out.length);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(this.file, 'r');
    } catch (err) {
      throw gone(this.file, err);
    }
    try {
      for (const s of segments) {
        let done = 0;
        while (done < s.length) {
          const { bytesRead } = await handle.read(out, s.rangeOffset + done, s.length - done, s.fileOffset + done);
          if (bytesRead === 0) {
            throw new GuestMemoryError(`guest RAM file ${this.file} ended at offset ${hex(s.fileOffset + done)} while reading GPA ${hex(s.gpa + done)}`);
          }
          done += bytesRead;
        }
      }
    } finally {
      await handle.close();
    }
  }

  contains(gpa: number, length: number): boolean {
    return isGuestRam(this.layout, gpa, length);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

function gone(file: string, err: unknown): GuestMemoryError {
  return new GuestMemoryError(`guest RAM file ${file} cannot be opened (${(err as NodeJS.ErrnoException).code ?? err})`, {
    hint: 'the machine was probably shut down, which removes its run directory; read before shutdown()',
    cause: err,
  });
}
