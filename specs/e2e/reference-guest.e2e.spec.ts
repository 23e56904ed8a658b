// The whole path on a real QEMU with the real reference guest: every catalog scenario, verified by
// reading guest RAM from the host. Negative controls must be caught for the reason they name.
import { expect } from 'chai';
import { pattern } from '../../harness/contract/pattern.js';
import { CATALOG, referenceOnly, VARIANTS, windowsOnly } from '../../harness/dma/catalog.js';
import { notOnGuestKernel, notOnImage } from '../../harness/dma/applicability.js';
import { findKernelVersion, virtioIommuSupport } from '../../images/linux/build.js';
import { readThroughCpu } from '../../harness/dma/guest-buffer.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { variantCase } from '../../harness/dma/run-suite.js';
import { outcome } from '../../harness/dma/verdict.js';
import type { LinuxSession } from '../../harness/guest/linux/profile.js';
import { isProcessAlive } from '../../harness/machine/index.js';
import { openGuestMemory } from '../../harness/memory/index.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { CHEAP_WAITS } from '../../harness/snapshot/index.js';
import { BOOT_TIMEOUT_MS, repoRoot, scenarioTimeoutMs, startReferenceGuest } from './support.js';
import { startWindowsGuest, type WindowsSession } from '../../harness/guest/windows/profile.js';
import path from 'node:path';
import os from 'node:os';

for (const variant of Object.values(VARIANTS).filter((v) => !windowsOnly(v))) {
  describe(`e2e: reference guest, ${variant.id} (${variant.description})`, function () {
    let session: LinuxSession;

    before(async function () {
      this.timeout(BOOT_TIMEOUT_MS);
      // As `dmahil run` skips them: virtio-iommu's cases on a kernel without its driver (Debian 12's 6.1).
      if (variant.machine?.iommu === 'virtio-iommu') {
        const version = await findKernelVersion();
        const why = notOnGuestKernel(CATALOG.find((e) => e.variant === variant.id)!, version, await virtioIommuSupport(version, `/boot/vmlinuz-${version}`));
        if (why) {
          console.log(`    note: ${variant.id} skipped: ${why}`);
          this.skip();
        }
      }
      // As `dmahil run` boots it (harness/cli/guests.ts): virtual time jumps over the edu's 100 ms timer.
      // The 1 MiB round trip took 51 s of real time without; other specs keep the default clock.
      session = await startReferenceGuest(`reference-${variant.id}`, variant.forceBounce, { icount: CHEAP_WAITS, ...(variant.machine ? { variant: variant.machine } : {}) });
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
        this.timeout(scenarioTimeoutMs(entry.scenario));
        // As runSuite runs it: behind an IOMMU, and where nothing may bounce.
        const v = await runScenario(session, variantCase(variant, entry, session.profile));
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

    if (variant.id === 'direct') {
      // Debian 12's dropbear (2022.83) closes a channel opened while another child of the connection exits,
      // and then drops its request or ends the connection (see SshChannel.openChannel). Commands at once on
      // one connection make that race common (six at once failed 2 runs of 3 before the harness logged in
      // again after such a drop); each must still run, once the harness asks again. They run on the
      // session's own connection, beside its dmactl serve channel, as the harness's commands do.
      it('many commands at once on one SSH connection all run', async function () {
        this.timeout(180_000);
        const WORKERS = [0, 1, 2, 3, 4, 5];
        const worker = async (w: number): Promise<string[]> => {
          const out: string[] = [];
          for (let i = 0; i < 12; i++) out.push((await session.sh(`echo ${w}.${i}`, 30_000)).trim());
          return out;
        };
        const got = (await Promise.all(WORKERS.map(worker))).flat();
        expect(got).to.deep.equal(WORKERS.flatMap((w) => Array.from({ length: 12 }, (_, i) => `${w}.${i}`)));
        // The session is still whole: a scenario verifies on it after the storm.
        const v = await runScenario(session, { name: 'round-trip 4096 B after the commands', scenario: makeScenario({ size: 4096, seed: 7 }), variant: 'direct' });
        expect(outcome(v), v.summary).to.equal('ok');
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

// The same catalog on a Windows guest, when a golden image is configured (make windows-image; then
// DMAHIL_WINDOWS_IMAGE=path/to/windows.json). Without one, each variant is reported skipped with the reason.
const WINDOWS_IMAGE = process.env.DMAHIL_WINDOWS_IMAGE;
for (const variant of Object.values(VARIANTS).filter((v) => !referenceOnly(v))) {
  const reason = 'no Windows image configured: set DMAHIL_WINDOWS_IMAGE to the .json that "make windows-image" wrote';
  describe(`e2e: Windows guest, ${variant.id}${WINDOWS_IMAGE ? '' : ` (skipped: ${reason})`}`, function () {
    let session: WindowsSession;

    before(async function () {
      if (!WINDOWS_IMAGE) {
        console.log(`    note: Windows e2e skipped: ${reason}`);
        this.skip();
      }
      this.timeout(Number(process.env.DMAHIL_WINDOWS_BOOT_TIMEOUT_S ?? 1800) * 1000 + 300_000);
      session = await startWindowsGuest({
        image: WINDOWS_IMAGE!, repoRoot, forceBounce: variant.forceBounce, accel: 'auto', ...(variant.windows ? { variant: variant.windows } : {}),
        artifactsDir: path.join(process.env.DMAHIL_E2E_ARTIFACTS ?? os.tmpdir(), `windows-${variant.id}-${Date.now()}`),
        bootTimeoutMs: Number(process.env.DMAHIL_WINDOWS_BOOT_TIMEOUT_S ?? 1800) * 1000,
      });
    });

    after(async function () {
      this.timeout(120_000);
      if (!session) return;
      await session.collectLogs().catch(() => undefined);
      await session.close();
    });

    for (const entry of CATALOG.filter((e) => e.variant === variant.id && !notOnImage(e, 'windows'))) {
      it(entry.name, async function () {
        this.timeout(scenarioTimeoutMs(entry.scenario) * 4);
        const v = await runScenario(session, entry);
        expect(outcome(v), `${v.status}: ${v.summary}`).to.equal('ok');
      });
    }
  });
}
