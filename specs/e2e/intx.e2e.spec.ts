// edudma's INTx path (no MSI: `pci=nomsi`), which every other spec skips because QEMU grants MSI: the
// legacy interrupt ends each edu operation, a negative control is still caught, and a restored guest's
// re-attach brings the INTx-driven device back.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { CATALOG } from '../../harness/dma/catalog.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { outcome } from '../../harness/dma/verdict.js';
import { restoreLinuxGuest, type LinuxSession } from '../../harness/guest/linux/profile.js';
import { CHEAP_WAITS, saveSnapshot, type Snapshot } from '../../harness/snapshot/index.js';
import { BOOT_TIMEOUT_MS, guestExec, repoRoot, startReferenceGuest } from './support.js';

const art = (name: string): string => path.join(repoRoot, 'reports', 'e2e', 'intx', name);
const entry = (name: string) => CATALOG.find((e) => e.variant === 'bounce' && e.name === name)!;

/** edudma's line of /proc/interrupts: its count, and the chip that delivers it. */
async function edudmaInterrupts(s: LinuxSession): Promise<{ count: number; line: string }> {
  const line = (await guestExec(s, 'grep edudma /proc/interrupts')).stdout.trim();
  return { count: Number(/^\s*\d+:\s+(\d+)/.exec(line)?.[1] ?? NaN), line };
}

describe('e2e: edudma on INTx (pci=nomsi), bounce buffers forced @e2e', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let booted: LinuxSession | undefined;
  let restored: LinuxSession | undefined;
  let snap: Snapshot | undefined;

  before(async () => {
    booted = await startReferenceGuest('intx/boot', true, { extraAppend: 'pci=nomsi', icount: CHEAP_WAITS });
  });
  after(async () => {
    await restored?.close();
    await booted?.close();
    await snap?.discard();
  });

  it('the driver bound the edu with a legacy interrupt, not MSI', async () => {
    await booted!.collectLogs();
    const dmesg = fs.readFileSync(path.join(art('boot'), 'guest-dmesg.txt'), 'utf8');
    expect(dmesg).to.match(/edu ready: INTx irq \d+/);
  });

  it('round trips pass, each operation ended by INTx', async () => {
    const before = await edudmaInterrupts(booted!);
    expect(before.line).to.match(/IO-APIC/); // a legacy line through the IO-APIC, not PCI-MSI
    let ops = 0;
    for (const name of ['bounced round-trip 4096 B', 'bounced scatter-gather 12 KiB']) {
      const e = entry(name);
      expect(e, name).to.not.equal(undefined);
      const v = await runScenario(booted!, e);
      expect(outcome(v), `${name}: ${v.status}: ${v.summary}`).to.equal('ok');
      expect(v.status).to.equal('pass');
      ops += v.result!.timings.eduOps ?? 0;
    }
    expect(ops).to.be.greaterThan(0);
    expect((await edudmaInterrupts(booted!)).count - before.count).to.be.at.least(ops);
  });

  it('negative control: a skipped sync is still caught, for its reason', async () => {
    const v = await runScenario(booted!, entry('control: skipped sync after the device wrote'));
    expect(v.status).to.equal('fail');
    expect(outcome(v), v.summary).to.equal('ok'); // caught as the expected finding
  });

  it('a restored guest re-attaches the INTx-driven edu and passes', async () => {
    snap = await saveSnapshot(booted!, { key: 'intx' });
    await booted!.close();
    booted = undefined;
    restored = await restoreLinuxGuest(snap.point, { artifactsDir: art('restore'), readyTimeoutMs: 120_000 });
    const v = await runScenario(restored, entry('bounced round-trip 4096 B'));
    expect(v.status, v.summary).to.equal('pass');
  });
});
