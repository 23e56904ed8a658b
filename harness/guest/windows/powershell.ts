// Quoting for commands sent to a Windows guest. Windows OpenSSH hands a command line to cmd.exe, which
// has its own metacharacters (% ^ & | < > "), and PowerShell then parses it again. So nothing is ever
// spliced into a command line as text: a PowerShell script travels base64-encoded (-EncodedCommand,
// UTF-16LE), where cmd.exe sees only [A-Za-z0-9+/=], and every value inside the script is a
// single-quoted PowerShell literal, in which nothing is expanded ($, backticks, double quotes are plain
// characters). Pure; the specs feed it hostile names.
import { DmahilError } from '../../errors.js';

/** A value that cannot be carried safely (NUL, or a cmd.exe token with metacharacters). */
export class QuotingError extends DmahilError {}

/**
 * PowerShell treats these as single quotes too (U+2018, U+2019, U+201A, U+201B): each must be doubled
 * like ', or a name containing one would end the literal early.
 */
const SINGLE_QUOTES = /['\u2018\u2019\u201A\u201B]/g;

/** A PowerShell single-quoted string literal whose value is exactly `value`. */
export function psQuote(value: string): string {
  if (value.includes('\0')) throw new QuotingError('a PowerShell string cannot hold a NUL character', { hint: 'remove the NUL from the name or path' });
  return `'${value.replace(SINGLE_QUOTES, (q) => q + q)}'`;
}

/** `@('a','b')`: a PowerShell array of literal strings. */
export function psArray(values: readonly string[]): string {
  return `@(${values.map(psQuote).join(',')})`;
}

/** Base64 of the UTF-16LE script, as -EncodedCommand expects. */
export function encodePowerShell(script: string): string {
  return Buffer.from(script, 'utf16le').toString('base64');
}

/**
 * The command line that runs `script` in Windows PowerShell, whatever shell sshd starts. The script
 * stops at the first error ($ErrorActionPreference = 'Stop') and exits 1 with the message on stderr;
 * it exits with $LASTEXITCODE of the last native command otherwise when it sets one explicitly.
 */
export function powershellCommand(script: string): string {
  const wrapped = [
    "$ErrorActionPreference = 'Stop'",
    "$ProgressPreference = 'SilentlyContinue'",
    '[Console]::OutputEncoding = [System.Text.Encoding]::UTF8',
    'try {',
    script,
    '} catch { [Console]::Error.WriteLine($_.Exception.Message); exit 1 }',
  ].join('\n');
  return `powershell.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ${encodePowerShell(wrapped)}`;
}

/** Decode what powershellCommand made (for logs and specs). */
export function decodePowerShellCommand(commandLine: string): string | undefined {
  const m = /-EncodedCommand ([A-Za-z0-9+/=]+)$/.exec(commandLine);
  return m ? Buffer.from(m[1]!, 'base64').toString('utf16le') : undefined;
}

/**
 * One argument of a native command run through cmd.exe (sshd's default shell) without PowerShell: only
 * characters that neither cmd.exe nor the C runtime's argv parser treat specially. Anything else is refused,
 * not escaped: dmactl's arguments are words and numbers, and paths go through PowerShell.
 */
export function cmdToken(value: string): string {
  if (!/^[A-Za-z0-9_.:\\/+=,-]+$/.test(value)) {
    throw new QuotingError(`"${value.replace(/[\r\n]/g, ' ')}" cannot be passed through cmd.exe unquoted`, {
      hint: 'use letters, digits and _ . : \\ / + = , - only, or run the command through powershellCommand',
    });
  }
  return value;
}

/** A Windows path joined from a directory and a file name, refusing names that would escape the directory. */
export function winJoin(dir: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || /[\\/:*?"<>|\0\r\n]/.test(name)) {
    throw new QuotingError(`"${name}" is not a plain Windows file name`, { hint: 'use a name without \\ / : * ? " < > | or line breaks' });
  }
  return `${dir.replace(/[\\/]+$/, '')}\\${name}`;
}

/** The SFTP form of a Windows path for Win32-OpenSSH: C:\dmahil\x.sys -> /C:/dmahil/x.sys. */
export function sftpPath(winPath: string): string {
  const m = /^([A-Za-z]):[\\/](.*)$/.exec(winPath);
  if (!m) throw new QuotingError(`"${winPath}" is not an absolute Windows path with a drive letter`, { hint: 'use e.g. C:\\dmahil\\edudma.sys' });
  return `/${m[1]!.toUpperCase()}:/${m[2]!.replace(/\\/g, '/')}`;
}
