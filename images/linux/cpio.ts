// A newc ("070701") cpio writer, as the Linux kernel unpacks an initramfs. Written here rather than
// with `cpio -o` so device nodes (/dev/console, /dev/null) need neither mknod nor root, and so the
// archive is byte-for-byte reproducible (fixed inode numbers, owners and mtime).

export type CpioEntry =
  | { type: 'file'; path: string; data: Buffer; mode?: number }
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** Strips leading "/" and "./", rejects "..", empty and NUL-containing names. */
export function normalizeCpioPath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.length === 0 || parts.some((s) => s === '..') || p.includes('\0')) {
    throw new Error(`cpio: bad path ${JSON.stringify(p)}`);
  }
  return parts.join('/');
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): Buffer {
  return Buffer.alloc((4 - (n % 4)) % 4);
}

interface Header {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  name: string;
}

function header(h: Header): Buffer {
  const name = Buffer.from(`${h.name}\0`, 'utf8');
  const fields = [
    h.ino, h.mode, 0 /* uid */, 0 /* gid */, h.nlink, 0 /* mtime */, h.size,
    0 /* devmajor */, 0 /* devminor */, h.rdevMajor, h.rdevMinor, name.length, 0 /* check */,
  ];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  return Buffer.concat([head, name, pad4(head.length + name.length)]);
}

/**
 * Builds one newc archive, ending in the TRAILER!!! entry. Parent directories that are not listed
 * are added (mode 0755) before their first child; a path listed twice is an error.
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 1;

  const emit = (h: Omit<Header, 'ino'>, data?: Buffer) => {
    out.push(header({ ...h, ino: ino++ }));
    if (data && data.length > 0) {
      out.push(data, pad4(data.length));
    }
  };
  const ensureParents = (path: string) => {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!seen.has(dir)) {
        seen.add(dir);
        emit({ mode: S_IFDIR | 0o755, nlink: 2, size: 0, rdevMajor: 0, rdevMinor: 0, name: dir });
      }
    }
  };

  for (const e of entries) {
    const path = normalizeCpioPath(e.path);
    if (seen.has(path)) throw new Error(`cpio: ${path} listed twice`);
    ensureParents(path);
    seen.add(path);
    switch (e.type) {
      case 'dir':
        emit({ mode: S_IFDIR | (e.mode ?? 0o755), nlink: 2, size: 0, rdevMajor: 0, rdevMinor: 0, name: path });
        break;
      case 'file':
        emit({ mode: S_IFREG | (e.mode ?? 0o644), nlink: 1, size: e.data.length, rdevMajor: 0, rdevMinor: 0, name: path }, e.data);
        break;
      case 'symlink': {
        const target = Buffer.from(e.target, 'utf8');
        emit({ mode: S_IFLNK | 0o777, nlink: 1, size: target.length, rdevMajor: 0, rdevMinor: 0, name: path }, target);
        break;
      }
      case 'char':
        emit({ mode: S_IFCHR | (e.mode ?? 0o600), nlink: 1, size: 0, rdevMajor: e.major, rdevMinor: e.minor, name: path });
        break;
    }
  }
  emit({ mode: 0, nlink: 1, size: 0, rdevMajor: 0, rdevMinor: 0, name: 'TRAILER!!!' });
  return Buffer.concat(out);
}
