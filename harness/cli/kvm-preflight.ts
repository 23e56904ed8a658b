// Before a guest that may run under KVM boots (--accel kvm; a Windows guest or image build under auto):
// prove that KVM runs a Linux kernel here, using the reference kernel (built from Debian's package,
// cached). Firmware running under KVM proved too little (kvm-probe.ts). With 'kvm' a KVM that fails is
// one line with the fix (exit 2); with 'auto' the verdict is remembered, and the launch that follows
// gets TCG and one warning.
import path from 'node:path';
import { cacheDir } from '../lib/paths.js';
import { kvmVerdict, resolveAccel } from '../machine/accel.js';
import { requireSetpriv } from '../machine/launch-checks.js';
import { buildReferenceImage, type ReferenceImage } from '../../images/linux/build.js';

export async function proveKvm(opts: {
  repoRoot: string;
  qemuBinary: string;
  accel: 'auto' | 'kvm' | 'tcg';
  /** The reference image, when the caller has built it already. */
  reference?: ReferenceImage;
  onProgress?: (m: string) => void;
}): Promise<void> {
  if (opts.accel === 'tcg') return;
  const reference = opts.reference ?? (await buildReferenceImage({ cacheDir: path.join(cacheDir(opts.repoRoot), 'images'), onProgress: opts.onProgress }));
  const verdict = await kvmVerdict(opts.qemuBinary, requireSetpriv(), reference.kernel);
  if (opts.accel === 'kvm') resolveAccel('kvm', verdict);
}
