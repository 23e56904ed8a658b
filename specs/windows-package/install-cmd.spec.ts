// install.cmd of the built package, run by Wine's cmd.exe against a registry set per case, with stand-ins
// for the Windows tools Wine lacks or only stubs (fltmc, certutil, pnputil, bcdedit) and for dmactl.exe:
// each stand-in logs its arguments and exits with the code the case asks for. reg.exe and cmd.exe are
// Wine's own. What this proves: the elevation check stops first; test signing is read from the running
// kernel's SystemStartOptions (a whole option, no bcdedit); Windows 10 1607+ gets pnputil's /add-driver
// syntax and older builds -i -a; each failure stops the script with its own message and exit code.
// Not proven: the real tools' output and exit codes (no Windows here).
import { expect } from 'chai';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageDir } from '../../harness/windows-package/package.js';
import { createWinePrefix, ensurePackage, needTools, ROOT, run, type WinePrefix } from './support.js';

const STUB_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
/* Logs "NAME arg..." to C:\stub.log; exits with STUB_<NAME>_RC (default 0). */
int main(int argc, char **argv) {
  char name[64] = {0};
  const char *base = strrchr(argv[0], '\\');
  base = base ? base + 1 : argv[0];
  for (size_t i = 0; base[i] && base[i] != '.' && i < sizeof name - 1; i++) name[i] = (char)toupper((unsigned char)base[i]);
  FILE *log = fopen("C:\\stub.log", "a");
  if (log) {
    fputs(name, log);
    for (int a = 1; a < argc; a++) fprintf(log, " %s", argv[a]);
    fputs("\n", log);
    fclose(log);
  }
  char var[96];
  snprintf(var, sizeof var, "STUB_%s_RC", name);
  const char *rc = getenv(var);
  return rc ? atoi(rc) : 0;
}
`;

const CONTROL = 'HKLM\\SYSTEM\\CurrentControlSet\\Control';
const CURRENT_VERSION = 'HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion';

describe('windows-package: install.cmd under Wine cmd.exe (stand-ins for fltmc, certutil, pnputil, dmactl)', function () {
  let prefix: WinePrefix | undefined;
  let drive: string;

  before(function () {
    needTools(this, { wine: 'wine64', wineserver: 'wine64', 'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64-win32' });
    ensurePackage(this);
    this.timeout(180_000);
    const tmp = mkdtempSync(join(tmpdir(), 'dmahil-stub-'));
    try {
      writeFileSync(join(tmp, 'stub.c'), STUB_C);
      const cc = run('x86_64-w64-mingw32-gcc', ['-O2', '-s', '-o', join(tmp, 'stub.exe'), join(tmp, 'stub.c')]);
      if (cc.status !== 0) throw new Error(`stub build failed: ${cc.stderr}`);
      prefix = createWinePrefix();
      drive = join(prefix.dir, 'drive_c');
      for (const tool of ['fltmc', 'certutil', 'pnputil', 'bcdedit']) copyFileSync(join(tmp, 'stub.exe'), join(drive, 'windows', 'system32', `${tool}.exe`));
      mkdirSync(join(drive, 'pkg'));
      copyFileSync(join(tmp, 'stub.exe'), join(drive, 'pkg', 'dmactl.exe'));
      copyFileSync(join(packageDir('x64', ROOT), 'install.cmd'), join(drive, 'pkg', 'install.cmd'));
      // A wineserver that stays up between the cases (~0.2 s a case instead of ~2.5 s); dispose() ends it.
      // Started without pipes, with Wine's own services (services.exe, plugplay...): started by a piped call
      // they would outlive it holding its stdout, and spawnSync would wait for them.
      spawnSync('wineserver', ['-p', '60'], { env: prefix.env, stdio: 'ignore' });
      spawnSync('wine', ['cmd', '/c', 'exit'], { env: prefix.env, cwd: prefix.dir, stdio: 'ignore' });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
  after(() => prefix?.dispose());

  /** Run install.cmd with SystemStartOptions, CurrentBuildNumber and the stand-ins' exit codes. */
  function install(o: { startOptions?: string; build: string; rc?: Record<string, number> }) {
    // One cmd.exe per case: it sets the registry with Wine's reg.exe, then hands over to install.cmd. No
    // 'call' (Wine 8 loses a called script's exit code), no '||' (Wine 8 runs it after a success too).
    const reg = (key: string, name: string, value: string | undefined) =>
      value === undefined ? `reg delete "${key}" /v ${name} /f >nul 2>&1` : `reg add "${key}" /v ${name} /t REG_SZ /d "${value}" /f >nul\r\nif errorlevel 1 exit /b 99`;
    writeFileSync(join(drive, 'case.cmd'), ['@echo off', reg(CONTROL, 'SystemStartOptions', o.startOptions), reg(CURRENT_VERSION, 'CurrentBuildNumber', o.build), 'C:\\pkg\\install.cmd', ''].join('\r\n'));
    rmSync(join(drive, 'stub.log'), { force: true });
    // Wine's own builtin stubs (certutil in Wine 8; others in later Wines) would win over the files otherwise.
    const env: NodeJS.ProcessEnv = { WINEDLLOVERRIDES: 'mscoree,mshtml=;certutil.exe,fltmc.exe,pnputil.exe,bcdedit.exe=n' };
    for (const [tool, rc] of Object.entries(o.rc ?? {})) env[`STUB_${tool.toUpperCase()}_RC`] = String(rc);
    const r = prefix!.wine(['cmd', '/c', 'C:\\case.cmd'], env);
    if (r.status === 99) throw new Error(`reg add failed: ${r.stderr}`);
    let calls: string[] = [];
    try {
      calls = readFileSync(join(drive, 'stub.log'), 'utf8').trim().split(/\r?\n/).filter(Boolean);
    } catch {
      /* nothing ran */
    }
    return { code: r.status, out: r.stdout, err: r.stderr, calls };
  }

  const TESTSIGNING = ' NOEXECUTE=OPTIN  TESTSIGNING';
  const CERTS = ['CERTUTIL -f -addstore Root edudma-test.cer', 'CERTUTIL -f -addstore TrustedPublisher edudma-test.cer'];

  it('Windows 10 1607 and later (build 19045): certificates, pnputil /add-driver … /install, dmactl info; its exit code is the script\'s', function () {
    const r = install({ startOptions: TESTSIGNING, build: '19045', rc: { dmactl: 7 } });
    expect(r.calls).to.deep.equal(['FLTMC', ...CERTS, 'PNPUTIL /add-driver edudma.inf /install', 'DMACTL info']);
    expect(r.code).to.equal(7);
    expect(r.out).to.contain('pnputil /add-driver edudma.inf /install');
  });

  it('build 14393 (1607) is the first with /add-driver; Windows 7 (7601) and 10 1511 (10586) get pnputil -i -a', function () {
    expect(install({ startOptions: TESTSIGNING, build: '14393' }).calls).to.include('PNPUTIL /add-driver edudma.inf /install');
    for (const build of ['7601', '10586']) {
      const r = install({ startOptions: TESTSIGNING, build });
      expect(r.calls, build).to.deep.equal(['FLTMC', ...CERTS, 'PNPUTIL -i -a edudma.inf', 'DMACTL info']);
      expect(r.code, build).to.equal(0);
      expect(r.out).to.contain(`Windows build ${build}, before Windows 10 1607`);
    }
  });

  it('not elevated: stops first with the fix, before touching anything', function () {
    const r = install({ startOptions: TESTSIGNING, build: '19045', rc: { fltmc: 1 } });
    expect(r.code).to.equal(1);
    expect(r.calls).to.deep.equal(['FLTMC']);
    expect(r.err).to.match(/needs an elevated command prompt.*Run as administrator/);
  });

  it('test signing off in the running kernel (missing, absent from the options, or only a longer word): stops naming bcdedit; bcdedit itself is never run', function () {
    for (const startOptions of [undefined, ' NOEXECUTE=OPTIN', ' NOEXECUTE=OPTIN  TESTSIGNINGX']) {
      const r = install({ startOptions, build: '19045' });
      expect(r.code, String(startOptions)).to.equal(1);
      expect(r.calls, String(startOptions)).to.deep.equal(['FLTMC']);
      expect(r.err).to.match(/test signing is off in the running Windows/).and.match(/bcdedit \/set testsigning on/);
    }
    // Lower case and the option first are test signing on, as Windows writes it either way.
    expect(install({ startOptions: ' testsigning  NOEXECUTE=OPTIN', build: '19045' }).calls).to.include('DMACTL info');
  });

  it('a failing certutil or pnputil stops the script with its own message and code; 3010 (reboot) goes on', function () {
    const cert = install({ startOptions: TESTSIGNING, build: '19045', rc: { certutil: 1 } });
    expect(cert.code).to.equal(1);
    expect(cert.calls).to.deep.equal(['FLTMC', CERTS[0]]);
    expect(cert.err).to.match(/certutil could not add edudma-test\.cer/);

    const pnp = install({ startOptions: TESTSIGNING, build: '19045', rc: { pnputil: 5 } });
    expect(pnp.code).to.equal(5);
    expect(pnp.calls.at(-1)).to.equal('PNPUTIL /add-driver edudma.inf /install');
    expect(pnp.err).to.match(/pnputil failed with exit code 5: see .*setupapi\.dev\.log/i);

    const reboot = install({ startOptions: TESTSIGNING, build: '19045', rc: { pnputil: 3010 } });
    expect(reboot.code).to.equal(0);
    expect(reboot.calls.at(-1)).to.equal('DMACTL info');
    expect(reboot.out).to.match(/asks for a reboot/);
  });
});
