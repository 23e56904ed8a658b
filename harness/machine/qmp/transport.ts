// QMP transport: a unix socket carrying one JSON object per line. Knows nothing of commands or events;
// it frames bytes into messages (a message may arrive split over several chunks, or several per chunk).

import net from 'node:net';
import { EventEmitter } from 'node:events';

export type QmpMessage = Record<string, unknown>;

export interface TransportEvents {
  message: (msg: QmpMessage, rawLine: string) => void;
  /** A line that is not a JSON object. The transport keeps going; the protocol decides. */
  garbage: (rawLine: string, error: unknown) => void;
  close: (reason: string) => void;
}

export class QmpTransport {
  private readonly emitter = new EventEmitter();
  private pending = '';
  private closedReason: string | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.markClosed(`socket error: ${err.message}`));
    socket.on('close', () => this.markClosed('socket closed by peer'));
  }

  /** Connect to a unix socket path; rejects with the socket error (ENOENT, ECONNREFUSED, ...). */
  static connect(path: string): Promise<QmpTransport> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      const onError = (err: Error) => {
        socket.destroy();
        reject(err);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new QmpTransport(socket));
      });
    });
  }

  on<E extends keyof TransportEvents>(event: E, listener: TransportEvents[E]): void {
    this.emitter.on(event, listener);
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  send(msg: QmpMessage): string {
    const line = JSON.stringify(msg);
    if (this.closedReason !== undefined) throw new Error(`transport closed: ${this.closedReason}`);
    this.socket.write(line + '\n');
    return line;
  }

  close(reason = 'closed by client'): void {
    this.socket.destroy();
    this.markClosed(reason);
  }

  private onData(chunk: string): void {
    this.pending += chunk;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl).trim(); // QEMU ends lines with \r\n
      this.pending = this.pending.slice(nl + 1);
      if (line === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (err) {
        this.emitter.emit('garbage', line, err);
        continue;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        this.emitter.emit('garbage', line, new Error('not a JSON object'));
        continue;
      }
      this.emitter.emit('message', parsed as QmpMessage, line);
    }
  }

  private markClosed(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.emitter.emit('close', reason);
  }
}
