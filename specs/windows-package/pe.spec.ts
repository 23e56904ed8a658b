// The PE checker passes the built drivers and catches each seeded defect, and only that defect.
import { expect } from 'chai';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkDriver,
  DIR_BASERELOC,
  fixChecksum,
  parsePe,
  readImports,
  rvaToOffset,
  type Arch,
  type Check,
} from '../../harness/windows-package/pe.js';
import { ARCHES, packageDir, ROOT_BUILD } from './pe-support.js';
import { ensurePackage, needTools, run } from './support.js';

function failing(checks: Check[]): string[] {
  return checks.filter((c) => !c.ok).map((c) => c.id);
}

function unsigned(arch: Arch): Buffer {
  return readFileSync(join(ROOT_BUILD, 'obj', arch, 'edudma.sys'));
}

/** Patch a copy, keep the checksum valid (unless told not to), and return it. */
function patched(arch: Arch, patch: (b: Buffer) => void, keepChecksum = true): Buffer {
  const b = Buffer.from(unsigned(arch));
  patch(b);
  if (keepChecksum) fixChecksum(b);
  return b;
}

function sectionHeader(b: Buffer, name: string): number {
  const pe = parsePe(b);
  const idx = pe.sections.findIndex((s) => s.name === name);
  if (idx < 0) throw new Error(`no section ${name}`);
  return pe.optOffset + b.readUInt16LE(pe.peOffset + 4 + 16) + 40 * idx;
}

