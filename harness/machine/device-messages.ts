// What QEMU's device models print about guest/device misbehaviour, parsed from its stdout/stderr.
// QEMU 7.2 edu: the clamp line goes to stdout with a newline; QEMU 10's goes to stderr WITHOUT one, so
// two clamps run together on one line and the last may never end: the splitter cuts a record after each
// clamp message as well as at newlines. The range error goes to stderr via hw_error() and abort()
// (guest notes §8). `-d guest_errors` adds "Invalid read/write". Under a KVM that cannot run the guest,
// QEMU prints "KVM internal error. Suberror: N" and stops the vCPU (hosts.md).
// Behind an intel-iommu, a refused DMA prints vtd_* lines once per QEMU process, then one "Invalid write …
// region '(null)', reason: rejected" per access of up to 4 bytes (~256K for 1 MiB): DeviceModelLog keeps
// the first few of a burst and counts the rest (iommu-notes.md).

export type OutputStream = 'stdout' | 'stderr';

interface MessageBase {
  /** Date.now() when the harness read the line (QEMU prints it within ms of the event). */
  at: number;
  stream: OutputStream;
  line: string;
  /** Set by DeviceModelLog on an entry that stands for itself and `more` later messages of its kind (a burst). */
  more?: number;
  /** With `more`: when the last of them was read. */
  lastAt?: number;
}

/** How an IOMMU fault was reported: error_report_once lines, or a -trace event. */
export type IommuFaultSource = 'vtd-slpte' | 'vtd-translate' | 'vtd-dmar-fault' | 'amdvi-page-fault' | 'virtio-iommu';

export type DeviceModelMessage =
  | (MessageBase & { kind: 'edu-clamp'; from: bigint; to: bigint })
  | (MessageBase & {
      kind: 'hardware-error';
      detail: string;
      /** Set when it is edu's "DMA range ... out of bounds (...)". */
      eduRange?: { first: bigint; last: bigint; validFirst: bigint; validLast: bigint };
    })
  | (MessageBase & { kind: 'invalid-access'; access: 'read' | 'write'; addr: bigint; size: number; region: string; reason: string })
  /** The IOMMU refused a device access; iova is the device address it was given. */
  | (MessageBase & { kind: 'iommu-fault'; source: IommuFaultSource; iova: bigint; access?: 'read' | 'write'; reason: string })
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
// error_report_once lines, after "qemu-system-x86_64: " (and a -msg timestamp=on time, so not anchored).
const VTD_SLPTE = /vtd_iova_to_slpte: detected slpte permission error \(iova=(0x[0-9a-fA-F]+), level=0x[0-9a-fA-F]+, slpte=(0x[0-9a-fA-F]+), write=(\d)/;
const VTD_TRANSLATE = /vtd_iommu_translate: detected translation failure \(dev=([0-9a-fA-F]{2}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}), iova=(0x[0-9a-fA-F]+)\)/;
// -trace lines (QEMU 7.2's log backend; "<pid>@<sec>.<usec>:" in front under -msg timestamp=on), measured
// from the binary's format strings and a run: "vtd_dmar_fault sid 0x%x fault %d addr 0x%lx write %d".
const VTD_DMAR_FAULT = /^(?:\d+@\d+\.\d+:)?vtd_dmar_fault sid (0x[0-9a-fA-F]+) fault (\d+) addr (0x[0-9a-fA-F]+) write (\d)/;
// virtio-iommu's error_report_once lines (hw/virtio/virtio-iommu.c, virtio_iommu_translate), once per QEMU
// process like vtd_*; the per-access "Invalid write … rejected" lines follow under -d guest_errors.
const VIRTIO_IOMMU_NO_MAPPING = /virtio_iommu_translate no mapping for (?:0x)?([0-9a-fA-F]+) for sid=(\d+)/;
const VIRTIO_IOMMU_PERMISSION = /virtio_iommu_translate permission error on (?:0x)?([0-9a-fA-F]+)\((\d+)\): allowed=(\d+)/;
const AMDVI_PAGE_FAULT = /^(?:\d+@\d+\.\d+:)?amdvi_page_fault error: page fault accessing guest physical address (0x[0-9a-fA-F]+)/;

/** VT-d fault reasons (QEMU's VTDFaultReason, the VT-d spec's fault reason codes) the guest can cause. */
const VTD_FAULT_REASONS: Record<number, string> = {
  4: 'address beyond the IOMMU address width',
  5: 'no write permission',
  6: 'no read permission',
  7: 'invalid paging entry',
};

