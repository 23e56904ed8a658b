// Restore instead of boot, against the real QEMU 7.2 edu: a restore without the edu re-attach must not
// pass (negative control), nor a device without bus mastering; a restore with it must; bad snapshots give
// clear errors and leave nothing behind.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { DmahilError } from '../../harness/errors.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { restoreLinuxGuest, type LinuxSession } from '../../harness/guest/linux/profile.js';
import { loadSnapshot, saveSnapshot, CHEAP_WAITS, type Snapshot } from '../../harness/snapshot/index.js';
import { RUN_DIR_PREFIX } from '../../harness/machine/index.js';
import { SnapshotSessionSource } from '../../harness/dma/snapshot-session-source.js';
import { VARIANTS } from '../../harness/dma/catalog.js';
import { guestExec, repoRoot, startReferenceGuest, BOOT_TIMEOUT_MS } from '../e2e/support.js';

const art = (name: string): string => path.join(repoRoot, 'reports', 'e2e', 'snapshot', name);
const roundTrip = { name: 'round-trip 4096 B', scenario: makeScenario({ size: 4096, seed: 77 }) };
const runDirs = (): string[] => fs.readdirSync('/dev/shm').filter((e) => e.startsWith(`${RUN_DIR_PREFIX}${process.pid}-`));

