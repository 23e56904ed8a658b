// The memory layer: where guest RAM is and how the host reads it.
export { openGuestMemory } from './guest-memory.js';
export type { GuestMemory, GuestMemoryKind, GuestMemoryHost, OpenGuestMemoryOptions } from './guest-memory.js';
export { SharedFileMemory } from './shared-file-memory.js';
export { PmemsaveMemory } from './pmemsave-memory.js';
export type { QmpExecutor } from './pmemsave-memory.js';
export { ramLayout, layoutFromSplit, mapRange, checkRange, isGuestRam, gpaToFileOffset, hex, FOUR_GIB, LEGACY_WINDOW } from './address-map.js';
export type { RamLayout, RamRegion, RamSegment, X86MachineType } from './address-map.js';
export { GuestRangeError, GuestMemoryError } from './errors.js';
