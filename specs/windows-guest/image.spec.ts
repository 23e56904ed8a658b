// The golden-image recipe up to where Windows is needed: the answer file (parsed by xmllint, each
// setting read back by XPath), the setup script, the config ISO (written, extracted, compared), the
// install command line, the user's ISO checks and the CLI options.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { escapeXml, FIRST_LOGON_COMMAND, generateAutounattend, LAB_CONFIG_BYPASSES, type WindowsInstallConfig } from '../../images/windows/answer-file.js';
import { generateSetupScript } from '../../images/windows/setup-script.js';
import { buildConfigIso, checkWindowsIso, CONFIG_VOLUME_ID } from '../../images/windows/media.js';
import { configMediumFiles, installMachineConfig, prepareWindowsImage } from '../../images/windows/build.js';
import { parseImageArgs } from '../../images/windows/cli.js';
import { readWindowsImage } from '../../images/windows/manifest.js';
import { buildQemuCommand, validateMachineConfig, WINDOWS_TCG_CPU } from '../../harness/machine/index.js';
import { UsageError } from '../../harness/errors.js';

const base: WindowsInstallConfig = {
  edition: { index: 6 }, locale: 'en-US', timeZone: 'UTC', username: 'dmahil', password: `p<&>"'$\`w0rd`, computerName: 'DMAHIL-GUEST',
  arch: 'amd64', firmware: 'uefi', bypassWin11Checks: true,
};
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgVhC9cJ3Kq8nqsZWkbqzPu7VqU5zmv8Gn7xWwcW1Qx dmahil';

function haveTool(t: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
}

