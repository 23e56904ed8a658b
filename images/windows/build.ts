// make windows-image / dmahil image windows: an unattended install into a qcow2 golden image.
// Windows ISO + config ISO (autounattend.xml, dmahil-setup.ps1, the SSH key) [+ FoD ISO] → QEMU q35 with
// OVMF (no Secure Boot keys) or SeaBIOS, AHCI disk and e1000e (in-box drivers) → the guest shuts itself
// down when the setup script is done → manifest next to the qcow2.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { DmahilError, EnvironmentError, UsageError } from '../../harness/errors.js';
import { Machine, WINDOWS_TCG_CPU } from '../../harness/machine/index.js';
import type { MachineConfig } from '../../harness/machine/config.js';
import { generateAutounattend, type WindowsInstallConfig } from './answer-file.js';
import { buildConfigIso, checkWindowsIso, type MediumFile } from './media.js';
import { MANIFEST_KIND, writeManifest } from './manifest.js';
import { generateSetupScript, SETUP_DONE, SETUP_FAILED } from './setup-script.js';

const run = promisify(execFile);
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export interface WindowsImageOptions {
  iso: string;
  /** The golden qcow2; the manifest, key, vars and config ISO go beside it. */
  out: string;
  install: WindowsInstallConfig;
  diskGiB: number;
  memoryMiB: number;
  cpus: number;
  accel: 'auto' | 'kvm' | 'tcg';
  /** A Features-on-Demand ISO (OpenSSH payload) for editions without it in-box and no internet. */
  fodIso?: string;
  /** A folder with virtio-win's pvpanic driver (pvpanic.inf, .sys, .cat) to install. */
  pvpanicDir?: string;
  driverVerifier: boolean;
  timeoutMin: number;
  /** A screendump this often into the artifacts (minutes). */
  screenshotEveryMin: number;
  artifactsDir: string;
  onProgress?: (m: string) => void;
}

/** The install machine: q35, AHCI disk first in boot order, the Windows ISO next, the config ISO, e1000e. */
export function installMachineConfig(o: { disk: string; iso: string; configIso: string; fodIso?: string; vars?: string; firmware: 'uefi' | 'bios'; memoryMiB: number; cpus: number; accel: 'auto' | 'kvm' | 'tcg' }): MachineConfig {
  return {
    name: 'windows-install',
    memoryMiB: o.memoryMiB,
    cpus: o.cpus,
    accel: o.accel,
    tcgCpuModel: WINDOWS_TCG_CPU, // 24H2 Setup needs SSE4.2 and POPCNT; KVM keeps host
    drives: [{ file: o.disk, format: 'qcow2', interface: 'ahci', bootIndex: 0 }],
    cdroms: [{ file: o.iso, bootIndex: 1 }, { file: o.configIso }, ...(o.fodIso ? [{ file: o.fodIso }] : [])],
    edu: { enabled: false },
    nic: { model: 'e1000e', guestPort: 22 },
    sharedRam: false,
    logGuestErrors: false,
    display: 'std',
    allowReboot: true,
    rtcLocalTime: true,
    pvpanic: true,
    ...(o.firmware === 'uefi' ? { firmware: { kind: 'ovmf' as const, code: OVMF_CODE, vars: o.vars! } } : {}),
  };
}

/** The files of the config medium. */
export function configMediumFiles(o: { install: WindowsInstallConfig; sshPublicKey: string; driverVerifier: boolean; pvpanicFiles: string[] }): MediumFile[] {
  return [
    { name: 'Autounattend.xml', data: generateAutounattend(o.install) },
    { name: 'dmahil-setup.ps1', data: '\ufeff' + generateSetupScript({ sshPublicKey: o.sshPublicKey, driverVerifier: o.driverVerifier, pvpanicDriver: o.pvpanicFiles.length > 0 }) },
    { name: 'dmahil-ssh.pub', data: o.sshPublicKey },
    ...o.pvpanicFiles.map((f) => ({ name: `pvpanic/${path.basename(f)}`, from: f })),
  ];
}

