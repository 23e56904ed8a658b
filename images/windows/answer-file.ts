// autounattend.xml from a typed config. Windows Setup finds it at the root of a removable or CD medium
// (facts §6.1); dmahil puts it on a small config ISO with the first-logon script and the SSH key.
import { UsageError } from '../../harness/errors.js';

export interface WindowsInstallConfig {
  /** Which image of install.wim/esd: its index (1-based) or its exact name ("Windows 11 Pro"). */
  edition: { index: number } | { name: string };
  /** e.g. "en-US": UI language, input, system and user locale. */
  locale: string;
  /** e.g. "UTC" or "W. Europe Standard Time". */
  timeZone: string;
  /** The local administrator account dmahil creates and logs in as over SSH. */
  username: string;
  password: string;
  /** Optional: editions that need one during setup (volume/retail media without ei.cfg). */
  productKey?: string;
  computerName: string;
  arch: 'amd64' | 'x86';
  firmware: 'uefi' | 'bios';
  /** Windows 11: skip Setup's TPM, Secure Boot, RAM, storage and CPU checks (LAB_CONFIG_BYPASSES). */
  bypassWin11Checks: boolean;
  /** Extra driver folders for Setup (e.g. virtio-win's viostor), as Windows PE paths. */
  driverPaths?: string[];
}

export function escapeXml(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/.test(s)) throw new UsageError(`"${s}" holds a control character XML cannot carry`, { hint: 'remove it' });
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Every problem with a config, each naming the field and the fix. */
export function checkInstallConfig(c: WindowsInstallConfig): void {
  const p: string[] = [];
  if ('index' in c.edition && (!Number.isInteger(c.edition.index) || c.edition.index < 1)) p.push('edition index must be a whole number from 1 (see: wiminfo / dism /Get-WimInfo)');
  if ('name' in c.edition && !c.edition.name.trim()) p.push('edition name is empty');
  if (!/^[a-z]{2,3}-[A-Za-z0-9]{2,8}$/.test(c.locale)) p.push(`locale "${c.locale}" is not like en-US`);
  if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,14}$/.test(c.computerName)) p.push(`computer name "${c.computerName}" must be 1-15 letters, digits or -`);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$/.test(c.username) || /^(administrator|guest)$/i.test(c.username)) p.push(`user name "${c.username}" must be 1-20 letters, digits, . _ - and not a built-in account`);
  if (c.password.length < 8) p.push('the password must have at least 8 characters (Windows password policy)');
  if (c.productKey !== undefined && !/^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$/i.test(c.productKey)) p.push('product key must look like XXXXX-XXXXX-XXXXX-XXXXX-XXXXX');
  if (p.length) throw new UsageError(`Windows install config: ${p.join('; ')}`, { hint: 'fix these options and run again' });
}

/**
 * HKLM\SYSTEM\Setup\LabConfig values that make Windows 11 Setup skip a hardware check: TPM 2.0 and Secure
 * Boot (OVMF here has neither enrolled), RAM (4 GiB; --memory-mib accepts 2048), storage (64 GB;
 * --disk-gib accepts 24) and CPU (the supported-processor list: the TCG CPU, Nehalem, is not on it, nor
 * are many KVM hosts).
 */
export const LAB_CONFIG_BYPASSES = ['BypassTPMCheck', 'BypassSecureBootCheck', 'BypassRAMCheck', 'BypassStorageCheck', 'BypassCPUCheck'] as const;

const NS = 'xmlns="urn:schemas-microsoft-com:unattend" xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State"';
const comp = (name: string, arch: string, body: string) =>
  `    <component name="${name}" processorArchitecture="${arch}" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">\n${body}\n    </component>`;

/** The first-logon command: find the config medium by its marker file and run the setup script from it. */
export const FIRST_LOGON_COMMAND =
  'cmd.exe /c for %d in (D E F G H I J K L M N O P Q R S T U V W X Y Z) do @if exist %d:\\dmahil-setup.ps1 powershell.exe -NoProfile -ExecutionPolicy Bypass -File %d:\\dmahil-setup.ps1 -Medium %d:';

