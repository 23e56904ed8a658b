// Is this QEMU one dmahil supports? 7.2 or newer, with the edu device. Checked before anything is
// built or booted, so a wrong QEMU is one line naming the fix, not a failed boot per scenario.
import { execa } from 'execa';
import { EnvironmentError } from '../errors.js';
import { requireQemu } from './launch-checks.js';

export interface QemuInfo {
  binary: string;
  /** "7.2.22", "10.0.13". */
  version: string;
  /** The distribution's package string, e.g. "Debian 1:7.2+dfsg-7+deb12u18+b3", when QEMU prints one. */
  package?: string;
}

export const MIN_QEMU = [7, 2] as const;

export function parseQemuVersion(text: string): { version: string; package?: string } | undefined {
  const m = /QEMU emulator version (\d+\.\d+(?:\.\d+)?)(?: \(([^)]*)\))?/.exec(text);
  return m ? { version: m[1]!, ...(m[2] ? { package: m[2] } : {}) } : undefined;
}

export function versionAtLeast(version: string, [major, minor]: readonly [number, number]): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

const checked = new Map<string, Promise<QemuInfo>>();

/** Version and edu, once per binary and process. */
export function checkQemu(binaryName: string): Promise<QemuInfo> {
  const binary = requireQemu(binaryName);
  let p = checked.get(binary);
  if (!p) {
    p = (async () => {
      const v = await execa(binary, ['--version'], { reject: false, timeout: 20_000 });
      const parsed = parseQemuVersion(v.stdout);
      if (!parsed) throw new EnvironmentError(`${binary} --version did not say which QEMU it is (${(v.stderr || v.stdout).split('\n')[0] || `exit ${v.exitCode}`})`, { hint: 'install the Debian package qemu-system-x86: apt-get install -y qemu-system-x86' });
      if (!versionAtLeast(parsed.version, MIN_QEMU)) {
        throw new EnvironmentError(`QEMU ${parsed.version} at ${binary} is older than ${MIN_QEMU.join('.')}`, { hint: "install Debian 12's or 13's qemu-system-x86 (7.2 or newer): apt-get install -y qemu-system-x86" });
      }
      const devices = await execa(binary, ['-machine', 'q35', '-device', 'help'], { reject: false, timeout: 20_000 });
      if (!/name "edu"/.test(devices.stdout + devices.stderr)) {
        throw new EnvironmentError(`QEMU ${parsed.version} at ${binary} has no edu device`, { hint: "use a QEMU built with CONFIG_EDU, such as Debian's qemu-system-x86" });
      }
      return { binary, ...parsed };
    })();
    checked.set(binary, p);
  }
  return p;
}