/** Parse one output line; undefined when it is not a message the harness tracks. */
export function parseDeviceModelLine(line: string, stream: OutputStream, at: number): DeviceModelMessage | undefined {
  // Fields written out, not spread from a shared object: V8 spreads ~20x slower, and a refused DMA is 256K lines.
  let m: RegExpExecArray | null;
  if ((m = EDU_CLAMP.exec(line))) return { at, stream, line, kind: 'edu-clamp', from: BigInt(m[1]!), to: BigInt(m[2]!) };
  if ((m = HW_ERROR.exec(line))) {
    const detail = m[1]!;
    const r = EDU_RANGE.exec(detail);
    return {
      at,
      stream,
      line,
      kind: 'hardware-error',
      detail,
      ...(r ? { eduRange: { first: BigInt(r[1]!), last: BigInt(r[2]!), validFirst: BigInt(r[3]!), validLast: BigInt(r[4]!) } } : {}),
    };
  }
  if ((m = INVALID_ACCESS.exec(line))) {
    return { at, stream, line, kind: 'invalid-access', access: m[1] as 'read' | 'write', addr: BigInt(m[2]!), size: Number(m[3]), region: m[4]!, reason: m[5]! };
  }
  if ((m = VTD_DMAR_FAULT.exec(line))) {
    const fault = Number(m[2]);
    return { at, stream, line, kind: 'iommu-fault', source: 'vtd-dmar-fault', iova: BigInt(m[3]!), access: m[4] === '1' ? 'write' : 'read', reason: VTD_FAULT_REASONS[fault] ?? `VT-d fault reason ${fault}` };
  }
  if ((m = VTD_SLPTE.exec(line))) {
    const access = m[3] === '1' ? 'write' : 'read';
    // A zero leaf entry is an IOVA with no mapping (unmapped, or never mapped); QEMU 7.2 calls both "permission error".
    const reason = BigInt(m[2]!) === 0n ? 'not mapped' : `no ${access} permission`;
    return { at, stream, line, kind: 'iommu-fault', source: 'vtd-slpte', iova: BigInt(m[1]!), access, reason };
  }
  if ((m = VTD_TRANSLATE.exec(line))) {
    return { at, stream, line, kind: 'iommu-fault', source: 'vtd-translate', iova: BigInt(m[2]!), reason: `translation failure for ${m[1]}` };
  }
  if ((m = VIRTIO_IOMMU_NO_MAPPING.exec(line))) return { at, stream, line, kind: 'iommu-fault', source: 'virtio-iommu', iova: BigInt(`0x${m[1]!}`), reason: 'not mapped' };
  if ((m = VIRTIO_IOMMU_PERMISSION.exec(line))) {
    // The requested IOMMUAccessFlags: 1 read, 2 write (3 both; called a write here).
    const access = Number(m[2]) & 2 ? 'write' : 'read';
    return { at, stream, line, kind: 'iommu-fault', source: 'virtio-iommu', iova: BigInt(`0x${m[1]!}`), access, reason: `no ${access} permission` };
  }
  if ((m = AMDVI_PAGE_FAULT.exec(line))) return { at, stream, line, kind: 'iommu-fault', source: 'amdvi-page-fault', iova: BigInt(m[1]!), reason: 'page fault' };
  if ((m = TERMINATING.exec(line))) {
    return { at, stream, line, kind: 'terminating-on-signal', signal: Number(m[1]), ...(m[2] ? { fromPid: Number(m[2]) } : {}) };
  }
  if ((m = EDU_RANGE_LOGGED.exec(line))) {
    return { at, stream, line, kind: 'edu-range', first: BigInt(m[1]!), last: BigInt(m[2]!), validFirst: BigInt(m[3]!), validLast: BigInt(m[4]!) };
  }
  if ((m = KVM_INTERNAL.exec(line))) return { at, stream, line, kind: 'kvm-internal-error', suberror: Number(m[1]) };
  if ((m = QEMU_PREFIXED.exec(line))) {
    return { at, stream, line, kind: m[2] ? 'qemu-warning' : 'qemu-error', detail: m[3]! };
  }
  return undefined;
}

/**
 * "Invalid read/write … region '(null)', reason: rejected": the access reached QEMU's unassigned region,
 * i.e. nothing answered at that address. Without an IOMMU it is an unbacked guest-physical address (a
 * hole); behind one it is also what every refused IOVA access prints (intel and amd alike). The line
 * cannot tell the two apart, so it stays an invalid-access and the caller, who knows whether the device
 * sits behind an IOMMU, decides.
 */
export function isUnassignedAccess(m: DeviceModelMessage): m is Extract<DeviceModelMessage, { kind: 'invalid-access' }> {
  return m.kind === 'invalid-access' && m.region === '(null)' && m.reason === 'rejected';
}

/**
 * A complete edu message anywhere in the text (it ends with "!", newline or not): a clamp, or QEMU 9.1+'s
 * logged range error. Not 7.2's range error, which follows "qemu: hardware error: " on its own line.
 */
