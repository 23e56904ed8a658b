// One SSH connection to a guest, reused for every command and upload: exec with a time limit and exit
// status, a long-running command spoken to in lines (LineStream: dmactl serve holds a scenario's buffers
// until the host releases them), and SFTP upload and download.
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import type { ClientChannel, SFTPWrapper } from 'ssh2';
import { probeBanner } from './banner-probe.js';
import { LineStream, statusFromClose } from './line-stream.js';
import { GuestCommandTimeoutError, GuestConnectionError, GuestNotReadyError } from './errors.js';

const { Client } = ssh2;

/** ssh2's words for a channel request the server refused or dropped: the command never started. */
const NOT_STARTED = /^Unable to (exec|start subsystem)\b/;
/** Requests refused on a live connection before giving up ... */
const OPEN_ATTEMPTS = 8;
/** ... and logins again after the server ended the connection: two budgets, so refusals do not spend the logins. */
const RELOGINS = 4;
/** How long a login again after a dropped connection may take (~1 s under TCG; dropbear may refuse new ones for a while). */
const RELOGIN_TIMEOUT_MS = 60_000;

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /** OpenSSH-format private key. */
  privateKey: string;
  /** "ssh-ed25519 AAAA…": when given, the guest must present exactly this host key. */
  hostPublicKey?: string;
}

export interface ReadyOptions {
  timeoutMs: number;
  /** Why the machine behind the port will never answer (QEMU exited, the vCPU stopped): stop waiting at once. */
  deadReason?: () => string | undefined;
  /** Named in the error when the guest never becomes ready. */
  logFile?: string;
}

export interface ExecOptions {
  timeoutMs: number;
  stdin?: string;
}

export interface ExecResult {
  command: string;
  stdout: string;
  stderr: string;
  code: number | null;
  signal?: string;
}

function hostKeyMatches(expected: string | undefined): ((key: Buffer) => boolean) | undefined {
  if (!expected) return undefined;
  const blob = expected.trim().split(/\s+/)[1];
  return (key: Buffer) => key.toString('base64') === blob;
}

/** The wait after a failed login: 50 ms doubling to 2 s, with jitter so that parallel logins spread out. */
export function loginBackoffMs(attempt: number): number {
  return Math.round(Math.min(2000, 50 * 2 ** attempt) * (0.75 + Math.random() / 2));
}

export class SshChannel {
  private closed = false;
  /** close() was called: the connection is not to be made again. */
  private ended = false;
  private lastError?: Error;
  /** A login again after the server dropped the connection, shared by every command waiting on it. */
  private relogin?: Promise<void>;

  private constructor(
    private client: InstanceType<typeof Client>,
    readonly target: SshTarget,
  ) {
    this.watch(client);
  }

  private watch(client: InstanceType<typeof Client>): void {
    // Only the current client's fate counts: an old one closing after a reconnect changes nothing.
    client.on('error', (e: Error) => {
      if (client === this.client) this.lastError = e;
    });
    client.on('close', () => {
      if (client === this.client) this.closed = true;
    });
  }

  /**
   * Log in again over a fresh connection (after a guest reboot or a dropped connection). Commands
   * still running on the old connection fail with GuestConnectionError.
   */
  async reconnect(readyTimeoutMs: number): Promise<void> {
    this.adopt(await SshChannel.connect(this.target, readyTimeoutMs));
  }

  /** Carry on over another channel's connection (this one's is gone or going). */
  private adopt(fresh: SshChannel): void {
    if (this.ended) {
      fresh.close();
      throw new GuestConnectionError('the SSH channel was closed by the host during the login again');
    }
    const old = this.client;
    this.client = fresh.client;
    this.closed = false;
    this.lastError = undefined;
    this.watch(fresh.client);
    old.end();
  }

  /** Wait for the SSH banner, then log in and run `true`: only then is the guest ready. */
  static async waitReady(target: SshTarget, opts: ReadyOptions): Promise<SshChannel> {
    const deadline = Date.now() + opts.timeoutMs;
    const where = `${target.host}:${target.port}`;
    const notReady = (why: string): GuestNotReadyError =>
      new GuestNotReadyError(`guest SSH at ${where} not ready after ${Math.round(opts.timeoutMs / 1000)} s: ${why}`, {
        hint: 'the guest did not finish booting; read its serial console',
        logFile: opts.logFile,
      });
    let lastWhy = 'no SSH banner';
    while (Date.now() < deadline) {
      const dead = opts.deadReason?.();
      if (dead) {
        throw new GuestNotReadyError(`the guest cannot boot: ${dead} (while waiting for SSH at ${where})`, {
          hint: 'QEMU or the guest stopped during boot; read the logs',
          logFile: opts.logFile,
        });
      }
      if (await probeBanner(target.host, target.port, 1000)) {
        try {
          const channel = await SshChannel.connect(target, Math.max(1000, Math.min(15000, deadline - Date.now())));
          const r = await channel.exec('true', { timeoutMs: Math.max(1000, deadline - Date.now()) });
          if (r.code === 0) return channel;
          channel.close();
          lastWhy = `"true" exited with ${r.code}`;
        } catch (e) {
          lastWhy = (e as Error).message;
        }
      }
      await sleep(100);
    }
    throw notReady(lastWhy);
  }

