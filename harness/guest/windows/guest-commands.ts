// What the Windows profile asks the guest, as PowerShell scripts built with psQuote, and how it reads
// the answers. Pure: the specs check every script and parser without Windows.
import type { InfoResult } from '../../contract/result.js';
import { DmahilError } from '../../errors.js';
import { psQuote, winJoin } from './powershell.js';

/** Where the driver package and dmactl go in the guest (no spaces: dmactl runs through cmd.exe). */
export const GUEST_DIR = 'C:\\dmahil';
/** The edu's hardware ID prefix (QEMU vendor 1234, device 11e8). */
export const EDU_HWID = 'PCI\\VEN_1234&DEV_11E8';

/** Test signing is off in the running kernel: the driver cannot load. */
export class TestSigningOffError extends DmahilError {}
/** The edu device has no started driver; carries the Device Manager problem code. */
export class DriverStartError extends DmahilError {
  constructor(
    message: string,
    readonly problemCode: number | undefined,
    context: ConstructorParameters<typeof DmahilError>[1],
  ) {
    super(message, context);
  }
}

export function mkdirScript(dir = GUEST_DIR): string {
  return `New-Item -ItemType Directory -Force -Path ${psQuote(dir)} | Out-Null`;
}

/**
 * Test signing as the *running* kernel sees it (SystemStartOptions holds the options this boot used;
 * it does not depend on the display language), and as the boot store will apply it next boot.
 */
export function testSigningScript(): string {
  return [
    "$opts = (Get-ItemProperty -Path 'HKLM:\\SYSTEM\\CurrentControlSet\\Control' -Name SystemStartOptions).SystemStartOptions",
    "$bcd = (& bcdedit.exe /enum '{current}' 2>&1 | Out-String)",
    '$sb = $null; try { $sb = Confirm-SecureBootUEFI } catch { $sb = $null }',
    "[pscustomobject]@{ startOptions = [string]$opts; bcd = $bcd; secureBoot = $sb } | ConvertTo-Json -Compress",
  ].join('\n');
}

export interface TestSigningState {
  /** The running kernel was booted with TESTSIGNING. */
  running: boolean;
  /** bcdedit says testsigning Yes for the next boot (undefined when it could not tell). */
  nextBoot: boolean | undefined;
  secureBoot: boolean | null;
}

export function parseTestSigning(json: string): TestSigningState {
  const j = JSON.parse(json) as { startOptions?: string; bcd?: string; secureBoot?: boolean | null };
  const line = /^testsigning\s+(\S+)/im.exec(j.bcd ?? '');
  return {
    running: /(^|\s)TESTSIGNING(\s|$)/i.test(j.startOptions ?? ''),
    nextBoot: line ? /^(yes|ja|oui|s[ií]|on)$/i.test(line[1]!) : undefined,
    secureBoot: j.secureBoot ?? null,
  };
}

/** Throws TestSigningOffError naming the cause and the fix. */
export function requireTestSigning(state: TestSigningState, logFile?: string): void {
  if (state.running) return;
  if (state.secureBoot === true) {
    throw new TestSigningOffError('test signing is off in the guest and Secure Boot is on, which forbids it', {
      hint: 'boot the image with OVMF without Secure Boot keys (OVMF_CODE_4M.fd, not .secboot/.ms) or SeaBIOS, then run "bcdedit /set testsigning on" and reboot; rebuild the golden image with "make windows-image"',
      logFile,
    });
  }
  if (state.nextBoot === true) {
    throw new TestSigningOffError('test signing is set in the boot store but this boot did not apply it', {
      hint: 'the golden image was not rebooted after "bcdedit /set testsigning on": boot it once and shut it down, or rebuild it with "make windows-image"',
      logFile,
    });
  }
  throw new TestSigningOffError('test signing is off in the guest: Windows will refuse the test-signed edudma.sys', {
    hint: 'in the golden image run "bcdedit /set testsigning on" as Administrator and reboot (Secure Boot must be off), or rebuild it with "make windows-image"',
    logFile,
  });
}

/** Trust the test certificate for driver installation: LocalMachine Root and TrustedPublisher (facts §6.2). */
export function trustCertificateScript(cerPath: string): string {
  return ['Root', 'TrustedPublisher']
    .map((store) => `$out = & certutil.exe -f -addstore ${store} ${psQuote(cerPath)} 2>&1 | Out-String\nif ($LASTEXITCODE -ne 0) { throw "certutil -addstore ${store} failed ($LASTEXITCODE): $out" }`)
    .join('\n');
}

/** pnputil's output and exit code, as JSON (pnputil's own exit code is not the script's). */
export function addDriverScript(infPath: string): string {
  return [
    `$out = & pnputil.exe /add-driver ${psQuote(infPath)} /install 2>&1 | Out-String`,
    '[pscustomobject]@{ code = $LASTEXITCODE; output = $out } | ConvertTo-Json -Compress',
  ].join('\n');
}

export interface PnputilResult {
  code: number;
  output: string;
  /** 3010: installed, a reboot is needed to finish. */
  rebootRequired: boolean;
  ok: boolean;
}

