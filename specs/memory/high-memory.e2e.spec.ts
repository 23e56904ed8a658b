// The high-memory variant (issue 15): 4.5 GiB, so q35 puts 2.5 GiB of RAM from 4 GiB up, and the kernel
// gives the driver buffers there; the edu reaches 32 bits, so the DMA API bounces them below 4 GiB
// because of the mask, not because of swiotlb=force. A held run's destination is read byte for byte above
// 4 GiB by both readers: the shared RAM file (through the address map's split) and QMP pmemsave (QEMU's
// own view of guest-physical addresses), against the pattern. A skipped sync there is caught.
import path from 'node:path';
import { expect } from 'chai';
import { makeScenario } from '../../harness/contract/scenario.js';
import { pattern } from '../../harness/contract/pattern.js';
import { readThroughCpu } from '../../harness/dma/guest-buffer.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import type { GuestSession } from '../../harness/guest/session.js';
import { startGuest } from '../../harness/lib/guest.js';
import { FOUR_GIB, openGuestMemory } from '../../harness/memory/index.js';
import { CHEAP_WAITS } from '../../harness/snapshot/index.js';
import { repoRoot } from '../e2e/support.js';

describe('memory: the high-memory variant (4.5 GiB, a 32-bit edu): driver buffers above 4 GiB', function () {
  this.timeout(300_000);
  let session: GuestSession | undefined;
  before(async () => {
    session = await startGuest({
      profile: 'linux',
      variant: 'high-memory',
      accel: 'tcg',
      artifactsDir: path.join(repoRoot, 'reports', 'specs', 'high-memory'),
      linux: { icount: CHEAP_WAITS },
    });
  });
  after(async () => session?.close());

  it('bounces a destination above 4 GiB to below it, and both readers return the pattern there byte for byte', async () => {
    const scenario = makeScenario({ direction: 'from-device', size: 40_000, offset: 123, seed: 4242 });
    const held = await session!.run(scenario);
    try {
      expect(held.result.ok, held.raw).to.equal(true);
      expect(held.result.driver.dmaMaskBits).to.equal(32);
      const d = held.result.buffers.find((b) => b.role === 'destination')!;
      expect(d.kind).to.equal('client');
      expect(d.pages.every((p) => p >= FOUR_GIB), `pages ${d.pages.map((p) => p.toString(16))}`).to.equal(true);
      expect(d.bounced).to.equal(true);
      expect(d.segments.every((s) => s.device + s.length <= 2 ** 32)).to.equal(true);
      const expected = pattern(scenario.seed, scenario.size);
      const pmemsave = await openGuestMemory(session!.debugTarget!().machine, { kind: 'pmemsave' });
      try {
        for (const reader of [session!.memory, pmemsave]) {
          const got = await readThroughCpu(reader, d);
          expect(got.equals(expected), `${reader.kind}: the destination above 4 GiB`).to.equal(true);
        }
      } finally {
        await pmemsave.close();
      }
    } finally {
      await held.release();
    }
  });

  it('a sync skipped there is caught as stale data in the client buffer', async () => {
    const v = await runScenario(session!, { name: 'skipped sync above 4 GiB', scenario: makeScenario({ direction: 'from-device', size: 4095, seed: 93, fault: 'skip-sync' }), expectFinding: 'stale-client-buffer' });
    expect(v.status, v.summary).to.equal('fail');
    expect(v.findings.map((f) => f.kind)).to.include('stale-client-buffer');
  });
});