  /**
   * Log in to a guest that is already up (a restored one: its sshd was listening when it was saved). No
   * banner probe and no `true` round, which cost ~250 ms under TCG; a failed attempt is retried.
   */
  static async login(target: SshTarget, opts: ReadyOptions): Promise<SshChannel> {
    const deadline = Date.now() + opts.timeoutMs;
    let lastWhy = 'no login attempt';
    let attempts = 0;
    while (Date.now() < deadline) {
      const dead = opts.deadReason?.();
      if (dead) throw new GuestNotReadyError(`the guest cannot answer: ${dead} (while logging in at ${target.host}:${target.port})`, { logFile: opts.logFile });
      try {
        return await SshChannel.connect(target, Math.max(1000, Math.min(15000, deadline - Date.now())));
      } catch (e) {
        lastWhy = (e as Error).message;
      }
      // Back off: dropbear hangs up at once on every new connection while 5 logins from one address are
      // unfinished (MAX_UNAUTH_PER_IP; the host is one address behind slirp), and those need time to end.
      await sleep(Math.min(deadline - Date.now(), loginBackoffMs(attempts++)));
    }
    throw new GuestNotReadyError(`no SSH login at ${target.host}:${target.port} within ${Math.round(opts.timeoutMs / 1000)} s (${attempts} tries): ${lastWhy}`, {
      hint: 'the guest does not answer, or its dropbear hangs up on new connections while 5 logins from the host are unfinished (MAX_UNAUTH_PER_IP): read its serial console',
      logFile: opts.logFile,
    });
  }

