// Machine-layer failures: bad config, missing tools, QEMU refusing to start or exiting early.

import { DmahilError, UsageError } from '../errors.js';

export interface ConfigProblem {
  field: string;
  message: string;
  hint: string;
}

/** One or more MachineConfig fields are wrong; `problems` lists each with its fix. */
export class MachineConfigError extends UsageError {
  constructor(readonly problems: ConfigProblem[]) {
    const first = problems[0]!;
    const more = problems.length > 1 ? `; ${problems.slice(1).map((p) => `${p.field} ${p.message}`).join('; ')}` : '';
    super(`machine config: ${first.field} ${first.message}${more}`, { hint: problems.length === 1 ? first.hint : problems.map((p) => `${p.field}: ${p.hint}`).join('; ') });
  }
}

/** QEMU could not be started or exited before QMP was up. */
export class QemuStartError extends DmahilError {}