describe('snapshot restore (real QEMU) @e2e', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let snap: Snapshot | undefined;
  const open: LinuxSession[] = [];
  const restore = async (s: Snapshot, name: string, edu: 'reattach' | 'skip'): Promise<LinuxSession> => {
    const r = await restoreLinuxGuest(s.point, { artifactsDir: art(name), readyTimeoutMs: 120_000, edu });
    open.push(r);
    return r;
  };

  before(async () => {
    const booted = await startReferenceGuest('snapshot/boot', false, { icount: CHEAP_WAITS });
    try {
      snap = await saveSnapshot(booted, { key: 'spec', resume: true });
      // The source QEMU kept its edu's state: it goes on without a re-attach.
      const v = await runScenario(booted, roundTrip);
      expect(v.status, v.summary).to.equal('pass');
    } finally {
      await booted.close();
    }
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });
  after(async () => {
    await snap?.discard();
  });

  it('negative control: restored without re-attaching the edu, a scenario does not pass (the device is dead)', async () => {
    const s = await restore(snap!, 'no-reattach', 'skip');
    const v = await runScenario(s, roundTrip);
    expect(v.status).to.not.equal('pass');
    expect(v.summary).to.match(/ID register/);
    // …and the re-attach is what revives it, in the same guest.
    await s.reattachDevice();
    const again = await runScenario(s, roundTrip);
    expect(again.status, again.summary).to.equal('pass');
  });

  it('negative control: bus mastering off, the edu can neither move data nor interrupt, and the run says so; a re-attach restores it', async () => {
    const s = await restore(snap!, 'no-bus-master', 'reattach');
    // COMMAND = memory decoding only, written through sysfs behind the driver's back.
    const off = await guestExec(s, "printf '\\002' | dd of=/sys/class/misc/edudma/device/config bs=1 seek=4 count=1 conv=notrunc 2>&1");
    expect(off.code, off.stdout).to.equal(0);
    const v = await runScenario(s, roundTrip);
    // Its MSI is a bus-master write too: the guest waits for an interrupt that never comes.
    expect(v.status, v.summary).to.equal('error');
    expect(v.summary).to.match(/no completion interrupt/);
    await s.reattachDevice();
    const again = await runScenario(s, roundTrip);
    expect(again.status, again.summary).to.equal('pass');
  });

  it('every restore re-attaches the edu and verifies a DMA; two restores of one snapshot run at once, independently', async () => {
    const [a, b] = await Promise.all([restore(snap!, 'restore-a', 'reattach'), restore(snap!, 'restore-b', 'reattach')]);
    expect(a.machine.sshPort).to.not.equal(b.machine.sshPort);
    expect(a.machine.runDir).to.not.equal(b.machine.runDir);
    const [va, vb] = await Promise.all([runScenario(a, roundTrip), runScenario(b, { ...roundTrip, scenario: makeScenario({ size: 8192, seed: 78 }) })]);
    expect(va.status, va.summary).to.equal('pass');
    expect(vb.status, vb.summary).to.equal('pass');
    // The saved guest's agent did the re-attach: no SSH login was needed to get here.
    expect(a.restoreTimings).to.include({ via: 'agent', sshMs: 0 });
  });

  it("the agent's dmactl dies: the guest closes the port, the session goes on over SSH; SSH logs in when needed", async () => {
    const s = await restore(snap!, 'agent-dies', 'reattach');
    expect(s.restoreTimings?.via).to.equal('agent');
    // SSH, made on first use: collect the guest's dmesg, then kill the agent's dmactl serve with it.
    await s.collectLogs();
    expect(fs.readFileSync(path.join(art('agent-dies'), 'guest-dmesg.txt'), 'utf8')).to.match(/edudma/);
    const closed = new Promise<void>((resolve) => s.machine.onAgentPortClosed(resolve));
    expect((await guestExec(s, 'kill -9 $(cat /tmp/dmahil/agent.pid)')).code).to.equal(0);
    await closed;
    const v = await runScenario(s, roundTrip);
    expect(v.status, v.summary).to.equal('pass');
  });

  it('a corrupt device state is refused before QEMU sees it; one QEMU rejects gives a MigrationError, no run dir left', async () => {
    const copy = fs.mkdtempSync(path.join('/dev/shm', 'dmahil-spec-snap-'));
    try {
      for (const f of fs.readdirSync(snap!.dir)) fs.copyFileSync(path.join(snap!.dir, f), path.join(copy, f));
      const state = path.join(copy, 'device-state');
      const bytes = fs.readFileSync(state);
      bytes.fill(0x41, 64, 4096);
      fs.writeFileSync(state, bytes);
      let err = await loadSnapshot(copy, { key: 'spec' }).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/does not match its recorded hash/);
      err = await loadSnapshot(copy, { key: 'other' }).then(() => undefined, (e: Error) => e);
      expect(err?.message).to.match(/saved for spec, not other/);
      // Past the manifest check (as if the hash had been recomputed): QEMU itself refuses the stream.
      const before = runDirs().length;
      const point = { ...snap!.point, deviceState: state };
      err = await restoreLinuxGuest(point, { artifactsDir: art('corrupt'), readyTimeoutMs: 30_000 }).then(
        async (s) => (open.push(s), undefined),
        (e: Error) => e,
      );
      expect(err?.name).to.equal('MigrationError');
      expect(err?.message).to.match(/restoring the device state/);
      expect(runDirs().length).to.equal(before);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('a RAM copy that fails (ENOSPC) is a clear error and leaves no run directory', async () => {
    const before = runDirs().length;
    const point = {
      ...snap!.point,
      fillRam: async () => {
        throw Object.assign(new Error('cp: error writing guest-ram: No space left on device'), { code: 'ENOSPC' });
      },
    };
    const err = await restoreLinuxGuest(point, { artifactsDir: art('enospc'), readyTimeoutMs: 30_000 }).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/^no space left to write \S+guest-ram/);
    expect((err as DmahilError).describe()).to.match(/guest RAM needs up to 256 MiB in \S+: free space there/);
    expect(runDirs().length).to.equal(before);
  });

  it('the snapshot source: a failed restore is tried once more; two in a row give up the snapshot, and the fallback guest is not called pristine', async () => {
    // Restores 1, 3 and 4 fail as a taken port would: the first acquire gets restore 2, the second gives up.
    const failing = new Set([1, 3, 4]);
    const progress: string[] = [];
    let boots = 0;
    const src = new SnapshotSessionSource({
      boot: (v) => startReferenceGuest(`snapshot/source-boot-${++boots}`, v.forceBounce, { icount: CHEAP_WAITS }),
      restore: (s, _v, n) => (failing.has(n) ? Promise.reject(new DmahilError(`hostfwd port taken (the spec's restore ${n})`)) : restoreLinuxGuest(s.point, { artifactsDir: art(`source-restore-${n}`), readyTimeoutMs: 120_000 })),
      key: () => 'spec source',
      onProgress: (m) => progress.push(m),
    });
    try {
      const g = await src.acquire(VARIANTS.direct);
      expect(src.notPristine(g)).to.equal(undefined);
      expect(src.fallbackReasons.size).to.equal(0);
      expect(progress.join('\n')).to.match(/direct: restore 1 failed: hostfwd port taken \(the spec's restore 1\); trying another restore/);
      const v = await runScenario(g, roundTrip);
      expect(v.status, v.summary).to.equal('pass');
      await src.release(g, v);

      const fallback = await src.acquire(VARIANTS.direct);
      expect(src.notPristine(fallback)).to.equal("a booted guest reused between scenarios (restore 3 failed: hostfwd port taken (the spec's restore 3); then restore 4 failed: hostfwd port taken (the spec's restore 4))");
      const w = await runScenario(fallback, roundTrip);
      expect(w.status, w.summary).to.equal('pass');
      await src.release(fallback, w);
      // No fifth restore: the snapshot is given up for good, the booted guest is reused.
      expect(await src.acquire(VARIANTS.direct)).to.equal(fallback);
      await src.release(fallback, w);
      expect(boots, 'one boot for the snapshot, one for the fallback').to.equal(2);
    } finally {
      await src.close();
    }
  });
});
