// WindowsSession's flow against a scripted guest: the fake channel decodes each PowerShell command and
// answers like Windows would; the fake machine delivers QMP events. Everything up to a real Windows.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Duplex, PassThrough } from 'node:stream';
import type { ExecResult } from '../../harness/guest/channel/ssh-channel.js';
import { LineStream } from '../../harness/guest/channel/line-stream.js';
import { GuestCommandTimeoutError } from '../../harness/guest/channel/errors.js';
import { DmaAdapterError, DriverStartError, TestSigningOffError } from '../../harness/guest/windows/guest-commands.js';
import { decodePowerShellCommand } from '../../harness/guest/windows/powershell.js';
import { checkDriverPackage, GuestBugCheckError, GuestHangError, WindowsSession, type WinChannel, type WinMachine } from '../../harness/guest/windows/profile.js';
import type { QmpEvent } from '../../harness/machine/qmp/index.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { UsageError } from '../../harness/errors.js';
import { VerifierNotActiveError, type WindowsVariantMachine } from '../../harness/guest/windows/variant.js';

const INFO = { contract: 1, ok: true, command: 'info', os: 'windows', driver: { name: 'edudma', version: '0.1.0', api: 'wdm-dma-v3', dmaMaskBits: 28, adapterVersion: 3, dmaOpsSize: 320, flushDmaBuffer: true, device: 'PCI\\VEN_1234&DEV_11E8' }, faults: ['none'], methods: ['streaming'], maxSize: 1048576, held: 0 };

interface GuestState {
  testSigning: boolean;
  secureBoot: boolean;
  pnputilCode: number;
  deviceCode: number;
  hangOn?: RegExp;
  /** [Environment]::OSVersion.Version */
  os: { Major: number; Minor: number; Build: number };
  /** What the driver's adapter looks like in dmactl info. */
  driver: Partial<typeof INFO.driver>;
  commands: string[];
  uploads: string[];
  downloads: string[];
  /** Restarts so far (shutdown.exe /r), and logins that still reach the old boot before it goes down. */
  reboots?: number;
  staleLogins?: number;
  /** What verifier.exe reports after a reboot (the verifier variant). */
  verifierAfterReboot?: Record<string, unknown>;
}

/** dmactl.exe serve as a stream: a CRLF answer per line written. */
class FakeDmactl extends Duplex {
  readonly stderr = new PassThrough();
  private pending = '';
  constructor(private readonly answer: (line: string) => string) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.pending += chunk.toString();
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl);
      this.pending = this.pending.slice(nl + 1);
      this.push(this.answer(line) + '\r\n');
    }
    done();
  }
  override _read(): void {}
  close(): void {
    this.push(null);
    this.emit('close');
  }
}

