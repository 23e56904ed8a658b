// A real full disk, not an injected ENOSPC: a tiny tmpfs is mounted and the harness is pointed at it.
//  - Snapshots (SnapshotSourceOptions.base) on it: the save fails (the RAM copy at 8 MiB, QEMU's device
//    state stream at 128 KiB), the variant falls back to a cold-booted guest reused between scenarios (the
//    documented fallback: nothing about the guest under test changes), the scenario still verifies, the
//    reason names the problem, and no partial snapshot directory is left on the tiny file system.
//  - The CLI's artifacts (--artifacts) on it: refused before anything boots when there is no room for a
//    run's logs; filled up while the run goes: the verdict is still printed, then one clear error names the
//    file, the problem and the fix (exit 2), and results.json is not left half-written.
// Each case checks that no QEMU is left (by the pids it started and by any process naming its paths).
// Mounting needs root (CAP_SYS_ADMIN): without it the specs are skipped with the reason.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import type { Context } from 'mocha';
import { selectCatalog } from '../../harness/dma/catalog.js';
import { runSuite } from '../../harness/dma/run-suite.js';
import { SnapshotSessionSource } from '../../harness/dma/snapshot-session-source.js';
import { restoreLinuxGuest, type LinuxSession } from '../../harness/guest/linux/profile.js';
import { isProcessAlive, liveMachineCount } from '../../harness/machine/index.js';
import { CHEAP_WAITS } from '../../harness/snapshot/index.js';
import { BOOT_TIMEOUT_MS, cliPath, repoRoot, startReferenceGuest } from '../e2e/support.js';
import { qemuChildren, runDirsOf, until } from '../cli-extra/processes.js';

const ONE = /^round-trip 4096 B$/;

