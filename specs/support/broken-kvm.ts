// A QEMU that behaves as on a host whose /dev/kvm opens but cannot run a guest (a cloud VM without
// nested VMX, hosts.md): under -accel kvm it prints KVM's internal error on stderr and the vCPU never
// runs. It wraps the real QEMU (-S keeps the vCPU stopped), so QMP, the process and its logs are real;
// only the CPU failure is staged, because a KVM that works cannot be made to fail on demand.
import fs from 'node:fs';
import path from 'node:path';
import { findExecutable } from '../../harness/machine/launch-checks.js';

/** The lines QEMU prints there (hosts.md), register dump shortened. */
export const KVM_INTERNAL_ERROR_TEXT = 'KVM internal error. Suberror: 1\nextra data[0]: 0x0000000000000000\nemulation failure\nRAX=0000000000000000 RBX=0000000000000000\n';

/**
 * Writes DIR/qemu-system-x86_64. mode 'kvm': only under -accel kvm; 'always': whatever the accelerator
 * (a boot that dies after the accelerator was chosen). Put DIR first on PATH, or pass the file as qemuBinary.
 */
export function writeBrokenKvmQemu(dir: string, mode: 'kvm' | 'always' = 'kvm'): string {
  const real = findExecutable('qemu-system-x86_64');
  if (!real) throw new Error('qemu-system-x86_64 not found');
  const file = path.join(dir, 'qemu-system-x86_64');
  const trigger = mode === 'always' ? 'broken=1' : 'broken=; prev=; for a in "$@"; do [ "$prev" = -accel ] && [ "$a" = kvm ] && broken=1; prev=$a; done';
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    file,
    [
      '#!/bin/sh',
      'case "$1" in --version|-version|-device) exec ' + real + ' "$@";; esac',
      trigger,
      `[ -n "$broken" ] || exec ${real} "$@"`,
      `(sleep 0.3; printf '%s' '${KVM_INTERNAL_ERROR_TEXT}' >&2) &`,
      `exec ${real} "$@" -S`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return file;
}
