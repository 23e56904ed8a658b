// The QEMU command line, as a pure function of the config and the launch decisions (accel, dirs, port).
// Paths go into QemuOpts/keyval options, where ',' separates options, so each ',' in a value is doubled.
// Exception: -kernel, -initrd and -append take their argument verbatim in QEMU 7.2 (no escaping).

import path from 'node:path';
import type { MachineConfig, DriveConfig } from './config.js';
import type { ResolvedAccel } from './accel.js';

export interface QemuCommandInputs {
  config: MachineConfig;
  accel: ResolvedAccel;
  /** Private run directory: RAM file, QMP socket. */
  runDir: string;
  /** Kept after the run: serial.log. */
  artifactsDir: string;
  /** Host side of the TCP forward to nic.guestPort. */
  hostPort: number;
  /** QEMU has the -d item invalid_mem (10.0 has it, 7.2 not): logGuestErrors asks for it too (launch-checks.ts). */
  invalidMemLog?: boolean;
}

export interface QemuCommand {
  binary: string;
  args: string[];
  qmpSocket: string;
  /** Undefined when config.sharedRam is false. */
  ramFile: string | undefined;
  serialLog: string;
}

export const DEFAULT_QEMU_BINARY = 'qemu-system-x86_64';
export const DEFAULT_TCG_CPU = 'qemu64,+rdrand';
/**
 * Windows guests under TCG (MachineConfig.tcgCpuModel). Windows 11 24H2 and Server 2025 stop at boot
 * without SSE4.2 and POPCNT, which qemu64 lacks. Nehalem is the oldest named model with both. The
 * versioned name (-v1) keeps QEMU's alias resolution from changing it, and the two features are named
 * so the requirement stays visible. Every feature of Nehalem-v1 is one TCG implements, so QEMU 7.2 and 10
 * print no "TCG doesn't support requested feature" warning (Nehalem-v2 adds spec-ctrl, which TCG lacks;
 * SandyBridge and later add x2apic and tsc-deadline, which QEMU 7.2's TCG lacks). Under KVM the guest
 * gets `host`, as every guest does. specs/machine/windows-cpu.e2e.spec.ts checks it with QEMU's own
 * query-cpu-model-expansion.
 */
export const WINDOWS_TCG_CPU = 'Nehalem-v1,+sse4.2,+popcnt';

export function qmpSocketPath(runDir: string): string {
  return path.join(runDir, 'qmp.sock');
}

export function agentSocketPath(runDir: string): string {
  return path.join(runDir, 'agent.sock');
}

/** The virtio-serial port name the guest finds in /sys/class/virtio-ports/<port>/name. */
export const AGENT_PORT_NAME = 'dmahil.agent';

export function ramFilePath(runDir: string): string {
  return path.join(runDir, 'guest-ram');
}

/** Escape a value for QEMU's option syntax (QemuOpts and keyval): ',' becomes ',,'. */
export function escapeQemuOptValue(value: string): string {
  return value.replaceAll(',', ',,');
}

