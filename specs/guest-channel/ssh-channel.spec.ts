// The SSH channel against a real OpenSSH sshd on loopback: the same client code that talks to the
// reference guest's dropbear and to Windows' OpenSSH.
import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SshChannel, type SshTarget } from '../../harness/guest/channel/ssh-channel.js';
import { GuestCommandTimeoutError, GuestConnectionError, GuestNotReadyError } from '../../harness/guest/channel/errors.js';
import { startSshd, startSshdOrSkip, type LoopbackSshd } from './sshd.js';

describe('guest-channel: SshChannel against a real sshd on 127.0.0.1', function () {
  this.timeout(120_000);
  let sshd: LoopbackSshd;
  let target: SshTarget;
  let channel: SshChannel;
  let tmp: string;

  before(async function () {
    ({ sshd, target } = await startSshdOrSkip(this));
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-chan-'));
  });

  beforeEach(async function () {
    if (!channel?.isOpen) channel = await SshChannel.waitReady(target, { timeoutMs: 60_000 });
  });

  after(async function () {
    channel?.close();
    await sshd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('exec', () => {
    it('returns stdout, stderr and the exit code', async () => {
      const r = await channel.exec('echo out; echo err >&2; exit 3', { timeoutMs: 30_000 });
      expect(r.stdout).to.equal('out\n');
      expect(r.stderr).to.equal('err\n');
      expect(r.code).to.equal(3);
      expect((await channel.exec('true', { timeoutMs: 30_000 })).code).to.equal(0);
    });

    it('feeds stdin', async () => {
      const r = await channel.exec('cat', { timeoutMs: 30_000, stdin: 'hello\nworld\n' });
      expect(r.stdout).to.equal('hello\nworld\n');
    });

    it('reports a signal that ended the command', async () => {
      const r = await channel.exec('kill -TERM $$', { timeoutMs: 30_000 });
      expect(r.code).to.equal(null);
      expect(r.signal).to.match(/^(SIG)?TERM$/);
    });

    it('a time limit closes the channel and throws; the connection stays usable', async () => {
      const started = Date.now();
      let err: unknown;
      try {
        await channel.exec('sleep 30', { timeoutMs: 500 });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(GuestCommandTimeoutError);
      expect((err as Error).message).to.match(/"sleep 30" ran past 500 ms/);
      expect(Date.now() - started).to.be.lessThan(15_000);
      expect((await channel.exec('echo still', { timeoutMs: 30_000 })).stdout).to.equal('still\n');
    });
  });

  describe('SFTP', () => {
    it('uploads a large file byte for byte, with its mode, and downloads it back', async function () {
      this.timeout(60_000);
      const src = path.join(tmp, 'big.bin');
      const data = crypto.randomBytes(24 * 1024 * 1024 + 123);
      fs.writeFileSync(src, data);
      const remote = path.join(tmp, 'remote.bin');
      await channel.upload(src, remote, 0o750);
      expect(fs.statSync(remote).mode & 0o777).to.equal(0o750);
      const back = path.join(tmp, 'back.bin');
      await channel.download(remote, back);
      const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
      expect(sha(fs.readFileSync(remote))).to.equal(sha(data));
      expect(sha(fs.readFileSync(back))).to.equal(sha(data));
      // Commands still run after SFTP sessions open and close.
      expect((await channel.exec('echo after', { timeoutMs: 30_000 })).stdout).to.equal('after\n');
    });

    it('an upload to a missing directory fails naming both paths', async () => {
      let err: unknown;
      try {
        await channel.upload(path.join(tmp, 'big.bin'), '/nonexistent-dir/x.bin');
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(GuestConnectionError);
      expect((err as Error).message).to.match(/upload of .*big\.bin to \/nonexistent-dir\/x\.bin failed/);
    });
  });

  describe('readiness', () => {
    it('times out with a clear error when nothing listens', async function () {
      this.timeout(30_000);
      const srv = net.createServer();
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
      const port = (srv.address() as net.AddressInfo).port;
      await new Promise<void>((r) => srv.close(() => r()));
      let err: unknown;
      try {
        await SshChannel.waitReady({ ...target, port }, { timeoutMs: 1500, logFile: '/art/serial.log' });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(GuestNotReadyError);
      expect((err as GuestNotReadyError).message).to.match(new RegExp(`127\\.0\\.0\\.1:${port} not ready after 2 s: no SSH banner`));
      expect((err as GuestNotReadyError).describe()).to.match(/serial console.*see \/art\/serial\.log/);
    });

    it('times out when a port accepts but never speaks SSH (a forward to a booting guest)', async function () {
      this.timeout(30_000);
      const sockets: net.Socket[] = [];
      const srv = net.createServer((s) => sockets.push(s));
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
      const port = (srv.address() as net.AddressInfo).port;
      try {
        let err: unknown;
        try {
          await SshChannel.waitReady({ ...target, port }, { timeoutMs: 2500 });
        } catch (e) {
          err = e;
        }
        expect(err).to.be.instanceOf(GuestNotReadyError);
        expect((err as Error).message).to.match(/no SSH banner/);
      } finally {
        sockets.forEach((s) => s.destroy());
        await new Promise<void>((r) => srv.close(() => r()));
      }
    });

    it('stops at once when the machine is gone', async () => {
      let err: unknown;
      const started = Date.now();
      try {
        await SshChannel.waitReady({ ...target, port: 1 }, { timeoutMs: 30_000, deadReason: () => 'QEMU exited' });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(GuestNotReadyError);
      expect((err as Error).message).to.match(/the guest cannot boot: QEMU exited \(while waiting for SSH/);
      expect(Date.now() - started).to.be.lessThan(2000);
    });

    it('names the reason when the login is refused (wrong key, wrong host key)', async function () {
      this.timeout(30_000);
      const wrongHost = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHgVhC9cJ3Kq8nqsZWkbqzPu7VqU5zmv8Gn7xWwcW1Qx';
      let err: unknown;
      try {
        await SshChannel.waitReady({ ...target, hostPublicKey: wrongHost }, { timeoutMs: 2500 });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(GuestNotReadyError);
      expect((err as Error).message).to.match(/not ready after 3 s: SSH login to .* failed: .*(host|verif)/i);
    });
  });

  describe('a dropped connection', () => {
    it('fails the running command with GuestConnectionError, marks the channel closed; the next command logs in again', async function () {
      this.timeout(90_000);
      // The sshd runs on this host: the marker says the command runs (killed before that, it would be asked
      // again on a new login, which is the next part of this test, not this one).
      const marker = path.join(os.tmpdir(), `dmahil-running-${process.pid}-${crypto.randomUUID()}`);
      const running = channel.exec(`touch ${marker}; sleep 20`, { timeoutMs: 25_000 });
      running.catch(() => undefined);
      for (let i = 0; i < 200 && !fs.existsSync(marker); i++) await sleep(50);
      expect(fs.existsSync(marker), 'the command started within 10 s').to.equal(true);
      fs.rmSync(marker, { force: true });
      const sessions = sshd.sessionPids();
      expect(sessions.length, 'one sshd session process per connection').to.be.greaterThan(0);
      for (const pid of sessions) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone with its parent
        }
      }
      let err: unknown;
      try {
        await running;
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(GuestConnectionError);
      expect((err as Error).message).to.match(/SSH connection dropped while "touch [^"]*; sleep 20" ran/);
      for (let i = 0; i < 50 && channel.isOpen; i++) await sleep(50);
      expect(channel.isOpen).to.equal(false);
      // A command that had not started when the connection went is started on a new login.
      expect((await channel.exec('echo again', { timeoutMs: 30_000 })).stdout).to.equal('again\n');
      expect(sshd.sessionPids().some((pid) => sessions.includes(pid)), 'a new sshd session, not the killed one').to.equal(false);

      await channel.reconnect(30_000);
      expect(channel.isOpen).to.equal(true);
      expect((await channel.exec('echo back', { timeoutMs: 30_000 })).stdout).to.equal('back\n');
    });

    it('reconnect fails with a clear error when the server is gone', async function () {
      this.timeout(90_000);
      const spare = await startSshd();
      const c = await SshChannel.waitReady({ ...target, port: spare.port, hostPublicKey: spare.hostPublicKey, privateKey: spare.clientPrivateKey }, { timeoutMs: 30_000 });
      await spare.stop();
      for (let i = 0; i < 50 && c.isOpen; i++) await sleep(50);
      let err: unknown;
      try {
        await c.reconnect(2000);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(GuestConnectionError);
      expect((err as Error).message).to.match(new RegExp(`SSH login to .*127\\.0\\.0\\.1:${spare.port} failed: .*ECONNREFUSED`));
      c.close();
    });
  });
});
