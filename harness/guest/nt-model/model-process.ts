// One run of the NT DMA model (guest-driver/windows/model): `wine edudma-model.exe serve`, the driver's
// own sources and dmactl in one Windows process. Its stdout is dmactl's JSON lines; its stderr carries
// what the model's edu and its DMA checks print (QEMU's edu messages, "MODEL BUGCHECK …" lines).
// setpriv --pdeathsig ties it to the harness as QEMU is: no model process outlives a killed harness.
// Closing it is a shutdown, as for a machine: end of input first (the model removes the device, unloads
// the driver and checks for leaks), a kill only if it has not exited after a grace period.
import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import { LineSplitter } from '../../machine/device-messages.js';
import type { CommandStream } from '../channel/line-stream.js';

/** How long a closed model may take to unload the driver and exit before it is killed. */
const UNLOAD_GRACE_MS = 10_000;
/**
 * The model's last stderr line (os.h OS_EXIT_MARK). Wine's helper processes inherit the first model's
 * stderr and keep it open, so its end cannot say that everything the model printed is read; this line can.
 */
const EXIT_MARK = 'MODEL: exiting';
/** Without the mark (killed, or Wine failed before main): what it printed is in the pipe, read within this. */
const UNMARKED_DRAIN_MS = 1_000;

/** Whatever the model prints on stderr, a line at a time, with when it was read. */
export type StderrLine = (line: string, atMs: number) => void;

export interface ModelProcessOptions {
  setpriv: string;
  exe: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  onStderrLine: StderrLine;
}

/** A model process as a CommandStream, so a LineStream (and dmactl-server.ts) can speak to it. */
export class ModelProcess extends Duplex implements CommandStream {
  readonly stderr: NodeJS.ReadableStream;
  /** Settles once it exited and everything it printed is read: a bug check at unload is in by then. */
  readonly ended: Promise<{ code: number | null; signal?: string }>;
  private readonly child: ChildProcess;
  private closeAsked = false;

  constructor(opts: ModelProcessOptions) {
    super();
    this.child = spawn(opts.setpriv, ['--pdeathsig', 'SIGKILL', '--', 'wine', opts.exe, ...opts.args], {
      env: opts.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.stderr = this.child.stderr!;
    this.child.stdin!.on('error', () => undefined); // EPIPE once it died: its exit says why
    this.child.stdout!.on('data', (d: Buffer) => this.push(d));
    this.child.stdout!.on('end', () => this.push(null));
    // QEMU's splitter: it also cuts an edu message that has no newline of its own.
    let marked!: () => void;
    const printedAll = new Promise<void>((resolve) => (marked = resolve));
    const lines = new LineSplitter((line) => (line.trim() === EXIT_MARK ? marked() : line && opts.onStderrLine(line, Date.now())));
    this.child.stderr!.on('data', (d: Buffer) => lines.push(d.toString('utf8')));
    this.child.stderr!.on('end', marked);
    this.child.on('error', (e) => this.destroy(e));
    this.ended = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.emit('exit', code, signal ?? undefined);
        const drained = new Promise((r) => setTimeout(r, UNMARKED_DRAIN_MS).unref());
        void Promise.race([printedAll, drained]).then(() => {
          lines.end();
          this.child.stderr!.destroy(); // those helpers would keep it, and the host's event loop, open
          this.destroy();
          resolve({ code, ...(signal ? { signal } : {}) });
        });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    if (!this.child.stdin!.writable) return done();
    this.child.stdin!.write(chunk, () => done());
  }

  override _final(done: (e?: Error | null) => void): void {
    this.child.stdin!.end();
    done();
  }

  /** True once close() was called: it may still be unloading, or hung and waiting for its kill. */
  get closing(): boolean {
    return this.closeAsked;
  }

  /** End of input: dmactl returns and the model unloads the driver; killed if it has not exited in time. */
  close(): void {
    this.closeAsked = true;
    if (!this.running) return;
    this.child.stdin!.end();
    const t = setTimeout(() => this.kill(), UNLOAD_GRACE_MS);
    t.unref();
    void this.ended.then(() => clearTimeout(t));
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
