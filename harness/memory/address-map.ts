// Where guest RAM lives in guest-physical address space on x86 pc/q35, and where each byte sits in the
// RAM backing file. QEMU puts one RAM block in two aliases: file [0, below) at GPA 0 and file
// [below, below + above) at GPA 4 GiB (facts §5.4). Everything in between is the PCI/MMIO hole.

import { GuestRangeError } from './errors.js';

export type X86MachineType = 'q35' | 'pc';

const GiB = 1024 ** 3;
export const FOUR_GIB = 4 * GiB;

/**
 * The legacy VGA / option-ROM / BIOS window. The RAM file has bytes there, but CPU and device accesses
 * may hit VGA MMIO, ROM or PAM shadows instead, so neither reader can tell what the guest sees.
 */
export const LEGACY_WINDOW = { start: 0xa0000, end: 0x100000 } as const;

export interface RamRegion {
  /** First guest-physical address of the region. */
  gpa: number;
  size: number;
  /** Offset of `gpa` in the RAM backing file. */
  fileOffset: number;
}

export interface RamLayout {
  machineType: X86MachineType;
  ramBytes: number;
  /** RAM mapped below 4 GiB, at GPA 0 (includes the legacy window). */
  belowBytes: number;
  /** RAM mapped at `aboveStart`. */
  aboveBytes: number;
  aboveStart: number;
  /** Readable RAM, in GPA order, legacy window excluded. */
  regions: RamRegion[];
}

/** One piece of a range: contiguous in GPA and in the file. */
export interface RamSegment {
  gpa: number;
  length: number;
  fileOffset: number;
  /** Offset of this piece within the requested range. */
  rangeOffset: number;
}

/**
 * The low/high split QEMU 7.2 computes for a machine with `ramBytes` of RAM and default properties:
 * q35 (pc_q35.c): below 2.75 GiB all low; otherwise 2 GiB low. pc (pc_piix.c): below 3.5 GiB all low;
 * otherwise 3 GiB low. The rest starts at 4 GiB.
 */
export function ramLayout(machineType: X86MachineType, ramBytes: number): RamLayout {
  if (!Number.isSafeInteger(ramBytes) || ramBytes <= LEGACY_WINDOW.end) {
    throw new RangeError(`ramBytes must be an integer above 1 MiB (got ${ramBytes})`);
  }
  let lowmem: number;
  if (machineType === 'q35') {
    lowmem = ramBytes >= 0xb0000000 ? 0x80000000 : 0xb0000000;
  } else {
    lowmem = ramBytes >= 0xe0000000 ? 0xc0000000 : 0xe0000000;
  }
  const belowBytes = ramBytes >= lowmem ? lowmem : ramBytes;
  return layoutFromSplit(machineType, belowBytes, ramBytes - belowBytes);
}

/** A layout from explicit sizes, e.g. one read back from QEMU's `info mtree`. */
export function layoutFromSplit(
  machineType: X86MachineType,
  belowBytes: number,
  aboveBytes: number,
  aboveStart = FOUR_GIB,
): RamLayout {
  const regions: RamRegion[] = [];
  const lowEnd = belowBytes;
  if (lowEnd > LEGACY_WINDOW.start) {
    regions.push({ gpa: 0, size: LEGACY_WINDOW.start, fileOffset: 0 });
    if (lowEnd > LEGACY_WINDOW.end) {
      regions.push({ gpa: LEGACY_WINDOW.end, size: lowEnd - LEGACY_WINDOW.end, fileOffset: LEGACY_WINDOW.end });
    }
  } else if (lowEnd > 0) {
    regions.push({ gpa: 0, size: lowEnd, fileOffset: 0 });
  }
  if (aboveBytes > 0) regions.push({ gpa: aboveStart, size: aboveBytes, fileOffset: belowBytes });
  return { machineType, ramBytes: belowBytes + aboveBytes, belowBytes, aboveBytes, aboveStart, regions };
}

/**
 * Split [gpa, gpa + length) into pieces of readable RAM, or throw GuestRangeError naming the range and
 * the first byte that is not RAM (legacy window, PCI hole, or beyond the end of RAM).
 */
export function mapRange(layout: RamLayout, gpa: number, length: number): RamSegment[] {
  const shown = `${hex(gpa)}+${length}`;
  if (!Number.isSafeInteger(gpa) || gpa < 0) {
    throw new GuestRangeError(gpa, length, `guest range ${shown}: address must be a non-negative safe integer`);
  }
  if (!Number.isSafeInteger(length) || length < 1) {
    throw new GuestRangeError(gpa, length, `guest range ${shown}: length must be a positive integer`);
  }
  const end = gpa + length;
  if (!Number.isSafeInteger(end)) {
    throw new GuestRangeError(gpa, length, `guest range ${shown}: end overflows 2^53`);
  }
  const segments: RamSegment[] = [];
  let cursor = gpa;
  for (const region of layout.regions) {
    const regionEnd = region.gpa + region.size;
    if (cursor >= regionEnd) continue;
    if (cursor < region.gpa) break; // a gap before this region
    const take = Math.min(end, regionEnd) - cursor;
    segments.push({ gpa: cursor, length: take, fileOffset: region.fileOffset + (cursor - region.gpa), rangeOffset: cursor - gpa });
    cursor += take;
    if (cursor === end) return segments;
  }
  throw new GuestRangeError(
    gpa,
    length,
    `guest range ${hex(gpa)}-${hex(end - 1)} (${length} bytes) is not wholly inside guest RAM: ` +
      `${hex(cursor)} is ${describeHole(layout, cursor)}; RAM is ${describeRegions(layout)}`,
    { hint: 'read only addresses the guest reported as RAM (a DMA buffer), or check the machine memory size' },
  );
}

/** Throws GuestRangeError unless [gpa, gpa + length) is wholly readable guest RAM. */
export function checkRange(layout: RamLayout, gpa: number, length: number): void {
  mapRange(layout, gpa, length);
}

/** Whether [gpa, gpa + length) lies wholly in readable guest RAM. */
export function isGuestRam(layout: RamLayout, gpa: number, length: number): boolean {
  try {
    mapRange(layout, gpa, length);
    return true;
  } catch {
    return false;
  }
}

/** File offset of one guest-physical byte. */
export function gpaToFileOffset(layout: RamLayout, gpa: number): number {
  return mapRange(layout, gpa, 1)[0]!.fileOffset;
}

function describeHole(layout: RamLayout, addr: number): string {
  if (addr >= LEGACY_WINDOW.start && addr < LEGACY_WINDOW.end && layout.belowBytes > LEGACY_WINDOW.start) {
    return 'in the legacy VGA/ROM window 0xa0000-0xfffff';
  }
  if (addr >= layout.belowBytes && addr < layout.aboveStart) {
    return `in the PCI/MMIO hole ${hex(layout.belowBytes)}-${hex(layout.aboveStart - 1)}`;
  }
  return 'beyond the end of RAM';
}

function describeRegions(layout: RamLayout): string {
  return layout.regions.map((r) => `${hex(r.gpa)}-${hex(r.gpa + r.size - 1)}`).join(', ');
}

export function hex(n: number): string {
  return Number.isSafeInteger(n) && n >= 0 ? '0x' + n.toString(16) : String(n);
}
