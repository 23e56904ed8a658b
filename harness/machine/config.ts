// What a machine is made of. Validation is pure (no file-system access) and reports every bad field
// with what to write instead; file existence is checked at launch (see launch-checks.ts).

import { MachineConfigError, type ConfigProblem } from './errors.js';

export type Accel = 'auto' | 'kvm' | 'tcg';
export type DriveFormat = 'qcow2' | 'raw';
/** On q35 'ahci' and 'ide' both mean a disk on the built-in ICH9 AHCI controller (q35 has no PIIX IDE). */
export type DriveInterface = 'virtio' | 'ahci' | 'ide';
export type NicModel = 'virtio-net-pci' | 'e1000e' | 'e1000';

export interface DriveConfig {
  file: string;
  format: DriveFormat;
  readOnly?: boolean;
  interface: DriveInterface;
  /** Firmware boot order (QEMU bootindex): lower boots first. Unset: the firmware's default order. */
  bootIndex?: number;
}

export interface CdromConfig {
  file: string;
  bootIndex?: number;
}

/**
 * UEFI firmware as two pflash drives: the read-only code and a writable variable store. The vars file
 * is written by the guest (boot entries), so give each machine its own copy.
 */
export interface FirmwareConfig {
  kind: 'ovmf';
  code: string;
  vars: string;
}

/** What QEMU does on a guest panic (pvpanic): 'pause' keeps the machine for dump-guest-memory and screendump. */
export type PanicAction = 'shutdown' | 'pause' | 'none';

export interface EduConfig {
  enabled: boolean;
  /** edu's `dma_mask` property; QEMU 7.2's default is 0x0fffffff (28 bits). */
  dmaMask?: bigint;
  /** PCI slot[.function] in QEMU's hex syntax, e.g. "04.0" or "0x4". Unpinned, the slot moves with other devices. */
  pciAddr?: string;
}

export interface NicConfig {
  model: NicModel;
  /** Guest TCP port the host forwards to, from a free 127.0.0.1 port (Machine.sshPort). */
  guestPort: number;
}

export interface MachineConfig {
  /** Names the run directory and QEMU's -name; letters, digits, '.', '_', '-'. */
  name: string;
  memoryMiB: number;
  cpus: number;
  accel: Accel;
  kernel?: string;
  initrd?: string;
  append?: string;
  drives?: DriveConfig[];
  cdroms?: CdromConfig[];
  edu: EduConfig;
  nic: NicConfig;
  /** Default: `qemu64,+rdrand` under TCG (RDRAND saves ~3 s of boot: guest notes §3), `host` under KVM. */
  cpuModel?: string;
  /**
   * The -cpu model under TCG only, when cpuModel is not set (KVM keeps `host`). Windows guests use
   * WINDOWS_TCG_CPU: 24H2 needs SSE4.2 and POPCNT, which the default lacks.
   */
  tcgCpuModel?: string;
  /** ISA pvpanic device: a guest panic becomes a GUEST_PANICKED event and exit cause 'guest-panic'. */
  pvpanic?: boolean;
  /**
   * A virtio-serial port named `dmahil.agent` whose host end is a Unix socket in the run dir
   * (Machine.connectAgent): a channel to a guest process that survives a snapshot restore, unlike TCP.
   */
  agentPort?: boolean;
  /**
   * Back guest RAM with a shared file the host can read (default true). Without it, GuestMemory falls
   * back to QMP pmemsave.
   */
  sharedRam?: boolean;
  /** `-d guest_errors`: accesses to unbacked addresses (e.g. DMA into a hole) show up as messages. Default true. */
  logGuestErrors?: boolean;
  /** Appended verbatim after everything else. Paths inside must be escaped by the caller (escapeQemuOptValue). */
  extraArgs?: string[];
  /** Default `qemu-system-x86_64` from PATH. */
  qemuBinary?: string;
  /** UEFI (OVMF) instead of the default SeaBIOS. */
  firmware?: FirmwareConfig;
  /** 'std': a VGA device (still no window), so QMP screendump has a picture. Default 'none'. */
  display?: 'none' | 'std';
  /** -action panic=...; QEMU's default is 'shutdown'. */
  panicAction?: PanicAction;
  /** -device vmcoreinfo: with the guest's vmcoreinfo driver, dump-guest-memory can write win-dmp. */
  vmcoreinfo?: boolean;
  /** Let the guest reboot (installers do). Default false: -no-reboot turns a reset into an exit. */
  allowReboot?: boolean;
  /** -rtc base=localtime (Windows keeps the RTC in local time). */
  rtcLocalTime?: boolean;
  /**
   * TCG only (ignored under KVM, which has no instruction counting): `-icount shift=N,sleep=off`. Virtual
   * time advances 2^shift ns per guest instruction and, with sleep off, jumps to the next timer deadline
   * while the vCPU idles, so a device timer (edu: 100 ms per DMA operation) costs no wall time.
   */
  icount?: IcountConfig;
  /** `-incoming defer`: start paused, waiting for Machine.migrateIncoming (a snapshot restore). */
  incoming?: 'defer';
  /**
   * A vIOMMU in front of every PCI device (it must precede them on the command line). intel-iommu
   * migrates, so snapshots work; amd-iommu blocks migration (iommu-notes.md). virtio-iommu (virtio-iommu-pci)
   * translates only for a guest kernel with its driver (CONFIG_VIRTIO_IOMMU; Debian 13's 6.12, not 12's 6.1).
   */
  iommu?: IommuModel;
}

