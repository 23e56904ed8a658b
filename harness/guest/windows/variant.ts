// The Windows variants' own machine and guest steps: Driver Verifier's DMA checking on edudma.sys (set in
// the run's overlay, then one reboot), and QEMU's intel-iommu in front of the edu (Windows decides whether
// it remaps; the run reports what it did, from QEMU's side and the guest's). Pure: the specs check every
// command line, script and parser without Windows.
import type { FirmwareConfig, MachineConfig } from '../../machine/config.js';
import { WINDOWS_TCG_CPU } from '../../machine/cmdline.js';
import { DmahilError } from '../../errors.js';
import { EDU_HWID } from './guest-commands.js';
import { psQuote } from './powershell.js';

/** What a Windows variant changes on the golden image's machine and in its overlay. */
export interface WindowsVariantMachine {
  /** QEMU's intel-iommu (a DMAR table, VT-d registers) in front of every PCI device. */
  iommu?: 'intel-iommu';
  /** Driver Verifier with DMA checking on edudma.sys, enabled in the overlay and applied by a reboot. */
  verifier?: boolean;
}

/** Driver Verifier's "DMA checking" option (docs: verifier /flags 0x80; bug check 0xE6 on a violation). */
export const VERIFIER_DMA_FLAGS = 0x80;
/** QEMU trace events that show whether the guest turned VT-d translation on, and for which device. */
export const IOMMU_TRACE_EVENTS = ['vtd_dmar_enable', 'vtd_switch_address_space'] as const;

export interface WindowsMachineInputs {
  name: string;
  memoryMiB: number;
  cpus: number;
  accel: MachineConfig['accel'];
  overlay: string;
  firmware?: FirmwareConfig;
  qemuBinary?: string;
  variant?: WindowsVariantMachine;
}

/** The Windows guest's machine: the golden image's, plus what the variant adds. */
export function windowsMachineConfig(i: WindowsMachineInputs): MachineConfig {
  const v = i.variant ?? {};
  return {
    name: i.name,
    memoryMiB: i.memoryMiB,
    cpus: i.cpus,
    accel: i.accel,
    tcgCpuModel: WINDOWS_TCG_CPU, // 24H2 needs SSE4.2 and POPCNT; KVM keeps host
    drives: [{ file: i.overlay, format: 'qcow2', interface: 'ahci' }],
    edu: { enabled: true },
    nic: { model: 'e1000e', guestPort: 22 },
    pvpanic: true,
    panicAction: 'pause',
    vmcoreinfo: true,
    display: 'std',
    rtcLocalTime: true,
    // The verifier variant reboots once inside the run (the overlay's settings apply at boot).
    ...(v.verifier ? { allowReboot: true } : {}),
    ...(v.iommu ? { iommu: v.iommu, extraArgs: IOMMU_TRACE_EVENTS.flatMap((e) => ['-trace', e]) } : {}),
    ...(i.firmware ? { firmware: i.firmware } : {}),
    ...(i.qemuBinary ? { qemuBinary: i.qemuBinary } : {}),
  };
}

// ---- Driver Verifier ----

/** Driver Verifier is not verifying edudma.sys with DMA checking after the reboot. */
export class VerifierNotActiveError extends DmahilError {}

/** Persistent settings (they apply from the next boot): DMA checking on edudma.sys only. */
export function verifierEnableScript(driver = 'edudma.sys'): string {
  return [
    `$out = & verifier.exe /flags 0x${VERIFIER_DMA_FLAGS.toString(16)} /driver ${psQuote(driver)} 2>&1 | Out-String`,
    '[pscustomobject]@{ code = $LASTEXITCODE; output = $out } | ConvertTo-Json -Compress',
  ].join('\n');
}

/** When this boot began (UTC, ISO 8601): the reboot is over when it changes. */
export function bootTimeScript(): string {
  return "(Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToUniversalTime().ToString('o')";
}

/** Restart now; the SSH session ends with it. */
export function rebootScript(): string {
  return "& shutdown.exe /r /t 0 /f /d p:4:1 /c 'dmahil: Driver Verifier settings apply at boot'";
}

/**
 * What Driver Verifier verifies: /querysettings (the saved settings), /query (what the running kernel
 * verifies, with per-driver statistics) and the registry values verifier.exe writes.
 */
export function verifierStateScript(): string {
  return [
    "$mm = Get-ItemProperty -Path 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\Memory Management' -ErrorAction SilentlyContinue",
    '$settings = (& verifier.exe /querysettings 2>&1 | Out-String)',
    '$query = (& verifier.exe /query 2>&1 | Out-String)',
    '$level = $null; if ($mm -and $null -ne $mm.VerifyDriverLevel) { $level = [int64]$mm.VerifyDriverLevel }',
    '[pscustomobject]@{ verifyDrivers = [string]$mm.VerifyDrivers; verifyDriverLevel = $level; settings = $settings; query = $query } | ConvertTo-Json -Compress',
  ].join('\n');
}