class FakeChannel implements WinChannel {
  isOpen = true;
  constructor(private readonly g: GuestState) {}
  private answer(script: string): string {
    if (script.includes('SystemStartOptions')) return JSON.stringify({ startOptions: this.g.testSigning ? ' TESTSIGNING' : ' NOEXECUTE=OPTIN', bcd: `testsigning ${this.g.testSigning ? 'Yes' : 'No'}`, secureBoot: this.g.secureBoot });
    if (script.includes('pnputil.exe /add-driver')) return JSON.stringify({ code: this.g.pnputilCode, output: this.g.pnputilCode ? 'Failed to install the driver: The hash for the file is not present' : 'Driver package added successfully.' });
    if (script.includes('Win32_PnPEntity')) return JSON.stringify({ id: 'PCI\\VEN_1234&DEV_11E8\\3&1', name: 'EduDma', status: this.g.deviceCode ? 'Error' : 'OK', code: this.g.deviceCode, service: 'edudma' });
    if (script.includes('OSVersion')) return JSON.stringify(this.g.os);
    if (script.includes('Minidump')) return JSON.stringify([{ path: 'C:\\Windows\\Minidump\\112426-01.dmp', size: 65536 }]);
    if (script.includes('verifier.exe /flags')) return JSON.stringify({ code: 0, output: 'The system reboot is required for the changes to take effect.' });
    if (script.includes('shutdown.exe /r')) return (this.g.reboots = (this.g.reboots ?? 0) + 1, this.g.staleLogins = 1, '');
    if (script.includes('LastBootUpTime')) {
      if ((this.g.staleLogins ?? 0) > 0) return (this.g.staleLogins!--, `2026-12-03T10:00:0${(this.g.reboots ?? 0) - 1}.0000000Z`);
      return `2026-12-03T10:00:0${this.g.reboots ?? 0}.0000000Z`;
    }
    if (script.includes('verifier.exe /querysettings')) {
      const on = (this.g.reboots ?? 0) > 0;
      return JSON.stringify({ verifyDrivers: 'edudma.sys', verifyDriverLevel: 0x80, settings: 'DMA checking: Enabled\r\nedudma.sys', query: on ? 'Verified drivers:\r\nName: edudma.sys, loads: 1' : 'No drivers are currently verified.', ...(on ? this.g.verifierAfterReboot : {}) });
    }
    if (script.includes('Get-PnpDeviceProperty')) return JSON.stringify({ instanceId: 'PCI\\VEN_1234&DEV_11E8\\3&1', properties: [{ key: 'DEVPKEY_Device_DmaRemappingPolicy', data: 2 }], remappingSupported: 1, dmaRemappingCompatible: 1 });
    return 'ok\r\n';
  }
  async exec(command: string, opts: { timeoutMs: number }): Promise<ExecResult> {
    this.g.commands.push(command);
    if (this.g.hangOn?.test(decodePowerShellCommand(command) ?? command)) {
      await sleep(Math.min(opts.timeoutMs, 50));
      throw new GuestCommandTimeoutError(`guest command "${command.slice(0, 20)}" ran past ${opts.timeoutMs} ms`);
    }
    const script = decodePowerShellCommand(command);
    if (script === undefined) expect.fail(`only PowerShell goes through exec (dmactl goes through serve): ${command}`);
    return { command, stdout: this.answer(script), stderr: '', code: 0 };
  }
  async openLineStream(command: string): Promise<LineStream> {
    this.g.commands.push(command);
    expect(command).to.equal('C:\\dmahil\\dmactl.exe serve');
    return new LineStream(new FakeDmactl((line) => {
      this.g.commands.push(line);
      if (line === 'info') return JSON.stringify({ ...INFO, driver: { ...INFO.driver, ...this.g.driver } });
      if (line === 'release') return JSON.stringify({ contract: 1, ok: true, command: 'release', os: 'windows', handle: 0, error: null });
      return 'not json';
    }), command);
  }
  async upload(local: string, remote: string): Promise<void> {
    expect(fs.existsSync(local)).to.equal(true);
    this.g.uploads.push(remote);
  }
  async download(remote: string, local: string): Promise<void> {
    this.g.downloads.push(remote);
    fs.writeFileSync(local, `copy of ${remote}\n`);
  }
  close(): void {
    this.isOpen = false;
  }
}

class FakeMachine implements WinMachine {
  running = true;
  executed: Array<{ command: string; args?: Record<string, unknown> }> = [];
  private listeners: Array<(e: QmpEvent) => void> = [];
  constructor(readonly artifactsDir: string) {}
  isRunning(): boolean {
    return this.running;
  }
  qmp = {
    execute: async <T>(command: string, args?: Record<string, unknown>): Promise<T> => {
      this.executed.push({ command, args });
      if (command === 'dump-guest-memory' && args?.format === 'win-dmp') throw new Error('win-dmp requires vmcoreinfo guest driver');
      if (command === 'query-pci') return [{ bus: 0, devices: [{ bus: 0, slot: 4, function: 0, id: { vendor: 0x1234, device: 0x11e8 } }] }] as T;
      if (command === 'dump-guest-memory' || command === 'screendump') fs.writeFileSync(String(args?.protocol ?? args?.filename).replace(/^file:/, ''), 'x');
      return {} as T;
    },
    onEvent: (l: (e: QmpEvent) => void) => {
      this.listeners.push(l);
      return () => undefined;
    },
  };
  emit(event: string, data: Record<string, unknown> = {}): void {
    this.listeners.forEach((l) => l({ event, data, timestamp: { seconds: 0, microseconds: 0 } }));
  }
  deviceModelMessages() {
    return [];
  }
  async shutdown(): Promise<void> {
    this.running = false;
  }
}

