// The whole path on a real QEMU with the real reference guest: every catalog scenario, verified by
// reading guest RAM from the host. Negative controls must be caught for the reason they name.
import { expect } from 'chai';
import { pattern } from '../../harness/contract/pattern.js';
import { CATALOG, VARIANTS } from '../../harness/dma/catalog.js';
import { readThroughCpu } from '../../harness/dma/guest-buffer.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { outcome } from '../../harness/dma/verdict.js';
import type { LinuxSession } from '../../harness/guest/linux/profile.js';
import { isProcessAlive } from '../../harness/machine/index.js';
import { openGuestMemory } from '../../harness/memory/index.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { BOOT_TIMEOUT_MS, scenarioTimeoutMs, startReferenceGuest } from './support.js';

for (const variant of Object.values(VARIANTS)) {
  describe(`e2e: reference guest, ${variant.id} (${variant.description})`, function () {
    let session: LinuxSession;

    before(async function () {
      this.timeout(BOOT_TIMEOUT_MS);
      session = await startReferenceGuest(`reference-${variant.id}`, variant.forceBounce);
    });

    after(async function () {
      this.timeout(60_000);
      if (!session) return;
      const pid = session.machine.pid;
      await session.collectLogs().catch(() => undefined);
      await session.close();
      expect(isProcessAlive(pid), 'QEMU still running after close').to.equal(false);
    });

    for (const entry of CATALOG.filter((e) => e.variant === variant.id)) {
      it(entry.name, async function () {
        this.timeout(scenarioTimeoutMs(entry.scenario.size));
        const v = await runScenario(session, entry);
        expect(outcome(v), `${v.status}: ${v.summary}`).to.equal('ok');
        const dest = v.result!.buffers.find((b) => b.role === 'destination')!;
        if (variant.forceBounce && dest.kind === 'client') {
          expect(dest.bounced, 'swiotlb=force must bounce every client mapping').to.equal(true);
        }
        if (entry.expectFinding) {
          // The explanation names addresses, so a person can go and look.
          expect(v.summary).to.match(/0x[0-9a-f]+|seed \d+/);
        }
      });
    }

    it('reads the same bytes through QMP pmemsave as through the shared RAM file', async function () {
      this.timeout(60_000);
      const held = await session.run(makeScenario({ size: 8192, offset: 17, seed: 99 }));
      try {
        const dest = held.result.buffers.find((b) => b.role === 'destination')!;
        const pmemsave = await openGuestMemory(session.machine, { kind: 'pmemsave' });
        try {
          const viaFile = await readThroughCpu(session.memory, dest);
          const viaQmp = await readThroughCpu(pmemsave, dest);
          expect(viaQmp.equals(viaFile)).to.equal(true);
          expect(viaFile.equals(pattern(99, 8192))).to.equal(true);
        } finally {
          await pmemsave.close();
        }
      } finally {
        await held.release();
      }
    });
  });
}
