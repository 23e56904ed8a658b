// Minimal DER encoding and decoding: enough to write and read a Windows security catalog.

export function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

export const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);
export const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c);
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
export const nul = (): Buffer => Buffer.from([0x05, 0x00]);
export const ctx0 = (...c: Buffer[]): Buffer => tlv(0xa0, ...c);

export function integer(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  if (bytes[0] & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => Number(a));
  const out: number[] = [arcs[0] * 40 + arcs[1]];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** BMPString: UTF-16 big-endian, no terminator. */
export function bmp(s: string): Buffer {
  const b = Buffer.alloc(s.length * 2);
  for (let i = 0; i < s.length; i++) b.writeUInt16BE(s.charCodeAt(i), i * 2);
  return tlv(0x1e, b);
}

/** UTF-16 little-endian with a NUL terminator, as Windows catalogs store tags and values. */
export function utf16z(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf16le');
}

export function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
}

export interface Node {
  tag: number;
  /** offset of the tag byte */
  start: number;
  /** offset of the content */
  contentStart: number;
  end: number;
  content: Buffer;
  children: Node[];
}

/** Parse one DER element at `at` (constructed elements recursively). Throws on malformed input. */
export function parse(buf: Buffer, at = 0): Node {
  if (at + 2 > buf.length) throw new Error(`DER: truncated header at ${at}`);
  const tag = buf[at];
  let len = buf[at + 1];
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > buf.length) throw new Error(`DER: bad length at ${at}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
    p += n;
  }
  const end = p + len;
  if (end > buf.length) throw new Error(`DER: element at ${at} runs past the end (${end} > ${buf.length})`);
  const node: Node = { tag, start: at, contentStart: p, end, content: buf.subarray(p, end), children: [] };
  if (tag & 0x20) {
    let q = p;
    while (q < end) {
      const child = parse(buf, q);
      node.children.push(child);
      q = child.end;
    }
  }
  return node;
}

export function oidString(node: Node): string {
  if (node.tag !== 0x06) throw new Error(`DER: expected an OID, got tag 0x${node.tag.toString(16)}`);
  const b = node.content;
  const arcs = [Math.floor(b[0] / 40), b[0] % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f);
    if (!(b[i] & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}
