// --kernel DIR: the reference guest boots the kernel of a kernel root (harness/kernel/kernel-root.ts) instead
// of the installed one; the image and edudma are built for it. Checked when the command line is parsed.
import type { KernelRoot } from '../kernel/kernel-root.js';

export { kernelRootOption } from '../kernel/kernel-root.js';

/** The progress line that names the guest's kernel and where it came from. */
export function describeGuestKernel(version: string, kernel: KernelRoot | undefined): string {
  return `guest kernel: ${version} (${kernel ? `--kernel ${kernel.root}` : 'installed'})`;
}
