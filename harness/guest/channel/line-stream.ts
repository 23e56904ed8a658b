// A long-running guest command spoken to in lines: the host writes a line to its stdin and reads the
// lines it prints. One process serves many requests, so a request costs a line's round trip (~1 ms)
// instead of a process start over SSH (~60 ms under TCG).
import type { Duplex } from 'node:stream';
import { GuestCommandTimeoutError, GuestConnectionError } from './errors.js';

/** What the command left when it ended. */
export interface StreamEnd {
  code: number | null;
  signal?: string;
  /** The end of its stderr (at most 4 KiB). */
  stderr: string;
}

/** The parts of an SSH exec channel a line stream uses (ssh2's ClientChannel has them). */
export interface CommandStream extends Duplex {
  stderr: NodeJS.ReadableStream;
  close(): void;
}

/**
 * The exit status ssh2 passes to a channel's 'close' (code, or null and the signal), else undefined: a
 * socket's 'close' passes a boolean, and a channel closed without a status passes nothing.
 */
export function statusFromClose(code: unknown, signal: unknown): { code: number | null; signal?: string } | undefined {
  if (typeof code === 'number') return { code };
  if (code === null && typeof signal === 'string') return { code, signal };
  return undefined;
}

const STDERR_KEEP = 4096;
/** A line longer than this is not from a well-behaved dmactl: the stream is closed. */
const MAX_LINE = 1 << 20;
/** How long close() waits for the channel to go. */
const CLOSE_WAIT_MS = 2000;

interface Waiter {
  what: string;
  resolve: (line: string) => void;
  reject: (e: Error) => void;
}

export class LineStream {
  private pending = '';
  private readonly lines: string[] = [];
  private waiter?: Waiter;
  private stderr = '';
  private exit: { code: number | null; signal?: string } = { code: null };
  private endedWith?: StreamEnd;
  private closedByHost?: string;
  private readonly gone: Promise<void>;

  constructor(
    private readonly stream: CommandStream,
    /** The command, for messages. */
    readonly command: string,
    /** True once the connection under the stream is gone (says why a command ended without a status). */
    private readonly connectionLost: () => boolean = () => false,
  ) {
    stream.on('data', (d: Buffer) => this.onData(d.toString('utf8')));
    stream.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-STDERR_KEEP);
    });
    stream.on('exit', (code: number | null, signal?: string) => {
      this.exit = { code, signal };
    });
    this.gone = new Promise<void>((resolve) => {
      const done = (): void => (clearTimeout(bound), resolve());
      const bound = setTimeout(done, CLOSE_WAIT_MS);
      bound.unref();
      stream.once('close', done);
    });
    // ssh2 passes the status to 'close' too: an 'exit' before this constructor ran is not lost. (A socket's
    // 'close' passes a boolean instead: not a status.)
    stream.on('close', (code?: unknown, signal?: unknown) => {
      this.exit = statusFromClose(code, signal) ?? this.exit;
      this.onEnd();
    });
    stream.on('error', () => this.onEnd());
  }

  /** False once the command ended or the host closed the stream. */
  get isOpen(): boolean {
    return !this.endedWith && !this.closedByHost;
  }

  writeLine(line: string): void {
    if (!this.isOpen) throw this.endError();
    this.stream.write(line + '\n');
  }

  /** The next line it prints. A time limit closes the stream: a late answer would be taken for the next one's. */
  readLine(timeoutMs: number, what: string): Promise<string> {
    const ready = this.lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (!this.isOpen) return Promise.reject(this.endError());
    if (this.waiter) return Promise.reject(new Error(`LineStream: two readers at once on "${this.command}"`));
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        void this.close(`${what} ran past ${timeoutMs} ms`);
        reject(new GuestCommandTimeoutError(`guest command "${this.command}": ${what} ran past ${timeoutMs} ms`, {
          hint: 'the guest or its driver hangs; read the serial console',
        }));
      }, timeoutMs);
      this.waiter = {
        what,
        resolve: (l) => (clearTimeout(timer), resolve(l)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  /** Write a line and read the answer. */
  async request(line: string, timeoutMs: number, what: string): Promise<string> {
    this.writeLine(line);
    return this.readLine(timeoutMs, what);
  }

  /**
   * End stdin (the command sees EOF) and close the channel. The promise settles once the channel is
   * gone (bounded): dropbear refuses a new exec that races the teardown of the last one.
   */
  close(why = 'closed by the host'): Promise<void> {
    if (this.isOpen) {
      this.closedByHost = why;
      this.stream.end();
      this.stream.close();
      this.failWaiter();
    }
    return this.gone;
  }

  /** How it ended, once it has (undefined while it runs). */
  get ended(): StreamEnd | undefined {
    return this.endedWith;
  }

  private onData(text: string): void {
    this.pending += text;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w.resolve(line);
      } else {
        this.lines.push(line);
      }
    }
    if (this.pending.length > MAX_LINE) void this.close(`printed a line longer than ${MAX_LINE} bytes`);
  }

  private onEnd(): void {
    if (this.endedWith) return;
    this.endedWith = { ...this.exit, stderr: this.stderr.trim() };
    this.failWaiter();
  }

  private failWaiter(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.endError(w.what));
  }

  private endError(what?: string): GuestConnectionError {
    if (this.closedByHost) return new GuestConnectionError(`guest command "${this.command}" was closed: ${this.closedByHost}`);
    const e = this.endedWith;
    if (e?.code === null && e.signal === undefined && this.connectionLost()) {
      return new GuestConnectionError(`SSH connection dropped while "${this.command}" ran${what ? ` (waiting for ${what})` : ''}`);
    }
    const how = e?.code !== null && e?.code !== undefined ? `exited with ${e.code}` : e?.signal ? `was killed by ${e.signal}` : 'ended (connection lost?)';
    return new GuestConnectionError(`guest command "${this.command}" ${how}${e?.stderr ? `: ${e.stderr.slice(-300)}` : ''}`);
  }
}
