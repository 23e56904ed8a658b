// Report files in the artifacts folder, synchronously (a signal handler writes them too). Each is written
// whole or not at all (a .part file renamed into place); a failure is one clear error naming the folder
// and the fix.
import fs from 'node:fs';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';

export function writeFilesSync(artifacts: string, files: Array<[name: string, text: () => string]>): void {
  for (const [name, text] of files) {
    const file = path.join(artifacts, name);
    const part = `${file}.part`;
    try {
      fs.mkdirSync(artifacts, { recursive: true });
      fs.writeFileSync(part, text());
      fs.renameSync(part, file);
    } catch (e) {
      fs.rmSync(part, { force: true });
      const code = (e as NodeJS.ErrnoException).code;
      throw new EnvironmentError(`cannot write ${file}: ${code === 'ENOSPC' ? 'no space left on device' : (e as Error).message}`, {
        hint: `free space on the file system of ${artifacts}, or pass --artifacts DIR on one with room`,
        cause: e,
      });
    }
  }
}