/** Mount a tmpfs of `size` on a fresh directory; skip the test (with the reason) when mounting is not permitted. */
function mountTinyFs(ctx: Context, size: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dmahil-tinyfs-${size}-`));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    fs.rmdirSync(dir);
    const why = String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).replace(/\s+/g, ' ').trim();
    console.log(`      skipped: cannot mount a ${size} tmpfs (${why || 'mount failed'}); a real full disk needs root (CAP_SYS_ADMIN)`);
    ctx.skip();
  }
  return dir;
}

function unmount(dir: string | undefined): void {
  if (!dir) return;
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' }); // something still holds a file there: detach it anyway
  }
  fs.rmdirSync(dir);
}

/** Every file and directory under dir, relative. */
function tree(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/** Live processes whose command line mentions text (a QEMU names its run dir, RAM file and serial log). */
function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(text) && isProcessAlive(Number(e))) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Fill the file system holding dir until it refuses another byte. */
function fillUp(dir: string): void {
  const fd = fs.openSync(path.join(dir, 'filler'), 'w');
  try {
    for (const chunk of [Buffer.alloc(1 << 20), Buffer.alloc(4096), Buffer.alloc(1)]) {
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  expect(fs.statfsSync(dir).bavail).to.equal(0);
}

describe('failures: a real full disk (tiny tmpfs) @e2e', function () {
  this.timeout(BOOT_TIMEOUT_MS);

  for (const c of [
    { size: '8m', fails: 'the RAM copy', reason: /writing guest RAM .* failed: dd: error writing .*No space left on device — free space in / },
    {
      size: '128k',
      fails: "QEMU's device-state stream",
      reason: /saving the device state to \S+ failed: migration failed.*; QEMU's stderr says ".*No space left on device" — check that \S+ has room and is writable — see \S+qemu-stderr\.log$/,
    },
  ]) {
    describe(`snapshots on a ${c.size} tmpfs (${c.fails} runs out of room)`, () => {
      let tiny: string | undefined;
      before(function () {
        tiny = mountTinyFs(this, c.size);
      });
      after(() => unmount(tiny));

      it('falls back to a cold-booted guest, the scenario still verifies, the reason says why, no partial snapshot is left, no QEMU', async () => {
        const name = path.join('failures', `full-disk-snapshot-${c.size}`);
        fs.rmSync(path.join(repoRoot, 'reports', 'e2e', name), { recursive: true, force: true });
        const restores = path.join(repoRoot, 'reports', 'e2e', name, 'restores');
        const progress: string[] = [];
        const booted: LinuxSession[] = [];
        const source = new SnapshotSessionSource({
          boot: async (variant) => {
            const s = await startReferenceGuest(path.join(name, `boot-${booted.length + 1}`), variant.forceBounce, { icount: CHEAP_WAITS });
            booted.push(s);
            return s;
          },
          restore: (snapshot, variant, n) => restoreLinuxGuest(snapshot.point, { artifactsDir: path.join(restores, String(n)), readyTimeoutMs: 120_000 }),
          key: (variant) => `full-disk spec ${variant.id}`,
          base: tiny!,
          onProgress: (m) => progress.push(m),
        });

        const verdicts = await runSuite(selectCatalog({ all: false, grep: ONE }), { source });

        expect(verdicts.map((v) => [v.name, v.status, v.summary])).to.deep.equal([['round-trip 4096 B', 'pass', '4096 bytes verified from guest RAM']]);
        const reason = source.fallbackReasons.get('direct');
        expect(reason, progress.join('\n')).to.match(/^snapshot failed: /).and.match(c.reason);
        expect(reason).to.include(tiny!); // the message names where the room ran out
        expect(progress.join('\n')).to.match(/direct: cannot snapshot .*; booting a guest reused between scenarios instead/);
        expect(booted, 'one boot for the snapshot, one for the fallback: no restore was attempted').to.have.length(2);
        expect(fs.existsSync(restores), 'no restore ran').to.equal(false);
        // The log the reason points to, if any, says what ran out.
        const log = / — see (\S+)$/.exec(reason!)?.[1];
        if (log) expect(fs.readFileSync(log, 'utf8')).to.match(/No space left on device/);

        expect(tree(tiny!), 'nothing half-written on the full file system').to.deep.equal([]);
        expect(liveMachineCount(), 'a QEMU outlived the run').to.equal(0);
        for (const s of booted) expect(isProcessAlive(s.machine.pid), `QEMU ${s.machine.pid}`).to.equal(false);
        expect(processesMentioning(tiny!)).to.deep.equal([]);
      });
    });
  }

  describe('the CLI with its artifacts on a tiny tmpfs', () => {
    let tiny: string | undefined;
    afterEach(() => {
      unmount(tiny);
      tiny = undefined;
    });

    it('8 MiB: refused before anything is created or booted, naming the folder, the room and the fix (exit 2)', async function () {
      tiny = mountTinyFs(this, '8m');
      const artifacts = path.join(tiny, 'run');
      const cli = execa('node', [cliPath, 'run', '--grep', ONE.source, '--artifacts', artifacts], { reject: false });
      const r = await cli;
      expect(r.exitCode, r.stderr).to.equal(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.match(new RegExp(`^dmahil: only 8\\.0 MiB free for the artifacts in ${artifacts} \\(a run needs at least 32\\.0 MiB`));
      expect(lines[0]).to.match(/free space on that file system, or pass --artifacts DIR on one with room$/);
      expect(r.stdout).to.equal('');
      expect(tree(tiny), 'nothing created').to.deep.equal([]);
      expect(runDirsOf(cli.pid!)).to.deep.equal([]);
    });

    it('filled while the run goes: the verdict is printed, then one clear error (exit 2); no half-written results, no QEMU', async function () {
      tiny = mountTinyFs(this, '40m');
      const artifacts = path.join(tiny, 'run');
      const cli: ResultPromise = execa('node', [cliPath, 'run', '--grep', ONE.source, '--artifacts', artifacts], { reject: false });
      let stderr = '';
      cli.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      let ended = false;
      void cli.then(() => (ended = true));
      const qemus = new Set<number>();
      const watch = setInterval(() => qemuChildren(cli.pid!).forEach((p) => qemus.add(p)), 50);
      try {
        // Past the room check, as the first guest boots: from here every write to the artifacts can fail.
        await until('the first boot', () => /booting QEMU/.test(stderr) || (ended ? 'ended' : undefined), 300_000);
        fillUp(tiny);
        const r = await cli;
        expect(r.exitCode, r.stderr as string).to.equal(2);
        // The verdict reached the terminal although its files could not be written.
        expect(r.stdout).to.match(/^direct +round-trip 4096 B +pass +\w+/m).and.match(/^(PASS|FAIL): /m);
        const last = (r.stderr as string).trim().split('\n').pop()!;
        expect(last).to.equal(`dmahil: cannot write ${artifacts}/results.json: no space left on device — free space on the file system of ${artifacts}, or pass --artifacts DIR on one with room`);
        expect(r.stderr).to.not.match(/\n\s+at /, 'no stack trace');
      } finally {
        clearInterval(watch);
        if (!ended) {
          cli.kill('SIGKILL'); // a failed expectation must not leave the CLI (and, through pdeathsig, its QEMU) running
          await cli;
        }
      }
      const files = tree(tiny);
      expect(files.filter((f) => f.endsWith('.part')), 'no half-written report').to.deep.equal([]);
      expect(files, 'no empty or truncated results.json').to.not.include('run/results.json');
      for (const pid of qemus) expect(isProcessAlive(pid), `QEMU ${pid}`).to.equal(false);
      expect(processesMentioning(tiny)).to.deep.equal([]);
      expect(runDirsOf(cli.pid!)).to.deep.equal([]);
    });
  });
});
