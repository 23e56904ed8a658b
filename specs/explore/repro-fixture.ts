// A repro file as dmahil explore writes it, for the specs of --repro.
import { makeScenario } from '../../harness/contract/scenario.js';
import type { Repro } from '../../harness/explore/repro.js';

export const GOOD_REPRO: Repro = {
  format: 'dmahil-repro',
  version: 1,
  contract: 1,
  name: 'from-device scatter-gather 2 B at offset 4095, full sync, seed 0',
  variant: 'bounce',
  scenario: makeScenario({ direction: 'from-device', method: 'scatter-gather', size: 2, offset: 4095, seed: 0 }),
  image: 'linux',
  verdict: { status: 'fail', findings: ['stale-client-buffer'], summary: 'stale data in the client buffer' },
  confirmation: { failed: 20, repeats: 20, kind: 'deterministic', pristine: true },
  explore: { seed: 1, index: 10, shrinkSteps: 6 },
  versions: { dmahil: '0.1.0', qemu: '7.2.22', guestKernel: '6.1.0-57-amd64', driver: 'edudma 0.1.0-planted' },
  createdAt: '2026-12-03T00:00:00.000Z',
};