const EDU_MESSAGE_ANYWHERE = /(?<!hardware error: )EDU: (?:clamping DMA (?:0x[0-9a-fA-F]+|0+) to (?:0x[0-9a-fA-F]+|0+)|DMA range 0x[0-9a-fA-F]+-0x[0-9a-fA-F]+ out of bounds \(0x[0-9a-fA-F]+-0x[0-9a-fA-F]+\))!/;

/**
 * Splits an output stream into records across chunk boundaries: at each newline, and around each
 * complete edu message, which QEMU 10 logs without a newline. Linear in the chunk: a burst of 256K
 * IOMMU fault lines arrives in 64 KiB chunks of ~900 lines each.
 */
export class LineSplitter {
  private pending = '';
  private readonly edu = new RegExp(EDU_MESSAGE_ANYWHERE.source, 'g');

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string): void {
    const text = this.pending + chunk;
    let pos = 0;
    let clamp = this.findEdu(text, 0);
    for (;;) {
      const nl = text.indexOf('\n', pos);
      if (clamp && (nl < 0 || clamp.index < nl)) {
        if (clamp.index > pos) this.onLine(text.slice(pos, clamp.index));
        this.onLine(clamp[0]);
        pos = clamp.index + clamp[0].length;
        // QEMU 7.2 ends the message with a newline: that newline ends this record, not an empty one.
        if (text.startsWith('\r\n', pos)) pos += 2;
        else if (text.startsWith('\n', pos)) pos += 1;
        clamp = this.findEdu(text, pos);
        continue;
      }
      if (nl < 0) break;
      this.onLine(text.slice(pos, text[nl - 1] === '\r' && nl > pos ? nl - 1 : nl));
      pos = nl + 1;
    }
    this.pending = text.slice(pos);
  }

  /** The last line when the stream ended without a newline (abort() can cut one short). */
  end(): void {
    if (this.pending !== '') this.onLine(this.pending);
    this.pending = '';
  }

  private findEdu(text: string, from: number): RegExpExecArray | null {
    this.edu.lastIndex = from;
    return this.edu.exec(text);
  }
}

/** A burst keeps this many messages of a kind whole; the rest fold into one entry that counts them. */
export const KEPT_PER_BURST = 8;
/** A message of a kind this long after the previous one starts a new burst (a scenario's own). */
export const BURST_GAP_MS = 250;
/** Entries kept in all; past it the oldest go, except the first KEPT_HEAD (start-up messages). */
export const MAX_ENTRIES = 5000;
const KEPT_HEAD = 100;

/**
 * The device-model messages of one QEMU process, bounded in memory: a burst of one kind (messages less
 * than BURST_GAP_MS apart) keeps its first KEPT_PER_BURST messages, then one entry whose `more` counts the
 * rest. Σ(1 + more) over a time window is the number of messages in it, exact unless a burst straddles
 * the window's start.
 */
export class DeviceModelLog {
  private readonly list: DeviceModelMessage[] = [];
  private readonly bursts = new Map<DeviceModelMessageKind, { lastAt: number; kept: number; fold?: DeviceModelMessage }>();
  private readonly totals = new Map<DeviceModelMessageKind, number>();
  /** Entries dropped because there were more than MAX_ENTRIES. */
  dropped = 0;

  add(m: DeviceModelMessage): void {
    this.totals.set(m.kind, (this.totals.get(m.kind) ?? 0) + 1);
    let b = this.bursts.get(m.kind);
    if (!b || m.at - b.lastAt > BURST_GAP_MS) this.bursts.set(m.kind, (b = { lastAt: m.at, kept: 0 }));
    b.lastAt = m.at;
    if (b.fold) {
      b.fold.more = (b.fold.more ?? 0) + 1;
      b.fold.lastAt = m.at;
      return;
    }
    let entry = m;
    if (b.kept >= KEPT_PER_BURST) b.fold = entry = { ...m, more: 0, lastAt: m.at };
    else b.kept++;
    this.list.push(entry);
    if (this.list.length > MAX_ENTRIES) {
      this.list.splice(KEPT_HEAD, 1);
      this.dropped++;
    }
  }

  /** Every entry kept, oldest first. */
  get entries(): readonly DeviceModelMessage[] {
    return this.list;
  }

  /** Entries with a message read at or after sinceMs. */
  since(sinceMs: number): DeviceModelMessage[] {
    return this.list.filter((m) => (m.lastAt ?? m.at) >= sinceMs);
  }

  /** How many messages of a kind were read, folded ones included. */
  total(kind: DeviceModelMessageKind): number {
    return this.totals.get(kind) ?? 0;
  }
}

/** How many messages the entries stand for (an entry with `more` stands for 1 + more). */
export function messageCount(entries: readonly DeviceModelMessage[]): number {
  return entries.reduce((n, m) => n + 1 + (m.more ?? 0), 0);
}
