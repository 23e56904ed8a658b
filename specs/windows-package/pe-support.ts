import { join } from 'node:path';
import { ARCHES, packageDir as pkgDir } from '../../harness/windows-package/package.js';
import { ROOT } from './support.js';

export { ARCHES };
export const ROOT_BUILD = join(ROOT, 'build', 'windows');
export const packageDir = (arch: 'x64' | 'x86') => pkgDir(arch, ROOT);
