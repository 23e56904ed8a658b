// Which accelerator a machine gets: chosen by what works, not by whether /dev/kvm opens. The device
// must open read-write AND a probe guest must execute under KVM (kvm-probe.ts). The verdict is taken
// once per QEMU binary and process, so concurrent and later launches share it and no second guest is
// sent into a KVM that cannot run it.

import fs from 'node:fs';
import type { Accel } from './config.js';
import { EnvironmentError } from '../errors.js';
import { probeKvmExecution, type KvmExecution } from './kvm-probe.js';

export type ResolvedAccel = 'kvm' | 'tcg';

export interface KvmProbe {
  usable: boolean;
  /** Why not, e.g. "ENOENT: no such file or directory", or what KVM did wrong. */
  reason?: string;
}

/** Can /dev/kvm be opened read-write? Necessary, not sufficient. */
export function probeKvm(device = '/dev/kvm'): KvmProbe {
  try {
    fs.closeSync(fs.openSync(device, fs.constants.O_RDWR));
    return { usable: true };
  } catch (err) {
    return { usable: false, reason: (err as Error).message };
  }
}

export interface AccelChoice {
  accel: ResolvedAccel;
  /** Set when auto fell back to TCG although /dev/kvm opened: the one warning line for the user. */
  warning?: string;
}

export interface KvmVerdict {
  device: KvmProbe;
  /** Only when the device opened. */
  execution?: KvmExecution;
}

const verdicts = new Map<string, Promise<KvmVerdict>>();
/** A KVM seen failing once is broken for every later guest of that binary, whatever it boots. */
const brokenFor = new Map<string, KvmVerdict>();
const warned = new Set<string>();

/**
 * The device probe, then (only if it opens) the execution probe: with `kernel`, that kernel booted under
 * KVM through early boot; without, only the firmware. One per binary, kernel and process.
 */
export function kvmVerdict(binary: string, setpriv: string, kernel?: string, device = '/dev/kvm'): Promise<KvmVerdict> {
  const broken = brokenFor.get(binary);
  if (broken) return Promise.resolve(broken);
  const key = `${binary}\0${kernel ?? ''}\0${device}`;
  let v = verdicts.get(key);
  if (!v) {
    const dev = probeKvm(device);
    v = dev.usable
      ? probeKvmExecution({ binary, setpriv, kernel }).then((execution) => {
          const verdict = { device: dev, execution };
          if (!execution.works) brokenFor.set(binary, verdict);
          return verdict;
        })
      : Promise.resolve({ device: dev });
    verdicts.set(key, v);
  }
  return v;
}

/** Forget the memoized verdicts (specs that swap the QEMU binary's behaviour). */
export function forgetKvmVerdicts(): void {
  verdicts.clear();
  brokenFor.clear();
  warned.clear();
}

export const KVM_BROKEN_HINT =
  "use --accel tcg (or auto, which falls back to TCG); KVM needs the CPU's vmx or svm flag in /proc/cpuinfo: on a VM, enable nested virtualization on its host";

export function resolveAccel(requested: Accel, verdict: KvmVerdict, binaryKey = ''): AccelChoice {
  if (requested === 'tcg') return { accel: 'tcg' };
  if (!verdict.device.usable) {
    if (requested === 'auto') return { accel: 'tcg' };
    throw new EnvironmentError(`accel 'kvm' requested but /dev/kvm is not usable (${verdict.device.reason ?? 'unknown'})`, {
      hint: "use accel 'auto' or 'tcg', or give this user read-write access to /dev/kvm (group kvm)",
    });
  }
  const ex = verdict.execution;
  if (ex?.works) return { accel: 'kvm' };
  const why = ex?.detail ?? 'not probed';
  if (requested === 'kvm') {
    throw new EnvironmentError(`accel 'kvm' requested but KVM cannot run a guest here: ${why}`, { hint: KVM_BROKEN_HINT });
  }
  if (warned.has(binaryKey)) return { accel: 'tcg' };
  warned.add(binaryKey);
  return { accel: 'tcg', warning: `warning: /dev/kvm opens but KVM cannot run a guest (${why}): running under TCG instead` };
}

/** Resolve the accelerator for a launch; `kernel`, when the guest boots one, makes the probe boot it. */
export async function chooseAccel(requested: Accel, binary: string, setpriv: string, kernel?: string): Promise<AccelChoice> {
  if (requested === 'tcg') return { accel: 'tcg' };
  return resolveAccel(requested, await kvmVerdict(binary, setpriv, kernel), binary);
}
