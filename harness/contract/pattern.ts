// The dmahil test pattern, host side. Must match guest-driver/common/dmahil_pattern.h byte for byte;
// specs/contract/pattern.spec.ts checks both against pattern-vectors.json.

export const FILL_BYTE = 0xa5; // a destination before the device writes
export const STALE_BYTE = 0x3c; // a client source before the CPU writes the pattern

export function patternWord(seed: number, k: number): number {
  let x = (seed ^ Math.imul(k, 0x9e3779b1)) >>> 0;
  x = (x + 0x7f4a7c15) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

export function patternByte(seed: number, i: number): number {
  return (patternWord(seed, Math.floor(i / 4)) >>> (8 * (i & 3))) & 0xff;
}

/** Pattern bytes [start, start + length) for a seed (a word per 4 bytes: the host builds it for every read). */
export function pattern(seed: number, length: number, start = 0): Buffer {
  const out = Buffer.allocUnsafe(length);
  let i = 0;
  for (; i < length && (start + i) % 4 !== 0; i++) out[i] = patternByte(seed, start + i);
  for (; i + 4 <= length; i += 4) out.writeUInt32LE(patternWord(seed, (start + i) / 4), i);
  for (; i < length; i++) out[i] = patternByte(seed, start + i);
  return out;
}
