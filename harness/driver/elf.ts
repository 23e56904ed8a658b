// Just enough of ELF64 (little-endian) to check a driver folder on the host without booting a guest:
// the file type and machine, the named sections (a module's .modinfo), the program interpreter.

export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const EM_X86_64 = 62;
const PT_INTERP = 3;

export interface ElfFile {
  /** e_type: ET_REL for a kernel module, ET_EXEC or ET_DYN for a program. */
  type: number;
  machine: number;
  /** Section contents by name (SHT_NOBITS sections are empty). */
  sections: Map<string, Buffer>;
  /** PT_INTERP's path: set for a dynamically linked program. */
  interpreter?: string;
}

/** The ELF64 little-endian file in buf, or a reason it is not one (truncated, 32-bit, big-endian...). */
export function readElf(buf: Buffer): ElfFile | string {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) return 'not an ELF file';
  if (buf[4] !== 2 || buf[5] !== 1) return 'not a 64-bit little-endian ELF file';
  const within = (off: number, len: number): boolean => off >= 0 && len >= 0 && off + len <= buf.length;
  const u64 = (off: number): number => Number(buf.readBigUInt64LE(off));
  const type = buf.readUInt16LE(16);
  const machine = buf.readUInt16LE(18);
  const phoff = u64(32);
  const shoff = u64(40);
  const [phentsize, phnum, shentsize, shnum, shstrndx] = [54, 56, 58, 60, 62].map((o) => buf.readUInt16LE(o));
  const headers: Array<{ name: number; type: number; offset: number; size: number }> = [];
  if (shnum > 0) {
    if (shentsize < 64 || !within(shoff, shnum * shentsize) || shstrndx >= shnum) return 'a truncated ELF file (section headers)';
    for (let i = 0; i < shnum; i++) {
      const h = shoff + i * shentsize;
      headers.push({ name: buf.readUInt32LE(h), type: buf.readUInt32LE(h + 4), offset: u64(h + 24), size: u64(h + 32) });
    }
  }
  const sections = new Map<string, Buffer>();
  const names = headers[shstrndx];
  for (const h of headers) {
    if (!names || h.type === 0) continue;
    const at = names.offset + h.name;
    const end = buf.indexOf(0, at);
    if (!within(names.offset, names.size) || at >= names.offset + names.size || end < 0) return 'a truncated ELF file (section names)';
    const content = h.type === 8 ? Buffer.alloc(0) : within(h.offset, h.size) ? buf.subarray(h.offset, h.offset + h.size) : undefined;
    if (!content) return 'a truncated ELF file (section contents)';
    sections.set(buf.toString('latin1', at, end), content);
  }
  let interpreter: string | undefined;
  for (let i = 0; phentsize >= 56 && i < phnum && within(phoff + i * phentsize, 56); i++) {
    const p = phoff + i * phentsize;
    if (buf.readUInt32LE(p) !== PT_INTERP) continue;
    const [off, size] = [u64(p + 8), u64(p + 32)];
    if (within(off, size)) interpreter = buf.toString('latin1', off, off + size).replace(/\0.*$/s, '');
  }
  return { type, machine, sections, ...(interpreter !== undefined ? { interpreter } : {}) };
}

/** A kernel module's .modinfo: "key=value" strings, NUL-separated; a key may repeat (alias, depends). */
export function modinfo(elf: ElfFile): Map<string, string[]> {
  const info = new Map<string, string[]>();
  for (const entry of (elf.sections.get('.modinfo') ?? Buffer.alloc(0)).toString('latin1').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
  }
  return info;
}
