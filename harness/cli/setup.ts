// dmahil setup: prepare this machine for `dmahil run`, as `make run`'s dependency step does, from an
// installed package too (npx dmahil setup). The one list of Debian packages is scripts/install-deps.sh,
// which the package ships: it installs what is missing as root or through sudo, and otherwise says which
// packages and which command, and exits non-zero.
import path from 'node:path';
import { execa } from 'execa';
import { EnvironmentError } from '../errors.js';
import { packageRoot } from '../lib/paths.js';

export const INSTALL_DEPS = path.join(packageRoot, 'scripts', 'install-deps.sh');

/** Runs install-deps.sh run on this terminal; 0 when the machine has what a run needs, else 2. */
export async function setupCommand(script = INSTALL_DEPS, stdio: 'inherit' | 'ignore' = 'inherit'): Promise<number> {
  const r = await execa('bash', [script, 'run'], { stdio, reject: false });
  if (r.failed && r.exitCode === undefined) {
    throw new EnvironmentError(`cannot run ${script}: ${r.shortMessage}`, { hint: 'dmahil setup needs bash; install it, or run the script yourself' });
  }
  if (r.exitCode !== 0) return 2; // the script's last line said why and how to fix it
  process.stderr.write('dmahil: this machine has the Debian packages dmahil run needs; next: dmahil doctor, then dmahil run\n');
  return 0;
}
