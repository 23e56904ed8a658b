// Shared by the machine and memory specs: a minimal valid config and scratch directories.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MachineConfig } from '../../../harness/machine/index.js';

export function baseConfig(overrides: Partial<MachineConfig> = {}): MachineConfig {
  return {
    name: 'spec',
    memoryMiB: 128,
    cpus: 1,
    accel: 'tcg',
    edu: { enabled: false },
    nic: { model: 'virtio-net-pci', guestPort: 22 },
    ...overrides,
  };
}

/** A machine that boots nothing: stopped before the first instruction. */
export function pausedConfig(overrides: Partial<MachineConfig> = {}): MachineConfig {
  return baseConfig({ extraArgs: ['-S'], ...overrides });
}

export function scratchDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dmahil-spec-${label}-`));
}

/** True once pid is gone or a zombie. */
export async function waitForProcessGone(isAlive: (pid: number) => boolean, pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !isAlive(pid);
}
