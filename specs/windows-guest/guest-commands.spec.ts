import { expect } from 'chai';
import {
  addDriverScript, describeProblemCode, deviceStateScript, DriverStartError, parseDeviceStates, parseDumpList, parsePnputil, parseTestSigning,
  requireDriverStarted, requireTestSigning, systemEventsScript, TestSigningOffError, trustCertificateScript,
} from '../../harness/guest/windows/guest-commands.js';

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('windows-guest/guest-commands', () => {
  describe('test signing', () => {
    const bcd = (v: string) => `Windows Boot Loader\n-------------------\nidentifier              {current}\ntestsigning             ${v}\nnx                      OptIn\n`;
    it('reads the running kernel from SystemStartOptions, the next boot from bcdedit', () => {
      expect(parseTestSigning(JSON.stringify({ startOptions: ' TESTSIGNING  NOEXECUTE=OPTIN', bcd: bcd('Yes'), secureBoot: false }))).to.deep.equal({ running: true, nextBoot: true, secureBoot: false });
      expect(parseTestSigning(JSON.stringify({ startOptions: ' NOEXECUTE=OPTIN', bcd: bcd('No'), secureBoot: null }))).to.deep.equal({ running: false, nextBoot: false, secureBoot: null });
      expect(parseTestSigning(JSON.stringify({ startOptions: ' NOEXECUTE=OPTIN', bcd: 'identifier {current}\n' })).nextBoot).to.equal(undefined);
    });
    it('off: a clear error with the next step, Secure Boot named when it is the cause', () => {
      expect(() => requireTestSigning({ running: true, nextBoot: true, secureBoot: false })).not.to.throw();
      const off = thrown(() => requireTestSigning({ running: false, nextBoot: false, secureBoot: false }));
      expect(off).to.be.instanceOf(TestSigningOffError);
      expect((off as TestSigningOffError).describe()).to.match(/test signing is off.*bcdedit \/set testsigning on.*reboot/);
      expect((thrown(() => requireTestSigning({ running: false, nextBoot: false, secureBoot: true })) as TestSigningOffError).describe()).to.match(/Secure Boot is on.*without Secure Boot keys/);
      expect(thrown(() => requireTestSigning({ running: false, nextBoot: true, secureBoot: false })).message).to.match(/this boot did not apply it/);
    });
  });

  describe('driver install', () => {
    it('trusts the certificate in Root and TrustedPublisher, the path quoted', () => {
      const s = trustCertificateScript("C:\\it's dir\\edudma-test.cer");
      expect(s).to.contain("certutil.exe -f -addstore Root 'C:\\it''s dir\\edudma-test.cer'");
      expect(s).to.contain("certutil.exe -f -addstore TrustedPublisher 'C:\\it''s dir\\edudma-test.cer'");
      expect(s.match(/LASTEXITCODE -ne 0/g)).to.have.length(2);
    });
    it('pnputil /add-driver /install, exit codes read', () => {
      expect(addDriverScript('C:\\dmahil\\edudma.inf')).to.contain("pnputil.exe /add-driver 'C:\\dmahil\\edudma.inf' /install");
      expect(parsePnputil('{"code":0,"output":"Added driver packages: 1"}')).to.include({ ok: true, rebootRequired: false });
      expect(parsePnputil('{"code":3010,"output":""}')).to.include({ ok: true, rebootRequired: true });
      expect(parsePnputil('{"code":259,"output":""}').ok).to.equal(true);
      expect(parsePnputil('{"code":5,"output":"Access is denied."}').ok).to.equal(false);
    });
    it('queries the edu by hardware ID with an escaped WQL literal', () => {
      expect(deviceStateScript()).to.contain("-Filter 'PNPDeviceID LIKE ''PCI\\\\VEN_1234&DEV_11E8%'''");
    });
    it('reads one device or a list', () => {
      const one = parseDeviceStates('{"id":"PCI\\\\VEN_1234&DEV_11E8&SUBSYS_11001AF4&REV_10\\\\3&267A616A&0&10","name":"dmahil EduDma","status":"OK","code":0,"service":"edudma"}');
      expect(one).to.have.length(1);
      expect(one[0]).to.include({ code: 0, service: 'edudma', status: 'OK' });
      expect(parseDeviceStates('')).to.deep.equal([]);
      expect(parseDeviceStates('[]')).to.deep.equal([]);
    });
    it('a device that did not start: the Code, its meaning and the next step', () => {
      const e = thrown(() => requireDriverStarted([{ id: 'PCI\\VEN_1234&DEV_11E8\\x', name: null, status: 'Error', code: 52, service: 'edudma' }], '/art/setupapi.dev.log'));
      expect(e).to.be.instanceOf(DriverStartError);
      expect((e as DriverStartError).problemCode).to.equal(52);
      expect((e as DriverStartError).describe()).to.match(/Code 52, Windows cannot verify the driver's digital signature.*test signing must be on.*see \/art\/setupapi\.dev\.log/);
      expect(thrown(() => requireDriverStarted([{ id: 'x', name: null, status: 'Error', code: 10, service: 'edudma' }])).message).to.match(/Code 10, the device cannot start/);
      expect(thrown(() => requireDriverStarted([{ id: 'x', name: null, status: 'Error', code: 28, service: null }])).message).to.match(/Code 28, no driver is installed/);
      expect(describeProblemCode(999).meaning).to.match(/documentation/);
      expect(thrown(() => requireDriverStarted([])).message).to.match(/no edu PCI device/);
      expect(thrown(() => requireDriverStarted([{ id: 'x', name: null, status: 'OK', code: 0, service: 'other' }])).message).to.match(/runs service "other", not edudma/);
      expect(requireDriverStarted([{ id: 'x', name: null, status: 'OK', code: 0, service: 'EduDma' }]).code).to.equal(0);
    });
  });

  describe('logs', () => {
    it('System events since a time, the time passed as a literal', () => {
      expect(systemEventsScript('2026-01-01T00:00:00.000Z')).to.contain("[datetime]::Parse('2026-01-01T00:00:00.000Z'");
      expect(systemEventsScript('x')).to.contain("LogName = 'System'; Level = 1,2,3");
    });
    it('dump lists', () => {
      expect(parseDumpList('')).to.deep.equal([]);
      expect(parseDumpList('{"path":"C:\\\\Windows\\\\MEMORY.DMP","size":123}')).to.deep.equal([{ path: 'C:\\Windows\\MEMORY.DMP', size: 123 }]);
    });
  });
});
