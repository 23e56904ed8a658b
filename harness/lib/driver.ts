// startGuest's `driver` option: the user's own driver build, as `dmahil run --driver DIR`. The same checks
// (harness/driver/: file kinds, contract version, the module's kernel) with the same one-line errors, made
// before any guest boots; a refusal is a UsageError.
import path from 'node:path';
import { driverFolder as folder } from '../driver/driver-folder.js';
import { checkLinuxDriver, checkModuleKernel, type LinuxDriver } from '../driver/linux-driver.js';
import { checkWindowsDriver, type WindowsDriver } from '../driver/windows-driver.js';
import { buildReferenceImage } from '../../images/linux/build.js';
import { readWindowsImage } from '../../images/windows/manifest.js';
import { cacheDir } from './paths.js';

const FIX = 'give driver the folder of your driver build: edudma.ko and dmactl for the reference guest, or a Windows package folder (edudma.sys, edudma.inf, edudma.cat, edudma-test.cer, dmactl.exe) for a golden image';

const driverFolder = (dir: string): string => folder(dir, 'driver', FIX);

/** The reference guest's pair, checked, and built for the kernel the reference guest runs. */
export async function checkedLinuxDriver(dir: string, onProgress?: (m: string) => void): Promise<LinuxDriver> {
  const driver = checkLinuxDriver(driverFolder(dir));
  // Cached after the first build: the image is what names the guest's kernel.
  const image = await buildReferenceImage({ cacheDir: path.join(cacheDir(), 'images'), ...(onProgress ? { onProgress } : {}) });
  checkModuleKernel(driver, image.kernelVersion);
  return driver;
}

/** A Windows package folder, checked for the golden image's architecture. */
export function checkedWindowsDriver(dir: string, image: string): WindowsDriver {
  return checkWindowsDriver(driverFolder(dir), readWindowsImage(image).manifest.arch);
}
