// A PE reader and a checker for Windows kernel drivers (.sys) built with mingw-w64.
// What a WDM driver image must look like, and which mingw linker traps each check catches:
// shared/reference/wdm-build-notes.md sections 4 and 5.
import { createHash } from 'node:crypto';

export type Arch = 'x64' | 'x86';

export interface Section {
  name: string;
  virtualSize: number;
  virtualAddress: number;
  rawSize: number;
  rawPointer: number;
  characteristics: number;
}

export interface DataDirectory {
  rva: number;
  size: number;
}

export interface PeImage {
  buf: Buffer;
  peOffset: number;
  machine: number;
  characteristics: number;
  symbolTablePointer: number;
  symbolCount: number;
  optOffset: number;
  magic: number;
  entryPoint: number;
  imageBase: bigint;
  sectionAlignment: number;
  fileAlignment: number;
  sizeOfImage: number;
  sizeOfHeaders: number;
  checksumOffset: number;
  checksum: number;
  subsystem: number;
  dllCharacteristics: number;
  majorSubsystemVersion: number;
  minorSubsystemVersion: number;
  directories: DataDirectory[];
  directoryOffset: number;
  sections: Section[];
}

export const IMAGE_FILE_RELOCS_STRIPPED = 0x0001;
export const IMAGE_FILE_EXECUTABLE_IMAGE = 0x0002;
export const IMAGE_FILE_DLL = 0x2000;
export const DLLCHAR_DYNAMIC_BASE = 0x0040;
export const DLLCHAR_NX_COMPAT = 0x0100;
export const DLLCHAR_WDM_DRIVER = 0x2000;
export const SCN_CODE = 0x20;
export const SCN_MEM_EXECUTE = 0x20000000;
export const SCN_MEM_WRITE = 0x80000000;
export const DIR_EXPORT = 0;
export const DIR_IMPORT = 1;
export const DIR_SECURITY = 4;
export const DIR_BASERELOC = 5;
export const DIR_TLS = 9;

const MACHINE: Record<Arch, number> = { x64: 0x8664, x86: 0x014c };

export class PeFormatError extends Error {}

export function parsePe(buf: Buffer): PeImage {
  const need = (off: number, n: number, what: string) => {
    if (off < 0 || off + n > buf.length) throw new PeFormatError(`${what} lies outside the file`);
  };
  need(0, 64, 'DOS header');
  if (buf.toString('latin1', 0, 2) !== 'MZ') throw new PeFormatError('no MZ signature');
  const peOffset = buf.readUInt32LE(0x3c);
  need(peOffset, 24, 'PE header');
  if (buf.readUInt32LE(peOffset) !== 0x00004550) throw new PeFormatError('no PE signature');
  const coff = peOffset + 4;
  const sectionCount = buf.readUInt16LE(coff + 2);
  const optSize = buf.readUInt16LE(coff + 16);
  const optOffset = coff + 20;
  need(optOffset, optSize, 'optional header');
  const magic = buf.readUInt16LE(optOffset);
  const pe32plus = magic === 0x20b;
  if (!pe32plus && magic !== 0x10b) throw new PeFormatError(`optional header magic 0x${magic.toString(16)}`);
  const dirCountOffset = optOffset + (pe32plus ? 108 : 92);
  const directoryOffset = optOffset + (pe32plus ? 112 : 96);
  const dirCount = buf.readUInt32LE(dirCountOffset);
  const directories: DataDirectory[] = [];
  for (let i = 0; i < Math.min(dirCount, 16); i++)
    directories.push({ rva: buf.readUInt32LE(directoryOffset + 8 * i), size: buf.readUInt32LE(directoryOffset + 8 * i + 4) });
  while (directories.length < 16) directories.push({ rva: 0, size: 0 });
  const secOffset = optOffset + optSize;
  need(secOffset, sectionCount * 40, 'section table');
  const sections: Section[] = [];
  for (let i = 0; i < sectionCount; i++) {
    const s = secOffset + 40 * i;
    sections.push({
      name: buf.toString('latin1', s, s + 8).replace(/\0+$/, ''),
      virtualSize: buf.readUInt32LE(s + 8),
      virtualAddress: buf.readUInt32LE(s + 12),
      rawSize: buf.readUInt32LE(s + 16),
      rawPointer: buf.readUInt32LE(s + 20),
      characteristics: buf.readUInt32LE(s + 36),
    });
  }
  return {
    buf,
    peOffset,
    machine: buf.readUInt16LE(coff),
    characteristics: buf.readUInt16LE(coff + 18),
    symbolTablePointer: buf.readUInt32LE(coff + 8),
    symbolCount: buf.readUInt32LE(coff + 12),
    optOffset,
    magic,
    entryPoint: buf.readUInt32LE(optOffset + 16),
    imageBase: pe32plus ? buf.readBigUInt64LE(optOffset + 24) : BigInt(buf.readUInt32LE(optOffset + 28)),
    sectionAlignment: buf.readUInt32LE(optOffset + 32),
    fileAlignment: buf.readUInt32LE(optOffset + 36),
    majorSubsystemVersion: buf.readUInt16LE(optOffset + 48),
    minorSubsystemVersion: buf.readUInt16LE(optOffset + 50),
    sizeOfImage: buf.readUInt32LE(optOffset + 56),
    sizeOfHeaders: buf.readUInt32LE(optOffset + 60),
    checksumOffset: optOffset + 64,
    checksum: buf.readUInt32LE(optOffset + 64),
    subsystem: buf.readUInt16LE(optOffset + 68),
    dllCharacteristics: buf.readUInt16LE(optOffset + 70),
    directories,
    directoryOffset,
    sections,
  };
}

