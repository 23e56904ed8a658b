// Restore instead of boot, and cheap device waits. See README.md here for the measurements.
import type { IcountConfig } from '../machine/config.js';
export { saveSnapshot, loadSnapshot, writeRamImage, SnapshotError, MANIFEST_VERSION } from './snapshot.js';
export type { Snapshot, SnapshotManifest, SaveOptions } from './snapshot.js';

/**
 * `-icount shift=3,sleep=off` under TCG: 8 ns of virtual time per instruction (about the pace of TCG on
 * this class of host, so guest timeouts keep their meaning while it computes) and idle time skipped, so the
 * edu's 100 ms per DMA operation costs no wall time. What the guest sees (order of events, the 100 ms
 * per operation in its own clock) is unchanged. Ignored under KVM.
 */
export const CHEAP_WAITS: IcountConfig = { shift: 3, sleep: false };