export const IOMMU_MODELS = ['intel-iommu', 'amd-iommu', 'virtio-iommu'] as const;
export type IommuModel = (typeof IOMMU_MODELS)[number];

export interface IcountConfig {
  /** 0-10; QEMU's shift=auto cannot be combined with sleep=off. */
  shift: number;
  /** false: idle time warps (the point); true: virtual time keeps pace with the host clock while idle. */
  sleep: boolean;
}

const FIELDS: ReadonlySet<string> = new Set([
  'name', 'memoryMiB', 'cpus', 'accel', 'kernel', 'initrd', 'append', 'drives', 'cdroms', 'edu', 'nic',
  'cpuModel', 'tcgCpuModel', 'pvpanic', 'sharedRam', 'logGuestErrors', 'extraArgs', 'qemuBinary',
  'firmware', 'display', 'panicAction', 'vmcoreinfo', 'allowReboot', 'rtcLocalTime',
  'icount', 'incoming', 'agentPort', 'iommu',
]);

/** The ICH9 AHCI controller on q35 has six ports: ide.0 … ide.5. */
export const AHCI_PORTS = 6;
/** Stay well below 1 TiB: with an AMD vCPU model (qemu64 is one) QEMU moves high RAM above the HyperTransport hole. */
export const MAX_MEMORY_MIB = 512 * 1024;
export const MAX_CPUS = 64;
const U64_MAX = (1n << 64n) - 1n;

