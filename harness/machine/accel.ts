// KVM when /dev/kvm can actually be opened read-write (existing is not enough: permissions, containers).

import fs from 'node:fs';
import type { Accel } from './config.js';
import { EnvironmentError } from '../errors.js';

export type ResolvedAccel = 'kvm' | 'tcg';

export interface KvmProbe {
  usable: boolean;
  /** Why not, e.g. "ENOENT: no such file or directory". */
  reason?: string;
}

export function probeKvm(device = '/dev/kvm'): KvmProbe {
  try {
    fs.closeSync(fs.openSync(device, fs.constants.O_RDWR));
    return { usable: true };
  } catch (err) {
    return { usable: false, reason: (err as Error).message };
  }
}

export function resolveAccel(requested: Accel, probe: KvmProbe): ResolvedAccel {
  if (requested === 'tcg') return 'tcg';
  if (probe.usable) return 'kvm';
  if (requested === 'auto') return 'tcg';
  throw new EnvironmentError(`accel 'kvm' requested but /dev/kvm is not usable (${probe.reason ?? 'unknown'})`, {
    hint: "use accel 'auto' or 'tcg', or give this user read-write access to /dev/kvm (group kvm)",
  });
}