/** File offset of an RVA, or -1 when no section holds it. */
export function rvaToOffset(pe: PeImage, rva: number): number {
  for (const s of pe.sections) {
    if (rva >= s.virtualAddress && rva < s.virtualAddress + Math.max(s.virtualSize, s.rawSize)) {
      const off = rva - s.virtualAddress;
      return off < s.rawSize ? s.rawPointer + off : -1;
    }
  }
  return rva < pe.sizeOfHeaders ? rva : -1;
}

function cString(buf: Buffer, off: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('latin1', off, end < 0 ? buf.length : end);
}

export interface ImportedDll {
  dll: string;
  functions: string[];
}

export function readImports(pe: PeImage): ImportedDll[] {
  const dir = pe.directories[DIR_IMPORT];
  const out: ImportedDll[] = [];
  if (dir.rva === 0) return out;
  const pe32plus = pe.magic === 0x20b;
  for (let d = rvaToOffset(pe, dir.rva); d >= 0 && d + 20 <= pe.buf.length; d += 20) {
    const lookup = pe.buf.readUInt32LE(d);
    const nameRva = pe.buf.readUInt32LE(d + 12);
    const iat = pe.buf.readUInt32LE(d + 16);
    if (nameRva === 0 && iat === 0) break;
    const nameOff = rvaToOffset(pe, nameRva);
    const entry: ImportedDll = { dll: nameOff >= 0 ? cString(pe.buf, nameOff) : '?', functions: [] };
    let t = rvaToOffset(pe, lookup || iat);
    const step = pe32plus ? 8 : 4;
    while (t >= 0 && t + step <= pe.buf.length) {
      const v = pe32plus ? pe.buf.readBigUInt64LE(t) : BigInt(pe.buf.readUInt32LE(t));
      if (v === 0n) break;
      const byOrdinal = pe32plus ? (v >> 63n) & 1n : (v >> 31n) & 1n;
      if (byOrdinal) entry.functions.push(`#${Number(v & 0xffffn)}`);
      else {
        const h = rvaToOffset(pe, Number(v & 0x7fffffffn));
        entry.functions.push(h >= 0 ? cString(pe.buf, h + 2) : '?');
      }
      t += step;
    }
    out.push(entry);
  }
  return out;
}

