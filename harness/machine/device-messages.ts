// What QEMU's device models print about guest/device misbehaviour, parsed from its stdout/stderr.
// QEMU 7.2 edu: the clamp line goes to stdout with a newline; QEMU 10's goes to stderr WITHOUT one, so
// two clamps run together on one line and the last may never end: the splitter cuts a record after each
// clamp message as well as at newlines. The range error goes to stderr via hw_error() and abort()
// (guest notes §8). `-d guest_errors` adds "Invalid read/write". Under a KVM that cannot run the guest,
// QEMU prints "KVM internal error. Suberror: N" and stops the vCPU (hosts.md).

export type OutputStream = 'stdout' | 'stderr';

interface MessageBase {
  /** Date.now() when the harness read the line (QEMU prints it within ms of the event). */
  at: number;
  stream: OutputStream;
  line: string;
}

export type DeviceModelMessage =
  | (MessageBase & { kind: 'edu-clamp'; from: bigint; to: bigint })
  | (MessageBase & {
      kind: 'hardware-error';
      detail: string;
      /** Set when it is edu's "DMA range ... out of bounds (...)". */
      eduRange?: { first: bigint; last: bigint; validFirst: bigint; validLast: bigint };
    })
  | (MessageBase & { kind: 'invalid-access'; access: 'read' | 'write'; addr: bigint; size: number; region: string; reason: string })
  | (MessageBase & { kind: 'terminating-on-signal'; signal: number; fromPid?: number })
  | (MessageBase & { kind: 'kvm-internal-error'; suberror: number })
  /** QEMU 9.1+: edu logs an out-of-range transfer as a guest error (-d guest_errors) instead of aborting. */
  | (MessageBase & { kind: 'edu-range'; first: bigint; last: bigint; validFirst: bigint; validLast: bigint })
  | (MessageBase & { kind: 'qemu-warning'; detail: string })
  | (MessageBase & { kind: 'qemu-error'; detail: string });

export type DeviceModelMessageKind = DeviceModelMessage['kind'];

// printf's %#.16lx writes zero without the 0x: a clamp to address 0 reads "to 0000000000000000!".
const EDU_CLAMP = /^EDU: clamping DMA (0x[0-9a-fA-F]+|0+) to (0x[0-9a-fA-F]+|0+)!/;
const HW_ERROR = /^qemu: hardware error: (.*)$/;
const EDU_RANGE = /EDU: DMA range (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+) out of bounds \((0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\)/;
const INVALID_ACCESS = /^Invalid (read|write) at addr (0x[0-9a-fA-F]+), size (\d+), region '([^']*)', reason: (.*)$/;
const TERMINATING = /^[\w.-]+: terminating on signal (\d+)(?: from pid (\d+))?/;
const KVM_INTERNAL = /^KVM internal error\. Suberror: (\d+)/;
const EDU_RANGE_LOGGED = /^EDU: DMA range (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+) out of bounds \((0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\)!/;
const QEMU_PREFIXED = /^(qemu[\w.-]*): (warning: )?(.*)$/;

/** Parse one output line; undefined when it is not a message the harness tracks. */
export function parseDeviceModelLine(line: string, stream: OutputStream, at: number): DeviceModelMessage | undefined {
  const base = { at, stream, line };
  let m: RegExpExecArray | null;
  if ((m = EDU_CLAMP.exec(line))) return { ...base, kind: 'edu-clamp', from: BigInt(m[1]!), to: BigInt(m[2]!) };
  if ((m = HW_ERROR.exec(line))) {
    const detail = m[1]!;
    const r = EDU_RANGE.exec(detail);
    return {
      ...base,
      kind: 'hardware-error',
      detail,
      ...(r ? { eduRange: { first: BigInt(r[1]!), last: BigInt(r[2]!), validFirst: BigInt(r[3]!), validLast: BigInt(r[4]!) } } : {}),
    };
  }
  if ((m = INVALID_ACCESS.exec(line))) {
    return { ...base, kind: 'invalid-access', access: m[1] as 'read' | 'write', addr: BigInt(m[2]!), size: Number(m[3]), region: m[4]!, reason: m[5]! };
  }
  if ((m = TERMINATING.exec(line))) {
    return { ...base, kind: 'terminating-on-signal', signal: Number(m[1]), ...(m[2] ? { fromPid: Number(m[2]) } : {}) };
  }
  if ((m = EDU_RANGE_LOGGED.exec(line))) {
    return { ...base, kind: 'edu-range', first: BigInt(m[1]!), last: BigInt(m[2]!), validFirst: BigInt(m[3]!), validLast: BigInt(m[4]!) };
  }
  if ((m = KVM_INTERNAL.exec(line))) return { ...base, kind: 'kvm-internal-error', suberror: Number(m[1]) };
  if ((m = QEMU_PREFIXED.exec(line))) {
    return { ...base, kind: m[2] ? 'qemu-warning' : 'qemu-error', detail: m[3]! };
  }
  return undefined;
}

/**
 * A complete edu message anywhere in the text (it ends with "!", newline or not): a clamp, or QEMU 9.1+'s
 * logged range error. Not 7.2's range error, which follows "qemu: hardware error: " on its own line.
 */
const EDU_MESSAGE_ANYWHERE = /(?<!hardware error: )EDU: (?:clamping DMA (?:0x[0-9a-fA-F]+|0+) to (?:0x[0-9a-fA-F]+|0+)|DMA range 0x[0-9a-fA-F]+-0x[0-9a-fA-F]+ out of bounds \(0x[0-9a-fA-F]+-0x[0-9a-fA-F]+\))!/;

/**
 * Splits an output stream into records across chunk boundaries: at each newline, and around each
 * complete edu message, which QEMU 10 logs without a newline.
 */
export class LineSplitter {
  private pending = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string): void {
    this.pending += chunk;
    for (;;) {
      const nl = this.pending.indexOf('\n');
      const clamp = EDU_MESSAGE_ANYWHERE.exec(this.pending);
      if (clamp && (nl < 0 || clamp.index < nl)) {
        if (clamp.index > 0) this.onLine(this.pending.slice(0, clamp.index));
        this.onLine(clamp[0]);
        // QEMU 7.2 ends the message with a newline: that newline ends this record, not an empty one.
        this.pending = this.pending.slice(clamp.index + clamp[0].length).replace(/^\r?\n/, '');
        continue;
      }
      if (nl < 0) return;
      const line = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      this.onLine(line);
    }
  }

  /** The last line when the stream ended without a newline (abort() can cut one short). */
  end(): void {
    if (this.pending !== '') this.onLine(this.pending);
    this.pending = '';
  }
}
