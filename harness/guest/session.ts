// What every guest profile gives the DMA layer, whatever the OS: a booted machine with the test
// driver loaded, its memory, and dmactl. The DMA layer never asks which OS it talks to.
import type { ArmedReport, InfoResult, RunResult } from '../contract/result.js';
import type { Scenario } from '../contract/scenario.js';
import type { Machine } from '../machine/index.js';

/** Guest RAM as the host reads it; every read is bounds-checked by the implementation. */
export interface SessionMemory {
  read(gpa: number, length: number): Promise<Buffer>;
  contains(gpa: number, length: number): boolean;
  close(): Promise<void>;
  readonly kind: string;
}

/** A QEMU device-model message seen on its stdout/stderr. */
export interface DeviceModelEvent {
  atMs: number;
  kind: string;
  line: string;
  from?: number;
  to?: number;
}

/** A scenario the driver ran and whose buffers it still holds. */
export interface HeldRun {
  result: RunResult;
  raw: string;
  /** What the guest reported before the device ran (absent when the run failed before it was armed). */
  armed?: ArmedReport;
  /** Let the guest free the buffers. */
  release(): Promise<void>;
}

/** How a person (or the host-side evidence code) reaches a guest from outside the harness. */
export interface DebugTarget {
  machine: Machine;
  /** privateKeyFile may be '' (a restored guest has its key only in memory): then privateKey holds it. */
  ssh: { host: string; port: number; user: string; privateKeyFile: string; privateKey?: string; hostPublicKey?: string };
}

export interface GuestSession {
  readonly profile: string;
  readonly memory: SessionMemory;
  /** Where this session's logs go. */
  readonly artifactsDir: string;
  info(): Promise<InfoResult>;
  /**
   * Run a scenario held. onArmed is called between the armed line and "go" (the buffers are prepared,
   * the device has not run): the host reads the buffers there.
   */
  run(scenario: Scenario, onArmed?: (armed: ArmedReport) => Promise<void>): Promise<HeldRun>;
  /**
   * 'per-window' where the driver maps a transfer window by window and each window reuses the bounce
   * pages (Windows map registers); absent: every bounce mapping of a run is live at once (Linux swiotlb).
   */
  readonly bounceMappings?: 'per-window';
  /** Device-model messages since a time (Date.now() based). */
  deviceModelEvents(sinceMs: number): DeviceModelEvent[];
  /** False once the machine or the connection to the guest is gone: never reuse it then. */
  isHealthy(): boolean;
  /** Copy the guest's driver log and similar into the artifacts. */
  collectLogs(): Promise<void>;
  close(): Promise<void>;
  /** The machine and SSH access behind this session: for dumps, --keep and `dmahil shell`. */
  debugTarget?(): DebugTarget;
}

/** What every profile needs to start a guest; each profile adds its own options. */
export interface GuestStartOptions {
  repoRoot: string;
  artifactsDir: string;
  /** Make every DMA mapping bounce (Linux swiotlb=force; Windows RAM beyond the 28-bit address width). */
  forceBounce: boolean;
  accel: 'auto' | 'kvm' | 'tcg';
  bootTimeoutMs: number;
  onProgress?: (message: string) => void;
  /** The QEMU binary (--qemu); default qemu-system-x86_64 on PATH. */
  qemuBinary?: string;
}
