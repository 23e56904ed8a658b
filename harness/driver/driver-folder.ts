// The driver folder a user names (--driver DIR, the config's and startGuest's `driver`): it must exist and
// be a folder. What it holds is linux-driver.ts's and windows-driver.ts's to judge.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';

/** The folder, made absolute; `name` is how the user gave it (`--driver`, `driver`), `fix` the hint. */
export function driverFolder(text: string, name: string, fix: string): string {
  if (text.trim() === '') throw new UsageError(`${name} is empty`, { hint: fix });
  const dir = path.resolve(text);
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (!st) throw new UsageError(`${name} ${text}: no such folder`, { hint: fix });
  if (!st.isDirectory()) throw new UsageError(`${name} ${text} is a file, not a folder`, { hint: fix });
  return dir;
}