export interface Relocations {
  blocks: number;
  types: Map<number, number>;
  /** fixups of a real type (not ABSOLUTE padding) whose target lies in no section */
  outside: number;
}

export function readRelocations(pe: PeImage): Relocations {
  const dir = pe.directories[DIR_BASERELOC];
  const r: Relocations = { blocks: 0, types: new Map(), outside: 0 };
  if (dir.rva === 0 || dir.size === 0) return r;
  let off = rvaToOffset(pe, dir.rva);
  if (off < 0) return r;
  const end = off + dir.size;
  while (off + 8 <= end) {
    const pageRva = pe.buf.readUInt32LE(off);
    const blockSize = pe.buf.readUInt32LE(off + 4);
    if (blockSize < 8) break;
    r.blocks++;
    for (let e = off + 8; e + 2 <= off + blockSize; e += 2) {
      const v = pe.buf.readUInt16LE(e);
      const type = v >> 12;
      r.types.set(type, (r.types.get(type) ?? 0) + 1);
      if (type !== 0 && rvaToOffset(pe, pageRva + (v & 0xfff)) < 0) r.outside++;
    }
    off += blockSize;
  }
  return r;
}

/** The PE checksum (ImageHlp's CheckSumMappedFile): 16-bit one's-complement-style sum plus the file length. */
export function peChecksum(buf: Buffer, checksumOffset: number): number {
  let sum = 0;
  const n = buf.length & ~1;
  for (let i = 0; i < n; i += 2) {
    if (i === checksumOffset || i === checksumOffset + 2) continue;
    sum += buf.readUInt16LE(i);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (buf.length & 1) {
    sum += buf[buf.length - 1];
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + buf.length) >>> 0;
}

/** Rewrite the header checksum in place (for patched images). */
export function fixChecksum(buf: Buffer): void {
  const pe = parsePe(buf);
  buf.writeUInt32LE(peChecksum(buf, pe.checksumOffset), pe.checksumOffset);
}

/** Authenticode digest of a PE (checksum, security directory entry and certificate table excluded). */
export function authenticodeHash(buf: Buffer, algorithm: 'sha1' | 'sha256' = 'sha256'): Buffer {
  const pe = parsePe(buf);
  const secEntry = pe.directoryOffset + 8 * DIR_SECURITY;
  const sec = pe.directories[DIR_SECURITY];
  const end = sec.rva !== 0 && sec.size !== 0 ? sec.rva : buf.length;
  const h = createHash(algorithm);
  h.update(buf.subarray(0, pe.checksumOffset));
  h.update(buf.subarray(pe.checksumOffset + 4, secEntry));
  h.update(buf.subarray(secEntry + 8, end));
  const pad = (8 - (end % 8)) % 8;
  if (sec.rva === 0 && pad) h.update(Buffer.alloc(pad)); // as osslsigncode does for unsigned files
  return h.digest();
}

export interface Check {
  id: string;
  ok: boolean;
  detail: string;
}

export interface PeCheckOptions {
  arch: Arch;
  expectSigned?: boolean;
}

const KERNEL_DLLS = new Set(['ntoskrnl.exe', 'hal.dll']);
const FORBIDDEN_FUNCTIONS = /^(__chkstk|___chkstk_ms|__chkstk_ms|__stack_chk_|__udivdi3|__umoddi3|__divdi3|__moddi3|_?malloc$|_?free$|printf$|__security_)/;
const ALLOWED_SECTIONS = new Set(['.text', '.rdata', '.data', '.bss', '.pdata', '.xdata', '.idata', '.reloc', 'INIT', 'PAGE']);

/** Check a kernel driver image; each check says what it found. */
export function checkDriver(buf: Buffer, opts: PeCheckOptions): Check[] {
  const checks: Check[] = [];
  const add = (id: string, ok: boolean, detail: string) => checks.push({ id, ok, detail });
  let pe: PeImage;
  try {
    pe = parsePe(buf);
  } catch (e) {
    add('pe-format', false, (e as Error).message);
    return checks;
  }
  add('pe-format', true, `PE at 0x${pe.peOffset.toString(16)}, ${pe.sections.length} sections`);
  const wantMagic = opts.arch === 'x64' ? 0x20b : 0x10b;
  add('machine', pe.machine === MACHINE[opts.arch] && pe.magic === wantMagic,
    `machine 0x${pe.machine.toString(16)}, magic 0x${pe.magic.toString(16)} (want 0x${MACHINE[opts.arch].toString(16)}, 0x${wantMagic.toString(16)})`);
  add('subsystem-native', pe.subsystem === 1, `subsystem ${pe.subsystem} (1 = native)`);
  add('subsystem-version', pe.majorSubsystemVersion >= 6,
    `subsystem version ${pe.majorSubsystemVersion}.${pe.minorSubsystemVersion} (6.1 or later)`);
  add('executable', (pe.characteristics & IMAGE_FILE_EXECUTABLE_IMAGE) !== 0 && (pe.characteristics & IMAGE_FILE_RELOCS_STRIPPED) === 0,
    `characteristics 0x${pe.characteristics.toString(16)}: EXECUTABLE_IMAGE set, RELOCS_STRIPPED clear`);
  add('no-dll-flag', (pe.characteristics & IMAGE_FILE_DLL) === 0,
    (pe.characteristics & IMAGE_FILE_DLL) ? 'IMAGE_FILE_DLL set (linked with -shared)' : 'IMAGE_FILE_DLL clear');
  add('dll-characteristics',
    (pe.dllCharacteristics & (DLLCHAR_DYNAMIC_BASE | DLLCHAR_NX_COMPAT | DLLCHAR_WDM_DRIVER)) === (DLLCHAR_DYNAMIC_BASE | DLLCHAR_NX_COMPAT | DLLCHAR_WDM_DRIVER),
    `DllCharacteristics 0x${pe.dllCharacteristics.toString(16)}: DYNAMIC_BASE, NX_COMPAT and WDM_DRIVER wanted`);
  add('alignment', pe.sectionAlignment === 0x1000 && pe.fileAlignment >= 0x200 && (pe.sizeOfHeaders % pe.fileAlignment) === 0,
    `section alignment 0x${pe.sectionAlignment.toString(16)}, file alignment 0x${pe.fileAlignment.toString(16)}, headers 0x${pe.sizeOfHeaders.toString(16)}`);
  const last = pe.sections.reduce((m, s) => Math.max(m, s.virtualAddress + s.virtualSize), 0);
  add('size-of-image', pe.sizeOfImage >= last && pe.sizeOfImage % pe.sectionAlignment === 0,
    `SizeOfImage 0x${pe.sizeOfImage.toString(16)}, sections end at 0x${last.toString(16)}`);
  const entrySec = pe.sections.find((s) => pe.entryPoint >= s.virtualAddress && pe.entryPoint < s.virtualAddress + s.virtualSize);
  add('entry-point', !!entrySec && (entrySec.characteristics & SCN_MEM_EXECUTE) !== 0 && (entrySec.characteristics & SCN_CODE) !== 0,
    `entry 0x${pe.entryPoint.toString(16)} in ${entrySec ? entrySec.name : 'no section'}`);
  const wx = pe.sections.filter((s) => (s.characteristics & SCN_MEM_EXECUTE) && (s.characteristics & SCN_MEM_WRITE));
  add('no-wx-sections', wx.length === 0, wx.length ? `writable and executable: ${wx.map((s) => s.name).join(', ')}` : 'no section is both writable and executable');
  const stray = pe.sections.filter((s) => !ALLOWED_SECTIONS.has(s.name));
  add('no-stray-sections', stray.length === 0,
    stray.length ? `unexpected sections: ${stray.map((s) => s.name).join(', ')} (.eh_fram: missing -fno-asynchronous-unwind-tables or libgcc; .edata: -shared; .debug*: missing -s)` : pe.sections.map((s) => s.name).join(' '));
  add('symbols-stripped', pe.symbolTablePointer === 0 && pe.symbolCount === 0,
    pe.symbolTablePointer ? `COFF symbol table at 0x${pe.symbolTablePointer.toString(16)} (${pe.symbolCount} symbols; link with -s)` : 'no COFF symbol table');
  add('no-tls', pe.directories[DIR_TLS].rva === 0, pe.directories[DIR_TLS].rva ? 'TLS directory present' : 'no TLS directory');
  add('no-exports', pe.directories[DIR_EXPORT].rva === 0, pe.directories[DIR_EXPORT].rva ? 'export directory present (-shared?)' : 'no export directory');

  let imports: ImportedDll[] = [];
  try {
    imports = readImports(pe);
  } catch (e) {
    add('imports-readable', false, (e as Error).message);
  }
  const badDlls = imports.filter((i) => !KERNEL_DLLS.has(i.dll.toLowerCase()));
  add('imports-kernel-only', imports.length > 0 && badDlls.length === 0,
    badDlls.length ? `forbidden imports from ${badDlls.map((i) => `${i.dll}(${i.functions.length})`).join(', ')}`
      : `${imports.map((i) => `${i.dll}(${i.functions.length})`).join(', ')}`);
  const hasNtoskrnl = imports.some((i) => i.dll.toLowerCase() === 'ntoskrnl.exe');
  add('imports-ntoskrnl', hasNtoskrnl, hasNtoskrnl ? 'imports ntoskrnl.exe' : 'no ntoskrnl.exe import');
  const badFns = imports.flatMap((i) => i.functions.filter((f) => FORBIDDEN_FUNCTIONS.test(f)));
  add('no-runtime-helpers', badFns.length === 0, badFns.length ? `runtime helpers imported: ${badFns.join(', ')}` : 'no CRT or libgcc helpers imported');

  const relocs = readRelocations(pe);
  const wantType = opts.arch === 'x64' ? 10 : 3; // DIR64 : HIGHLOW
  const realTypes = [...relocs.types.entries()].filter(([t]) => t !== 0);
  const fixups = realTypes.reduce((n, [, c]) => n + c, 0);
  add('relocations', fixups > 0 && realTypes.every(([t]) => t === wantType) && relocs.outside === 0,
    `${relocs.blocks} block(s), ${fixups} fixup(s), types ${realTypes.map(([t, c]) => `${t}x${c}`).join(' ') || 'none'} (want only ${wantType === 10 ? 'DIR64 (10)' : 'HIGHLOW (3)'})${relocs.outside ? `, ${relocs.outside} outside any section` : ''}`);

  const sec = pe.directories[DIR_SECURITY];
  if (opts.expectSigned) {
    let ok = false;
    let detail = 'no certificate table';
    if (sec.rva !== 0 && sec.size >= 8 && sec.rva + sec.size <= buf.length) {
      const len = buf.readUInt32LE(sec.rva);
      const rev = buf.readUInt16LE(sec.rva + 4);
      const type = buf.readUInt16LE(sec.rva + 6);
      ok = rev === 0x200 && type === 2 && sec.rva % 8 === 0 && sec.rva + sec.size === buf.length && len <= sec.size;
      detail = `WIN_CERTIFICATE at 0x${sec.rva.toString(16)}: length ${len}, revision 0x${rev.toString(16)}, type ${type}`;
    }
    add('signature-present', ok, detail);
  } else {
    add('unsigned', sec.rva === 0, sec.rva ? 'certificate table present in an image expected unsigned' : 'no certificate table');
  }
  const computed = peChecksum(buf, pe.checksumOffset);
  add('checksum', pe.checksum !== 0 && pe.checksum === computed,
    `header 0x${pe.checksum.toString(16).padStart(8, '0')}, computed 0x${computed.toString(16).padStart(8, '0')}`);
  return checks;
}