/** Validates an untrusted config and returns it typed, or throws MachineConfigError listing every problem. */
export function validateMachineConfig(input: unknown): MachineConfig {
  const problems: ConfigProblem[] = [];
  const bad = (field: string, message: string, hint: string) => problems.push({ field, message, hint });

  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new MachineConfigError([{ field: '(config)', message: 'must be an object', hint: 'pass a MachineConfig object' }]);
  }
  const c = input as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!FIELDS.has(key)) bad(key, 'is not a MachineConfig field', `remove it or check the spelling (known: ${[...FIELDS].join(', ')})`);
  }

  if (typeof c.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(c.name)) {
    bad('name', `must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (got ${show(c.name)})`, 'use e.g. "linux-ref"');
  }
  if (!isInt(c.memoryMiB) || c.memoryMiB < 16 || c.memoryMiB > MAX_MEMORY_MIB) {
    bad('memoryMiB', `must be an integer from 16 to ${MAX_MEMORY_MIB} (got ${show(c.memoryMiB)})`, 'use e.g. 512');
  }
  if (!isInt(c.cpus) || c.cpus < 1 || c.cpus > MAX_CPUS) {
    bad('cpus', `must be an integer from 1 to ${MAX_CPUS} (got ${show(c.cpus)})`, 'use e.g. 1');
  }
  if (c.accel !== 'auto' && c.accel !== 'kvm' && c.accel !== 'tcg') {
    bad('accel', `must be 'auto', 'kvm' or 'tcg' (got ${show(c.accel)})`, "use 'auto' (KVM when /dev/kvm is usable, else TCG)");
  }

  for (const field of ['kernel', 'initrd'] as const) {
    if (c[field] !== undefined && !nonEmptyString(c[field])) bad(field, `must be a non-empty file path (got ${show(c[field])})`, `set ${field} to a file path or leave it out`);
  }
  if (c.append !== undefined && typeof c.append !== 'string') bad('append', `must be a string (got ${show(c.append)})`, "use e.g. 'console=ttyS0 panic=-1'");
  if (c.kernel === undefined) {
    if (c.initrd !== undefined) bad('initrd', 'needs kernel', 'set kernel as well, or leave initrd out');
    if (c.append !== undefined) bad('append', 'needs kernel', 'set kernel as well, or leave append out');
  }

  let ahciUsed = 0;
  if (c.drives !== undefined) {
    if (!Array.isArray(c.drives)) bad('drives', `must be an array (got ${show(c.drives)})`, 'use [] or leave it out');
    else
      c.drives.forEach((d: unknown, i: number) => {
        const f = `drives[${i}]`;
        if (d === null || typeof d !== 'object') {
          bad(f, `must be an object (got ${show(d)})`, "use { file, format: 'qcow2', interface: 'virtio' }");
          return;
        }
        const drive = d as Record<string, unknown>;
        for (const key of Object.keys(drive)) {
          if (!['file', 'format', 'readOnly', 'interface', 'bootIndex'].includes(key)) bad(`${f}.${key}`, 'is not a drive field', 'use file, format, readOnly, interface, bootIndex');
        }
        checkBootIndex(drive.bootIndex, `${f}.bootIndex`, bad);
        if (!nonEmptyString(drive.file)) bad(`${f}.file`, `must be a non-empty file path (got ${show(drive.file)})`, 'set it to the image path');
        if (drive.format !== 'qcow2' && drive.format !== 'raw') bad(`${f}.format`, `must be 'qcow2' or 'raw' (got ${show(drive.format)})`, "use 'qcow2'");
        if (drive.readOnly !== undefined && typeof drive.readOnly !== 'boolean') bad(`${f}.readOnly`, `must be a boolean (got ${show(drive.readOnly)})`, 'use true or false');
        if (drive.interface !== 'virtio' && drive.interface !== 'ahci' && drive.interface !== 'ide') {
          bad(`${f}.interface`, `must be 'virtio', 'ahci' or 'ide' (got ${show(drive.interface)})`, "use 'virtio'");
        } else if (drive.interface !== 'virtio') ahciUsed++;
      });
  }
  if (c.cdroms !== undefined) {
    if (!Array.isArray(c.cdroms)) bad('cdroms', `must be an array (got ${show(c.cdroms)})`, 'use [] or leave it out');
    else
      c.cdroms.forEach((d: unknown, i: number) => {
        const cd = d as Record<string, unknown> | null;
        if (cd === null || typeof cd !== 'object' || !nonEmptyString(cd.file)) {
          bad(`cdroms[${i}].file`, `must be a non-empty file path (got ${show(cd && typeof cd === 'object' ? cd.file : cd)})`, 'use { file: "/path/to.iso" }');
        } else {
          for (const key of Object.keys(cd)) if (key !== 'file' && key !== 'bootIndex') bad(`cdroms[${i}].${key}`, 'is not a cdrom field', 'use file, bootIndex');
          checkBootIndex(cd.bootIndex, `cdroms[${i}].bootIndex`, bad);
        }
        ahciUsed++;
      });
  }
  if (ahciUsed > AHCI_PORTS) {
    bad('drives', `AHCI/IDE drives plus cdroms need ${ahciUsed} ports; q35's AHCI has ${AHCI_PORTS}`, "move disks to interface 'virtio'");
  }

  if (c.edu === null || typeof c.edu !== 'object') {
    bad('edu', `must be an object (got ${show(c.edu)})`, 'use { enabled: true } or { enabled: false }');
  } else {
    const edu = c.edu as Record<string, unknown>;
    for (const key of Object.keys(edu)) {
      if (!['enabled', 'dmaMask', 'pciAddr'].includes(key)) bad(`edu.${key}`, 'is not an edu field', 'use enabled, dmaMask, pciAddr');
    }
    if (typeof edu.enabled !== 'boolean') bad('edu.enabled', `must be a boolean (got ${show(edu.enabled)})`, 'use true or false');
    if (edu.dmaMask !== undefined && (typeof edu.dmaMask !== 'bigint' || edu.dmaMask < 0n || edu.dmaMask > U64_MAX)) {
      bad('edu.dmaMask', `must be a bigint from 0 to 2^64-1 (got ${show(edu.dmaMask)})`, 'use e.g. 0xffffffffn, or leave it out for the 28-bit default');
    }
    if (edu.pciAddr !== undefined && (typeof edu.pciAddr !== 'string' || !validPciAddr(edu.pciAddr))) {
      bad('edu.pciAddr', `must be a PCI slot[.function] in hex, slot 0x01-0x1f, function 0-7 (got ${show(edu.pciAddr)})`, 'use e.g. "04.0"');
    }
  }

  if (c.nic === null || typeof c.nic !== 'object') {
    bad('nic', `must be an object (got ${show(c.nic)})`, "use { model: 'virtio-net-pci', guestPort: 22 }");
  } else {
    const nic = c.nic as Record<string, unknown>;
    for (const key of Object.keys(nic)) {
      if (!['model', 'guestPort'].includes(key)) bad(`nic.${key}`, 'is not a nic field', 'use model, guestPort');
    }
    if (nic.model !== 'virtio-net-pci' && nic.model !== 'e1000e' && nic.model !== 'e1000') {
      bad('nic.model', `must be 'virtio-net-pci', 'e1000e' or 'e1000' (got ${show(nic.model)})`, "use 'virtio-net-pci' (Linux) or 'e1000e' (Windows without virtio drivers)");
    }
    if (!isInt(nic.guestPort) || nic.guestPort < 1 || nic.guestPort > 65535) {
      bad('nic.guestPort', `must be a TCP port 1-65535 (got ${show(nic.guestPort)})`, 'use 22 for SSH');
    }
  }

  if (c.cpuModel !== undefined && (typeof c.cpuModel !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.,+=-]*$/.test(c.cpuModel))) {
    bad('cpuModel', `must be a QEMU -cpu value such as 'qemu64,+rdrand' (got ${show(c.cpuModel)})`, 'leave it out for the default');
  }
  if (c.tcgCpuModel !== undefined && (typeof c.tcgCpuModel !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.,+=-]*$/.test(c.tcgCpuModel))) {
    bad('tcgCpuModel', `must be a QEMU -cpu value such as 'Nehalem-v1,+sse4.2,+popcnt' (got ${show(c.tcgCpuModel)})`, 'leave it out for the default');
  }
  if (c.firmware !== undefined) {
    const fw = c.firmware as Record<string, unknown> | null;
    if (fw === null || typeof fw !== 'object' || fw.kind !== 'ovmf') {
      bad('firmware', `must be { kind: 'ovmf', code, vars } (got ${show(c.firmware)})`, 'leave it out for SeaBIOS, or use /usr/share/OVMF/OVMF_CODE_4M.fd with a copy of OVMF_VARS_4M.fd');
    } else {
      for (const key of Object.keys(fw)) if (!['kind', 'code', 'vars'].includes(key)) bad(`firmware.${key}`, 'is not a firmware field', 'use kind, code, vars');
      if (!nonEmptyString(fw.code)) bad('firmware.code', `must be a non-empty file path (got ${show(fw.code)})`, 'use /usr/share/OVMF/OVMF_CODE_4M.fd');
      if (!nonEmptyString(fw.vars)) bad('firmware.vars', `must be a non-empty file path (got ${show(fw.vars)})`, 'use a per-machine copy of /usr/share/OVMF/OVMF_VARS_4M.fd');
    }
  }
  if (c.display !== undefined && c.display !== 'none' && c.display !== 'std') bad('display', `must be 'none' or 'std' (got ${show(c.display)})`, "use 'std' for screendumps");
  if (c.panicAction !== undefined && !['shutdown', 'pause', 'none'].includes(c.panicAction as string)) {
    bad('panicAction', `must be 'shutdown', 'pause' or 'none' (got ${show(c.panicAction)})`, "use 'pause' to keep a panicked guest for a memory dump");
  }
  if (c.iommu !== undefined && !(IOMMU_MODELS as readonly unknown[]).includes(c.iommu)) {
    bad('iommu', `must be one of ${IOMMU_MODELS.join(', ')} (got ${show(c.iommu)})`, 'use intel-iommu (snapshots work), or leave it out');
  }
  for (const field of ['pvpanic', 'sharedRam', 'logGuestErrors', 'vmcoreinfo', 'allowReboot', 'rtcLocalTime', 'agentPort'] as const) {
    if (c[field] !== undefined && typeof c[field] !== 'boolean') bad(field, `must be a boolean (got ${show(c[field])})`, 'use true or false');
  }
  if (c.extraArgs !== undefined && (!Array.isArray(c.extraArgs) || !c.extraArgs.every((a) => typeof a === 'string'))) {
    bad('extraArgs', `must be an array of strings (got ${show(c.extraArgs)})`, "use e.g. ['-d', 'guest_errors']");
  }
  if (c.qemuBinary !== undefined && !nonEmptyString(c.qemuBinary)) {
    bad('qemuBinary', `must be a non-empty path or command name (got ${show(c.qemuBinary)})`, 'leave it out for qemu-system-x86_64');
  }

  if (c.icount !== undefined) {
    const ic = c.icount as Record<string, unknown> | null;
    if (ic === null || typeof ic !== 'object' || Array.isArray(ic)) bad('icount', `must be an object (got ${show(c.icount)})`, 'use { shift: 0, sleep: false } or leave it out');
    else {
      for (const key of Object.keys(ic)) if (key !== 'shift' && key !== 'sleep') bad(`icount.${key}`, 'is not an icount field', 'use shift, sleep');
      if (!isInt(ic.shift) || ic.shift < 0 || ic.shift > 10) bad('icount.shift', `must be an integer from 0 to 10 (got ${show(ic.shift)})`, 'use e.g. 0');
      if (typeof ic.sleep !== 'boolean') bad('icount.sleep', `must be a boolean (got ${show(ic.sleep)})`, 'use false to warp idle time');
    }
  }
  if (c.incoming !== undefined && c.incoming !== 'defer') bad('incoming', `must be 'defer' (got ${show(c.incoming)})`, "use 'defer' and Machine.migrateIncoming, or leave it out");
  if (c.incoming !== undefined && c.sharedRam === false) bad('incoming', 'needs sharedRam (a restore reads guest RAM from the RAM file)', 'leave sharedRam at its default');

  if (problems.length > 0) throw new MachineConfigError(problems);
  return input as MachineConfig;
}

function checkBootIndex(v: unknown, field: string, bad: (field: string, message: string, hint: string) => void): void {
  if (v !== undefined && (!isInt(v) || v < 0 || v > 99)) bad(field, `must be an integer from 0 to 99 (got ${show(v)})`, 'use 0 for the first boot device');
}

function validPciAddr(s: string): boolean {
  const m = /^(?:0x)?([0-9a-fA-F]{1,2})(?:\.([0-7]))?$/.exec(s);
  if (!m) return false;
  const slot = parseInt(m[1]!, 16);
  return slot >= 1 && slot <= 0x1f; // slot 0 is the q35 host bridge
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  try {
    return JSON.stringify(v)?.slice(0, 60) ?? String(v);
  } catch {
    return String(v);
  }
}
