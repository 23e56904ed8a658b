// One QEMU process: spawned under `setpriv --pdeathsig SIGKILL` (the kernel kills QEMU when the harness
// dies, even by SIGKILL), stdout/stderr copied to log files and scanned for device-model messages.
// Knows nothing of QMP; Machine composes the two.

import fs from 'node:fs';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { DeviceModelLog, LineSplitter, parseDeviceModelLine, type DeviceModelMessage, type OutputStream } from './device-messages.js';

export interface QemuProcessOptions {
  setpriv: string;
  binary: string;
  args: string[];
  stdoutLog: string;
  stderrLog: string;
  /** Append to the logs (a retried start) instead of truncating them. */
  appendLogs: boolean;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** How many stderr lines to keep in memory for start-up error messages. */
const KEPT_STDERR_LINES = 50;
/** A grandchild could hold a pipe open; do not wait for EOF forever. */
const DRAIN_LIMIT_MS = 2000;

export class QemuProcess {
  readonly pid: number;
  /** Bounded: a DMA the IOMMU refuses prints a line per 4 bytes. */
  readonly log = new DeviceModelLog();
  readonly signalsSent: NodeJS.Signals[] = [];
  /** The first stderr lines, for "QEMU exited at start" errors. */
  readonly earlyStderr: string[] = [];
  readonly exited: Promise<ProcessExit>;
  private readonly listeners = new Set<(m: DeviceModelMessage) => void>();
  private running = true;

  private constructor(options: QemuProcessOptions) {
    const sub = execa(options.setpriv, ['--pdeathsig', 'SIGKILL', '--', options.binary, ...options.args], {
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      forceKillAfterDelay: false, // Machine.shutdown does its own escalation
      cleanup: true, // execa's own exit hook, in addition to ours
    });
    // setpriv exec()s QEMU, so this pid is QEMU's.
    this.pid = sub.pid ?? -1;
    const flags = options.appendLogs ? 'a' : 'w';
    const drained = [
      this.pipe(sub.stdout, fs.createWriteStream(options.stdoutLog, { flags }), 'stdout'),
      this.pipe(sub.stderr, fs.createWriteStream(options.stderrLog, { flags }), 'stderr'),
    ];
    const exit = new Promise<ProcessExit>((resolve) => {
      sub.once('exit', (code, signal) => {
        this.running = false;
        resolve({ code, signal, at: Date.now() });
      });
      sub.once('error', () => {
        this.running = false;
        resolve({ code: null, signal: null, at: Date.now() });
      });
    });
    void sub.then(
      () => {},
      () => {},
    );
    // Resolve only once the output is fully read and logged, so an abort's last line is parsed before anyone classifies the exit.
    this.exited = exit.then(async (e) => {
      await Promise.race([Promise.all(drained), delay(DRAIN_LIMIT_MS)]);
      return e;
    });
  }

  static start(options: QemuProcessOptions): QemuProcess {
    return new QemuProcess(options);
  }

  /** The messages kept so far (bursts folded, see DeviceModelLog). */
  get messages(): readonly DeviceModelMessage[] {
    return this.log.entries;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** QEMU's first stderr line that says something (skipping blank lines): why a start failed. */
  firstStderrLine(): string | undefined {
    return this.earlyStderr.find((l) => l.trim() !== '');
  }

  onMessage(listener: (m: DeviceModelMessage) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Send a signal if QEMU still runs (never to a pid that may have been reused). */
  signal(sig: NodeJS.Signals): boolean {
    if (!this.running || this.pid <= 0) return false;
    try {
      process.kill(this.pid, sig);
      this.signalsSent.push(sig);
      return true;
    } catch {
      return false;
    }
  }

  private async pipe(stream: Readable | null, log: fs.WriteStream, name: OutputStream): Promise<void> {
    log.on('error', () => {}); // a full disk loses log lines; it must not crash the harness or stop the scan
    if (!stream) {
      log.end();
      return;
    }
    stream.setEncoding('utf8');
    const splitter = new LineSplitter((line) => this.onLine(line, name));
    stream.on('data', (chunk: string) => {
      log.write(chunk);
      splitter.push(chunk);
    });
    try {
      await once(stream, 'end');
    } catch {
      // stream error: the log keeps what arrived
    }
    splitter.end();
    log.end();
    await once(log, 'close').catch(() => {});
  }

  private onLine(line: string, stream: OutputStream): void {
    if (stream === 'stderr' && this.earlyStderr.length < KEPT_STDERR_LINES) this.earlyStderr.push(line);
    const message = parseDeviceModelLine(line, stream, Date.now());
    if (!message) return;
    this.log.add(message);
    for (const listener of [...this.listeners]) listener(message);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
