// Guest RAM read through QMP pmemsave: QEMU copies the range into a file in the private run directory,
// the harness reads it back and deletes it. Slow (ms per 4 KiB, ~150 MB/s) and it reads through the
// system address space, so the bounds check is what keeps it away from MMIO.

import fsp from 'node:fs/promises';
import path from 'node:path';
import { hex, isGuestRam, mapRange, type RamLayout } from './address-map.js';
import { GuestMemoryError } from './errors.js';
import type { GuestMemory } from './guest-memory.js';

/** The one QmpClient method this reader uses. */
export interface QmpExecutor {
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<T>;
}

let counter = 0;

export class PmemsaveMemory implements GuestMemory {
  readonly kind = 'pmemsave' as const;
  private closed = false;

  constructor(
    private readonly qmp: QmpExecutor,
    readonly layout: RamLayout,
    private readonly scratchDir: string,
  ) {}

  get ramBytes(): number {
    return this.layout.ramBytes;
  }

  async read(gpa: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readInto(gpa, out);
    return out;
  }

  async readInto(gpa: number, out: Buffer): Promise<void> {
    const length = out.length;
    if (this.closed) throw new GuestMemoryError('guest memory reader is closed');
    mapRange(this.layout, gpa, length); // throws unless wholly RAM; pmemsave itself would read MMIO
    const file = path.join(this.scratchDir, `pmemsave-${process.pid}-${++counter}.bin`);
    // ~100-180 MB/s measured (guest notes §6); allow 20 MB/s plus a fixed margin.
    const timeoutMs = 10_000 + Math.ceil(length / 20_000);
    try {
      await this.qmp.execute('pmemsave', { val: gpa, size: length, filename: file }, { timeoutMs });
      const handle = await fsp.open(file, 'r');
      try {
        const { size } = await handle.stat();
        if (size !== length) throw new GuestMemoryError(`pmemsave of ${hex(gpa)}+${length} produced ${size} bytes`);
        for (let done = 0; done < length; ) done += (await handle.read(out, done, length - done, done)).bytesRead;
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (err instanceof GuestMemoryError) throw err;
      throw new GuestMemoryError(`pmemsave of ${hex(gpa)}+${length} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      await fsp.rm(file, { force: true }).catch(() => {});
    }
  }

  contains(gpa: number, length: number): boolean {
    return isGuestRam(this.layout, gpa, length);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