export interface VerifierState {
  /** The saved settings name edudma.sys. */
  configured: boolean;
  /** DMA checking is in the saved flags (undefined: neither the registry nor /querysettings said). */
  dmaChecking: boolean | undefined;
  /** The running kernel verifies edudma.sys (/query lists it). */
  active: boolean;
  raw: { settings: string; query: string; verifyDrivers: string; verifyDriverLevel: number | null };
}

export function parseVerifierState(json: string): VerifierState {
  const j = JSON.parse(json) as { verifyDrivers?: string; verifyDriverLevel?: number | null; settings?: string; query?: string };
  const drivers = (j.verifyDrivers ?? '').split(/\s+/).filter(Boolean);
  const settings = j.settings ?? '';
  const query = j.query ?? '';
  const level = typeof j.verifyDriverLevel === 'number' ? j.verifyDriverLevel : null;
  const fromSettings = /DMA checking:\s*(Enabled|Disabled)/i.exec(settings);
  return {
    configured: drivers.some((d) => d.toLowerCase() === 'edudma.sys') || /(^|\s)edudma\.sys(\s|$)/im.test(settings),
    dmaChecking: level !== null ? (level & VERIFIER_DMA_FLAGS) !== 0 : fromSettings ? /enabled/i.test(fromSettings[1]!) : undefined,
    active: /edudma\.sys/i.test(query),
    raw: { settings, query, verifyDrivers: j.verifyDrivers ?? '', verifyDriverLevel: level },
  };
}

/** Throws VerifierNotActiveError unless the running kernel verifies edudma.sys with DMA checking. */
export function requireVerifierActive(s: VerifierState, logFile?: string): void {
  if (!s.configured) {
    throw new VerifierNotActiveError('Driver Verifier\'s settings do not name edudma.sys after "verifier /flags 0x80 /driver edudma.sys"', {
      hint: 'read windows/verifier.txt in the artifacts; verifier.exe needs an elevated session (the image\'s dmahil account is an administrator)',
      logFile,
    });
  }
  if (s.dmaChecking === false) {
    throw new VerifierNotActiveError(`Driver Verifier verifies edudma.sys without DMA checking (VerifyDriverLevel 0x${(s.raw.verifyDriverLevel ?? 0).toString(16)})`, {
      hint: 'the golden image may carry other verifier settings: run "verifier /reset" in it, or rebuild it',
      logFile,
    });
  }
  if (!s.active) {
    throw new VerifierNotActiveError('Driver Verifier is set for edudma.sys but the running kernel does not verify it (verifier /query does not list it)', {
      hint: 'the reboot did not apply the settings: read windows/verifier.txt in the artifacts',
      logFile,
    });
  }
}

// ---- DMA remapping ----

/**
 * The guest's side of DMA remapping for the edu: the DmaRemapping* device properties Get-PnpDeviceProperty
 * knows (DEVPKEY_Device_DmaRemappingPolicy: 2 capable, 1 opted out, 0 or absent: not enforced), and the
 * INF's two opt-in values as the registry holds them.
 */
export function remappingStateScript(hwid = EDU_HWID): string {
  return [
    `$d = @(Get-PnpDevice -PresentOnly -ErrorAction SilentlyContinue | Where-Object { $_.InstanceId -like ${psQuote(`${hwid}*`)} })[0]`,
    '$props = @(); $perDevice = $null',
    'if ($d) {',
    "  $props = @(Get-PnpDeviceProperty -InstanceId $d.InstanceId -ErrorAction SilentlyContinue | Where-Object { $_.KeyName -match 'DmaRemapping' } | ForEach-Object { [pscustomobject]@{ key = [string]$_.KeyName; data = $_.Data } })",
    "  $perDevice = (Get-ItemProperty -LiteralPath ('HKLM:\\SYSTEM\\CurrentControlSet\\Enum\\' + $d.InstanceId + '\\Device Parameters\\DMA Management') -Name RemappingSupported -ErrorAction SilentlyContinue).RemappingSupported",
    '}',
    "$perDriver = (Get-ItemProperty -Path 'HKLM:\\SYSTEM\\CurrentControlSet\\Services\\edudma\\Parameters' -Name DmaRemappingCompatible -ErrorAction SilentlyContinue).DmaRemappingCompatible",
    '[pscustomobject]@{ instanceId = [string]$d.InstanceId; properties = $props; remappingSupported = $perDevice; dmaRemappingCompatible = $perDriver } | ConvertTo-Json -Compress -Depth 4',
  ].join('\n');
}

export interface GuestRemappingState {
  instanceId: string;
  /** DEVPKEY_Device_DmaRemappingPolicy when Get-PnpDeviceProperty shows it. */
  policy: number | undefined;
  properties: Array<{ key: string; data: unknown }>;
  /** The INF's per-device and per-driver opt-ins as installed (undefined: absent). */
  remappingSupported: number | undefined;
  dmaRemappingCompatible: number | undefined;
}

