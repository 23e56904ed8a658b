// `dmahil run --keep` end to end: a scenario fails for real, the CLI keeps that guest and prints how to
// reach it, and every way it prints is used: the ssh command runs a command in the guest, the QMP socket
// answers query-status, the gdbstub stops and resumes the guest, the serial log has the boot on it. Then
// the guest is stopped the way the output says (Ctrl-C), or by the user through QMP, and no QEMU is left.
//
// The failure is real hardware trouble, not a mock: QEMU is run through a wrapper on PATH that gives the
// edu a 20-bit DMA mask (-global edu.dma_mask=0xfffff), so the device clamps the driver's addresses, QEMU
// prints "EDU: clamping DMA", and the host finds the destination unwritten: "round-trip 4096 B" fails.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import { isProcessAlive } from '../../harness/machine/index.js';
import { BOOT_TIMEOUT_MS, cliPath, repoRoot } from '../e2e/support.js';
import { qemuChildren, runDirsOf, until } from './processes.js';

const artifactsRoot = path.join(repoRoot, 'reports', 'e2e', 'cli-extra');
const NARROW_MASK = 0xfffff;

function findOnPath(name: string, except: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    if (dir && dir !== except && fs.existsSync(file)) return file;
  }
  throw new Error(`${name} not found on PATH`);
}

/** What the CLI printed for the kept guest. */
interface Printed {
  title: string;
  sshCommand: string;
  qmpSocket: string;
  serialLog: string;
  gdbPort: number;
  qemuPid: number;
  rerun: string;
}

function parseAccess(stderr: string): Printed {
  const field = (label: string): string => {
    const m = new RegExp(`^  ${label}: +(.+)$`, 'm').exec(stderr);
    if (!m) throw new Error(`no "${label}:" line in:\n${stderr}`);
    return m[1]!.trim();
  };
  return {
    title: /^kept the .*$/m.exec(stderr)?.[0] ?? '',
    sshCommand: field('ssh'),
    qmpSocket: field('QMP').split(/\s+/)[0]!,
    serialLog: /^tail -f (\S+)$/.exec(field('serial'))![1]!,
    gdbPort: Number(/target remote 127\.0\.0\.1:(\d+)/.exec(field('gdb'))![1]),
    qemuPid: Number(/^pid (\d+)$/.exec(field('QEMU'))![1]),
    rerun: field('re-run'),
  };
}

/** A plain QMP client over the printed socket: greeting, qmp_capabilities, then one command at a time. */
async function qmpConnect(socket: string): Promise<{ greeting: { QMP: { version: { qemu: { major: number } } } }; execute: <T = unknown>(cmd: string, args?: object) => Promise<T>; close: () => void }> {
  const conn = net.createConnection(socket);
  const lines: string[] = [];
  let waiting: (() => void) | undefined;
  let buf = '';
  conn.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    waiting?.();
  });
  conn.on('error', () => waiting?.());
  const next = async (): Promise<Record<string, unknown>> => {
    const end = Date.now() + 20_000;
    while (lines.length === 0) {
      if (Date.now() > end || conn.destroyed) throw new Error(`no QMP message from ${socket} (the socket is not free, or QEMU is gone)`);
      await new Promise<void>((resolve) => {
        waiting = resolve;
        setTimeout(resolve, 200);
      });
    }
    return JSON.parse(lines.shift()!) as Record<string, unknown>;
  };
  const execute = async <T,>(cmd: string, args?: object): Promise<T> => {
    conn.write(JSON.stringify({ execute: cmd, ...(args ? { arguments: args } : {}) }) + '\n');
    for (;;) {
      const m = await next();
      if ('error' in m) throw new Error(`QMP ${cmd}: ${JSON.stringify(m.error)}`);
      if ('return' in m) return m.return as T;
      // an event: skip it
    }
  };
  const greeting = (await next()) as unknown as { QMP: { version: { qemu: { major: number } } } };
  await execute('qmp_capabilities');
  return { greeting, execute, close: () => conn.destroy() };
}

/** One GDB remote-protocol exchange: send a packet, return the reply packet's payload. */
function rspPacket(payload: string): string {
  const sum = [...payload].reduce((s, c) => (s + c.charCodeAt(0)) & 0xff, 0);
  return `$${payload}#${sum.toString(16).padStart(2, '0')}`;
}