export function parsePnputil(json: string): PnputilResult {
  const j = JSON.parse(json) as { code: number; output: string };
  // 0 success; 3010 ERROR_SUCCESS_REBOOT_REQUIRED; 259 ERROR_NO_MORE_ITEMS: the package was added but no
  // device was updated (already installed, or no matching device): the device check decides.
  return { code: j.code, output: j.output ?? '', rebootRequired: j.code === 3010, ok: j.code === 0 || j.code === 3010 || j.code === 259 };
}

/** Every present edu device with its status and problem code. */
export function deviceStateScript(hwid = EDU_HWID): string {
  const like = `${hwid.replace(/\\/g, '\\\\')}%`;
  return [
    `$d = @(Get-CimInstance -ClassName Win32_PnPEntity -Filter ${psQuote(`PNPDeviceID LIKE '${like.replace(/'/g, "\\'")}'`)})`,
    "ConvertTo-Json -Compress -InputObject @($d | ForEach-Object { [pscustomobject]@{ id = $_.PNPDeviceID; name = $_.Name; status = $_.Status; code = [int]$_.ConfigManagerErrorCode; service = $_.Service } })",
  ].join('\n');
}

export interface DeviceState {
  id: string;
  name: string | null;
  status: string | null;
  /** Device Manager problem code (ConfigManagerErrorCode): 0 working. */
  code: number;
  service: string | null;
}

export function parseDeviceStates(json: string): DeviceState[] {
  const trimmed = json.trim();
  if (trimmed === '') return [];
  const j = JSON.parse(trimmed) as unknown;
  const list = Array.isArray(j) ? j : [j];
  return list.map((d) => {
    const o = d as Record<string, unknown>;
    return { id: String(o.id), name: (o.name as string) ?? null, status: (o.status as string) ?? null, code: Number(o.code), service: (o.service as string) ?? null };
  });
}

/** Device Manager problem codes a test driver meets, with what to do. */
const PROBLEM_CODES: Record<number, [string, string]> = {
  1: ['the device is not configured correctly', 'reinstall the driver package'],
  3: ['the driver may be corrupted or the system is low on memory', 'give the guest more RAM, or rebuild the driver'],
  10: ['the device cannot start (the driver\'s start routine failed)', 'the driver failed IRP_MN_START_DEVICE: read its log and the System event log in the artifacts'],
  12: ['the device cannot find enough free resources', 'remove other PCI devices from the machine'],
  18: ['the drivers for this device need to be reinstalled', 'run pnputil /add-driver again'],
  19: ['the registry configuration is incomplete or damaged', 'rebuild the golden image'],
  22: ['the device is disabled', 'enable it: pnputil /enable-device'],
  24: ['the device is not present or not working', 'is -device edu on the QEMU command line?'],
  28: ['no driver is installed for the device', 'the INF did not match: check its hardware ID (PCI\\VEN_1234&DEV_11E8) and setupapi.dev.log in the artifacts'],
  31: ['the driver did not load', 'read the System event log in the artifacts'],
  37: ['the driver\'s DriverEntry failed', 'read the driver\'s log and the System event log'],
  39: ['Windows cannot load the driver: it is corrupted or missing', 'check the .sys matches the guest architecture and is signed; read setupapi.dev.log'],
  43: ['the driver reported a failure', 'read the driver\'s log'],
  48: ['the driver is blocked from loading', 'check Driver Verifier and Code Integrity events in the System log'],
  52: ['Windows cannot verify the driver\'s digital signature', 'test signing must be on (bcdedit /set testsigning on, Secure Boot off) and the test certificate in Root and TrustedPublisher'],
};

export function describeProblemCode(code: number): { meaning: string; hint: string } {
  const known = PROBLEM_CODES[code];
  return known ? { meaning: known[0], hint: known[1] } : { meaning: 'see the Device Manager error codes documentation', hint: 'read setupapi.dev.log and the System event log in the artifacts' };
}

/** Throws DriverStartError unless exactly one edu device runs edudma with problem code 0. */
export function requireDriverStarted(devices: DeviceState[], logFile?: string): DeviceState {
  if (devices.length === 0) {
    throw new DriverStartError('no edu PCI device (PCI\\VEN_1234&DEV_11E8) is present in the guest', undefined, {
      hint: 'the machine must have -device edu (MachineConfig edu.enabled)',
      logFile,
    });
  }
  const dev = devices[0]!;
  if (dev.code !== 0) {
    const { meaning, hint } = describeProblemCode(dev.code);
    throw new DriverStartError(`the edu device did not start: Code ${dev.code}, ${meaning} (${dev.id}, status ${dev.status ?? 'unknown'})`, dev.code, { hint, logFile });
  }
  if ((dev.service ?? '').toLowerCase() !== 'edudma') {
    throw new DriverStartError(`the edu device runs service "${dev.service ?? 'none'}", not edudma`, undefined, {
      hint: 'another driver owns the device; remove it with pnputil /delete-driver, and check setupapi.dev.log',
      logFile,
    });
  }
  return dev;
}

