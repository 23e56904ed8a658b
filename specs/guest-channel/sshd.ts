// A real OpenSSH sshd (Debian's openssh-server) on a free 127.0.0.1 port, as a child of the spec
// process: temp config, host key, authorized key, no PAM. Stopped by pid; nothing else is touched.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SshTarget } from '../../harness/guest/channel/ssh-channel.js';

export const SSHD = '/usr/sbin/sshd';

export interface LoopbackSshd {
  port: number;
  username: string;
  clientPrivateKey: string;
  hostPublicKey: string;
  dir: string;
  proc: ChildProcess;
  /**
   * PIDs of every per-connection sshd process below the listener: OpenSSH 9's `sshd: root@notty` pair,
   * OpenSSH 10's sshd-session (and sshd-auth) with its privilege-separated child. Each holds the
   * connection's socket: killing only the listener's direct children leaves OpenSSH 10's connection up.
   */
  sessionPids(): number[];
  stop(): Promise<void>;
}

export function sshdAvailable(): string | undefined {
  if (!fs.existsSync(SSHD)) return `${SSHD} not found (apt-get install -y openssh-server)`;
  try {
    execFileSync('ssh-keygen', ['-?'], { stdio: 'ignore' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'ssh-keygen not found (apt-get install -y openssh-client)';
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function keygen(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'dmahil-spec', '-f', file], { stdio: 'ignore' });
}

/** Descendants of pid whose command is an sshd program (not the user's commands they run). */
function sshdDescendants(pid: number): number[] {
  const found: number[] = [];
  for (const child of children(pid)) {
    let comm = '';
    try {
      comm = fs.readFileSync(`/proc/${child}/comm`, 'utf8').trim();
    } catch {
      continue; // gone
    }
    if (comm.startsWith('sshd')) found.push(child);
    found.push(...sshdDescendants(child));
  }
  return found;
}

function children(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

let penalties: boolean | undefined;

/** Does this sshd know PerSourcePenalties (OpenSSH 9.8+)? An older one refuses to start on an unknown option. */
function supportsPenalties(): boolean {
  if (penalties === undefined) {
    try {
      execFileSync(SSHD, ['-t', '-f', '/dev/null', '-o', 'PerSourcePenalties=no', '-o', 'HostKey=/dev/null'], { stdio: 'pipe' });
      penalties = true;
    } catch (e) {
      penalties = !/Bad configuration option|Unsupported option|unknown option/i.test(String((e as { stderr?: Buffer }).stderr ?? ''));
    }
  }
  return penalties;
}

export async function startSshd(): Promise<LoopbackSshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-sshd-'));
  const hostKey = path.join(dir, 'host_ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  keygen(hostKey);
  keygen(clientKey);
  fs.copyFileSync(`${clientKey}.pub`, path.join(dir, 'authorized_keys'));
  const username = os.userInfo().username;
  // sshd refuses to start as root without its privilege-separation directory.
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sftpServer = ['/usr/lib/openssh/sftp-server', '/usr/libexec/sftp-server'].find((p) => fs.existsSync(p));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'LogLevel VERBOSE',
      sftpServer ? `Subsystem sftp ${sftpServer}` : 'Subsystem sftp internal-sftp',
      // OpenSSH 9.8+ penalises a source address whose session failed to authenticate or was killed
      // (the specs do both on purpose) by refusing its next connections: "Connection lost before handshake".
      ...(supportsPenalties() ? ['PerSourcePenalties no'] : []),
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'sshd_config'), config + '\n');
    const proc = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    // Listening once "Server listening" is logged.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !/Server listening/.test(stderr) && proc.exitCode === null) await sleep(20);
    if (proc.exitCode !== null || !/Server listening/.test(stderr)) {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
      if (/Address already in use/.test(stderr) && attempt < 3) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`sshd did not start: ${stderr.trim()}`);
    }
    return {
      port,
      username,
      dir,
      proc,
      clientPrivateKey: fs.readFileSync(clientKey, 'utf8'),
      hostPublicKey: fs.readFileSync(`${hostKey}.pub`, 'utf8'),
      sessionPids: () => sshdDescendants(proc.pid!),
      stop: async () => {
        for (const pid of children(proc.pid!)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGTERM');
          await Promise.race([exited, sleep(3000)]);
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
        }
        await exited;
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * For a spec's before hook: a running sshd and the target that logs in to it, or the test skipped with
 * the reason in its title when this machine cannot run one.
 */
export async function startSshdOrSkip(ctx: Mocha.Context): Promise<{ sshd: LoopbackSshd; target: SshTarget }> {
  const missing = sshdAvailable();
  if (missing) {
    ctx.test!.title += ` (skipped: ${missing})`;
    ctx.skip();
  }
  const sshd = await startSshd();
  return { sshd, target: { host: '127.0.0.1', port: sshd.port, username: sshd.username, privateKey: sshd.clientPrivateKey, hostPublicKey: sshd.hostPublicKey } };
}