/** XPath over the answer file with namespaces ignored (local-name()). */
function xpath(xml: string, expr: string): string {
  const f = path.join(os.tmpdir(), `dmahil-au-${process.pid}.xml`);
  fs.writeFileSync(f, xml);
  try {
    return execFileSync('xmllint', ['--xpath', expr, f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } finally {
    fs.rmSync(f, { force: true });
  }
}
const q = (...names: string[]) => names.map((n) => (n.startsWith('@') ? n : `*[local-name()='${n}']`)).join('/');
const comp = (pass: string, name: string) => `//*[local-name()='settings'][@pass='${pass}']/*[local-name()='component'][@name='${name}']`;

describe('windows-guest/image: autounattend.xml', function () {
  before(function () {
    if (!haveTool('xmllint')) {
      this.test!.title += ' (skipped: xmllint missing; apt-get install -y libxml2-utils)';
      this.skip();
    }
  });

  it('is well-formed and holds every required setting (UEFI, Windows 11 bypass, index)', () => {
    const xml = generateAutounattend({ ...base, productKey: 'VK7JG-NPHTM-C97JM-9MPGT-3V66T' });
    execFileSync('xmllint', ['--noout', '-'], { input: xml });
    expect(xpath(xml, "namespace-uri(/*)")).to.equal('urn:schemas-microsoft-com:unattend');
    const pe = comp('windowsPE', 'Microsoft-Windows-Setup');
    expect(xpath(xml, `string(${pe}/${q('ImageInstall', 'OSImage', 'InstallFrom', 'MetaData', 'Key')})`)).to.equal('/IMAGE/INDEX');
    expect(xpath(xml, `string(${pe}/${q('ImageInstall', 'OSImage', 'InstallFrom', 'MetaData', 'Value')})`)).to.equal('6');
    expect(xpath(xml, `string(${pe}/${q('ImageInstall', 'OSImage', 'InstallTo', 'PartitionID')})`)).to.equal('3');
    expect(xpath(xml, `count(${pe}//${q('CreatePartition')})`)).to.equal('3');
    expect(xpath(xml, `string(${pe}//${q('CreatePartition')}[1]/${q('Type')})`)).to.equal('EFI');
    expect(xpath(xml, `string(${pe}//${q('ModifyPartition')}[1]/${q('Format')})`)).to.equal('FAT32');
    expect(xpath(xml, `string(${pe}/${q('UserData', 'AcceptEula')})`)).to.equal('true');
    expect(xpath(xml, `string(${pe}/${q('UserData', 'ProductKey', 'Key')})`)).to.equal('VK7JG-NPHTM-C97JM-9MPGT-3V66T');
    // Windows 11 Setup's checks, each skipped once: storage too (--disk-gib accepts 24, below its 64 GB) and
    // CPU (the TCG CPU, Nehalem, is not on its list).
    for (const v of ['BypassTPMCheck', 'BypassSecureBootCheck', 'BypassRAMCheck', 'BypassStorageCheck', 'BypassCPUCheck']) {
      expect(xpath(xml, `count(${pe}//${q('RunSynchronousCommand', 'Path')}[contains(., 'LabConfig /v ${v} /t REG_DWORD /d 1')])`), v).to.equal('1');
    }
    expect(LAB_CONFIG_BYPASSES).to.include('BypassStorageCheck');
    const orders = xpath(xml, `${pe}//${q('RunSynchronousCommand', 'Order')}/text()`).split(/\s+/);
    expect(orders).to.deep.equal(LAB_CONFIG_BYPASSES.map((_, i) => String(i + 1)));
    expect(xpath(xml, `string(${comp('windowsPE', 'Microsoft-Windows-International-Core-WinPE')}/${q('SetupUILanguage', 'UILanguage')})`)).to.equal('en-US');
    const oobe = comp('oobeSystem', 'Microsoft-Windows-Shell-Setup');
    expect(xpath(xml, `string(${oobe}//${q('LocalAccount', 'Name')})`)).to.equal('dmahil');
    expect(xpath(xml, `string(${oobe}//${q('LocalAccount', 'Group')})`)).to.equal('Administrators');
    expect(xpath(xml, `string(${oobe}//${q('LocalAccount', 'Password', 'Value')})`)).to.equal(base.password);
    expect(xpath(xml, `string(${oobe}/${q('AutoLogon', 'LogonCount')})`)).to.equal('1');
    expect(xpath(xml, `string(${oobe}//${q('SynchronousCommand', 'CommandLine')})`)).to.equal(FIRST_LOGON_COMMAND);
    expect(xpath(xml, `string(${oobe}/${q('OOBE', 'HideOnlineAccountScreens')})`)).to.equal('true');
    expect(xpath(xml, `string(${comp('specialize', 'Microsoft-Windows-Shell-Setup')}/${q('ComputerName')})`)).to.equal('DMAHIL-GUEST');
    for (const c of xpath(xml, `//*[local-name()='component']/@processorArchitecture`).split(/\s+/)) expect(c).to.equal('processorArchitecture="amd64"');
  });

  it('BIOS: MBR layout; edition by name; no bypass, no product key; x86', () => {
    const xml = generateAutounattend({ ...base, firmware: 'bios', edition: { name: 'Windows 10 Pro & "N"' }, bypassWin11Checks: false, arch: 'x86' });
    execFileSync('xmllint', ['--noout', '-'], { input: xml });
    const pe = comp('windowsPE', 'Microsoft-Windows-Setup');
    expect(xpath(xml, `string(${pe}/${q('ImageInstall', 'OSImage', 'InstallFrom', 'MetaData', 'Value')})`)).to.equal('Windows 10 Pro & "N"');
    expect(xpath(xml, `string(${pe}/${q('ImageInstall', 'OSImage', 'InstallTo', 'PartitionID')})`)).to.equal('2');
    expect(xpath(xml, `string(${pe}//${q('ModifyPartition')}[1]/${q('Active')})`)).to.equal('true');
    expect(xpath(xml, `count(//*[local-name()='RunSynchronousCommand'])`)).to.equal('0');
    expect(xpath(xml, `count(//*[local-name()='ProductKey'])`)).to.equal('0');
    expect(xml).to.contain('processorArchitecture="x86"');
  });

  it('virtio driver paths for Setup when asked', () => {
    const xml = generateAutounattend({ ...base, driverPaths: ['E:\\viostor\\w11\\amd64'] });
    expect(xpath(xml, `string(${comp('windowsPE', 'Microsoft-Windows-PnpCustomizationsWinPE')}//${q('Path')})`)).to.equal('E:\\viostor\\w11\\amd64');
  });

  it('refuses bad settings, naming each', () => {
    expect(() => generateAutounattend({ ...base, password: 'short', computerName: 'this-name-is-far-too-long', productKey: 'nope', locale: 'english' }))
      .to.throw(UsageError, /locale "english".*computer name.*password must have at least 8.*product key/);
    expect(() => generateAutounattend({ ...base, username: 'Administrator' })).to.throw(UsageError, /not a built-in account/);
    expect(() => escapeXml('a\u0001b')).to.throw(UsageError, /control character/);
  });
});

describe('windows-guest/image: dmahil-setup.ps1', () => {
  it('holds each required step', () => {
    const s = generateSetupScript({ sshPublicKey: KEY, driverVerifier: true, pvpanicDriver: true });
    for (const needle of [
      "bcdedit.exe /set '{current}' testsigning on",
      "Get-WindowsCapability -Online -Name 'OpenSSH.Server*'",
      '-Source $sources -LimitAccess',
      'administrators_authorized_keys',
      "/inheritance:r /grant '*S-1-5-32-544:F' /grant '*S-1-5-18:F'",
      `'${KEY}\n'`,
      'Set-Service -Name sshd -StartupType Automatic',
      '-LocalPort 22 -Action Allow -Profile Any',
      'powercfg.exe /hibernate off',
      'CrashDumpEnabled -Type DWord -Value 2',
      'AutoReboot -Type DWord -Value 0',
      'NMICrashDump -Type DWord -Value 1',
      'verifier.exe /flags 0x80 /driver edudma.sys',
      "Join-Path $Medium 'pvpanic'",
      "Say 'done'",
      'shutdown.exe /s',
    ]) expect(s, needle).to.contain(needle);
    const plain = generateSetupScript({ sshPublicKey: KEY, driverVerifier: false, pvpanicDriver: false });
    expect(plain).not.to.contain('verifier.exe');
    expect(plain).not.to.contain('pvpanic');
    expect(() => generateSetupScript({ sshPublicKey: 'not a key\nrm -rf', driverVerifier: false, pvpanicDriver: false })).to.throw(/not one OpenSSH public key line/);
  });

  it("writes the SSH key only after sshd's first start created and secured ProgramData\\ssh, and never creates that folder", () => {
    const s = generateSetupScript({ sshPublicKey: KEY, driverVerifier: false, pvpanicDriver: false });
    const steps = [...s.matchAll(/^Step '([^']+)'/gm)].map((m) => m[1]);
    expect(steps.slice(0, 5)).to.deep.equal(['test signing on', 'OpenSSH Server', 'sshd enabled and started', 'SSH key for Administrators', 'firewall open on all profiles, full admin token over SSH']);
    const at = (needle: string) => {
      const i = s.indexOf(needle);
      expect(i, needle).to.be.greaterThan(-1);
      return i;
    };
    expect(at('Start-Service sshd')).to.be.lessThan(at('administrators_authorized_keys'));
    expect(at('sshd_config within 60 s')).to.be.lessThan(at("Step 'SSH key for Administrators'"));
    expect(s).not.to.match(/New-Item[^\n]*ProgramData[^\n]*ssh/i);
    expect(s).not.to.match(/mkdir[^\n]*ssh/i);
  });

  it("Features on Demand: the root of a marked or recognised medium and Windows 11's LanguagesAndOptionalFeatures\\ are -Source", () => {
    const s = generateSetupScript({ sshPublicKey: KEY, driverVerifier: false, pvpanicDriver: false });
    const body = s.slice(s.indexOf("Step 'OpenSSH Server'"), s.indexOf("Step 'sshd enabled and started'"));
    expect(body).to.contain("$lof = Join-Path $root 'LanguagesAndOptionalFeatures'");
    // Windows 10 FoD ISOs: the cab at the root; Windows 11 LOF ISOs: under LanguagesAndOptionalFeatures\.
    expect(body).to.contain("Test-Path (Join-Path $root 'OpenSSH-Server-Package*.cab')");
    expect(body).to.contain("Test-Path (Join-Path $lof 'OpenSSH-Server-Package*.cab')");
    expect(body).to.contain("Test-Path (Join-Path $root 'dmahil-fod.txt')");
    expect(body).to.match(/\{ \$root \}\n.*\{ \$lof \}/);
    expect(body).to.contain('Add-WindowsCapability -Online -Name $cap.Name -Source $sources -LimitAccess');
    // Without a medium, Windows Update.
    expect(body).to.contain('else { Add-WindowsCapability -Online -Name $cap.Name | Out-Null }');
  });
});

describe('windows-guest/image: config medium and install machine', function () {
  this.timeout(60_000);
  let dir: string;
  before(function () {
    if (!haveTool('xorriso')) {
      this.test!.title += ' (skipped: xorriso missing; apt-get install -y xorriso)';
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-medium-spec-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('writes Autounattend.xml, the script, the key and pvpanic files at the right places, verified by extraction', async () => {
    const pv = path.join(dir, 'pvpanic');
    fs.mkdirSync(pv);
    fs.writeFileSync(path.join(pv, 'pvpanic.inf'), '[Version]\n');
    const iso = path.join(dir, 'config.iso');
    const files = await buildConfigIso(configMediumFiles({ install: base, sshPublicKey: KEY, driverVerifier: false, pvpanicFiles: [path.join(pv, 'pvpanic.inf')] }), iso);
    expect(files.map((f) => f.name)).to.deep.equal(['Autounattend.xml', 'dmahil-setup.ps1', 'dmahil-ssh.pub', 'pvpanic/pvpanic.inf']);
    // independently: the Joliet tree as xorriso lists it, and the volume ID
    const ls = execFileSync('xorriso', ['-indev', iso, '-ls', '/'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(ls).to.contain("'Autounattend.xml'");
    const pvd = spawnSync('xorriso', ['-indev', iso, '-pvd_info'], { encoding: 'utf8' });
    expect(pvd.stdout + pvd.stderr).to.match(new RegExp(`Volume Id\\s*:\\s*${CONFIG_VOLUME_ID}`));
    const out = path.join(dir, 'x');
    execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/Autounattend.xml', out], { stdio: 'ignore' });
    expect(fs.readFileSync(out, 'utf8')).to.equal(generateAutounattend(base));
  });

  it('the install machine: q35, AHCI disk first, Windows ISO second, config ISO, e1000e, OVMF, VGA, reboots allowed', () => {
    const config = installMachineConfig({ disk: '/o/w.qcow2', iso: '/i/win,11.iso', configIso: '/o/w.config.iso', fodIso: '/i/fod.iso', vars: '/o/w.vars.fd', firmware: 'uefi', memoryMiB: 4096, cpus: 2, accel: 'tcg' });
    validateMachineConfig(config);
    const { args } = buildQemuCommand({ config, accel: 'tcg', runDir: '/run/x', artifactsDir: '/art', hostPort: 40000 });
    const line = args.join(' ');
    expect(line).to.contain('-machine q35');
    expect(line).to.contain('if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd');
    expect(line).to.contain('if=pflash,format=raw,unit=1,file=/o/w.vars.fd');
    expect(line).not.to.match(/secboot|\.ms\.fd/);
    expect(args).to.include('ide-hd,drive=disk0,bus=ide.0,bootindex=0');
    expect(args).to.include('file=/i/win,,11.iso,if=none,id=cd0,media=cdrom,readonly=on');
    expect(args).to.include('ide-cd,drive=cd0,bus=ide.1,bootindex=1');
    expect(args).to.include('ide-cd,drive=cd1,bus=ide.2');
    expect(args).to.include('ide-cd,drive=cd2,bus=ide.3');
    expect(line).to.match(/-device e1000e,netdev=net0/);
    expect(args[args.indexOf('-vga') + 1]).to.equal('std');
    expect(args).not.to.include('-no-reboot');
    expect(args).not.to.include('edu');
    // Windows 11 24H2 Setup needs SSE4.2 and POPCNT: a Nehalem under TCG (specs/machine/windows-cpu.e2e.spec.ts)
    expect(args[args.indexOf('-cpu') + 1]).to.equal(WINDOWS_TCG_CPU);
    const bios = installMachineConfig({ disk: '/d', iso: '/i', configIso: '/c', firmware: 'bios', memoryMiB: 4096, cpus: 2, accel: 'kvm' });
    expect(bios.firmware).to.equal(undefined);
    const kvmArgs = buildQemuCommand({ config: bios, accel: 'kvm', runDir: '/run/x', artifactsDir: '/art', hostPort: 40000 }).args;
    expect(kvmArgs[kvmArgs.indexOf('-cpu') + 1]).to.equal('host');
  });

  it('a missing, unreadable, non-ISO or tiny ISO: a clear error naming the cause and the next step', async () => {
    const err = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        return (e as UsageError).describe();
      }
      throw new Error('expected an error');
    };
    expect(await err(checkWindowsIso(undefined))).to.match(/no Windows ISO given.*make windows-image ISO=/);
    expect(await err(checkWindowsIso(path.join(dir, 'missing.iso')))).to.match(/missing\.iso does not exist.*download a Windows/);
    expect(await err(checkWindowsIso(dir))).to.match(/is not a file/);
    const notIso = path.join(dir, 'not.iso');
    fs.writeFileSync(notIso, Buffer.alloc(100 * 1024));
    expect(await err(checkWindowsIso(notIso))).to.match(/not an ISO image \(no ISO 9660 or UDF volume descriptor/);
    expect(await err(checkWindowsIso(path.join(dir, 'config.iso')))).to.match(/has only 0 MiB; Windows installation ISOs have several GiB/);
    if (process.getuid?.() !== 0) {
      fs.chmodSync(notIso, 0);
      expect(await err(checkWindowsIso(notIso))).to.match(/cannot be read \(EACCES\).*chmod a\+r/);
    }
    // a sparse 2 GiB "ISO" with a UDF volume recognition sequence passes the check
    const udf = path.join(dir, 'udf.iso');
    const fd = fs.openSync(udf, 'w');
    fs.writeSync(fd, Buffer.from('\0BEA01'), 0, 6, 16 * 2048);
    fs.writeSync(fd, Buffer.from('\0NSR02'), 0, 6, 17 * 2048);
    fs.ftruncateSync(fd, 2 * 1024 ** 3);
    fs.closeSync(fd);
    expect(await checkWindowsIso(udf)).to.deep.equal({ size: 2 * 1024 ** 3, filesystem: 'udf' });
    // prepare stops before writing anything when the ISO is missing
    const out = path.join(dir, 'img', 'w.qcow2');
    expect(await err(prepareWindowsImage({ ...parseImageArgs(['--iso', path.join(dir, 'nope.iso'), '--out', out], dir) }))).to.match(/nope\.iso does not exist/);
    expect(fs.existsSync(out)).to.equal(false);
  });

  it('prepare: disk, key, OVMF vars, verified config ISO and a machine config, from a plausible ISO', async function () {
    const udf = path.join(dir, 'udf.iso');
    if (!fs.existsSync(udf)) this.skip();
    const out = path.join(dir, 'img2', 'w.qcow2');
    const { config, paths } = await prepareWindowsImage(parseImageArgs(['--iso', udf, '--out', out, '--accel', 'tcg'], dir));
    for (const f of [paths.disk, paths.key, `${paths.key}.pub`, paths.vars, paths.configIso]) expect(fs.existsSync(f), f).to.equal(true);
    expect(config.cdroms![0]!.file).to.equal(udf);
    expect(config.firmware?.vars).to.equal(paths.vars);
    expect(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', paths.disk], { encoding: 'utf8' }))['virtual-size']).to.equal(64 * 1024 ** 3);
  });

  it('CLI options: defaults, overrides, and bad values named', () => {
    const o = parseImageArgs(['--iso', 'w.iso'], '/repo');
    expect(o.out).to.equal('/repo/images/windows/out/windows.qcow2');
    expect(o.install).to.deep.include({ edition: { index: 1 }, firmware: 'uefi', bypassWin11Checks: true, username: 'dmahil' });
    const n = parseImageArgs(['--iso', 'w.iso', '--edition', 'Windows 11 Pro', '--firmware', 'bios', '--no-win11-bypass', '--driver-verifier', '--accel', 'tcg'], '/repo');
    expect(n.install.edition).to.deep.equal({ name: 'Windows 11 Pro' });
    expect(n.driverVerifier).to.equal(true);
    expect(n.timeoutMin).to.equal(1440);
    expect(() => parseImageArgs([], '/repo')).to.throw(UsageError, /--iso is required/);
    expect(() => parseImageArgs(['--iso', 'w', '--firmware', 'coreboot'], '/repo')).to.throw(UsageError, /--firmware "coreboot"/);
    expect(() => parseImageArgs(['--iso', 'w', '--memory-mib', '512'], '/repo')).to.throw(UsageError, /at least 2048/);
  });

  it('the manifest reader names what is wrong and the next step', () => {
    expect(() => readWindowsImage(path.join(dir, 'none.qcow2'))).to.throw(UsageError, /no Windows image manifest at .*none\.json/);
    fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ kind: 'x', version: 2 }));
    try {
      readWindowsImage(path.join(dir, 'bad.json'));
      expect.fail('expected an error');
    } catch (e) {
      expect((e as UsageError).describe()).to.match(/kind is "x".*version 2 is not 1.*make windows-image/);
    }
  });
});
