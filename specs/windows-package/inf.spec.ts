// The INF checker passes edudma.inf and catches each seeded mistake.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkInf, type InfCheckOptions } from '../../harness/windows-package/inf.js';
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
    expect(checks.map((c) => c.id)).to.include.members(['version-catalog', 'strings-resolved', 'hardware-id', 'files', 'msi-consistent']);
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
  ];
  for (const [name, make, id] of seeds) {
    it(`catches: ${name} -> ${id}`, function () {
      const o = name.startsWith('MSI enabled') ? { ...opts, driverUsesMsi: false } : opts;
      expect(failing(make(), o)).to.include(id);
    });
  }
});