describe('windows-guest/session (scripted guest)', () => {
  let dir: string;
  let driverDir: string;
  let overlay: string;
  const guest = (over: Partial<GuestState> = {}): GuestState => ({ testSigning: true, secureBoot: false, pnputilCode: 0, deviceCode: 0, os: { Major: 10, Minor: 0, Build: 26100 }, driver: {}, commands: [], uploads: [], downloads: [], ...over });
  const session = (g: GuestState, variant?: WindowsVariantMachine) => {
    const machine = new FakeMachine(dir);
    const logins: FakeChannel[] = [];
    const reconnect = async () => (logins.push(new FakeChannel(g)), logins.at(-1)!);
    const s = new WindowsSession(machine, new FakeChannel(g), undefined, { artifactsDir: dir, overlay, driverDir, keepOverlay: false, reconnect, ...(variant ? { variant } : {}) });
    return { machine, s, logins };
  };
  async function rejection(p: Promise<unknown>): Promise<Error> {
    try {
      await p;
    } catch (e) {
      return e as Error;
    }
    throw new Error('expected a rejection');
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-winsess-'));
    driverDir = path.join(dir, 'pkg');
    fs.mkdirSync(driverDir);
    for (const f of ['edudma.sys', 'edudma.inf', 'edudma.cat', 'edudma-test.cer', 'dmactl.exe']) fs.writeFileSync(path.join(driverDir, f), f);
    overlay = path.join(dir, 'disk-overlay.qcow2');
    fs.writeFileSync(overlay, 'overlay');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('installs: test signing checked, package uploaded over SFTP, certificate trusted, pnputil, device Code 0, dmactl info', async () => {
    const g = guest();
    const { s } = session(g);
    await s.installDriver();
    const scripts = g.commands.map((c) => decodePowerShellCommand(c) ?? c);
    const order = ['SystemStartOptions', 'New-Item', 'addstore Root', 'pnputil.exe /add-driver', 'Win32_PnPEntity', 'dmactl.exe serve', 'info', 'OSVersion'];
    let at = -1;
    for (const step of order) {
      const i = scripts.findIndex((c, k) => k > at && c.includes(step));
      expect(i, `step "${step}" after step ${at}`).to.be.greaterThan(at);
      at = i;
    }
    expect(g.uploads).to.deep.equal(['/C:/dmahil/edudma.sys', '/C:/dmahil/edudma.inf', '/C:/dmahil/edudma.cat', '/C:/dmahil/edudma-test.cer', '/C:/dmahil/dmactl.exe']);
    expect(fs.readFileSync(path.join(dir, 'windows', 'pnputil.txt'), 'utf8')).to.match(/^exit 0\n/);
    await s.close();
    expect(fs.existsSync(overlay), 'a run that went well drops its overlay').to.equal(false);
  });

  it('Windows 8 and later must grant DMA v3: a v2 adapter fails the install, naming the HAL', async () => {
    const g = guest({ driver: { api: 'wdm-dma-v2', adapterVersion: 2, dmaMaskBits: 32, flushDmaBuffer: false } });
    const { s } = session(g);
    const e = await rejection(s.installDriver());
    expect(e).to.be.instanceOf(DmaAdapterError);
    expect(e.message).to.match(/Windows 10\.0\.26100 gave edudma a wdm-dma-v2 adapter \(version 2\).*refused DEVICE_DESCRIPTION_VERSION3/);
    await s.close();
  });

  it('Windows 7 may grant only v2, but a 32-bit adapter on the 28-bit edu would land on wrong pages: refused with the fix', async () => {
    const g = guest({ os: { Major: 6, Minor: 1, Build: 7601 }, driver: { api: 'wdm-dma-v2', adapterVersion: 2, dmaMaskBits: 32, flushDmaBuffer: false } });
    const { s } = session(g);
    const e = await rejection(s.installDriver());
    expect(e).to.be.instanceOf(DmaAdapterError);
    expect((e as DmaAdapterError).describe()).to.match(/declares 32-bit DMA addressing.*reaches only 28 bits.*edu\.dmaMask = 0xffffffff/);
    await s.close();
  });

  it('test signing off: TestSigningOffError, nothing uploaded, the overlay kept', async () => {
    const g = guest({ testSigning: false });
    const { s } = session(g);
    const e = await rejection(s.installDriver());
    expect(e).to.be.instanceOf(TestSigningOffError);
    expect(g.uploads).to.deep.equal([]);
    await s.close();
    expect(fs.existsSync(overlay)).to.equal(true);
  });

  it('a driver that does not start: its Code, pnputil\'s complaint, logs collected, the overlay kept', async () => {
    const g = guest({ pnputilCode: 5, deviceCode: 52 });
    const { s } = session(g);
    const e = await rejection(s.installDriver());
    expect(e).to.be.instanceOf(DriverStartError);
    expect((e as DriverStartError).problemCode).to.equal(52);
    expect(e.message).to.match(/Code 52, Windows cannot verify.*pnputil exited with 5: Failed to install the driver/);
    await s.collectLogs();
    for (const f of ['driver-status.txt', 'setupapi.dev.log', 'system-events.txt', '112426-01.dmp', 'collect-errors.txt']) {
      expect(fs.existsSync(path.join(dir, 'windows', f)), f).to.equal(true);
    }
    expect(g.downloads).to.include('/C:/Windows/INF/setupapi.dev.log');
    expect(g.downloads).to.include('/C:/Windows/Minidump/112426-01.dmp');
    await s.close();
    expect(fs.existsSync(overlay)).to.equal(true);
  });

  it('a bug check while a command runs: GuestBugCheckError, screendump and memory dump (ELF after win-dmp fails)', async () => {
    const g = guest({ hangOn: /Win32_PnPEntity/ });
    const { s, machine } = session(g);
    const p = s.installDriver();
    setTimeout(() => machine.emit('GUEST_CRASHLOADED', { action: 'run' }), 10);
    const e = await rejection(p);
    expect(e).to.be.instanceOf(GuestBugCheckError);
    expect(e.message).to.match(/bug-checked \(GUEST_CRASHLOADED\)/);
    expect(machine.executed.map((x) => x.command)).to.include.members(['screendump', 'stop', 'dump-guest-memory']);
    expect(machine.executed.filter((x) => x.command === 'dump-guest-memory').map((x) => x.args?.format)).to.deep.equal(['win-dmp', 'elf']);
    expect(fs.existsSync(path.join(dir, 'screen-panic.ppm'))).to.equal(true);
    expect(fs.existsSync(path.join(dir, 'guest-memory-panic.elf'))).to.equal(true);
    expect(s.isHealthy()).to.equal(false);
    await s.close();
    expect(fs.existsSync(overlay)).to.equal(true);
  });

  it('a hang: GuestHangError with the screendump named, evidence taken once', async () => {
    const g = guest({ hangOn: /SystemStartOptions/ });
    const { s, machine } = session(g);
    const e = await rejection(s.installDriver());
    expect(e).to.be.instanceOf(GuestHangError);
    expect((e as GuestHangError).describe()).to.match(/stopped answering.*inject-nmi.*screen-hang\.ppm/);
    expect(machine.executed.filter((x) => x.command === 'screendump')).to.have.length(1);
    await s.close();
  });

  it('runs dmactl held with cmd-safe arguments and rejects output that is not the contract', async () => {
    const g = guest();
    const { s } = session(g);
    const e = await rejection(s.run(makeScenario({ size: 4096, seed: 7 })));
    expect(e.name).to.equal('GuestContractError');
    expect(g.commands.slice(-3)[0]).to.equal('C:\\dmahil\\dmactl.exe serve');
    expect(g.commands.slice(-2)[0]).to.match(/^run --direction round-trip .*--size 4096 .*--hold$/);
    expect(g.commands.at(-1), 'the rejected run is released').to.equal('release');
    await s.close();
  });

  it('verifier variant: DMA checking set in the overlay, one reboot, a new login once the boot time changed, then proof and the device again', async function () {
    this.timeout(20_000);
    const g = guest();
    const { s, logins } = session(g, { verifier: true });
    await s.installDriver();
    const state = await s.enableVerifier();
    expect(state).to.include({ configured: true, dmaChecking: true, active: true });
    expect(g.reboots).to.equal(1);
    expect(logins, 'the first login after the restart reached the old boot: it logs in again').to.have.length(2);
    const scripts = g.commands.map((c) => decodePowerShellCommand(c) ?? c);
    const order = ['verifier.exe /flags 0x80', 'LastBootUpTime', 'shutdown.exe /r', 'LastBootUpTime', 'LastBootUpTime', 'verifier.exe /querysettings', 'Win32_PnPEntity', 'dmactl.exe serve', 'info'];
    let at = scripts.findIndex((c) => c.includes('OSVersion'));
    for (const step of order) {
      const i = scripts.findIndex((c, k) => k > at && c.includes(step));
      expect(i, `step "${step}" after step ${at}`).to.be.greaterThan(at);
      at = i;
    }
    expect(scripts.filter((c) => c === 'C:\\dmahil\\dmactl.exe serve'), 'dmactl serve started again after the reboot').to.have.length(2);
    const log = fs.readFileSync(path.join(dir, 'windows', 'verifier.txt'), 'utf8');
    expect(log).to.match(/^verifier \/flags 0x80 \/driver edudma\.sys: exit 0\n/).and.match(/VerifyDriverLevel=128/).and.match(/Name: edudma\.sys/);
    await s.close();
    expect(fs.existsSync(overlay)).to.equal(false);
  });

  it('verifier variant: a reboot that did not apply the settings fails with the reason, the overlay kept', async function () {
    this.timeout(20_000);
    const g = guest({ verifierAfterReboot: { query: 'No drivers are currently verified.' } });
    const { s } = session(g, { verifier: true });
    await s.installDriver();
    const e = await rejection(s.enableVerifier());
    expect(e).to.be.instanceOf(VerifierNotActiveError);
    expect(e.message).to.match(/running kernel does not verify it/);
    await s.close();
    expect(fs.existsSync(overlay)).to.equal(true);
  });

  it('iommu variant: remapping reported from QEMU\'s trace for the edu\'s slot, the guest\'s opt-ins beside it, never ON on the guest\'s word', async () => {
    const g = guest();
    const { s } = session(g, { iommu: 'intel-iommu' });
    await s.installDriver();
    fs.writeFileSync(path.join(dir, 'qemu-stderr.log'), 'vtd_switch_address_space Device 00:04.0 switching address space (iommu enabled=0)\n');
    const off = await s.reportRemapping();
    expect(off.remapped).to.equal(false);
    expect(off.summary).to.match(/^DMA remapping OFF: Windows never turned VT-d translation on.*DmaRemappingPolicy 2$/);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'windows', 'dma-remapping.json'), 'utf8'))).to.include({ remapped: false, eduBdf: '00:04.0' });
    fs.appendFileSync(path.join(dir, 'qemu-stderr.log'), 'vtd_dmar_enable enable 1\nvtd_switch_address_space Device 00:04.0 switching address space (iommu enabled=1)\n');
    await s.close();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'windows', 'dma-remapping.json'), 'utf8')), 'close() writes the whole run\'s view').to.include({ remapped: true });
  });

  it('checkDriverPackage names the missing files and make driver', async () => {
    fs.rmSync(path.join(driverDir, 'edudma.cat'));
    const e = await rejection(checkDriverPackage(driverDir));
    expect(e).to.be.instanceOf(UsageError);
    expect((e as UsageError).describe()).to.match(/lacks edudma\.cat.*make driver/);
  });
});
