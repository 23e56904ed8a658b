// One run of the NT DMA model (guest-driver/windows/model): `wine edudma-model.exe serve`, the driver's
// own sources and dmactl in one Windows process. Its stdout is dmactl's JSON lines; its stderr carries
// what the model's edu and its DMA checks print (QEMU's edu messages, "MODEL BUGCHECK …" lines).
// setpriv --pdeathsig ties it to the harness as QEMU is: no model process outlives a killed harness.
import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import { LineSplitter } from '../../machine/device-messages.js';
import type { CommandStream } from '../channel/line-stream.js';

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
  private readonly child: ChildProcess;

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
    const lines = new LineSplitter((line) => line && opts.onStderrLine(line, Date.now()));
    this.child.stderr!.on('data', (d: Buffer) => lines.push(d.toString('utf8')));
    this.child.on('error', (e) => this.destroy(e));
    this.child.on('exit', (code, signal) => this.emit('exit', code, signal ?? undefined));
    this.child.on('close', () => {
      lines.end();
      this.destroy();
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

  /** Ends it now (a model process holds nothing the host needs once its RAM file is read). */
  close(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}
