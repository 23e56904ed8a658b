#!/usr/bin/env node
// dmahil image windows --iso PATH [options]  (also: make windows-image ISO=PATH [OUT=...])
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { DmahilError, UsageError } from '../../harness/errors.js';
import type { WindowsInstallConfig } from './answer-file.js';
import { buildWindowsImage, type WindowsImageOptions } from './build.js';
import { proveKvm } from '../../harness/cli/kvm-preflight.js';
import { checkQemu } from '../../harness/machine/qemu-check.js';
import { DEFAULT_QEMU_BINARY } from '../../harness/machine/cmdline.js';

export const IMAGE_USAGE = `Usage: dmahil image windows --iso PATH [options]

Builds a Windows golden image (qcow2) unattended: test signing on, OpenSSH Server with the harness's key,
crash dumps on, then shuts down. Writes OUT.qcow2, OUT.json (give this to DMAHIL_WINDOWS_IMAGE),
OUT.id_ed25519, OUT.vars.fd (UEFI) and OUT.config.iso.

  --iso PATH            the Windows 10/11 or Server ISO (required)
  --out PATH            default images/windows/out/windows.qcow2
  --edition N|NAME      image index in install.wim (default 1) or its name, e.g. "Windows 11 Pro"
  --product-key KEY     only when the edition asks for one
  --locale LL-CC        default en-US
  --timezone TZ         default UTC
  --password PW         the dmahil account's password (default dmahil-Test1)
  --firmware uefi|bios  default uefi (OVMF without Secure Boot keys)
  --arch amd64|x86      default amd64
  --fod-iso PATH        Features-on-Demand ISO: the OpenSSH payload without internet
  --pvpanic DIR         virtio-win's pvpanic driver folder, installed for bug-check detection
  --driver-verifier     Driver Verifier DMA checking (0x80) for edudma.sys
  --no-win11-bypass     do not skip Windows 11's TPM/Secure Boot/RAM checks
  --disk-gib N          default 64;  --memory-mib N default 4096;  --cpus N default 2
  --accel auto|kvm|tcg  default auto
  --timeout-min N       default 120 under KVM, 1440 under TCG
  --screenshot-min N    a screendump every N minutes into the artifacts (default 5)
  --artifacts DIR       default OUT-dir/install-logs`;

export function parseImageArgs(argv: string[], repoRoot: string): WindowsImageOptions {
  let v;
  try {
    v = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: {
        iso: { type: 'string' }, out: { type: 'string' }, edition: { type: 'string', default: '1' }, 'product-key': { type: 'string' },
        locale: { type: 'string', default: 'en-US' }, timezone: { type: 'string', default: 'UTC' }, password: { type: 'string', default: 'dmahil-Test1' },
        firmware: { type: 'string', default: 'uefi' }, arch: { type: 'string', default: 'amd64' }, 'fod-iso': { type: 'string' }, pvpanic: { type: 'string' },
        'driver-verifier': { type: 'boolean', default: false }, 'no-win11-bypass': { type: 'boolean', default: false },
        'disk-gib': { type: 'string', default: '64' }, 'memory-mib': { type: 'string', default: '4096' }, cpus: { type: 'string', default: '2' },
        accel: { type: 'string', default: 'auto' }, 'timeout-min': { type: 'string' }, 'screenshot-min': { type: 'string', default: '5' }, artifacts: { type: 'string' },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/, ''), { hint: 'run "dmahil image windows --help"' });
  }
  if (!v.iso) throw new UsageError('--iso is required: the Windows installation ISO', { hint: 'download a Windows 10/11 or Server ISO from Microsoft; then: dmahil image windows --iso PATH' });
  const num = (name: string, s: string, min: number): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} "${s}" must be a whole number of at least ${min}`);
    return n;
  };
  if (v.firmware !== 'uefi' && v.firmware !== 'bios') throw new UsageError(`--firmware "${v.firmware}" is not uefi or bios`);
  if (v.arch !== 'amd64' && v.arch !== 'x86') throw new UsageError(`--arch "${v.arch}" is not amd64 or x86`);
  if (v.accel !== 'auto' && v.accel !== 'kvm' && v.accel !== 'tcg') throw new UsageError(`--accel "${v.accel}" is not auto, kvm or tcg`);
  const out = path.resolve(v.out ?? path.join(repoRoot, 'images', 'windows', 'out', 'windows.qcow2'));
  const install: WindowsInstallConfig = {
    edition: /^\d+$/.test(v.edition!) ? { index: Number(v.edition) } : { name: v.edition! },
    locale: v.locale!, timeZone: v.timezone!, username: 'dmahil', password: v.password!, productKey: v['product-key'],
    computerName: 'DMAHIL-GUEST', arch: v.arch, firmware: v.firmware, bypassWin11Checks: !v['no-win11-bypass'],
  };
  return {
    iso: path.resolve(v.iso), out, install, fodIso: v['fod-iso'], pvpanicDir: v.pvpanic, driverVerifier: v['driver-verifier']!,
    diskGiB: num('disk-gib', v['disk-gib']!, 24), memoryMiB: num('memory-mib', v['memory-mib']!, 2048), cpus: num('cpus', v.cpus!, 1), accel: v.accel,
    timeoutMin: v['timeout-min'] ? num('timeout-min', v['timeout-min'], 1) : v.accel === 'tcg' ? 1440 : 120,
    screenshotEveryMin: num('screenshot-min', v['screenshot-min']!, 1),
    artifactsDir: path.resolve(v.artifacts ?? path.join(path.dirname(out), 'install-logs')),
  };
}

export async function imageMain(argv: string[], repoRoot: string): Promise<number> {
  if (argv[0] !== 'windows') throw new UsageError(`unknown image "${argv[0] ?? ''}"`, { hint: 'the image to build is "windows": dmahil image windows --iso PATH' });
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(IMAGE_USAGE + '\n');
    return 0;
  }
  const opts = parseImageArgs(argv.slice(1), repoRoot);
  const onProgress = (m: string): void => void process.stderr.write(`dmahil image: ${m}\n`);
  // An install under a KVM that cannot run it would hang for hours: prove KVM first (auto: fall back).
  await proveKvm({ repoRoot, qemuBinary: (await checkQemu(DEFAULT_QEMU_BINARY)).binary, accel: opts.accel, onProgress });
  const manifest = await buildWindowsImage({ ...opts, onProgress });
  process.stdout.write(`${manifest}\nexport DMAHIL_WINDOWS_IMAGE=${manifest}\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  imageMain(process.argv.slice(2), repoRoot).then(
    (c) => (process.exitCode = c),
    (e: unknown) => {
      process.stderr.write(`dmahil: ${e instanceof DmahilError ? e.describe() : (e as Error).stack}\n`);
      process.exitCode = 2;
    },
  );
}
