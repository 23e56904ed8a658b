// Command line for the Windows package build (guest-driver/windows/windows.mk):
//   cli.js pecheck --arch x64|x86 [--expect-signed] [--quiet] FILE.sys
//   cli.js infcheck [--msi yes|no] [--quiet] [--any-line-endings] FILE.inf
//   cli.js crlfcheck [--quiet] FILE...
//   cli.js pkgcheck --arch x64|x86 [--msi yes|no] [--quiet] DIR     (the built package folder)
//   cli.js mkcat --out FILE.cat [--os 2:10.0] --hwid ID [--hwid ID...] FILE...
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { makeCatalog } from './catalog.js';
import { checkCrlf, checkInf, type InfCheck } from './inf.js';
import { checkDriver, type Arch, type Check } from './pe.js';
import { checkPackage, EDUDMA_INF_OPTIONS } from './package.js';

function report(file: string, checks: (Check | InfCheck)[], quiet: boolean): number {
  const failed = checks.filter((c) => !c.ok);
  for (const c of checks) if (!quiet || !c.ok) console.log(`${c.ok ? 'PASS' : 'FAIL'} ${c.id}: ${c.detail}`);
  console.log(`${file}: ${checks.length - failed.length} passed, ${failed.length} failed`);
  return failed.length ? 1 : 0;
}

function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  const flags = new Map<string, string[]>();
  const files: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--expect-signed' || a === '--quiet' || a === '--any-line-endings') flags.set(a, ['1']);
    else if (a.startsWith('--')) flags.set(a, [...(flags.get(a) ?? []), rest[++i]]);
    else files.push(a);
  }
  const one = (k: string) => flags.get(k)?.[0];
  if (cmd === 'pecheck') {
    const arch = one('--arch') as Arch;
    if ((arch !== 'x64' && arch !== 'x86') || files.length !== 1) throw new Error('usage: pecheck --arch x64|x86 [--expect-signed] [--quiet] FILE');
    return report(files[0], checkDriver(readFileSync(files[0]), { arch, expectSigned: flags.has('--expect-signed') }), flags.has('--quiet'));
  }
  const msi = one('--msi');
  const driverUsesMsi = msi === undefined ? undefined : msi === 'yes';
  if (cmd === 'infcheck') {
    if (files.length !== 1) throw new Error('usage: infcheck [--msi yes|no] [--quiet] [--any-line-endings] FILE');
    const lineEndings = flags.has('--any-line-endings') ? 'any' : 'crlf';
    return report(files[0], checkInf(readFileSync(files[0], 'latin1'), { ...EDUDMA_INF_OPTIONS, driverUsesMsi, lineEndings }), flags.has('--quiet'));
  }
  if (cmd === 'crlfcheck') {
    if (files.length === 0) throw new Error('usage: crlfcheck [--quiet] FILE...');
    return files.map((f) => report(f, [checkCrlf(readFileSync(f, 'latin1'))], flags.has('--quiet'))).some((r) => r !== 0) ? 1 : 0;
  }
  if (cmd === 'pkgcheck') {
    const arch = one('--arch') as Arch;
    if ((arch !== 'x64' && arch !== 'x86') || files.length !== 1) throw new Error('usage: pkgcheck --arch x64|x86 [--msi yes|no] [--quiet] DIR');
    return report(files[0], checkPackage(files[0], arch, { driverUsesMsi }), flags.has('--quiet'));
  }
  if (cmd === 'mkcat') {
    const out = one('--out');
    const hwids = flags.get('--hwid') ?? [];
    if (!out || files.length === 0 || hwids.length === 0) throw new Error('usage: mkcat --out FILE.cat --hwid ID [--os ATTR] FILE...');
    const cat = makeCatalog(files.map((f) => ({ name: basename(f), data: readFileSync(f) })), { hwids, osAttr: one('--os') });
    writeFileSync(out, cat);
    return 0;
  }
  throw new Error(`unknown command '${cmd}' (pecheck, infcheck, crlfcheck, pkgcheck, mkcat)`);
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  console.error(`windows-package: ${(e as Error).message}`);
  process.exitCode = 2;
}
