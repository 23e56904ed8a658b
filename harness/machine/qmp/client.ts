// QMP protocol over a QmpTransport: greeting, capability negotiation, commands matched to replies by id,
// asynchronous events for listeners and waiters, and a transcript hook for the qmp.log artifact.
// Kept small on purpose: no OOB, no reconnect.

import { QmpTransport, type QmpMessage } from './transport.js';
import { QmpClosedError, QmpError, QmpProtocolError, QmpTimeoutError } from './errors.js';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpTranscriptEntry {
  at: Date;
  /** 'send' and 'recv' carry the raw JSON line; 'note' is the client's own remark (close, garbage, late reply). */
  direction: 'send' | 'recv' | 'note';
  text: string;
}

export interface QmpConnectOptions {
  /** Greeting plus qmp_capabilities must complete within this. Default 10 s. */
  timeoutMs?: number;
  /** Timeout for execute() calls that pass none. Default 30 s. */
  commandTimeoutMs?: number;
  onTranscript?: (entry: QmpTranscriptEntry) => void;
}

export interface QmpWaitOptions {
  predicate?: (event: QmpEvent) => boolean;
  /** Default 30 s. */
  timeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

export class QmpClient {
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly abandoned = new Set<string>(); // ids whose command timed out; a late reply is expected
  private readonly eventListeners = new Set<(event: QmpEvent) => void>();
  private readonly closeListeners = new Set<(reason: string) => void>();
  private greetingWaiter: ((msg: QmpMessage) => void) | undefined;
  private closeReason: string | undefined;
  private _greeting: QmpGreeting | undefined;

  private constructor(
    private readonly transport: QmpTransport,
    private readonly options: QmpConnectOptions,
  ) {
    transport.on('message', (msg, raw) => this.onMessage(msg, raw));
    transport.on('garbage', (raw) => this.note(`ignored non-JSON line: ${raw}`));
    transport.on('close', (reason) => this.handleClose(reason));
  }

  /** Connect to QEMU's QMP unix socket, read the greeting and leave capabilities-negotiation mode. */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const transport = await QmpTransport.connect(socketPath);
    const client = new QmpClient(transport, options);
    try {
      await client.handshake(options.timeoutMs ?? 10_000);
    } catch (err) {
      client.close('handshake failed');
      throw err;
    }
    return client;
  }

  get greeting(): QmpGreeting {
    if (!this._greeting) throw new Error('QMP greeting not received yet');
    return this._greeting;
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Run a command; resolves with its "return" value, rejects with QmpError / QmpTimeoutError / QmpClosedError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closeReason !== undefined) return Promise.reject(new QmpClosedError(command, this.closeReason));
    const id = `dmahil-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.abandoned.add(id);
        reject(new QmpTimeoutError(command, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: QmpMessage = { execute: command, id };
      if (args !== undefined) msg.arguments = args;
      try {
        this.record('send', this.transport.send(msg));
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new QmpClosedError(command, String((err as Error).message)));
      }
    });
  }

  /** Listen to every asynchronous event. Returns the unsubscribe function. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onClose(listener: (reason: string) => void): () => void {
    if (this.closeReason !== undefined) {
      listener(this.closeReason);
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /**
   * The next event named `name` (and matching the predicate) that arrives after this call.
   * Call it before triggering the event, then await.
   */
  waitForEvent(name: string, opts: QmpWaitOptions = {}): Promise<QmpEvent> {
    const what = `event ${name}`;
    if (this.closeReason !== undefined) return Promise.reject(new QmpClosedError(what, this.closeReason));
    const timeoutMs = opts.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    return new Promise<QmpEvent>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        offEvent();
        offClose();
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpTimeoutError(what, timeoutMs));
      }, timeoutMs);
      const offEvent = this.onEvent((event) => {
        if (event.event !== name || (opts.predicate && !opts.predicate(event))) return;
        done();
        resolve(event);
      });
      const offClose = this.onClose((reason) => {
        done();
        reject(new QmpClosedError(what, reason));
      });
    });
  }

  close(reason = 'closed by client'): void {
    this.transport.close(reason);
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const greetingMsg = await new Promise<QmpMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new QmpTimeoutError('greeting', timeoutMs)), timeoutMs);
      const offClose = this.onClose((reason) => {
        clearTimeout(timer);
        reject(new QmpClosedError('greeting', reason));
      });
      this.greetingWaiter = (msg) => {
        clearTimeout(timer);
        offClose();
        resolve(msg);
      };
    });
    const qmp = greetingMsg.QMP as QmpGreeting | undefined;
    if (!qmp || typeof qmp !== 'object') {
      throw new QmpProtocolError(`expected a QMP greeting, got ${JSON.stringify(greetingMsg).slice(0, 200)}`);
    }
    this._greeting = qmp;
    await this.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) });
  }

  private onMessage(msg: QmpMessage, raw: string): void {
    this.record('recv', raw);
    if (this.greetingWaiter) {
      const waiter = this.greetingWaiter;
      this.greetingWaiter = undefined;
      waiter(msg);
      return;
    }
    if (typeof msg.event === 'string') {
      const event: QmpEvent = {
        event: msg.event,
        data: (msg.data as Record<string, unknown> | undefined) ?? {},
        timestamp: (msg.timestamp as QmpEvent['timestamp'] | undefined) ?? { seconds: 0, microseconds: 0 },
      };
      for (const listener of [...this.eventListeners]) listener(event);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const entry = id === undefined ? undefined : this.pending.get(id);
    if (!entry) {
      if (id !== undefined && this.abandoned.delete(id)) this.note(`late reply to timed-out command ${id} ignored`);
      else this.note(`reply with unknown id ${JSON.stringify(msg.id)} ignored`);
      return;
    }
    this.pending.delete(id!);
    clearTimeout(entry.timer);
    if ('return' in msg) {
      entry.resolve(msg.return);
    } else if (msg.error && typeof msg.error === 'object') {
      const e = msg.error as { class?: string; desc?: string };
      entry.reject(new QmpError(entry.command, e.class ?? 'UnknownError', e.desc ?? '(no description)'));
    } else {
      entry.reject(new QmpProtocolError(`QMP ${entry.command}: reply has neither return nor error: ${raw.slice(0, 200)}`));
    }
  }

  private handleClose(reason: string): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    this.note(`connection closed: ${reason}`);
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      this.pending.delete(id);
      entry.reject(new QmpClosedError(entry.command, reason));
    }
    for (const listener of [...this.closeListeners]) listener(reason);
    this.closeListeners.clear();
  }

  private record(direction: QmpTranscriptEntry['direction'], text: string): void {
    this.options.onTranscript?.({ at: new Date(), direction, text });
  }

  private note(text: string): void {
    this.record('note', text);
  }
}