/** The running Windows' version (the kernel's, not the marketing name). */
export function osVersionScript(): string {
  return '[Environment]::OSVersion.Version | Select-Object Major,Minor,Build | ConvertTo-Json -Compress';
}

export interface WindowsVersion {
  major: number;
  minor: number;
  build: number;
}

export function parseOsVersion(json: string): WindowsVersion {
  const j = JSON.parse(json) as { Major?: number; Minor?: number; Build?: number };
  if (typeof j.Major !== 'number' || typeof j.Minor !== 'number') throw new DmahilError(`the guest's Windows version is unreadable: ${json.slice(0, 200)}`);
  return { major: j.Major, minor: j.Minor, build: j.Build ?? 0 };
}

/** The DMA adapter does not suit this Windows or this edu: DMA would land on the wrong pages. */
export class DmaAdapterError extends DmahilError {}

/**
 * The adapter the driver got must be the one this Windows and this edu call for. Windows 8 (6.2) and
 * later grant DMA v3, where the driver declares the edu's 28 address bits; v2 can only say 32, and an
 * edu that masks to fewer bits would then move the data to the wrong pages (the driver's v2 fallback is
 * for Windows 7). Throws DmaAdapterError naming the cause and the fix.
 */
export function requireDmaAdapter(os: WindowsVersion, info: InfoResult, eduDmaBits: number): void {
  const d = info.driver;
  if (!d) throw new DmaAdapterError('dmactl info reported no driver description');
  const win8 = os.major > 6 || (os.major === 6 && os.minor >= 2);
  const where = `Windows ${os.major}.${os.minor}.${os.build}`;
  if (win8 && d.api !== 'wdm-dma-v3') {
    throw new DmaAdapterError(`${where} gave edudma a ${d.api ?? 'unknown'} adapter (version ${d.adapterVersion ?? '?'}): Windows 8 and later grant DMA v3, so the HAL refused DEVICE_DESCRIPTION_VERSION3`, {
      hint: 'read the driver log (C:\dmahil\edudma.log) in the artifacts; a third-party DMA filter or a HAL that is not Microsoft\'s would explain it',
    });
  }
  const bits = d.dmaMaskBits ?? eduDmaBits;
  if (bits > eduDmaBits) {
    throw new DmaAdapterError(`edudma's adapter declares ${bits}-bit DMA addressing (${d.api}) but the edu reaches only ${eduDmaBits} bits: the HAL would hand it addresses the edu clamps, and DMA would land on the wrong pages`, {
      hint: `give the machine an edu that reaches ${bits} bits (MachineConfig edu.dmaMask = 0x${((1n << BigInt(bits)) - 1n).toString(16)}), as a DMA v2 guest (Windows 7) needs`,
    });
  }
}

/** System event log errors and warnings since `sinceIso`, newest first, as text. */
export function systemEventsScript(sinceIso: string, max = 200): string {
  return [
    `$since = [datetime]::Parse(${psQuote(sinceIso)}, [Globalization.CultureInfo]::InvariantCulture)`,
    `$ev = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; Level = 1,2,3; StartTime = $since } -MaxEvents ${max} -ErrorAction SilentlyContinue)`,
    "if ($ev.Count -eq 0) { 'no System errors or warnings since ' + $since.ToString('o') } else { $ev | Format-List TimeCreated, Id, ProviderName, LevelDisplayName, Message | Out-String -Width 400 }",
  ].join('\n');
}

/** Crash dumps present in the guest: MEMORY.DMP and Minidump\*.dmp, as JSON [{ path, size }]. */
export function listDumpsScript(): string {
  return [
    "$f = @(Get-Item -Path \"$env:SystemRoot\\MEMORY.DMP\" -ErrorAction SilentlyContinue) + @(Get-ChildItem -Path \"$env:SystemRoot\\Minidump\" -Filter *.dmp -ErrorAction SilentlyContinue)",
    'ConvertTo-Json -Compress -InputObject @($f | Where-Object { $_ } | ForEach-Object { [pscustomobject]@{ path = $_.FullName; size = $_.Length } })',
  ].join('\n');
}

export function parseDumpList(json: string): Array<{ path: string; size: number }> {
  const t = json.trim();
  if (t === '') return [];
  const j = JSON.parse(t) as unknown;
  return (Array.isArray(j) ? j : [j]).map((d) => ({ path: String((d as { path: unknown }).path), size: Number((d as { size: unknown }).size) }));
}

/** The driver's own log file (edudma.sys appends to it at PASSIVE_LEVEL), and its service/PnP view. */
export function driverStatusScript(): string {
  return [
    `$log = ${psQuote(winJoin(GUEST_DIR, 'edudma.log'))}`,
    "if (Test-Path -LiteralPath $log) { Get-Content -LiteralPath $log -Raw } else { 'no C:\\dmahil\\edudma.log: the driver never loaded (it writes a line in DriverEntry); service and device state follow' }",
    "& sc.exe query edudma | Out-String",
    "& pnputil.exe /enum-drivers | Out-String",
  ].join('\n');
}