/**
 * Send a packet and return the first reply `accept` takes. Other packets are acknowledged and skipped:
 * the gdbstub may send a stop reply of its own (T05…) when the vCPU stops on attach, before the answer.
 */
async function gdbExchange(sock: net.Socket, payload: string, accept: (reply: string) => boolean = () => true): Promise<string> {
  let got = '';
  const reply = new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      got += d.toString('latin1');
      for (let m = /\$([^#]*)#[0-9a-f]{2}/.exec(got); m; m = /\$([^#]*)#[0-9a-f]{2}/.exec(got)) {
        got = got.slice(m.index + m[0].length);
        sock.write('+');
        if (accept(m[1]!)) {
          sock.off('data', onData);
          resolve(m[1]!);
          return;
        }
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
    setTimeout(() => reject(new Error(`no gdbstub reply to ${payload}: ${JSON.stringify(got)}`)), 20_000);
  });
  sock.write(rspPacket(payload));
  return reply;
}

describe('cli-extra: dmahil run --keep on a real failure (e2e)', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let wrapperDir: string;
  let env: Record<string, string>;
  const clis: ResultPromise[] = [];
  const qemus: number[] = [];

  before(() => {
    // A QEMU whose edu reaches only the low 1 MiB: everything else about the machine is as the harness built it.
    wrapperDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-keep-qemu-'));
    const real = findOnPath('qemu-system-x86_64', wrapperDir);
    fs.writeFileSync(path.join(wrapperDir, 'qemu-system-x86_64'), `#!/bin/sh\nexec '${real}' "$@" -global edu.dma_mask=0x${NARROW_MASK.toString(16)}\n`, { mode: 0o755 });
    env = { PATH: `${wrapperDir}${path.delimiter}${process.env.PATH ?? ''}` };
  });

  after(() => {
    // Only what these specs started: the CLIs (their QEMUs die with them: pdeathsig) and the QEMUs they printed.
    for (const c of clis) if (c.exitCode === null && c.pid && isProcessAlive(c.pid)) c.kill('SIGKILL');
    for (const pid of qemus) if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
    if (wrapperDir) fs.rmSync(wrapperDir, { recursive: true, force: true });
  });

  /** Start `dmahil run --keep` on the failing scenario and wait for the access text. */
  async function keepFailedGuest(name: string): Promise<{ cli: ResultPromise; stdout: () => string; stderr: () => string; printed: Printed; artifacts: string }> {
    const artifacts = path.join(artifactsRoot, name);
    fs.rmSync(artifacts, { recursive: true, force: true });
    const cli = execa('node', [cliPath, 'run', '--keep', '--grep', '^round-trip 4096 B$', '--artifacts', artifacts], { env, reject: false });
    clis.push(cli);
    let out = '';
    let err = '';
    cli.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    cli.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    let ended = false;
    void cli.then(() => (ended = true));
    await until('the CLI to print how to reach the kept guest', () => /^Press Ctrl-C to stop the guest\.$/m.test(err) || (ended ? 'ended' : undefined), 300_000);
    expect(ended, `the CLI ended instead of keeping the guest:\n${err}`).to.equal(false);
    const printed = parseAccess(err);
    qemus.push(printed.qemuPid);
    return { cli, stdout: () => out, stderr: () => err, printed, artifacts };
  }

  it('keeps the failed guest; the printed ssh, QMP, gdbstub and serial log all reach it; Ctrl-C stops it', async () => {
    const { cli, stdout, stderr, printed: p, artifacts } = await keepFailedGuest('keep-ctrl-c');

    // The run itself is over and reported: the scenario failed for the device's reason.
    expect(stdout()).to.match(/round-trip 4096 B\s+pass\s+fail/).and.match(/^FAIL: 0 ok, 1 failed, 0 skipped/m);
    expect(stderr()).to.match(/EDU: clamping DMA/);
    expect(p.title).to.match(/^kept the direct guest of "round-trip 4096 B" \(fail\): QEMU clamped a DMA address/);
    expect(p.rerun).to.equal(`dmahil run --grep '^round-trip 4096 B$'`);
    expect(qemuChildren(cli.pid!), 'the printed pid is the CLI\'s QEMU').to.deep.equal([p.qemuPid]);

    // ssh, exactly as printed: the guest answers, with edudma loaded and dmactl where the shell says it is.
    const ssh = await execa('sh', ['-c', `${p.sshCommand} 'grep -c "^edudma " /proc/modules; /tmp/dmahil/dmactl info'`], { reject: false, timeout: 60_000 });
    expect(ssh.exitCode, ssh.stderr).to.equal(0);
    expect(ssh.stdout.split('\n')[0]).to.equal('1');
    expect(ssh.stdout).to.match(/"ok":\s*true/);

    // QMP on the printed socket: the harness has let go of it, so this client gets the greeting.
    const qmp = await qmpConnect(p.qmpSocket);
    try {
      expect(qmp.greeting.QMP.version.qemu.major).to.be.a('number');
      expect(await qmp.execute<{ status: string; running: boolean }>('query-status')).to.include({ status: 'running', running: true });
      // It is the machine the scenario failed on: its edu has the narrow mask that made it fail.
      const anon = await qmp.execute<Array<{ name: string; type: string }>>('qom-list', { path: '/machine/peripheral-anon' });
      const edu = anon.find((c) => c.type === 'child<edu>');
      expect(edu, JSON.stringify(anon)).to.not.equal(undefined);
      expect(await qmp.execute('qom-get', { path: `/machine/peripheral-anon/${edu!.name}`, property: 'dma_mask' })).to.equal(NARROW_MASK);

      // gdbstub on the printed port: attaching stops the guest, detaching resumes it.
      const gdb = net.createConnection(p.gdbPort, '127.0.0.1');
      try {
        expect(await gdbExchange(gdb, '?')).to.match(/^[ST][0-9a-f]{2}/);
        expect((await qmp.execute<{ running: boolean }>('query-status')).running, 'stopped while gdb is attached').to.equal(false);
        expect(await gdbExchange(gdb, 'D', (r) => !/^[ST][0-9a-f]{2}/.test(r))).to.equal('OK');
      } finally {
        gdb.destroy();
      }
      let running = false;
      for (let i = 0; i < 100 && !running; i++) {
        running = (await qmp.execute<{ running: boolean }>('query-status')).running;
        if (!running) await new Promise((r) => setTimeout(r, 100));
      }
      expect(running, 'running again after gdb detached').to.equal(true);
    } finally {
      qmp.close();
    }

    // The serial log: the guest's console, from the kernel's first line.
    const serial = fs.readFileSync(p.serialLog, 'utf8');
    expect(serial.length).to.be.greaterThan(0);
    expect(serial).to.match(/Linux version/);
    // The driver's log as it was at the failure, collected before the guest was handed over.
    expect(fs.readFileSync(path.join(artifacts, 'direct', 'guest-dmesg.txt'), 'utf8')).to.match(/edudma/);

    // Stop it the way the output says.
    const keyFile = /-i (\S+)/.exec(p.sshCommand)![1]!;
    expect(fs.existsSync(keyFile)).to.equal(true);
    cli.kill('SIGINT');
    const r = await cli;
    expect(r.exitCode, 'the run\'s own status: a scenario failed').to.equal(1);
    expect(r.stderr).to.not.match(/interrupted/);
    await until(`QEMU ${p.qemuPid} to end`, () => !isProcessAlive(p.qemuPid) || undefined, 30_000);
    expect(runDirsOf(cli.pid!), 'run dir and key dir removed').to.deep.equal([]);
    expect(fs.existsSync(keyFile), 'the private key is gone with the guest').to.equal(false);
    const results = JSON.parse(fs.readFileSync(path.join(artifacts, 'results.json'), 'utf8')) as { ok: boolean; interrupted?: string; scenarios: Array<{ name: string; status: string }> };
    expect(results.ok).to.equal(false);
    expect(results.interrupted, 'Ctrl-C during the hold is not an interrupted run').to.equal(undefined);
    expect(results.scenarios.map((s) => [s.name, s.status])).to.deep.equal([['round-trip 4096 B', 'fail']]);
  });

  it('a kept guest the user quits through the printed QMP socket ends the CLI on its own', async () => {
    const { cli, printed: p } = await keepFailedGuest('keep-qmp-quit');
    const qmp = await qmpConnect(p.qmpSocket);
    try {
      await qmp.execute('quit').catch(() => undefined); // QEMU may close the socket before it answers
    } finally {
      qmp.close();
    }
    const r = await cli;
    expect(r.exitCode, r.stderr as string).to.equal(1);
    await until(`QEMU ${p.qemuPid} to end`, () => !isProcessAlive(p.qemuPid) || undefined, 30_000);
    expect(runDirsOf(cli.pid!)).to.deep.equal([]);
  });
});