export function parseRemappingState(json: string): GuestRemappingState {
  const j = JSON.parse(json) as { instanceId?: string; properties?: unknown; remappingSupported?: unknown; dmaRemappingCompatible?: unknown };
  const props = (Array.isArray(j.properties) ? j.properties : j.properties ? [j.properties] : []) as Array<{ key: string; data: unknown }>;
  const policy = props.find((p) => /DmaRemappingPolicy/i.test(p.key));
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  return { instanceId: j.instanceId ?? '', policy: num(policy?.data), properties: props, remappingSupported: num(j.remappingSupported), dmaRemappingCompatible: num(j.dmaRemappingCompatible) };
}

/** What QEMU's intel-iommu saw the guest do, from its trace lines on stderr (IOMMU_TRACE_EVENTS). */
export interface HostRemappingState {
  /** The guest's last write of VT-d's translation enable (GCMD.TE); undefined: it never wrote it. */
  dmarEnabled: boolean | undefined;
  /** The edu's address space at the last switch: true when its DMA goes through VT-d translation. */
  eduTranslated: boolean | undefined;
}

/**
 * QEMU 7.2's log-backend lines, measured with the reference guest under intel_iommu=on: "vtd_dmar_enable
 * enable 1", then "vtd_switch_address_space Device 00:03.0 switching address space (iommu enabled=1)"
 * for each device (enabled=0 at every reset; a restored snapshot switches without vtd_dmar_enable).
 * Under -msg timestamp=on a "<pid>@<sec>.<usec>:" comes first.
 */
export function parseVtdTrace(text: string, eduBdf: string): HostRemappingState {
  let dmarEnabled: boolean | undefined;
  let eduTranslated: boolean | undefined;
  const want = eduBdf.toLowerCase();
  for (const line of text.split(/\r?\n/)) {
    const en = /(?:^|:)vtd_dmar_enable enable (\d)/.exec(line);
    if (en) dmarEnabled = en[1] === '1';
    const sw = /(?:^|:)vtd_switch_address_space Device ([0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]) switching address space \(iommu enabled=(\d)\)/i.exec(line);
    if (sw && sw[1]!.toLowerCase() === want) eduTranslated = sw[2] === '1';
  }
  return { dmarEnabled, eduTranslated };
}

/** The edu's bus:slot.function from QMP query-pci (QEMU's vendor 0x1234, device 0x11e8). */
export function eduBdfFromQueryPci(buses: unknown): string | undefined {
  for (const bus of (Array.isArray(buses) ? buses : []) as Array<{ bus?: number; devices?: Array<{ bus?: number; slot?: number; function?: number; id?: { vendor?: number; device?: number } }> }>) {
    for (const d of bus.devices ?? []) {
      if (d.id?.vendor === 0x1234 && d.id?.device === 0x11e8) {
        const hex = (n: number | undefined) => (n ?? 0).toString(16).padStart(2, '0');
        return `${hex(d.bus ?? bus.bus)}:${hex(d.slot)}.${(d.function ?? 0).toString(16)}`;
      }
    }
  }
  return undefined;
}

export interface RemappingReport {
  /** On only when QEMU saw translation on for the edu: never claimed from the guest's policy alone. */
  remapped: boolean;
  eduBdf: string | undefined;
  host: HostRemappingState;
  guest: GuestRemappingState | undefined;
  summary: string;
}

/** One line for the run's progress and windows/dma-remapping.json. */
export function remappingReport(eduBdf: string | undefined, host: HostRemappingState, guest: GuestRemappingState | undefined): RemappingReport {
  const remapped = host.eduTranslated === true;
  const optIn = guest ? `the driver's opt-in as installed: RemappingSupported=${guest.remappingSupported ?? 'absent'}, DmaRemappingCompatible=${guest.dmaRemappingCompatible ?? 'absent'}; DmaRemappingPolicy ${guest.policy ?? 'not shown'}` : 'the guest\'s view could not be read';
  let qemu: string;
  if (remapped) qemu = `QEMU's intel-iommu translates the edu's DMA (${eduBdf}): device addresses are IOVAs`;
  else if (host.dmarEnabled === true) qemu = `Windows turned VT-d translation on, but not for the edu (${eduBdf ?? 'slot unknown'}): its DMA is untranslated`;
  else if (host.dmarEnabled === false) qemu = 'Windows turned VT-d translation off again: the edu\'s DMA is untranslated';
  else qemu = 'Windows never turned VT-d translation on: DMA remapping was off, the edu\'s DMA is untranslated (map registers as without an IOMMU)';
  return { remapped, eduBdf, host, guest, summary: `DMA remapping ${remapped ? 'ON' : 'OFF'}: ${qemu}; ${optIn}` };
}