describe('windows-package: PE checks of edudma.sys', function () {
  before(function () {
    ensurePackage(this);
  });

  for (const arch of ARCHES) {
    describe(arch, function () {
      it('the unsigned image passes every check', function () {
        const checks = checkDriver(unsigned(arch), { arch });
        expect(failing(checks), JSON.stringify(checks.filter((c) => !c.ok))).to.deep.equal([]);
        expect(checks.length).to.be.greaterThan(20);
      });

      it('the signed image passes every check, signature included', function () {
        const checks = checkDriver(readFileSync(join(packageDir(arch), 'edudma.sys')), { arch, expectSigned: true });
        expect(failing(checks)).to.deep.equal([]);
        expect(checks.find((c) => c.id === 'signature-present')?.detail).to.match(/revision 0x200, type 2/);
      });

      it('imports only ntoskrnl.exe and HAL.dll, IoGetDmaAdapter and IoConnectInterruptEx among them', function () {
        const imports = readImports(parsePe(unsigned(arch)));
        expect(imports.map((i) => i.dll.toLowerCase()).sort()).to.deep.equal(['hal.dll', 'ntoskrnl.exe']);
        const nt = imports.find((i) => i.dll.toLowerCase() === 'ntoskrnl.exe')!.functions;
        expect(nt).to.include.members(['IoGetDmaAdapter', 'IoConnectInterruptEx', 'IoCsqInsertIrpEx', 'IoAcquireRemoveLockEx']);
      });

      const seeds: { name: string; expect: string; also?: string[]; bytes: () => Buffer; opts?: { expectSigned?: boolean; arch?: Arch } }[] = [
        { name: 'GUI subsystem', expect: 'subsystem-native', bytes: () => patched(arch, (b) => b.writeUInt16LE(2, parsePe(b).optOffset + 68)) },
        { name: 'DLL flag (as -shared sets it)', expect: 'no-dll-flag', bytes: () => patched(arch, (b) => { const p = parsePe(b); b.writeUInt16LE(p.characteristics | 0x2000, p.peOffset + 4 + 18); }) },
        { name: 'NX_COMPAT cleared', expect: 'dll-characteristics', bytes: () => patched(arch, (b) => { const p = parsePe(b); b.writeUInt16LE(p.dllCharacteristics & ~0x100, p.optOffset + 70); }) },
        { name: '.text made writable (W+X)', expect: 'no-wx-sections', bytes: () => patched(arch, (b) => { const h = sectionHeader(b, '.text'); b.writeUInt32LE((b.readUInt32LE(h + 36) | 0x80000000) >>> 0, h + 36); }) },
        { name: 'stray .eh_fram section', expect: 'no-stray-sections', bytes: () => patched(arch, (b) => b.write('.eh_fram', sectionHeader(b, '.rdata'), 'latin1')) },
        { name: 'entry point outside code', expect: 'entry-point', bytes: () => patched(arch, (b) => { const p = parsePe(b); b.writeUInt32LE(p.sections.find((s) => s.name === '.rdata')!.virtualAddress, p.optOffset + 16); }) },
        { name: 'kernel32.dll imported instead of ntoskrnl.exe', expect: 'imports-kernel-only', also: ['imports-ntoskrnl'], bytes: () => patched(arch, (b) => { const i = b.indexOf('ntoskrnl.exe', 0, 'latin1'); b.write('kernel32.dll', i, 'latin1'); }) },
        { name: 'no base relocations (the x64 ld trap)', expect: 'relocations', bytes: () => patched(arch, (b) => { const p = parsePe(b); b.writeUInt32LE(0, p.directoryOffset + 8 * DIR_BASERELOC); b.writeUInt32LE(0, p.directoryOffset + 8 * DIR_BASERELOC + 4); }) },
        { name: 'relocation of the wrong type', expect: 'relocations', bytes: () => patched(arch, (b) => { const p = parsePe(b); const off = rvaToOffset(p, p.directories[DIR_BASERELOC].rva) + 8; const v = b.readUInt16LE(off); b.writeUInt16LE(((arch === 'x64' ? 3 : 10) << 12) | (v & 0xfff), off); }) },
        { name: 'COFF symbol table left in (no -s)', expect: 'symbols-stripped', bytes: () => patched(arch, (b) => { const p = parsePe(b); b.writeUInt32LE(0x400, p.peOffset + 4 + 8); b.writeUInt32LE(12, p.peOffset + 4 + 12); }) },
        { name: 'zero checksum', expect: 'checksum', bytes: () => patched(arch, (b) => b.writeUInt32LE(0, parsePe(b).checksumOffset), false) },
        { name: 'stale checksum after a patch', expect: 'checksum', bytes: () => patched(arch, (b) => { const h = sectionHeader(b, '.text'); const p = b.readUInt32LE(h + 20); b[p + 7] ^= 0x5a; }, false) },
        { name: 'signature expected but absent', expect: 'signature-present', bytes: () => unsigned(arch), opts: { expectSigned: true } },
        { name: 'the other architecture', expect: 'machine', bytes: () => unsigned(arch), opts: { arch: arch === 'x64' ? 'x86' : 'x64' } },
      ];
      for (const seed of seeds) {
        it(`catches: ${seed.name} -> ${seed.expect}`, function () {
          const checks = checkDriver(seed.bytes(), { arch: seed.opts?.arch ?? arch, expectSigned: seed.opts?.expectSigned });
          const bad = failing(checks);
          expect(bad).to.include(seed.expect);
          if (!seed.opts?.arch) expect(bad, 'only the seeded defect').to.deep.equal([seed.expect, ...(seed.also ?? [])]);
        });
      }
    });
  }

  // Images built with the wrong flags, from a tiny driver: the linker traps of wdm-build-notes.md section 4.
  describe('images built with the wrong flags', function () {
    let dir: string;
    const src = 'typedef long NTSTATUS;\n__declspec(dllimport) unsigned long __cdecl DbgPrint(const char *, ...);\n' +
      'NTSTATUS __stdcall DriverEntry(void *d, void *r) { (void)d; (void)r; DbgPrint("x"); return 0; }\n';
    const anchor = 'static NTSTATUS (__stdcall *const table[])(void *, void *) __attribute__((used)) = { DriverEntry };\n';
    const base = ['-O2', '-nostdlib', '-nostartfiles', '-Wl,--subsystem,native', '-Wl,--dynamicbase', '-Wl,--nxcompat', '-Wl,--wdmdriver',
      '-Wl,--major-subsystem-version,6', '-Wl,--minor-subsystem-version,1', '-Wl,--file-alignment,0x200', '-Wl,--section-alignment,0x1000'];
    const cc: Record<Arch, string> = { x64: 'x86_64-w64-mingw32-gcc', x86: 'i686-w64-mingw32-gcc' };
    const entry: Record<Arch, string> = { x64: '-Wl,--entry,DriverEntry', x86: '-Wl,--entry,_DriverEntry@8' };

    function build(arch: Arch, code: string, extra: string[], libs = ['-lntoskrnl']): Buffer {
      const c = join(dir, 'd.c');
      const out = join(dir, `d-${arch}.sys`);
      writeFileSync(c, code);
      const r = run(cc[arch], [...base, entry[arch], ...extra, '-o', out, c, ...libs]);
      if (r.status !== 0) throw new Error(r.stderr);
      return readFileSync(out);
    }

    before(function () {
      needTools(this, { 'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64-win32', 'i686-w64-mingw32-gcc': 'gcc-mingw-w64-i686-win32' });
      dir = mkdtempSync(join(tmpdir(), 'dmahil-pe-'));
    });
    after(() => dir && rmSync(dir, { recursive: true, force: true }));

    it('the reference flags give a clean image (control)', function () {
      for (const arch of ARCHES) {
        const img = build(arch, src + anchor, ['-s', ...(arch === 'x86' ? ['-fno-asynchronous-unwind-tables'] : [])]);
        expect(failing(checkDriver(img, { arch })), arch).to.deep.equal([]);
      }
    });
    it('x64 without an absolute address: no .reloc -> relocations', function () {
      expect(failing(checkDriver(build('x64', src, ['-s']), { arch: 'x64' }))).to.include('relocations');
    });
    it('-shared: DLL flag and an export directory -> no-dll-flag, no-exports', function () {
      expect(failing(checkDriver(build('x64', src + anchor, ['-s', '-shared']), { arch: 'x64' }))).to.include.members(['no-dll-flag']);
    });
    it('i686 with default unwind tables: .eh_fram -> no-stray-sections', function () {
      expect(failing(checkDriver(build('x86', src + anchor, ['-s']), { arch: 'x86' }))).to.include('no-stray-sections');
    });
    it('without -s: COFF symbols -> symbols-stripped', function () {
      expect(failing(checkDriver(build('x64', src + anchor, []), { arch: 'x64' }))).to.include('symbols-stripped');
    });
    it('a user-mode import (GetTickCount from kernel32) -> imports-kernel-only', function () {
      const code = src.replace('DbgPrint("x");', 'DbgPrint("x"); GetTickCount();') .replace('NTSTATUS __stdcall', '__declspec(dllimport) unsigned long __stdcall GetTickCount(void);\nNTSTATUS __stdcall');
      expect(failing(checkDriver(build('x64', code + anchor, ['-s'], ['-lntoskrnl', '-lkernel32']), { arch: 'x64' }))).to.include('imports-kernel-only');
    });
  });
});
