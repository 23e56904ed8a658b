// Read a reported buffer from guest RAM: through the CPU's pages (what the driver's client sees) or
// through the addresses the device was given (a bounce or map-register page when they differ).
import type { BufferReport } from '../contract/result.js';
import { PAGE_SIZE } from '../contract/scenario.js';

/** What the DMA layer needs from guest memory. */
export interface MemoryReader {
  read(gpa: number, length: number): Promise<Buffer>;
  contains(gpa: number, length: number): boolean;
}

/** The data bytes as the CPU sees them, page by page, contiguous pages read in one go. */
export async function readThroughCpu(memory: Pick<MemoryReader, 'read'>, b: BufferReport): Promise<Buffer> {
  const parts: Buffer[] = [];
  let remaining = b.length;
  let i = 0;
  let inPage = b.offset;
  while (remaining > 0) {
    let run = 1;
    while (i + run < b.pages.length && b.pages[i + run] === b.pages[i]! + run * PAGE_SIZE) run++;
    const bytes = Math.min(remaining, run * PAGE_SIZE - inPage);
    parts.push(await memory.read(b.pages[i]! + inPage, bytes));
    remaining -= bytes;
    i += run;
    inPage = 0;
  }
  return Buffer.concat(parts);
}

/**
 * The data bytes at the device addresses, or null when any of them is not guest RAM (an address beyond
 * the device's reach) or they are IOVAs: an IOVA such as 0xffff000 is often a RAM address too, but of
 * another page than the one the IOMMU translates it to.
 */
export async function readThroughDevice(memory: MemoryReader, b: BufferReport): Promise<Buffer | null> {
  if (b.translated) return null;
  if (!b.segments.every((s) => memory.contains(s.device, s.length))) return null;
  const parts = await Promise.all(b.segments.map((s) => memory.read(s.device, s.length)));
  return Buffer.concat(parts);
}

/** The CPU physical address of a data offset. */
export function cpuAddress(b: BufferReport, offset: number): number {
  const at = b.offset + offset;
  return b.pages[Math.floor(at / PAGE_SIZE)]! + (at % PAGE_SIZE);
}
