// dmahil doctor: every check against fake probes (what a broken runner looks like), and one real run.
import { expect } from 'chai';
import { execa } from 'execa';
import { doctor, doctorText, isReady, runChecks, type Probes } from '../../harness/cli/doctor.js';
import { cliPath } from '../e2e/support.js';

const GiB = 1024 ** 3;

/** A machine with everything; override what a test breaks. */
function probes(over: Partial<Probes> & { missing?: string[]; versions?: Record<string, string> } = {}): Probes {
  const versions: Record<string, string> = { 'qemu-system-x86_64': 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)', ...over.versions };
  return {
    run: async (cmd, args) => {
      if (over.missing?.includes(cmd)) return { ok: false, stdout: '', stderr: `${cmd}: not found` };
      if (cmd === 'qemu-system-x86_64' && args.includes('-device')) return { ok: true, stdout: 'name "edu", bus PCI\nname "e1000"', stderr: '' };
      return { ok: true, stdout: versions[cmd] ?? `${cmd} 1.0`, stderr: '' };
    },
    readWrite: () => undefined,
    exists: (f) => !(over.missing ?? []).includes(f),
    list: (dir) => (dir === '/lib/modules' ? ['6.1.0-56-amd64'] : dir.endsWith('images') ? ['linux-image-abc'] : []),
    freeBytes: () => 50 * GiB,
    nodeVersion: '20.19.1',
    kvm: async () => ({ device: { usable: true }, execution: { works: true, detail: 'the firmware ran under KVM (IP 0xe96ef)', ms: 160 } }),
    edu: async () => ({ qemuVersion: '7.2.22', clamps: true, clampMessage: 'stdout', fullBufferAborts: true, outOfRange: 'aborts', ms: 250 }),
    ...over,
  };
}

const byName = async (p: Probes) => Object.fromEntries((await runChecks(p, { repoRoot: '/repo' })).map((c) => [c.name, c]));

