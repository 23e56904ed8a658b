// --driver DIR: the user's own build of the driver instead of the one dmahil builds. For the reference
// guest DIR holds edudma.ko and dmactl; for a Windows golden image it is a driver package folder. Checked
// on the host before any guest boots (harness/driver/); a refusal is a UsageError (exit 2).
import { driverFolder } from '../driver/driver-folder.js';
import { checkLinuxDriver, checkModuleKernel, vermagicKernel, type LinuxDriver } from '../driver/linux-driver.js';
import { checkWindowsDriver, type WindowsDriver } from '../driver/windows-driver.js';
import { readWindowsImage } from '../../images/windows/manifest.js';

const FIX = 'pass --driver the folder of your driver build: edudma.ko and dmactl for the reference guest, or a Windows package folder (edudma.sys, edudma.inf, edudma.cat, edudma-test.cer, dmactl.exe) with --image windows';

/** --driver DIR at parse time: an existing folder, made absolute. What it holds is checkDriverOption's. */
export function driverOption(text: string): string {
  return driverFolder(text, '--driver', FIX);
}

export type CheckedDriver = ({ kind: 'linux' } & LinuxDriver) | ({ kind: 'windows' } & WindowsDriver);

/** The folder's files for the image ('linux' or a golden image), checked; the guest kernel comes later. */
export function checkDriverOption(dir: string, image: string): CheckedDriver {
  if (image === 'linux') return { kind: 'linux', ...checkLinuxDriver(dir) };
  return { kind: 'windows', ...checkWindowsDriver(dir, readWindowsImage(image).manifest.arch) };
}

/** For the reference guest: the module must be built for the kernel the guest runs. */
export function checkDriverKernel(driver: CheckedDriver, guestKernel: string): void {
  if (driver.kind === 'linux') checkModuleKernel(driver, guestKernel);
}

/** The progress line that names the driver under test. */
export function describeDriver(driver: CheckedDriver): string {
  return `driver: ${driver.dir} (--driver; contract ${driver.contract}${driver.kind === 'linux' ? `, built for ${vermagicKernel(driver.vermagic)}` : ''})`;
}

/** What results.json records of it (host.driver). */
export function driverJson(driver: CheckedDriver): { path: string; contract: number; builtFor: string | null } {
  return { path: driver.dir, contract: driver.contract, builtFor: driver.kind === 'linux' ? vermagicKernel(driver.vermagic) : null };
}

/** How guestSource and startGuest use it: the reference guest's driverOverride, or the Windows package folder. */
export function driverSource(driver: CheckedDriver | undefined): { driverOverride?: { module: string; tool: string }; windowsDriverDir?: string } {
  if (!driver) return {};
  return driver.kind === 'linux' ? { driverOverride: { module: driver.module, tool: driver.tool } } : { windowsDriverDir: driver.dir };
}
