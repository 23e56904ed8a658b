// The Windows variants without Windows: their QEMU command lines, the verifier and remapping scripts and
// parsers, which catalog entries each runs on a golden image (and why the others are skipped), and
// QEMU 7.2's own intel-iommu trace lines read back by the parser.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { CATALOG, VARIANTS } from '../../harness/dma/catalog.js';
import { notOnImage } from '../../harness/dma/applicability.js';
import { variantCase } from '../../harness/dma/run-suite.js';
import { UsageError } from '../../harness/errors.js';
import { startGuest } from '../../harness/lib/guest.js';
import { buildQemuCommand, DEFAULT_QEMU_BINARY } from '../../harness/machine/cmdline.js';
import { decodePowerShellCommand, powershellCommand } from '../../harness/guest/windows/powershell.js';
import {
  eduBdfFromQueryPci, IOMMU_TRACE_EVENTS, parseRemappingState, parseVerifierState, parseVtdTrace, remappingReport, remappingStateScript, requireVerifierActive,
  verifierEnableScript, verifierStateScript, VerifierNotActiveError, windowsMachineConfig, type WindowsVariantMachine,
} from '../../harness/guest/windows/variant.js';

function args(variant: WindowsVariantMachine | undefined, memoryMiB = 2048): string[] {
  const config = windowsMachineConfig({ name: 'windows-test', memoryMiB, cpus: 2, accel: 'tcg', overlay: '/art/disk-overlay.qcow2', firmware: { kind: 'ovmf', code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/art/ovmf-vars.fd' }, ...(variant ? { variant } : {}) });
  return buildQemuCommand({ config, accel: 'tcg', runDir: '/dev/shm/run', artifactsDir: '/art', hostPort: 40022 }).args;
}
const deviceIndex = (a: string[], prefix: string) => a.findIndex((x, i) => a[i - 1] === '-device' && x.startsWith(prefix));

// A query-pci answer as QEMU 7.2 gives it for the Windows machine with intel-iommu (fields trimmed).
const QUERY_PCI = [{ bus: 0, devices: [
  { bus: 0, slot: 0, function: 0, id: { vendor: 0x8086, device: 0x29c0 } },
  { bus: 0, slot: 1, function: 0, id: { vendor: 0x1234, device: 0x1111 } },
  { bus: 0, slot: 2, function: 0, id: { vendor: 0x8086, device: 0x10d3 } },
  { bus: 0, slot: 4, function: 0, id: { vendor: 0x1234, device: 0x11e8 } },
] }];

describe('windows-guest/variant: the Windows variants (command lines, scripts, parsers)', () => {
  describe('the machine', () => {
    it('iommu: intel-iommu before every PCI device, its trace events on, reboots still an exit', () => {
      const a = args({ iommu: 'intel-iommu' });
      const iommu = deviceIndex(a, 'intel-iommu');
      expect(a[iommu]).to.equal('intel-iommu,intremap=off');
      for (const dev of ['edu', 'e1000e', 'pvpanic', 'vmcoreinfo']) {
        const at = deviceIndex(a, dev);
        expect(at, dev).to.be.greaterThan(iommu);
      }
      const traces = a.flatMap((x, i) => (a[i - 1] === '-trace' ? [x] : []));
      expect(traces).to.deep.equal([...IOMMU_TRACE_EVENTS]);
      expect(a).to.include('-no-reboot');
      expect(a[a.indexOf('-m') + 1]).to.equal('2048M');
    });

    it('verifier: the guest may reboot (once, to apply Driver Verifier); no IOMMU, no traces; the map-register memory', () => {
      const a = args({ verifier: true }, 4096);
      expect(a).to.not.include('-no-reboot');
      expect(deviceIndex(a, 'intel-iommu')).to.equal(-1);
      expect(a).to.not.include('-trace');
      expect(a[a.indexOf('-m') + 1]).to.equal('4096M');
    });

    it('direct and bounce: the golden image\'s machine as before (no IOMMU, no reboot, no traces)', () => {
      const a = args(undefined);
      expect(deviceIndex(a, 'intel-iommu')).to.equal(-1);
      expect(a).to.include('-no-reboot');
      expect(a).to.not.include('-trace');
      expect(a.join(' ')).to.include('-device edu').and.include('-cpu Nehalem-v1,+sse4.2,+popcnt').and.include('-action panic=pause');
    });
  });

  describe('Driver Verifier', () => {
    it('enables DMA checking (0x80) on edudma.sys alone, and the script survives the PowerShell encoding', () => {
      const s = verifierEnableScript();
      expect(s).to.include("& verifier.exe /flags 0x80 /driver 'edudma.sys' 2>&1");
      expect(decodePowerShellCommand(powershellCommand(s))).to.include(s);
      const q = verifierStateScript();
      expect(q).to.include('verifier.exe /querysettings').and.include('verifier.exe /query ').and.include('VerifyDriverLevel');
    });

    const state = (over: Record<string, unknown> = {}) => JSON.stringify({ verifyDrivers: 'edudma.sys', verifyDriverLevel: 0x80, settings: 'DMA checking: Enabled\r\n\r\nVerified drivers:\r\n\r\nedudma.sys\r\n', query: '09/12/2026, 10:01:02\r\n\r\nLevel: 00000080\r\n\r\nVerified drivers:\r\n\r\nName: edudma.sys, loads: 1, unloads: 0\r\n', ...over });

    it('active when the saved settings name edudma.sys with 0x80 and the running kernel verifies it', () => {
      const s = parseVerifierState(state());
      expect(s).to.include({ configured: true, dmaChecking: true, active: true });
      expect(() => requireVerifierActive(s)).to.not.throw();
    });

    it('refuses each way the verifier variant would run without verification, naming it', () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ verifyDrivers: '', settings: 'No drivers are currently verified.', query: 'No drivers are currently verified.' }, /do not name edudma\.sys/],
        [{ verifyDriverLevel: 0x1 }, /without DMA checking \(VerifyDriverLevel 0x1\)/],
        [{ query: 'No drivers are currently verified.\r\n' }, /running kernel does not verify it/],
      ];
      for (const [over, re] of cases) {
        const e = (() => {
          try {
            requireVerifierActive(parseVerifierState(state(over)));
          } catch (err) {
            return err as Error;
          }
          throw new Error(`accepted ${JSON.stringify(over)}`);
        })();
        expect(e).to.be.instanceOf(VerifierNotActiveError);
        expect(e.message).to.match(re);
      }
    });

    it('without the registry level, the /querysettings line decides DMA checking; unknown when neither says', () => {
      expect(parseVerifierState(state({ verifyDriverLevel: null })).dmaChecking).to.equal(true);
      expect(parseVerifierState(state({ verifyDriverLevel: null, settings: 'DMA checking: Disabled\r\nedudma.sys' })).dmaChecking).to.equal(false);
      expect(parseVerifierState(state({ verifyDriverLevel: null, settings: 'Prüfung: Aktiviert\r\nedudma.sys' })).dmaChecking).to.equal(undefined);
    });
  });

  describe('DMA remapping', () => {
    it('finds the edu\'s slot in query-pci, and none without one', () => {
      expect(eduBdfFromQueryPci(QUERY_PCI)).to.equal('00:04.0');
      expect(eduBdfFromQueryPci([{ bus: 0, devices: [] }])).to.equal(undefined);
      expect(eduBdfFromQueryPci(undefined)).to.equal(undefined);
    });

    it('reads QEMU 7.2\'s own trace lines: every device switched to untranslated at reset (measured)', async function () {
      this.timeout(20_000);
      const out = await new Promise<string>((resolve, reject) => {
        const p = spawn(DEFAULT_QEMU_BINARY, ['-machine', 'q35', '-accel', 'tcg', '-m', '128', '-nodefaults', '-display', 'none', '-device', 'intel-iommu,intremap=off', '-device', 'edu,addr=04.0', ...IOMMU_TRACE_EVENTS.flatMap((e) => ['-trace', e]), '-S']);
        let text = '';
        p.stderr.on('data', (d: Buffer) => {
          text += d.toString();
          if (/Device 00:04\.0 switching/.test(text)) p.kill('SIGKILL');
        });
        p.on('error', reject);
        p.on('exit', () => resolve(text));
        setTimeout(() => p.kill('SIGKILL'), 10_000);
      });
      expect(out).to.match(/^vtd_switch_address_space Device 00:04\.0 switching address space \(iommu enabled=0\)$/m);
      expect(parseVtdTrace(out, '00:04.0')).to.deep.equal({ dmarEnabled: undefined, eduTranslated: false });
    });

    it('a guest that turns translation on (measured: the reference guest under intel_iommu=on, edu at 00:03.0)', () => {
      const measured = [
        'vtd_switch_address_space Device 00:03.0 switching address space (iommu enabled=0)',
        'vtd_dmar_enable enable 1',
        'vtd_switch_address_space Device 00:03.0 switching address space (iommu enabled=1)',
        'vtd_switch_address_space Device 00:02.0 switching address space (iommu enabled=1)',
      ].join('\n');
      expect(parseVtdTrace(measured, '00:03.0')).to.deep.equal({ dmarEnabled: true, eduTranslated: true });
      expect(remappingReport('00:03.0', parseVtdTrace(measured, '00:03.0'), undefined).remapped).to.equal(true);
    });

    it('the last switch of the edu\'s slot decides; other devices and -msg timestamp prefixes are handled', () => {
      const log = [
        'vtd_switch_address_space Device 00:04.0 switching address space (iommu enabled=0)',
        '4242@1764780000.123456:vtd_dmar_enable enable 1',
        '4242@1764780000.123999:vtd_switch_address_space Device 00:02.0 switching address space (iommu enabled=1)',
        'qemu-system-x86_64: some other line',
      ];
      expect(parseVtdTrace(log.join('\n'), '00:04.0')).to.deep.equal({ dmarEnabled: true, eduTranslated: false });
      log.push('4242@1764780001.000000:vtd_switch_address_space Device 00:04.0 switching address space (iommu enabled=1)');
      expect(parseVtdTrace(log.join('\n'), '00:04.0')).to.deep.equal({ dmarEnabled: true, eduTranslated: true });
    });

    it('the guest\'s view: the INF\'s opt-ins as installed and DmaRemappingPolicy, read from Get-PnpDeviceProperty\'s JSON', () => {
      expect(remappingStateScript()).to.include("-like 'PCI\\VEN_1234&DEV_11E8*'").and.include('DMA Management').and.include('DmaRemappingCompatible');
      const g = parseRemappingState(JSON.stringify({ instanceId: 'PCI\\VEN_1234&DEV_11E8&SUBSYS_11001AF4&REV_10\\3&267A616A&0&20', properties: { key: 'DEVPKEY_Device_DmaRemappingPolicy', data: 2 }, remappingSupported: 1, dmaRemappingCompatible: 1 }));
      expect(g).to.include({ policy: 2, remappingSupported: 1, dmaRemappingCompatible: 1 });
      expect(parseRemappingState(JSON.stringify({ instanceId: 'x', properties: [], remappingSupported: null, dmaRemappingCompatible: null }))).to.include({ policy: undefined, remappingSupported: undefined });
    });

    it('never says ON from the guest\'s policy alone: only QEMU translating the edu is remapping', () => {
      const guest = parseRemappingState(JSON.stringify({ instanceId: 'x', properties: [{ key: 'DEVPKEY_Device_DmaRemappingPolicy', data: 2 }], remappingSupported: 1, dmaRemappingCompatible: 1 }));
      const never = remappingReport('00:04.0', { dmarEnabled: undefined, eduTranslated: false }, guest);
      expect(never.remapped).to.equal(false);
      expect(never.summary).to.match(/^DMA remapping OFF: Windows never turned VT-d translation on.*RemappingSupported=1, DmaRemappingCompatible=1; DmaRemappingPolicy 2$/);
      expect(remappingReport('00:04.0', { dmarEnabled: true, eduTranslated: false }, guest).summary).to.match(/^DMA remapping OFF: Windows turned VT-d translation on, but not for the edu \(00:04\.0\)/);
      const on = remappingReport('00:04.0', { dmarEnabled: true, eduTranslated: true }, undefined);
      expect(on.remapped).to.equal(true);
      expect(on.summary).to.match(/^DMA remapping ON: QEMU's intel-iommu translates the edu's DMA \(00:04\.0\).*the guest's view could not be read$/);
    });
  });

  describe('which entries each variant runs on a golden image', () => {
    const on = (image: string) => CATALOG.filter((c) => !notOnImage(c, image));

    it('Windows runs direct, bounce, the iommu variant\'s translated round trips and the verifier variant; no control it cannot catch', () => {
      const variants = new Set(on('windows.json').map((c) => c.variant));
      expect([...variants].sort()).to.deep.equal(['bounce', 'direct', 'iommu', 'verifier']);
      const iommu = on('windows.json').filter((c) => c.variant === 'iommu');
      expect(iommu.length).to.be.greaterThan(0);
      for (const c of iommu) expect(c.expectFinding, c.name).to.equal(undefined);
      expect(on('windows.json').filter((c) => c.variant === 'verifier').map((c) => c.scenario.method)).to.include.members(['streaming', 'scatter-gather', 'common-buffer']);
    });

    it('says why each Windows skip is one: refused faults, remapping Windows may not do, the reference guest\'s machines', () => {
      const why = (name: string) => notOnImage(CATALOG.find((c) => c.name === name)!, 'windows.json');
      expect(why('control: device writes after the unmap')).to.match(/edudma\.sys refuses the use-after-unmap fault as unsupported/);
      expect(why('control: mapping shorter than the transfer')).to.match(/edudma\.sys refuses the short-mapping fault as unsupported/);
      expect(why('control: destination mapped read-only for the device')).to.match(/only when Windows remaps the edu's DMA.*no platform opt-in.*dma-remapping\.json/);
      expect(why('lazy-translated round-trip 64 KiB')).to.match(/lazy or strict IOTLB invalidation is a Linux kernel parameter/);
      expect(why('high-memory round-trip 64 KiB')).to.match(/the bounce variant is this case: 4 GiB.*map registers/);
    });

    it('the reference guest skips the verifier variant, naming the option that runs it', () => {
      const v = CATALOG.filter((c) => c.variant === 'verifier');
      expect(v.length).to.be.greaterThan(0);
      for (const c of v) expect(notOnImage(c, 'linux'), c.name).to.match(/Windows golden image's.*--image <golden image> --all/);
      expect(CATALOG.filter((c) => c.variant !== 'verifier').every((c) => notOnImage(c, 'linux') === undefined)).to.equal(true);
    });

    it('Windows may use map registers on direct and under intel-iommu (remapping off): bouncing allowed there, never on the reference guest\'s', () => {
      const c = CATALOG.find((e) => e.name === 'translated round-trip 4096 B')!;
      expect(variantCase(VARIANTS.iommu, c, 'windows')).to.include({ behindIommu: true }).and.not.have.property('nothingBounces');
      expect(variantCase(VARIANTS.iommu, c, 'linux')).to.include({ behindIommu: true, nothingBounces: true });
      const d = CATALOG.find((e) => e.name === 'round-trip 4096 B')!;
      expect(variantCase(VARIANTS.direct, d, 'windows'), 'Windows direct: 2 GiB, pages beyond 28 bits bounce').to.not.have.property('variant');
      expect(variantCase(VARIANTS.direct, d, 'linux')).to.equal(d);
      const v = CATALOG.find((e) => e.variant === 'verifier')!;
      expect(variantCase(VARIANTS.verifier, v, 'windows')).to.equal(v);
    });

    it('startGuest refuses a Windows-only variant on the reference guest and a reference machine on Windows, before anything starts', async () => {
      const refused = async (p: Promise<unknown>) => p.then(() => expect.fail('started'), (e: Error) => e);
      const a = await refused(startGuest({ profile: 'linux', variant: VARIANTS.verifier, artifactsDir: '/nonexistent/a' }));
      expect(a).to.be.instanceOf(UsageError);
      expect(a.message).to.match(/"verifier" is a Windows golden image's/);
      const b = await refused(startGuest({ profile: 'windows', image: '/nonexistent.json', variant: VARIANTS['high-memory'], artifactsDir: '/nonexistent/b' }));
      expect(b).to.be.instanceOf(UsageError);
      expect(b.message).to.match(/"high-memory" sets the reference guest's machine/);
    });
  });
});