  static connect(target: SshTarget, readyTimeoutMs: number): Promise<SshChannel> {
    return new Promise((resolve, reject) => {
      const client = new Client();
      const where = `${target.username}@${target.host}:${target.port}`;
      let settled = false;
      const fail = (why: string, cause?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.end();
        reject(new GuestConnectionError(`SSH login to ${where} failed: ${why}`, cause ? { cause } : {}));
      };
      // on, not once: ssh2 may emit a second error (the socket closing) after the first rejected.
      client.on('error', (e: Error) => fail(e.message, e));
      // A server that closes the connection before the login completes (dropbear's auth timeout, say)
      // makes ssh2 emit close without an error: without this the login never settles.
      client.once('close', () => fail('the server closed the connection before the login completed'));
      // ssh2's readyTimeout, with a margin: the last word on a login that neither succeeds nor fails.
      const timer = setTimeout(() => fail(`no login within ${readyTimeoutMs} ms`), readyTimeoutMs + 2000);
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.removeAllListeners('error');
        client.removeAllListeners('close');
        resolve(new SshChannel(client, target));
      });
      client.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        privateKey: target.privateKey,
        readyTimeout: readyTimeoutMs,
        keepaliveInterval: 5000,
        keepaliveCountMax: 3,
        hostVerifier: hostKeyMatches(target.hostPublicKey),
      });
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  private start(command: string): Promise<ClientChannel> {
    return this.openChannel(`could not start "${command}" in the guest`, (cb) => this.client.exec(command, cb));
  }

  /**
   * Open a session channel and make its request (exec, subsystem), asking again when the server did not run
   * it. Dropbear before 2024.86 (Debian 12 has 2022.83) closes a new session channel at once when a child of
   * the same connection exits in the loop turn that opens it (dropbear 71521d1b, its GitHub #173 and #321).
   * It then either drops the request (ssh2: "Unable to exec") or runs it on the closed channel and exits
   * on an assertion as soon as the command's output ends, taking the connection with it (ssh2: "No response
   * from server", then close). Both are made again: the first on a new channel, the second on a new login.
   * The command may then have run twice; the harness's guest commands are safe to repeat.
   */
  private async openChannel<T>(what: string, open: (cb: (err: Error | undefined, value: T) => void) => void): Promise<T> {
    let logins = 0;
    let refused = 0;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) await this.loginAgain(what, logins++);
      try {
        return await new Promise<T>((resolve, reject) => open((err, value) => (err ? reject(err) : resolve(value))));
      } catch (e) {
        const err = e as Error;
        const dropped = this.closed && !this.ended;
        if (!dropped) refused++;
        if ((!NOT_STARTED.test(err.message) && !dropped) || refused === OPEN_ATTEMPTS || this.ended) {
          const tries = attempt > 1 ? ` (asked ${attempt} times)` : '';
          const hint = NOT_STARTED.test(err.message) || dropped
            ? "the guest's SSH server refused or dropped the request every time: read the serial console for an out-of-memory or a dead sshd"
            : undefined;
          throw new GuestConnectionError(`${what}: ${err.message}${tries}`, { cause: err, ...(hint ? { hint } : {}) });
        }
        if (!dropped) await sleep(25 * attempt + Math.random() * 50); // apart from the other commands racing it
      }
    }
  }

  /** The server dropped the connection before a request ran: log in again (once for all who wait). */
  private async loginAgain(what: string, logins: number): Promise<void> {
    const lost = `${what}: the SSH connection to the guest is closed${this.lastError ? `: ${this.lastError.message}` : ''}`;
    if (this.ended) throw new GuestConnectionError(lost);
    if (logins === RELOGINS) {
      throw new GuestConnectionError(`${lost} (logged in ${logins} times again)`, {
        hint: "the guest's SSH server ended the connection at every request: read the serial console for an out-of-memory or a dead sshd",
      });
    }
    // login, not connect: a loaded guest's dropbear can hang up mid-login (its auth timer); login tries again.
    this.relogin ??= SshChannel.login(this.target, { timeoutMs: RELOGIN_TIMEOUT_MS })
      .then((fresh) => this.adopt(fresh))
      .finally(() => (this.relogin = undefined));
    try {
      await this.relogin;
    } catch (e) {
      throw new GuestConnectionError(`${lost}, and logging in again failed: ${(e as Error).message}`, {
        cause: e as Error,
        hint: "the guest's SSH server is gone or the guest hangs: read the serial console",
      });
    }
  }

  /** Run a command to its end; a time limit closes the channel and throws. */
  async exec(command: string, opts: ExecOptions): Promise<ExecResult> {
    const stream = await this.start(command);
    if (opts.stdin !== undefined) stream.end(opts.stdin);
    return this.collect(command, stream, opts.timeoutMs);
  }

  /** Start a command that keeps running and is spoken to in lines (see LineStream). */
  async openLineStream(command: string): Promise<LineStream> {
    return new LineStream(await this.start(command), command, () => this.closed);
  }

  private collect(command: string, stream: ClientChannel, timeoutMs: number): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let code: number | null = null;
      let signal: string | undefined;
      const timer = setTimeout(() => {
        stream.close();
        reject(new GuestCommandTimeoutError(`guest command "${command}" ran past ${timeoutMs} ms`, {
          hint: 'the guest or its driver hangs; read the serial console',
        }));
      }, timeoutMs);
      stream.on('data', (d: Buffer) => out.push(d));
      stream.stderr.on('data', (d: Buffer) => err.push(d));
      stream.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s;
      });
      // ssh2 passes the exit status to 'close' as well. Under load the exec's answer, the status and the close
      // come in one read and 'exit' fires before this listener exists (the exec callback resolves a promise):
      // only 'close' still carries the status then. Seen in CI as "exited with null" on `true`.
      stream.on('close', (c?: unknown, s?: unknown) => {
        const status = statusFromClose(c, s);
        if (status) [code, signal] = [status.code, status.signal];
        clearTimeout(timer);
        if (code === null && signal === undefined && this.closed) {
          reject(new GuestConnectionError(`SSH connection dropped while "${command}" ran`, { cause: this.lastError }));
          return;
        }
        resolve({ command, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code, signal });
      });
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    return this.openChannel('SFTP unavailable in the guest', (cb) => this.client.sftp(cb));
  }

  /** Copy a host file into the guest. */
  async upload(localPath: string, remotePath: string, mode = 0o644): Promise<void> {
    const sftp = await this.sftp();
    try {
      await new Promise<void>((resolve, reject) => {
        sftp.fastPut(localPath, remotePath, { mode }, (err) =>
          err ? reject(new GuestConnectionError(`upload of ${localPath} to ${remotePath} failed: ${err.message}`, { cause: err })) : resolve(),
        );
      });
    } finally {
      // Wait for the channel to close: a child of dropbear 2022 ending while the next channel opens makes
      // it drop that channel's request (see openChannel, which asks again); waiting makes that rarer.
      await new Promise<void>((resolve) => {
        sftp.once('close', () => resolve());
        sftp.end();
      });
    }
  }

  /** Copy a guest file to the host. */
  async download(remotePath: string, localPath: string): Promise<void> {
    const sftp = await this.sftp();
    try {
      await new Promise<void>((resolve, reject) => {
        sftp.fastGet(remotePath, localPath, (err) =>
          err ? reject(new GuestConnectionError(`download of ${remotePath} to ${localPath} failed: ${err.message}`, { cause: err })) : resolve(),
        );
      });
    } finally {
      await new Promise<void>((resolve) => {
        sftp.once('close', () => resolve());
        sftp.end();
      });
    }
  }

  close(): void {
    this.ended = true;
    if (!this.closed) this.client.end();
    this.closed = true;
  }
}
