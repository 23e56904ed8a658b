// The machine layer against a real QEMU 7.2 (TCG is enough). No guest kernel: machines are paused (-S),
// or run a firmware that only halts while qtest drives the edu device from outside.

import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  isProcessAlive, Machine, MachineConfigError, QemuStartError, type MachineConfig, type LaunchOptions,
} from '../../harness/machine/index.js';
import { pickFreePort } from '../../harness/machine/ports.js';
import { openGuestMemory } from '../../harness/memory/index.js';
import { checkQemu, versionAtLeast } from '../../harness/machine/qemu-check.js';
import { probeEduBehaviour } from '../../harness/machine/edu-behaviour.js';
import { EnvironmentError, UsageError } from '../../harness/errors.js';
import { baseConfig, pausedConfig, scratchDir, waitForProcessGone } from './support/fixtures.js';
import { Qtest, writeHaltFirmware } from '../../harness/machine/qtest.js';

describe('machine (real QEMU)', function () {
  this.timeout(30_000);
  let dir: string;
  let runBase: string;
  const launched: Machine[] = [];

  async function launch(config: MachineConfig, options: Partial<LaunchOptions> = {}): Promise<Machine> {
    const m = await Machine.launch(config, { artifactsDir: path.join(dir, `art,${config.name}`), runDirBase: runBase, ...options });
    launched.push(m);
    return m;
  }

  before(() => {
    dir = scratchDir('machine');
    runBase = path.join(dir, 'run,base'); // commas must survive QEMU's option parsing
  });
  after(async () => {
    for (const m of launched) await m.shutdown({ graceMs: 200 });
    for (const m of launched) expect(isProcessAlive(m.pid), `QEMU ${m.pid} still alive`).to.equal(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('launches paused, answers QMP, forwards the port, and shuts down cleanly', async () => {
    const m = await launch(pausedConfig({ name: 'life' }), { runDirBase: undefined });
    expect(m.runDir.startsWith('/dev/shm/dmahil-run-'), m.runDir).to.equal(true);
    expect(fs.statSync(m.runDir).mode & 0o777).to.equal(0o700);
    expect(fs.statSync(m.ramFile!).size).to.equal(128 * 2 ** 20);
    expect(m.accel).to.equal('tcg');
    expect(m.isRunning()).to.equal(true);
    expect(await m.qmp.execute('query-status')).to.deep.include({ status: 'prelaunch', running: false });
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(m.sshPort, '127.0.0.1', () => (s.destroy(), resolve()));
      s.on('error', reject);
    });
    expect(m.deviceModelMessages()).to.deep.equal([]);

    const exit = await m.shutdown();
    expect(exit).to.deep.include({ cause: 'requested', code: 0, signal: null });
    expect(await m.shutdown()).to.equal(exit); // idempotent
    expect(await m.exited).to.equal(exit);
    expect(m.isRunning()).to.equal(false);
    expect(fs.existsSync(m.runDir)).to.equal(false);
    expect(isProcessAlive(m.pid)).to.equal(false);
    for (const f of ['serial.log', 'qemu-stdout.log', 'qemu-stderr.log', 'qmp.log', 'cmdline.txt']) {
      expect(fs.existsSync(path.join(m.artifactsDir, f)), f).to.equal(true);
    }
    const qmpLog = fs.readFileSync(path.join(m.artifactsDir, 'qmp.log'), 'utf8');
    expect(qmpLog).to.match(/^\d{4}-\d\d-\d\dT[\d:.]+Z recv \{"QMP"/);
    expect(qmpLog).to.match(/send \{"execute":"quit"/);
    expect(fs.readFileSync(path.join(m.artifactsDir, 'cmdline.txt'), 'utf8')).to.match(/^\S*setpriv --pdeathsig SIGKILL -- \S*qemu-system-x86_64 .*path=.*art,,life\/serial\.log/);
  });

  it('escalates quit → SIGTERM → SIGKILL when QEMU does not react (SIGSTOPped)', async () => {
    const m = await launch(pausedConfig({ name: 'stopped' }));
    process.kill(m.pid, 'SIGSTOP');
    const t0 = Date.now();
    const exit = await m.shutdown({ graceMs: 300 });
    const elapsed = Date.now() - t0;
    expect(exit).to.deep.include({ cause: 'requested', signal: 'SIGKILL', code: null });
    expect(elapsed).to.be.within(550, 5000);
    expect(fs.existsSync(m.runDir)).to.equal(false);
  });

  it('classifies SIGABRT as a hardware error and still cleans up', async () => {
    const m = await launch(pausedConfig({ name: 'abrt' }));
    process.kill(m.pid, 'SIGABRT');
    const exit = await m.exited;
    expect(exit).to.deep.include({ cause: 'hardware-error', signal: 'SIGABRT', code: null });
    expect(m.isRunning()).to.equal(false);
    expect(await m.shutdown()).to.equal(exit);
    expect(fs.existsSync(m.runDir)).to.equal(false);
  });

  it('classifies a SIGTERM from someone else as killed, naming the sender', async () => {
    const m = await launch(pausedConfig({ name: 'term' }));
    process.kill(m.pid, 'SIGTERM');
    const exit = await m.exited;
    expect(exit.cause).to.equal('killed');
    expect(exit.detail).to.contain(`from pid ${process.pid}`);
    expect(m.deviceModelMessages().map((x) => x.kind)).to.include('terminating-on-signal');
  });

  it('classifies guest-initiated exits from QMP events: pvpanic → guest-panic, reset under -no-reboot → guest-shutdown', async () => {
    const cases = [
      { name: 'panic', pvpanic: true, poke: 'outb 0x505 0x1', cause: 'guest-panic' }, // pvpanic ISA port, "panicked" bit
      { name: 'reset', pvpanic: false, poke: 'outb 0xcf9 0x6', cause: 'guest-shutdown' }, // ICH9 reset control: hard reset
    ] as const;
    for (const c of cases) {
      const qtest = await Qtest.listen(dir);
      const m = await launch(pausedConfig({ name: c.name, pvpanic: c.pvpanic, extraArgs: ['-S', ...qtest.args] }));
      try {
        await qtest.cmd(c.poke);
        const exit = await m.exited;
        expect(exit.cause, exit.detail).to.equal(c.cause);
        expect(exit.code).to.equal(0);
      } finally {
        await m.shutdown();
        await qtest.close();
      }
    }
  });

  it('reports a real edu clamp (stdout on 7.2, stderr without a newline on 10) and a real out-of-range transfer (7.2: SIGABRT; 10: a logged guest error)', async () => {
    const { version } = await checkQemu('qemu-system-x86_64');
    const qtest = await Qtest.listen(dir);
    const firmware = writeHaltFirmware(dir);
    const m = await launch(baseConfig({ name: 'edu', memoryMiB: 64, edu: { enabled: true, pciAddr: '04.0' }, extraArgs: ['-bios', firmware, ...qtest.args] }));
    try {
      const BAR = 0xfea00000;
      await qtest.pciConfigWrite(4, 0x10, BAR);
      await qtest.pciConfigWrite(4, 0x04, 0x6); // memory space + bus master
      expect(BigInt((await qtest.cmd(`readl 0x${BAR.toString(16)}`)).split(' ')[1]!)).to.equal(0x010000edn); // edu identification
      const dma = async (src: number, dst: number, cnt: number, toRam: boolean) => {
        await qtest.cmd(`writeq 0x${(BAR + 0x80).toString(16)} 0x${src.toString(16)}`);
        await qtest.cmd(`writeq 0x${(BAR + 0x88).toString(16)} 0x${dst.toString(16)}`);
        await qtest.cmd(`writeq 0x${(BAR + 0x90).toString(16)} 0x${cnt.toString(16)}`);
        await qtest.cmd(`writeq 0x${(BAR + 0x98).toString(16)} 0x${(toRam ? 3 : 1).toString(16)}`);
      };
      const dmaDone = async () => {
        const deadline = Date.now() + 5000;
        while ((await qtest.readq(BAR + 0x98)) & 1n) {
          if (Date.now() > deadline) throw new Error('edu DMA did not complete');
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      const pattern = crypto.randomBytes(16);
      await qtest.cmd(`write 0x2000 16 0x${pattern.toString('hex')}`);
      const mem = await openGuestMemory(m);
      expect((await mem.read(0x2000, 16)).equals(pattern), 'live view of a write').to.equal(true);

      await dma(0x2000, 0x40000, 16, false);
      await dmaDone();
      const since = Date.now();
      await dma(0x40000, 0x10001000, 16, true); // beyond the 28-bit mask: edu clamps to 0x1000
      await dmaDone();
      await new Promise((r) => setTimeout(r, 50)); // the stdout pipe may lag the register
      const clamps = m.deviceModelMessages(since).filter((x) => x.kind === 'edu-clamp');
      expect(clamps).to.have.length(1);
      expect(clamps[0]).to.deep.include({ from: 0x10001000n, to: 0x1000n });
      if (version.startsWith('7.2')) expect(clamps[0]!.stream).to.equal('stdout');
      if (versionAtLeast(version, [10, 0])) expect(clamps[0]!.stream).to.equal('stderr');
      expect((await mem.read(0x1000, 16)).equals(pattern), 'DMA landed at the clamped address').to.equal(true);

      const seen: string[] = [];
      m.onDeviceModelMessage((x) => seen.push(x.kind));
      const { outOfRange } = await probeEduBehaviour();
      await dma(0x40000, 0x3000, 8192, true); // read past the 4 KiB buffer: 7.2 aborts, 10 logs a guest error
      if (outOfRange === 'aborts') {
        const exit = await m.exited;
        expect(exit).to.deep.include({ cause: 'hardware-error', signal: 'SIGABRT' });
        expect(exit.detail).to.match(/^qemu: hardware error: EDU: DMA range 0x0*40000-0x0*41fff out of bounds/);
        const hw = m.deviceModelMessages().find((x) => x.kind === 'hardware-error');
        expect(hw?.kind === 'hardware-error' && hw.eduRange).to.deep.equal({ first: 0x40000n, last: 0x41fffn, validFirst: 0x40000n, validLast: 0x40fffn });
        expect(seen).to.include('hardware-error');
      } else {
        await dmaDone();
        await new Promise((r) => setTimeout(r, 50));
        const logged = m.deviceModelMessages(since).find((x) => x.kind === 'edu-range');
        expect(logged, `QEMU ${version}: the out-of-range transfer is reported`).to.deep.include({ first: 0x40000n, last: 0x41fffn, validFirst: 0x40000n, validLast: 0x40fffn });
        expect(m.isRunning()).to.equal(true);
      }
      // The RAM file outlives the crash until shutdown: post-mortem reads work.
      expect((await mem.read(0x1000, 16)).equals(pattern)).to.equal(true);
    } finally {
      await m.shutdown();
      await qtest.close();
    }
  });

  it('retries with another port when the host forward cannot be bound', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const busy = (blocker.address() as net.AddressInfo).port;
    const ports = [busy];
    try {
      const m = await launch(pausedConfig({ name: 'port' }), { pickPort: async () => ports.shift() ?? pickFreePort() });
      expect(m.sshPort).to.not.equal(busy);
      expect(fs.readFileSync(path.join(m.artifactsDir, 'cmdline.txt'), 'utf8')).to.contain('# attempt 2');
      expect(fs.readFileSync(path.join(m.artifactsDir, 'qemu-stderr.log'), 'utf8')).to.contain('Could not set up host forwarding rule');
      await m.shutdown();
    } finally {
      blocker.close();
    }
  });

  describe('launch failures: one clear line, nothing left behind', () => {
    const leftovers = (name: string) => (fs.existsSync(runBase) ? fs.readdirSync(runBase).filter((e) => e.includes(`-${process.pid}-${name}-`)) : []);

    it('QEMU rejecting an argument: quotes its first stderr line and names the log', async () => {
      const err = await launch(pausedConfig({ name: 'badarg', extraArgs: ['-device', 'no-such-device'] })).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(QemuStartError);
      expect((err as QemuStartError).message).to.equal(
        "QEMU exited at start (exit code 1): qemu-system-x86_64: -device no-such-device: 'no-such-device' is not a valid device model name",
      );
      expect((err as QemuStartError).logFile).to.match(/art,badarg\/qemu-stderr\.log$/);
      for (const name of ['badarg']) expect(leftovers(name)).to.deep.equal([]);
    });

    it('QEMU binary missing: names the Debian package and the apt-get command', async () => {
      const err = await launch(pausedConfig({ name: 'nobin', qemuBinary: 'qemu-system-nonexistent' })).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(EnvironmentError);
      expect((err as EnvironmentError).describe()).to.equal(
        'QEMU binary qemu-system-nonexistent not found on PATH — install the Debian package qemu-system-x86: apt-get install -y qemu-system-x86 (or set qemuBinary)',
      );
    });

    it('QMP socket never appearing: times out, kills the process', async () => {
      const fake = path.join(dir, 'fake-qemu.sh');
      fs.writeFileSync(fake, '#!/bin/sh\necho $$ > "$(dirname "$0")/fake.pid"\nexec sleep 30\n', { mode: 0o755 });
      const err = await launch(pausedConfig({ name: 'nosock', qemuBinary: fake }), { launchTimeoutMs: 500 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(QemuStartError);
      expect((err as Error).message).to.match(/^QMP socket \S+qmp\.sock never appeared before the launch timeout$/);
      const pid = Number(fs.readFileSync(path.join(dir, 'fake.pid'), 'utf8'));
      expect(await waitForProcessGone(isProcessAlive, pid, 2000)).to.equal(true);
      for (const name of ['nosock']) expect(leftovers(name)).to.deep.equal([]);
    });

    it('bad config or unreadable image: rejected before anything is spawned', async () => {
      const bad = await launch(pausedConfig({ name: 'badcfg', memoryMiB: 1 })).catch((e: unknown) => e);
      expect(bad).to.be.instanceOf(MachineConfigError);
      const noKernel = await launch(pausedConfig({ name: 'nokernel', kernel: '/nonexistent/vmlinuz' })).catch((e: unknown) => e);
      expect(noKernel).to.be.instanceOf(UsageError);
      expect((noKernel as Error).message).to.equal('machine config: kernel /nonexistent/vmlinuz is not readable (ENOENT)');
      for (const name of ['badcfg', 'nokernel']) expect(leftovers(name)).to.deep.equal([]);
    });
  });
});