function outPaths(out: string) {
  const base = out.replace(/\.qcow2$/, '');
  return { disk: `${base}.qcow2`, manifest: `${base}.json`, key: `${base}.id_ed25519`, vars: `${base}.vars.fd`, configIso: `${base}.config.iso` };
}

/** Everything up to starting QEMU: inputs checked, disk, key, vars, config ISO made and verified. */
export async function prepareWindowsImage(o: WindowsImageOptions): Promise<{ config: MachineConfig; paths: ReturnType<typeof outPaths> }> {
  const progress = o.onProgress ?? (() => undefined);
  await checkWindowsIso(o.iso);
  if (o.fodIso) await checkWindowsIso(o.fodIso).catch((e: DmahilError) => {
    throw new UsageError(`Features-on-Demand ISO: ${e.message}`, { hint: 'pass the "Languages and Optional Features" ISO of the same Windows build with --fod-iso, or leave it out when the guest has internet' });
  });
  const firmware = o.install.firmware;
  if (firmware === 'uefi' && !existsSync(OVMF_CODE)) throw new EnvironmentError(`OVMF not found at ${OVMF_CODE}`, { hint: 'install it: apt-get install -y ovmf (or use --firmware bios)' });
  const p = outPaths(path.resolve(o.out));
  if (existsSync(p.disk)) throw new UsageError(`${p.disk} exists already`, { hint: 'remove it, or pass another OUT=' });
  await fs.mkdir(path.dirname(p.disk), { recursive: true });
  let pvpanicFiles: string[] = [];
  if (o.pvpanicDir) {
    pvpanicFiles = (await fs.readdir(o.pvpanicDir).catch(() => {
      throw new UsageError(`pvpanic driver folder ${o.pvpanicDir} is not readable`, { hint: 'point --pvpanic at virtio-win\'s pvpanic/<os>/amd64 folder' });
    })).filter((f) => /\.(inf|sys|cat)$/i.test(f)).map((f) => path.join(o.pvpanicDir!, f));
    if (!pvpanicFiles.some((f) => /\.inf$/i.test(f))) throw new UsageError(`no .inf in ${o.pvpanicDir}`, { hint: 'point --pvpanic at the folder holding pvpanic.inf' });
  }
  progress('SSH key for the harness');
  await fs.rm(p.key, { force: true });
  await fs.rm(`${p.key}.pub`, { force: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'dmahil-windows-image', '-f', p.key]).catch((e: NodeJS.ErrnoException) => {
    throw new EnvironmentError(`ssh-keygen failed: ${e.message}`, { hint: 'install it: apt-get install -y openssh-client' });
  });
  const sshPublicKey = readFileSync(`${p.key}.pub`, 'utf8').trim();
  progress('config medium (autounattend.xml, dmahil-setup.ps1)');
  await buildConfigIso(configMediumFiles({ install: o.install, sshPublicKey, driverVerifier: o.driverVerifier, pvpanicFiles }), p.configIso);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', p.disk, `${o.diskGiB}G`]).catch((e: Error) => {
    throw new EnvironmentError(`qemu-img create failed: ${e.message}`, { hint: 'install qemu-utils; check free space' });
  });
  if (firmware === 'uefi') await fs.copyFile(OVMF_VARS, p.vars);
  const config = installMachineConfig({ disk: p.disk, iso: path.resolve(o.iso), configIso: p.configIso, fodIso: o.fodIso && path.resolve(o.fodIso), vars: p.vars, firmware, memoryMiB: o.memoryMiB, cpus: o.cpus, accel: o.accel });
  return { config, paths: p };
}

