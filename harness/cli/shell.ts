// Reaching a live guest by hand: the SSH command with the run's key and pinned host key, the QMP socket,
// the serial log and a gdbstub started on demand. Used by `dmahil run --keep` (the guest of a failed
// scenario stays up) and `dmahil shell` (boot a guest with the driver loaded and open a shell in it,
// through the system's ssh client, so the terminal, job control and escapes behave as usual).
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import type { DebugTarget, GuestSession } from '../guest/session.js';
import { pickFreePort, qmpSocketPath } from '../machine/index.js';
import { rerunCommand } from '../report/verdict-table.js';

export interface Access {
  sshArgs: string[];
  sshCommand: string;
  qmpSocket: string;
  serialLog: string;
  qemuPid: number;
  gdbPort?: number;
}

const q = (s: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`);

/**
 * Write what the system ssh client needs (the run's private key, a known_hosts pinning the guest's host
 * key) into dir, and start a gdbstub on a free loopback port (it stops the guest only while gdb is attached).
 */
export async function prepareAccess(target: DebugTarget, dir: string, opts: { gdb?: boolean } = {}): Promise<Access> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const { ssh, machine } = target;
  let keyFile = ssh.privateKeyFile;
  if (!keyFile || !(await fs.stat(keyFile).catch(() => undefined))) {
    if (!ssh.privateKey) throw new EnvironmentError('this guest session has no SSH key to hand out');
    keyFile = path.join(dir, 'client_ed25519');
    await fs.writeFile(keyFile, ssh.privateKey, { mode: 0o600 });
  }
  const sshArgs = ['-i', keyFile, '-p', String(ssh.port), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR'];
  if (ssh.hostPublicKey) {
    const knownHosts = path.join(dir, 'known_hosts');
    await fs.writeFile(knownHosts, `[${ssh.host}]:${ssh.port} ${ssh.hostPublicKey.trim()}\n`, { mode: 0o600 });
    sshArgs.push('-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes');
  } else {
    sshArgs.push('-o', 'UserKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=no');
  }
  sshArgs.push(`${ssh.user}@${ssh.host}`);
  let gdbPort: number | undefined;
  if (opts.gdb !== false) {
    gdbPort = await pickFreePort();
    await machine.qmp.execute('human-monitor-command', { 'command-line': `gdbserver tcp:127.0.0.1:${gdbPort}` });
  }
  // QEMU's QMP socket serves one client at a time and the harness's connection holds it: a client of the
  // printed socket would connect and never get a greeting. The harness needs QMP no more; hand it over.
  machine.qmp.close('QMP handed over to the user');
  return {
    sshArgs,
    sshCommand: ['ssh', ...sshArgs].map(q).join(' '),
    qmpSocket: qmpSocketPath(machine.runDir),
    serialLog: path.join(machine.artifactsDir, 'serial.log'),
    qemuPid: machine.pid,
    ...(gdbPort ? { gdbPort } : {}),
  };
}

/**
 * Stop a guest whose QMP was handed over by prepareAccess. Without QMP, Machine.shutdown would wait out
 * its grace period for a quit it cannot send; SIGTERM is QEMU's clean exit, and shutdown then tidies up.
 */
export async function closeHandedOver(session: GuestSession): Promise<void> {
  const machine = session.debugTarget?.().machine;
  if (machine?.isRunning()) process.kill(machine.pid, 'SIGTERM');
  await session.close();
}

/** How to reach the guest, as lines for a terminal. */
export function accessText(a: Access, opts: { title: string; scenario?: string }): string {
  const lines = [
    opts.title,
    `  ssh:     ${a.sshCommand}`,
    `  QMP:     ${a.qmpSocket}   (one client at a time; e.g. socat - UNIX-CONNECT:${q(a.qmpSocket)}, then {"execute":"qmp_capabilities"})`,
    `  serial:  tail -f ${q(a.serialLog)}`,
  ];
  if (a.gdbPort) lines.push(`  gdb:     gdb -ex 'target remote 127.0.0.1:${a.gdbPort}'   (attaching stops the guest; 'continue' resumes it)`);
  lines.push(`  QEMU:    pid ${a.qemuPid}`);
  if (opts.scenario) lines.push(`  re-run:  ${rerunCommand(opts.scenario)}`);
  return lines.join('\n');
}

/** Run the system ssh client with the terminal (a pty when stdin is one), and resolve with its exit code. */
export function interactiveSsh(a: Access, command: string[] = []): Promise<number> {
  const tty = process.stdin.isTTY ? ['-t'] : ['-T'];
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...tty, ...a.sshArgs, ...command], { stdio: 'inherit' });
    child.once('error', (e) => reject(new EnvironmentError(`cannot run ssh: ${e.message}`, { hint: 'apt-get install -y openssh-client' })));
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