export function buildQemuCommand(inputs: QemuCommandInputs): QemuCommand {
  const { config: c, accel, runDir, artifactsDir, hostPort } = inputs;
  const esc = escapeQemuOptValue;
  const qmpSocket = qmpSocketPath(runDir);
  const serialLog = path.join(artifactsDir, 'serial.log');
  const shared = c.sharedRam !== false;
  const ramFile = shared ? ramFilePath(runDir) : undefined;
  const args: string[] = [];

  args.push('-name', `${esc(c.name)},debug-threads=on`);
  args.push('-no-user-config', '-nodefaults');
  if (!c.allowReboot) args.push('-no-reboot');
  args.push('-display', 'none', '-vga', c.display === 'std' ? 'std' : 'none', '-monitor', 'none');
  if (c.firmware) {
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${esc(c.firmware.code)}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${esc(c.firmware.vars)}`);
  }
  if (c.rtcLocalTime) args.push('-rtc', 'base=localtime');
  if (c.panicAction) args.push('-action', `panic=${c.panicAction}`);
  args.push('-accel', accel);
  args.push('-cpu', c.cpuModel ?? (accel === 'kvm' ? 'host' : c.tcgCpuModel ?? DEFAULT_TCG_CPU));
  args.push('-smp', String(c.cpus));
  args.push('-m', `${c.memoryMiB}M`);
  // dump-guest-core=off: an edu hardware error abort()s QEMU; a core dump must not carry gigabytes of guest RAM.
  const machine = 'q35,dump-guest-core=off';
  if (ramFile) {
    // id pc.ram is q35's default-ram-id, which keeps migration/snapshot streams compatible.
    args.push('-object', `memory-backend-file,id=pc.ram,size=${c.memoryMiB}M,mem-path=${esc(ramFile)},share=on`);
    args.push('-machine', `${machine},memory-backend=pc.ram`);
  } else {
    args.push('-machine', machine);
  }
  // Before every PCI device, or QEMU refuses it. intremap=off: interrupt remapping would need a split
  // irqchip under KVM, and MSI works without it (iommu-notes.md).
  if (c.iommu === 'intel-iommu') args.push('-device', 'intel-iommu,intremap=off');
  else if (c.iommu === 'amd-iommu') args.push('-device', 'amd-iommu');
  // A PCI device itself: QEMU gives it the next free slot (00:01.0 on q35); ACPI's VIOT table names the
  // devices behind it, every other one on the root bus.
  else if (c.iommu === 'virtio-iommu') args.push('-device', 'virtio-iommu-pci');

  args.push('-chardev', `socket,id=qmp,path=${esc(qmpSocket)},server=on,wait=off`);
  args.push('-mon', 'chardev=qmp,mode=control');
  args.push('-chardev', `file,id=serial0,path=${esc(serialLog)}`);
  args.push('-serial', 'chardev:serial0');

  // romfile= drops the iPXE option ROM: faster firmware, and nothing to netboot anyway.
  args.push('-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${hostPort}-:${c.nic.guestPort}`);
  args.push('-device', `${c.nic.model},netdev=net0,romfile=`);

  if (c.edu.enabled) {
    let dev = 'edu';
    if (c.edu.dmaMask !== undefined) dev += `,dma_mask=0x${c.edu.dmaMask.toString(16)}`;
    if (c.edu.pciAddr !== undefined) dev += `,addr=${c.edu.pciAddr}`;
    args.push('-device', dev);
  }
  if (c.pvpanic) args.push('-device', 'pvpanic');
  if (c.vmcoreinfo) args.push('-device', 'vmcoreinfo');
  if (c.agentPort) {
    args.push('-device', 'virtio-serial-pci,id=agent-serial');
    args.push('-chardev', `socket,id=agent,path=${esc(agentSocketPath(runDir))},server=on,wait=off`);
    args.push('-device', `virtserialport,bus=agent-serial.0,chardev=agent,id=agent-port,name=${AGENT_PORT_NAME}`);
  }

  let ahciPort = 0;
  (c.drives ?? []).forEach((d, i) => {
    args.push('-drive', driveOpts(d, `disk${i}`));
    const boot = d.bootIndex !== undefined ? `,bootindex=${d.bootIndex}` : '';
    if (d.interface === 'virtio') args.push('-device', `virtio-blk-pci,drive=disk${i}${boot}`);
    else args.push('-device', `ide-hd,drive=disk${i},bus=ide.${ahciPort++}${boot}`);
  });
  (c.cdroms ?? []).forEach((cd, i) => {
    args.push('-drive', `file=${esc(cd.file)},if=none,id=cd${i},media=cdrom,readonly=on`);
    args.push('-device', `ide-cd,drive=cd${i},bus=ide.${ahciPort++}${cd.bootIndex !== undefined ? `,bootindex=${cd.bootIndex}` : ''}`);
  });

  if (c.kernel !== undefined) args.push('-kernel', c.kernel);
  if (c.initrd !== undefined) args.push('-initrd', c.initrd);
  if (c.append !== undefined) args.push('-append', c.append);

  if (c.icount && accel === 'tcg') args.push('-icount', `shift=${c.icount.shift},sleep=${c.icount.sleep ? 'on' : 'off'}`);
  if (c.incoming === 'defer') args.push('-incoming', 'defer');
  if (c.logGuestErrors !== false) args.push('-d', inputs.invalidMemLog ? 'guest_errors,invalid_mem' : 'guest_errors');
  args.push(...(c.extraArgs ?? []));

  return { binary: c.qemuBinary ?? DEFAULT_QEMU_BINARY, args, qmpSocket, ramFile, serialLog };
}

function driveOpts(d: DriveConfig, id: string): string {
  let s = `file=${escapeQemuOptValue(d.file)},format=${d.format},if=none,id=${id}`;
  if (d.readOnly) s += ',readonly=on';
  return s;
}

/** The command as one shell line, for cmdline.txt (copy, paste, debug). */
export function shellQuote(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}
