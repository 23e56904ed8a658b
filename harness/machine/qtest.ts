// A tiny qtest client so specs can drive a real edu device without a guest kernel: QEMU connects to
// this unix socket (-qtest unix:PATH) and executes line commands (outl, writeq, readq, write ...).
// The harness uses it to probe how this QEMU's edu behaves (edu-behaviour.ts); specs drive edu with it.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export class Qtest {
  private socket: net.Socket | undefined;
  private buffer = '';
  private readonly waiting: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  private closed = false;
  private readonly connected: Promise<void>;

  private constructor(readonly path: string, private readonly server: net.Server) {
    this.connected = new Promise((resolve) => {
      server.once('connection', (socket) => {
        this.socket = socket;
        socket.setEncoding('utf8');
        socket.on('error', () => {});
        // QEMU gone (an edu abort): every command still waiting fails instead of hanging.
        socket.on('close', () => {
          this.closed = true;
          for (const w of this.waiting.splice(0)) w.reject(new Error('qtest connection closed (QEMU exited)'));
        });
        socket.on('data', (chunk: string) => {
          this.buffer += chunk;
          let nl: number;
          while ((nl = this.buffer.indexOf('\n')) >= 0) {
            const line = this.buffer.slice(0, nl);
            this.buffer = this.buffer.slice(nl + 1);
            if (line.startsWith('IRQ')) continue; // asynchronous, not a reply
            this.waiting.shift()?.resolve(line);
          }
        });
        resolve();
      });
    });
  }

  static async listen(dir: string): Promise<Qtest> {
    const sockPath = path.join(dir, 'qtest.sock');
    fs.rmSync(sockPath, { force: true });
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    return new Qtest(sockPath, server);
  }

  /** QEMU arguments that connect it here. */
  get args(): string[] {
    return ['-qtest', `unix:${this.path}`];
  }

  /** Send one command; resolves with the reply line ("OK ..."), rejects on "FAIL". */
  async cmd(line: string): Promise<string> {
    await this.connected;
    if (this.closed) throw new Error('qtest connection closed (QEMU exited)');
    const reply = new Promise<string>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.socket!.write(line + '\n');
    const r = await reply;
    if (!r.startsWith('OK')) throw new Error(`qtest "${line}" → ${r}`);
    return r;
  }

  /** Write a 32-bit PCI config register (bus 0) through ports 0xcf8/0xcfc. */
  async pciConfigWrite(slot: number, offset: number, value: number): Promise<void> {
    const address = (0x80000000 | (slot << 11) | offset) >>> 0;
    await this.cmd(`outl 0xcf8 0x${address.toString(16)}`);
    await this.cmd(`outl 0xcfc 0x${value.toString(16)}`);
  }

  async readq(addr: number): Promise<bigint> {
    return BigInt((await this.cmd(`readq 0x${addr.toString(16)}`)).split(' ')[1]!);
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A 64 KiB firmware image that only halts (cli; hlt; jmp back at the reset vector), so a machine can
 * run (virtual time advances, edu's 100 ms DMA timer fires) without SeaBIOS touching PCI config.
 */
export function writeHaltFirmware(dir: string): string {
  const image = Buffer.alloc(0x10000, 0);
  Buffer.from([0xfa, 0xf4, 0xeb, 0xfd]).copy(image, 0xfff0);
  const file = path.join(dir, 'halt-firmware.bin');
  fs.writeFileSync(file, image);
  return file;
}