describe('cli: dmahil doctor', () => {
  it('a complete machine is ready, with KVM', async () => {
    const checks = await runChecks(probes(), { repoRoot: '/repo' });
    expect(isReady(checks)).to.equal(true);
    expect(checks.every((c) => c.status === 'ok'), doctorText(checks)).to.equal(true);
    expect(checks.find((c) => c.name === 'QEMU')!.detail).to.equal('QEMU 7.2.22 edu: out-of-mask DMA is clamped (message on stdout); a 4096-byte transfer aborts QEMU; an out-of-range transfer aborts QEMU');
    expect(checks.find((c) => c.name === '/dev/kvm')!.detail).to.match(/^works: the firmware ran under KVM/);
  });

  it('each missing piece names the package that fixes it, and the machine is not ready', async () => {
    const missing = ['qemu-system-x86_64', 'x86_64-w64-mingw32-gcc', 'wine', 'osslsigncode', '/usr/bin/chromium', 'setpriv'];
    const c = await byName(probes({ missing }));
    expect(c['QEMU']).to.include({ status: 'missing', fix: 'apt-get install -y qemu-system-x86 qemu-utils' });
    expect(c['mingw-w64 x86_64']!.fix).to.match(/gcc-mingw-w64-x86-64-win32/);
    expect(c['Wine']!.fix).to.equal('apt-get install -y wine wine64');
    expect(c['osslsigncode']!.fix).to.equal('apt-get install -y osslsigncode');
    expect(c['Chromium (HTML report spec)']!.fix).to.equal('apt-get install -y chromium');
    expect(c['setpriv (QEMU dies with the harness)']!.fix).to.match(/util-linux/);
    const all = await runChecks(probes({ missing }), { repoRoot: '/repo' });
    expect(isReady(all)).to.equal(false);
    expect(doctorText(all)).to.match(/not ready: 6 missing/);
  });

  it('no usable /dev/kvm is a warning with the fix, not a failure', async () => {
    expect((await byName(probes({ readWrite: () => 'EACCES' })))['/dev/kvm']).to.deep.include({ status: 'warn', fix: 'sudo usermod -aG kvm "$USER" and log in again (or run the runner service in group kvm)' });
    expect((await byName(probes({ readWrite: () => 'ENOENT' })))['/dev/kvm']!.detail).to.match(/TCG/);
    expect(isReady(await runChecks(probes({ readWrite: () => 'ENOENT' }), { repoRoot: '/repo' }))).to.equal(true);
  });

  it('a /dev/kvm that opens but cannot run a guest: "present but not working", with the cause and the fix', async () => {
    const broken = async () => ({ device: { usable: true }, execution: { works: false, detail: 'KVM cannot run the guest: QEMU: "KVM internal error. Suberror: 1 … emulation failure"', ms: 400 } });
    const c = (await byName(probes({ kvm: broken })))['/dev/kvm']!;
    expect(c.status).to.equal('warn');
    expect(c.detail).to.match(/^present but not working: KVM cannot run the guest: .*Suberror: 1.*; guests run under TCG$/);
    expect(c.fix).to.match(/--accel tcg/).and.match(/nested virtualization/);
  });

  it("QEMU 10 (Debian 13): supported, its edu's differences said, the fix a command that exists there", async () => {
    const c = await byName(probes({
      versions: { 'qemu-system-x86_64': 'QEMU emulator version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)' },
      edu: async () => ({ qemuVersion: '10.0.13', clamps: true, clampMessage: 'stderr', fullBufferAborts: false, outOfRange: 'logged', ms: 250 }),
    }));
    expect(c['QEMU']).to.deep.include({ status: 'ok', detail: 'QEMU 10.0.13 edu: out-of-mask DMA is clamped (message on stderr); a 4096-byte transfer works; an out-of-range transfer is logged, not stopped' });
    const silent = await byName(probes({ edu: async () => ({ qemuVersion: '11.1.3', clamps: true, fullBufferAborts: false, outOfRange: 'logged', ms: 1 }) }));
    expect(silent['QEMU']!.status).to.equal('warn');
    expect(silent['QEMU']!.detail).to.match(/beyond-mask control is reported not applicable/);
    expect(silent['QEMU']!.fix).to.not.match(/=1:7\.2/);
    const old = await byName(probes({ versions: { 'qemu-system-x86_64': 'QEMU emulator version 7.0.0' } }));
    expect(old['QEMU']).to.include({ status: 'missing' });
    expect(old['QEMU']!.fix).to.equal('apt-get install -y qemu-system-x86 qemu-utils (Debian 12 has 7.2, Debian 13 has 10.0)');
  });

  it('old Node, no kernel headers, no cached image, little disk and /dev/shm', async () => {
    const c = await byName(probes({
      nodeVersion: '18.20.0',
      exists: (f) => !f.endsWith('/build'),
      list: (dir) => (dir === '/lib/modules' ? ['6.1.0-56-amd64'] : []),
      freeBytes: (d) => (d === '/dev/shm' ? 64 * 1024 ** 2 : 0.5 * GiB),
    }));
    expect(c['Node.js']!.status).to.equal('missing');
    expect(c['guest kernel']).to.include({ status: 'missing', fix: 'apt-get install -y linux-headers-6.1.0-56-amd64' });
    expect(c['reference image']!.status).to.equal('warn');
    expect(c['free disk (cache, artifacts)']!.status).to.equal('missing');
    expect(c['free /dev/shm (guest RAM files)']!.fix).to.match(/size=1G/);
  });

  it('--json gives the same checks and the exit status says ready or not', async () => {
    let out = '';
    const code = await doctor({ repoRoot: '/repo', json: true, probes: probes({ missing: ['wine'] }), write: (s) => (out += s) });
    expect(code).to.equal(1);
    const r = JSON.parse(out) as { ready: boolean; checks: Array<{ name: string; status: string }> };
    expect(r.ready).to.equal(false);
    expect(r.checks.find((x) => x.name === 'Wine')!.status).to.equal('missing');
  });

  it('real run on this machine: every check reports, and the exit status matches readiness', async () => {
    const r = await execa('node', [cliPath, 'doctor', '--json'], { reject: false });
    const report = JSON.parse(r.stdout) as { ready: boolean; checks: Array<{ name: string; status: string }> };
    expect(report.checks.map((c) => c.name)).to.include.members(['Node.js', 'QEMU', '/dev/kvm', 'Wine', 'osslsigncode', 'reference image', 'free /dev/shm (guest RAM files)']);
    expect(r.exitCode).to.equal(report.ready ? 0 : 1);
    expect(report.checks.find((c) => c.name === 'QEMU')!.status, "this host's QEMU is supported").to.equal('ok');
  });
});
