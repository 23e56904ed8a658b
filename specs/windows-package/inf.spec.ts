// The INF checker passes edudma.inf and catches each seeded mistake.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkInf, modelsSectionFor, parseDecoration, parseInf, type InfCheckOptions } from '../../harness/windows-package/inf.js';
import { EDUDMA_INF_OPTIONS } from '../../harness/windows-package/package.js';
import { parsePe, readImports } from '../../harness/windows-package/pe.js';
import { ensurePackage, ROOT } from './support.js';

// The source INF; the package build ships it with CRLF line endings (checked below on the built one).
const INF = readFileSync(join(ROOT, 'guest-driver', 'windows', 'edudma.inf'), 'utf8');
const opts: InfCheckOptions = { ...EDUDMA_INF_OPTIONS, driverUsesMsi: true, lineEndings: 'any' };
const crlf = (t: string) => t.replace(/\r?\n/g, '\r\n');

function failing(text: string, o = opts): string[] {
  return checkInf(text, o).filter((c) => !c.ok).map((c) => c.id);
}

function replace(from: string | RegExp, to: string): string {
  const out = INF.replace(from, to);
  if (out === INF) throw new Error(`seed did not apply: ${from}`);
  return out;
}

describe('windows-package: INF checks of edudma.inf', function () {
  it('edudma.inf passes every check', function () {
    const checks = checkInf(INF, opts);
    expect(checks.filter((c) => !c.ok), JSON.stringify(checks.filter((c) => !c.ok))).to.deep.equal([]);
    expect(checks.map((c) => c.id)).to.include.members(['version-catalog', 'strings-resolved', 'hardware-id', 'files', 'msi-consistent', 'no-classinstall32', 'system-class', 'driver-store', 'dirid-13-downlevel', 'dma-remapping-opt-in']);
  });

  it('Windows picks the 1709+ (DIRID 13) models section from build 16299 on, the undecorated one before, none for ARM64', function () {
    const inf = parseInf(INF);
    const entry = inf.sections.get('manufacturer')!.lines[0]!;
    const pick = (arch: string, major: number, minor: number, build: number) => modelsSectionFor(inf, entry, arch, { major, minor, build });
    expect(pick('amd64', 10, 0, 26100)).to.equal('Standard.NTamd64.10.0...16299');
    expect(pick('amd64', 10, 0, 16299)).to.equal('Standard.NTamd64.10.0...16299');
    expect(pick('x86', 10, 0, 19045)).to.equal('Standard.NTx86.10.0...16299');
    expect(pick('amd64', 10, 0, 16298)).to.equal('Standard.NTamd64');
    expect(pick('amd64', 6, 3, 9600)).to.equal('Standard.NTamd64');
    expect(pick('x86', 6, 1, 7601)).to.equal('Standard.NTx86');
    expect(pick('arm64', 10, 0, 26100)).to.equal(undefined);
    expect(parseDecoration('NTamd64.10.0...16299')).to.deep.equal({ arch: 'amd64', version: { major: 10, minor: 0, build: 16299 } });
    expect(parseDecoration('NT.6.1')).to.deep.equal({ arch: undefined, version: { major: 6, minor: 1, build: 0 } });
  });

  it('the built edudma.inf (x64, x86) is the source with CRLF line endings and passes every check, CRLF included', function () {
    ensurePackage(this);
    for (const arch of ['x64', 'x86']) {
      const built = readFileSync(join(ROOT, 'build', 'windows', arch, 'edudma.inf'), 'latin1');
      expect(built, arch).to.equal(crlf(INF));
      const checks = checkInf(built, { ...EDUDMA_INF_OPTIONS, driverUsesMsi: true });
      expect(checks.filter((c) => !c.ok), arch).to.deep.equal([]);
      expect(checks.find((c) => c.id === 'line-endings')?.detail).to.match(/^CRLF on all \d+ lines$/);
    }
  });

  it('line endings: an LF-only INF fails as shipped (the default), and so does one bare LF; CRLF passes', function () {
    const strict = { ...opts, lineEndings: undefined };
    expect(failing(INF, strict)).to.deep.equal(['line-endings']);
    expect(checkInf(INF, strict).find((c) => c.id === 'line-endings')!.detail).to.match(/^LF without CR on every line/);
    const oneBare = crlf(INF).replace('[Strings]\r\n', '[Strings]\n');
    const line = crlf(INF).split('\r\n').indexOf('[Strings]') + 1;
    expect(checkInf(oneBare, strict).find((c) => c.id === 'line-endings')!.detail).to.equal(`LF without CR on line ${line} (1 of ${crlf(INF).split('\r\n').length - 1}): ship it with CRLF line endings`);
    expect(failing(crlf(INF), strict)).to.deep.equal([]);
  });

  it('MSISupported in the INF matches the driver: the built .sys connects with IoConnectInterruptEx', function () {
    ensurePackage(this);
    for (const arch of ['x64', 'x86']) {
      const imports = readImports(parsePe(readFileSync(join(ROOT, 'build', 'windows', arch, 'edudma.sys'))));
      const usesEx = imports.some((i) => i.functions.includes('IoConnectInterruptEx'));
      const usesLegacy = imports.some((i) => i.functions.includes('IoConnectInterrupt'));
      expect(usesEx && !usesLegacy, arch).to.equal(true);
      expect(failing(INF, { ...opts, driverUsesMsi: usesEx })).to.deep.equal([]);
    }
  });

  const seeds: [string, () => string, string][] = [
    ['missing CatalogFile', () => replace(/^CatalogFile.*$/m, ''), 'version-catalog'],
    ['wrong decoration (NTx64)', () => replace('Standard,NTamd64,NTx86', 'Standard,NTx64,NTx86'), 'manufacturer-models'],
    ['models section missing', () => replace('[Standard.NTx86]', '[Standard.NTx86old]'), 'manufacturer-models'],
    ['unresolved %string%', () => replace(/^EduDma\.DeviceDesc.*$/m, ''), 'strings-resolved'],
    ['file not in SourceDisksFiles', () => replace('edudma.sys = 1,,', 'other.sys = 1,,'), 'files'],
    ['SourceDisksFiles names an unknown disk', () => replace('edudma.sys = 1,,', 'edudma.sys = 2,,'), 'files'],
    ['ServiceType 3', () => replace(/ServiceType\s*=\s*1/, 'ServiceType   = 3'), 'install-sections'],
    ['AddService without 0x2', () => replace('AddService = edudma,0x00000002,', 'AddService = edudma,0x00000000,'), 'install-sections'],
    ['renamed service section', () => replace('[EduDma_Service]', '[EduDma_Svc]'), 'install-sections'],
    ['missing CopyFiles section', () => replace('[EduDma_CopyFiles]', '[EduDma_Files]'), 'install-sections'],
    ['missing install section', () => replace('[EduDma_Device.NT]', '[EduDma_Dev.NT]'), 'install-sections'],
    ['wrong hardware ID', () => replace(/PCI\\VEN_1234&DEV_11E8$/m, 'PCI\\VEN_1234&DEV_11E9'), 'hardware-id'],
    ['unclosed section header', () => replace('[Strings]', '[Strings'), 'syntax'],
    ['$WINDOWS 95$ signature', () => replace('$WINDOWS NT$', '$WINDOWS 95$'), 'version-signature'],
    ['bad DriverVer', () => replace('DriverVer   = 11/24/2026,0.1.0.0', 'DriverVer   = 2026-11-24'), 'version-driverver'],
    ['MSI enabled for a line-based driver', () => INF, 'msi-consistent'],
    // Windows Driver rules (InfVerif /w), and Windows 7 to 10 1703 still installable
    ['a [ClassInstall32] section', () => replace('[DestinationDirs]', '[ClassInstall32]\nAddReg = EduDma_ClassReg\n\n[EduDma_ClassReg]\nHKR,,,0,"dmahil"\n\n[DestinationDirs]'), 'no-classinstall32'],
    ['a private class', () => replace(/^Class\s*=.*$/m, 'Class = EduDma').replace(/^ClassGuid\s*=.*$/m, 'ClassGuid = {bde0a9ec-78a0-46ab-8036-67849c17a663}'), 'system-class'],
    ['class System with another GUID', () => replace('{4d36e97d-e325-11ce-bfc1-08002be10318}', '{4d36e97d-e325-11ce-bfc1-08002be10319}'), 'system-class'],
    ['the 1709+ files copied to DIRID 12', () => replace(/^EduDma_CopyFiles\s*=\s*13/m, 'EduDma_CopyFiles = 12'), 'driver-store'],
    ['the 1709+ service binary in %12%', () => replace('ServiceBinary = %13%\\edudma.sys', 'ServiceBinary = %12%\\edudma.sys'), 'driver-store'],
    ['no 1709+ models sections (the old INF)', () => replace('Standard,NTamd64,NTx86,NTamd64.10.0...16299,NTx86.10.0...16299', 'Standard,NTamd64,NTx86'), 'driver-store'],
    ['DIRID 13 for Windows 7 to 10 1703', () => replace(/^EduDma_CopyFiles_Downlevel\s*=\s*12/m, 'EduDma_CopyFiles_Downlevel = 13'), 'dirid-13-downlevel'],
    ['DIRID 13 from 1703 (decorated 15063)', () => INF.replaceAll('10.0...16299', '10.0...15063'), 'dirid-13-downlevel'],
    ['no models section for Windows 7', () => replace('Standard,NTamd64,NTx86,NTamd64', 'Standard,NTamd64'), 'dirid-13-downlevel'],
    // DMA remapping opt-in (the Windows iommu variant): per device and per driver, on every install
    ['no per-device DMA remapping opt-in', () => replace(/^HKR,"DMA Management",RemappingSupported.*$/m, ''), 'dma-remapping-opt-in'],
    ['per-device DMA remapping opted out (0)', () => replace('RemappingSupported,0x00010001,1', 'RemappingSupported,0x00010001,0'), 'dma-remapping-opt-in'],
    ['no per-driver DMA remapping opt-in', () => replace(/^HKR,Parameters,DmaRemappingCompatible.*$/m, ''), 'dma-remapping-opt-in'],
    ['per-driver opt-in only when verified (2)', () => replace('DmaRemappingCompatible,0x00010001,1', 'DmaRemappingCompatible,0x00010001,2'), 'dma-remapping-opt-in'],
    ['per-driver opt-in as a string, not a DWORD', () => replace('DmaRemappingCompatible,0x00010001,1', 'DmaRemappingCompatible,0x00000000,1'), 'dma-remapping-opt-in'],
    ['the downlevel service without the opt-in', () => replace('ServiceBinary = %12%\\edudma.sys\nAddReg        = EduDma_ServiceReg', 'ServiceBinary = %12%\\edudma.sys'), 'dma-remapping-opt-in'],
  ];
  for (const [name, make, id] of seeds) {
    it(`catches: ${name} -> ${id}`, function () {
      const o = name.startsWith('MSI enabled') ? { ...opts, driverUsesMsi: false } : opts;
      expect(failing(make(), o)).to.include(id);
    });
  }
});