/** Run the whole install; progress every 30 s (disk growth, setup steps from the serial log, QMP status). */
export async function buildWindowsImage(o: WindowsImageOptions): Promise<string> {
  const progress = o.onProgress ?? (() => undefined);
  const { config, paths } = await prepareWindowsImage(o);
  progress(`installing Windows into ${paths.disk}: under KVM expect 20-60 min, under TCG many hours (estimates)`);
  const machine = await Machine.launch(config, { artifactsDir: o.artifactsDir });
  const serial = path.join(o.artifactsDir, 'serial.log');
  const started = Date.now();
  let shot = 0;
  let lastShot = 0;
  let lastReport = started;
  // UEFI: the Windows ISO asks "Press any key to boot from CD or DVD"; the disk is empty and first in the
  // boot order, so the ISO boots on the first pass only; press keys during the first minute(s) only.
  const keyUntil = started + (config.firmware ? (machine.accel === 'kvm' ? 60_000 : 300_000) : 0);
  try {
    for (;;) {
      if (!machine.isRunning()) break;
      const now = Date.now();
      if (now < keyUntil) await machine.qmp.execute('send-key', { keys: [{ type: 'qcode', data: 'spc' }] }).catch(() => undefined);
      if (now - lastShot >= o.screenshotEveryMin * 60_000) {
        lastShot = now;
        await machine.qmp.execute('screendump', { filename: path.join(o.artifactsDir, `install-${String(shot++).padStart(3, '0')}.ppm`) }).catch(() => undefined);
      }
      if (now - lastReport >= 30_000) {
        lastReport = now;
        const size = (await fs.stat(paths.disk)).blocks * 512;
        const status = await machine.qmp.execute<{ status: string }>('query-status').then((s) => s.status, () => 'unknown');
        const steps = (existsSync(serial) ? readFileSync(serial, 'utf8') : '').split(/\r?\n/).filter((l) => l.startsWith('dmahil-setup:'));
        progress(`${Math.round((now - started) / 60_000)} min: disk ${(size / 1024 ** 3).toFixed(1)} GiB, ${status}${steps.length ? `, ${steps.at(-1)}` : ', Windows Setup running'}`);
      }
      if (now - started > o.timeoutMin * 60_000) {
        await machine.qmp.execute('screendump', { filename: path.join(o.artifactsDir, 'install-timeout.ppm') }).catch(() => undefined);
        throw new DmahilError(`the Windows install did not finish within ${o.timeoutMin} min`, {
          hint: 'look at the screendumps in the artifacts: a Setup error dialog, a product key or edition prompt (set --edition / --product-key), or a boot prompt',
          logFile: path.join(o.artifactsDir, 'install-timeout.ppm'),
        });
      }
      await sleep(1000);
    }
  } finally {
    await machine.shutdown();
  }
  const exit = await machine.exited;
  const log = existsSync(serial) ? readFileSync(serial, 'utf8') : '';
  const failed = log.split(/\r?\n/).find((l) => l.startsWith(SETUP_FAILED));
  if (failed) throw new DmahilError(`the image's setup script failed: ${failed.slice(SETUP_FAILED.length).trim()}`, { hint: 'read C:\\dmahil-setup.log in the disk and the serial log; for OpenSSH without internet pass --fod-iso', logFile: serial });
  if (!log.includes(SETUP_DONE)) throw new DmahilError(`QEMU ended (${exit.detail}) before the setup script finished`, { hint: 'look at the last screendump in the artifacts', logFile: serial });
  const rel = (f: string) => path.basename(f);
  writeManifest(paths.manifest, {
    kind: MANIFEST_KIND, version: 1, disk: rel(paths.disk), firmware: o.install.firmware, ovmfVars: o.install.firmware === 'uefi' ? rel(paths.vars) : undefined,
    ovmfCode: o.install.firmware === 'uefi' ? OVMF_CODE : undefined, arch: o.install.arch === 'amd64' ? 'x64' : 'x86', username: o.install.username, privateKey: rel(paths.key),
    edition: 'index' in o.install.edition ? `index ${o.install.edition.index}` : o.install.edition.name, driverVerifier: o.driverVerifier, pvpanicDriver: !!o.pvpanicDir,
    createdAt: new Date().toISOString(),
  });
  await fs.chmod(paths.disk, 0o444); // the golden image: runs use overlays
  progress(`done: ${paths.manifest}`);
  return paths.manifest;
}