export function generateAutounattend(c: WindowsInstallConfig): string {
  checkInstallConfig(c);
  const x = escapeXml;
  const a = c.arch;
  const uefi = c.firmware === 'uefi';
  const partitions = uefi
    ? [['1', 'EFI', '260'], ['2', 'MSR', '16'], ['3', 'Primary', null]]
    : [['1', 'Primary', '500'], ['2', 'Primary', null]];
  const createParts = partitions
    .map(([order, type, size]) => `              <CreatePartition wcm:action="add"><Order>${order}</Order><Type>${type}</Type>${size ? `<Size>${size}</Size>` : '<Extend>true</Extend>'}</CreatePartition>`)
    .join('\n');
  const modifyParts = (uefi
    ? [['1', '1', '<Format>FAT32</Format><Label>System</Label>'], ['2', '2', ''], ['3', '3', '<Format>NTFS</Format><Label>Windows</Label><Letter>C</Letter>']]
    : [['1', '1', '<Format>NTFS</Format><Label>System</Label><Active>true</Active>'], ['2', '2', '<Format>NTFS</Format><Label>Windows</Label><Letter>C</Letter>']])
    .map(([order, id, rest]) => `              <ModifyPartition wcm:action="add"><Order>${order}</Order><PartitionID>${id}</PartitionID>${rest}</ModifyPartition>`)
    .join('\n');
  const installPartition = uefi ? 3 : 2;
  const meta = 'index' in c.edition
    ? `<MetaData wcm:action="add"><Key>/IMAGE/INDEX</Key><Value>${c.edition.index}</Value></MetaData>`
    : `<MetaData wcm:action="add"><Key>/IMAGE/NAME</Key><Value>${x(c.edition.name)}</Value></MetaData>`;
  const labConfig = c.bypassWin11Checks
    ? LAB_CONFIG_BYPASSES
        .map((v, i) => `          <RunSynchronousCommand wcm:action="add"><Order>${i + 1}</Order><Path>reg.exe add HKLM\\SYSTEM\\Setup\\LabConfig /v ${v} /t REG_DWORD /d 1 /f</Path></RunSynchronousCommand>`)
        .join('\n')
    : '';
  const intl = (pe: boolean) => comp(pe ? 'Microsoft-Windows-International-Core-WinPE' : 'Microsoft-Windows-International-Core', a, [
    pe ? `      <SetupUILanguage><UILanguage>${x(c.locale)}</UILanguage></SetupUILanguage>` : '',
    `      <InputLocale>${x(c.locale)}</InputLocale>`,
    `      <SystemLocale>${x(c.locale)}</SystemLocale>`,
    `      <UILanguage>${x(c.locale)}</UILanguage>`,
    `      <UserLocale>${x(c.locale)}</UserLocale>`,
  ].filter(Boolean).join('\n'));
  const driverPaths = (c.driverPaths ?? []).length
    ? comp('Microsoft-Windows-PnpCustomizationsWinPE', a, `      <DriverPaths>\n${c.driverPaths!.map((p, i) => `        <PathAndCredentials wcm:action="add" wcm:keyValue="${i + 1}"><Path>${x(p)}</Path></PathAndCredentials>`).join('\n')}\n      </DriverPaths>`) + '\n'
    : '';
  const password = (tag: string) => `<${tag}><Value>${x(c.password)}</Value><PlainText>true</PlainText></${tag}>`;

  return `<?xml version="1.0" encoding="utf-8"?>
<!-- Generated by dmahil (images/windows/answer-file.ts). Unattended install for a DMA test guest. -->
<unattend ${NS}>
  <settings pass="windowsPE">
${intl(true)}
${driverPaths}${comp('Microsoft-Windows-Setup', a, `      <DiskConfiguration>
        <Disk wcm:action="add">
          <DiskID>0</DiskID>
          <WillWipeDisk>true</WillWipeDisk>
          <CreatePartitions>
${createParts}
          </CreatePartitions>
          <ModifyPartitions>
${modifyParts}
          </ModifyPartitions>
        </Disk>
      </DiskConfiguration>
      <ImageInstall>
        <OSImage>
          <InstallFrom>${meta}</InstallFrom>
          <InstallTo><DiskID>0</DiskID><PartitionID>${installPartition}</PartitionID></InstallTo>
        </OSImage>
      </ImageInstall>
      <UserData>
        <AcceptEula>true</AcceptEula>
${c.productKey ? `        <ProductKey><Key>${x(c.productKey)}</Key><WillShowUI>Never</WillShowUI></ProductKey>\n` : ''}      </UserData>${labConfig ? `\n      <RunSynchronous>\n${labConfig}\n      </RunSynchronous>` : ''}`)}
  </settings>
  <settings pass="specialize">
${comp('Microsoft-Windows-Shell-Setup', a, `      <ComputerName>${x(c.computerName)}</ComputerName>
      <TimeZone>${x(c.timeZone)}</TimeZone>`)}
${comp('Microsoft-Windows-TerminalServices-LocalSessionManager', a, '      <fDenyTSConnections>true</fDenyTSConnections>')}
  </settings>
  <settings pass="oobeSystem">
${intl(false)}
${comp('Microsoft-Windows-Shell-Setup', a, `      <OOBE>
        <HideEULAPage>true</HideEULAPage>
        <HideOEMRegistrationScreen>true</HideOEMRegistrationScreen>
        <HideOnlineAccountScreens>true</HideOnlineAccountScreens>
        <HideWirelessSetupInOOBE>true</HideWirelessSetupInOOBE>
        <HideLocalAccountScreen>true</HideLocalAccountScreen>
        <ProtectYourPC>3</ProtectYourPC>
      </OOBE>
      <UserAccounts>
        ${password('AdministratorPassword')}
        <LocalAccounts>
          <LocalAccount wcm:action="add">
            <Name>${x(c.username)}</Name>
            <Group>Administrators</Group>
            <DisplayName>${x(c.username)}</DisplayName>
            ${password('Password')}
          </LocalAccount>
        </LocalAccounts>
      </UserAccounts>
      <AutoLogon>
        <Enabled>true</Enabled>
        <LogonCount>1</LogonCount>
        <Username>${x(c.username)}</Username>
        ${password('Password')}
      </AutoLogon>
      <FirstLogonCommands>
        <SynchronousCommand wcm:action="add">
          <Order>1</Order>
          <CommandLine>${x(FIRST_LOGON_COMMAND)}</CommandLine>
          <Description>dmahil: test signing, OpenSSH, crash dumps, then shut down</Description>
        </SynchronousCommand>
      </FirstLogonCommands>
      <TimeZone>${x(c.timeZone)}</TimeZone>`)}
  </settings>
</unattend>
`;
}
