// The accelerator is chosen by what runs. Real QEMU and the real /dev/kvm; on a host whose KVM works,
// its failure is staged by a wrapper that makes QEMU print KVM's internal error and never run the vCPU
// (specs/support/broken-kvm.ts), the way a cloud VM without nested VMX behaves.

import { expect } from 'chai';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { Machine, liveMachineCount, probeKvm, type LaunchOptions, type MachineConfig } from '../../harness/machine/index.js';
import { kvmVerdict } from '../../harness/machine/accel.js';
import { probeKvmExecution } from '../../harness/machine/kvm-probe.js';
import { buildReferenceImage } from '../../images/linux/build.js';
import { findExecutable, requireSetpriv } from '../../harness/machine/launch-checks.js';
import { SshChannel } from '../../harness/guest/channel/ssh-channel.js';
import { EnvironmentError } from '../../harness/errors.js';
import { GuestNotReadyError } from '../../harness/guest/channel/errors.js';
import { writeBrokenKvmQemu } from '../support/broken-kvm.js';
import { baseConfig, pausedConfig, scratchDir } from './support/fixtures.js';
import { cliPath, repoRoot } from '../e2e/support.js';

describe('machine: the accelerator is chosen by what runs (real QEMU, real /dev/kvm)', function () {
  this.timeout(60_000);
  let dir: string;
  const launched: Machine[] = [];

  async function launch(config: MachineConfig, options: Partial<LaunchOptions> = {}): Promise<Machine> {
    const m = await Machine.launch(config, { artifactsDir: path.join(dir, `art-${config.name}`), ...options });
    launched.push(m);
    return m;
  }

  before(() => {
    dir = scratchDir('accel');
  });
  after(async () => {
    for (const m of launched) await m.shutdown({ graceMs: 200 });
    expect(liveMachineCount()).to.equal(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('where /dev/kvm opens but KVM cannot run the guest', function () {
    let broken: string;
    before(function () {
      const dev = probeKvm();
      if (!dev.usable) {
        this.test!.parent!.title += ` (skipped: /dev/kvm does not open here: ${dev.reason})`;
        this.skip();
      }
      broken = writeBrokenKvmQemu(path.join(dir, 'broken-kvm'));
    });

    it("accel 'kvm' fails within seconds naming KVM's internal error and the fix; no QEMU is left", async () => {
      const t0 = Date.now();
      const err = await launch(pausedConfig({ name: 'kvm-demanded', accel: 'kvm', qemuBinary: broken })).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(EnvironmentError);
      expect((err as EnvironmentError).message).to.match(/^accel 'kvm' requested but KVM cannot run a guest here: .*KVM internal error\. Suberror: 1/);
      expect((err as EnvironmentError).hint).to.match(/--accel tcg/).and.match(/nested virtualization/);
      expect(Date.now() - t0).to.be.below(10_000);
      expect(liveMachineCount()).to.equal(0);
    });

    it("accel 'auto' falls back to TCG with one warning for the process, and the guest runs", async () => {
      const warnings: string[] = [];
      const a = await launch(baseConfig({ name: 'auto-1', accel: 'auto', qemuBinary: broken, extraArgs: ['-S'] }), { onWarning: (w) => warnings.push(w) });
      const b = await launch(baseConfig({ name: 'auto-2', accel: 'auto', qemuBinary: broken, extraArgs: ['-S'] }), { onWarning: (w) => warnings.push(w) });
      expect([a.accel, b.accel]).to.deep.equal(['tcg', 'tcg']);
      expect(warnings).to.have.length(1);
      expect(warnings[0]).to.match(/^warning: \/dev\/kvm opens but KVM cannot run a guest \(.*KVM internal error.*\): running under TCG instead$/);
      expect((await a.qmp.execute<{ enabled: boolean }>('query-kvm')).enabled).to.equal(false);
      await a.qmp.execute('cont');
      expect((await a.qmp.execute<{ running: boolean }>('query-status')).running).to.equal(true);
      expect(a.deadReason()).to.equal(undefined);
    });

    it('dmahil run --accel kvm: exit 2 within 10 s, one line naming KVM\'s internal error and the fix', async () => {
      const t0 = Date.now();
      const r = await execa('node', [cliPath, 'run', '--accel', 'kvm', '--artifacts', path.join(dir, 'cli-run')], { reject: false, env: { PATH: `${path.dirname(broken)}:${process.env.PATH}` } });
      expect(r.exitCode).to.equal(2);
      expect(Date.now() - t0).to.be.below(10_000);
      // Progress lines (the reference image, cached) may come first; the error is the last line, whole.
      expect(r.stderr.trim().split('\n').at(-1)).to.match(/^dmahil: accel 'kvm' requested but KVM cannot run a guest here: .*KVM internal error\. Suberror: 1.* — use --accel tcg/);
    });

    it('dmahil doctor tells the truth: present but not working', async () => {
      const r = await execa('node', [cliPath, 'doctor', '--json'], { reject: false, env: { PATH: `${path.dirname(broken)}:${process.env.PATH}` } });
      const kvm = (JSON.parse(r.stdout) as { checks: Array<{ name: string; status: string; detail: string }> }).checks.find((c) => c.name === '/dev/kvm')!;
      expect(kvm.status).to.equal('warn');
      expect(kvm.detail).to.match(/^present but not working: KVM cannot run the guest: QEMU: "KVM internal error\. Suberror: 1/);
    });

    it('a boot whose vCPU died is given up within a second, not at the SSH timeout', async () => {
      const dying = writeBrokenKvmQemu(path.join(dir, 'dying'), 'always');
      const m = await launch(baseConfig({ name: 'dying', accel: 'tcg', qemuBinary: dying }));
      const t0 = Date.now();
      const err = await SshChannel.waitReady(
        { host: '127.0.0.1', port: m.sshPort, username: 'root', privateKey: 'unused' },
        { timeoutMs: 120_000, deadReason: () => m.deadReason() },
      ).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestNotReadyError);
      expect((err as Error).message).to.match(/^the guest cannot boot: KVM stopped the vCPU \("KVM internal error\. Suberror: 1"\)/);
      expect(Date.now() - t0).to.be.below(5000);
    });
  });

  describe("this host's real KVM, judged by booting the reference kernel", function () {
    this.timeout(300_000);
    let kernel: string;
    let verdict: Awaited<ReturnType<typeof kvmVerdict>>;
    before(async function () {
      kernel = (await buildReferenceImage({ cacheDir: path.join(repoRoot, '.cache', 'images') })).kernel;
      verdict = await kvmVerdict(findExecutable('qemu-system-x86_64')!, requireSetpriv(), kernel);
      if (!verdict.device.usable) {
        this.test!.parent!.title += ` (skipped: /dev/kvm does not open: ${verdict.device.reason})`;
        this.skip();
      }
    });

    it('the kernel probe recognises a kernel that got through early boot (its success path, run under TCG)', async () => {
      const r = await probeKvmExecution({ binary: findExecutable('qemu-system-x86_64')!, setpriv: requireSetpriv(), kernel, accel: 'tcg', timeoutMs: 30_000 });
      expect(r).to.include({ works: true });
      expect(r.detail).to.match(/Kernel panic - not syncing/);
    });

    it('where KVM cannot run it: dmahil run --accel kvm exits 2 within 10 s with the cause; where it can, a scenario verifies under KVM', async function () {
      const grep = '^round-trip 1 B$';
      const t0 = Date.now();
      const r = await execa('node', [cliPath, 'run', '--accel', 'kvm', '--boot', '--grep', grep, '--artifacts', path.join(dir, 'real-kvm')], { reject: false });
      if (!verdict.execution?.works) {
        expect(r.exitCode, r.stderr).to.equal(2);
        expect(Date.now() - t0).to.be.below(10_000);
        expect(r.stderr.trim().split('\n').at(-1)).to.match(/^dmahil: accel 'kvm' requested but KVM cannot run a guest here: .* — use --accel tcg/);
        this.test!.title += ` [this host: ${verdict.execution?.detail}]`;
      } else {
        expect(r.exitCode, r.stderr).to.equal(0);
        expect(r.stderr).to.match(/waiting for the guest's SSH login \(KVM\)/);
      }
    });

    it("accel 'auto' and 'kvm' follow the verdict, and QEMU confirms what was chosen", async () => {
      const cfg = (accel: 'auto' | 'kvm') => pausedConfig({ name: `real-${accel}`, accel, kernel, append: 'console=ttyS0' });
      if (verdict.execution?.works) {
        for (const accel of ['auto', 'kvm'] as const) {
          const m = await launch(cfg(accel));
          expect(m.accel).to.equal('kvm');
          expect((await m.qmp.execute<{ enabled: boolean }>('query-kvm')).enabled).to.equal(true);
        }
      } else {
        const m = await launch(cfg('auto'), { onWarning: () => undefined });
        expect(m.accel).to.equal('tcg');
        expect((await m.qmp.execute<{ enabled: boolean }>('query-kvm')).enabled).to.equal(false);
        expect(await launch(cfg('kvm')).catch((e: unknown) => e)).to.be.instanceOf(EnvironmentError);
      }
    });
  });
});
