// The QMP client against a fake QMP server on a unix socket. The fake lets each test split, reorder,
// interleave and drop messages at will; the real QEMU QMP is exercised in machine.e2e.spec.

import { expect } from 'chai';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { QmpClient, QmpClosedError, QmpError, QmpProtocolError, QmpTimeoutError, type QmpTranscriptEntry } from '../../harness/machine/qmp/index.js';
import { scratchDir } from './support/fixtures.js';

type Msg = { execute: string; id?: string; arguments?: Record<string, unknown> };

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}\r\n';

class FakeQmp {
  readonly received: Msg[] = [];
  socket: net.Socket | undefined;
  /** Handles every command after qmp_capabilities; default: no answer. */
  onCommand: (msg: Msg, fake: FakeQmp) => void = () => {};
  private readonly waiters: Array<() => void> = [];

  private constructor(readonly path: string, private readonly server: net.Server) {}

  static async start(opts: { greeting?: string | null; chunkSize?: number } = {}): Promise<FakeQmp> {
    const dir = scratchDir('qmp');
    const sockPath = path.join(dir, 'qmp.sock');
    const server = net.createServer();
    const fake = new FakeQmp(sockPath, server);
    server.on('connection', (socket) => {
      fake.socket = socket;
      let buf = '';
      socket.setEncoding('utf8');
      socket.on('error', () => {});
      socket.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const msg = JSON.parse(buf.slice(0, nl)) as Msg;
          buf = buf.slice(nl + 1);
          fake.received.push(msg);
          if (msg.execute === 'qmp_capabilities') fake.send(`{"return": {}, "id": ${JSON.stringify(msg.id)}}\r\n`);
          else fake.onCommand(msg, fake);
          fake.waiters.splice(0).forEach((w) => w());
        }
      });
      const greeting = opts.greeting === undefined ? GREETING : opts.greeting;
      if (greeting !== null) fake.sendChunked(greeting, opts.chunkSize ?? 7);
    });
    await new Promise<void>((resolve) => server.listen(sockPath, resolve));
    return fake;
  }

  send(text: string): void {
    this.socket!.write(text);
  }

  /** Send text in small pieces, each its own write, so the client sees partial lines. */
  sendChunked(text: string, size: number): void {
    for (let i = 0; i < text.length; i += size) this.socket!.write(text.slice(i, i + size));
  }

  reply(msg: Msg, body: Record<string, unknown>): string {
    return JSON.stringify({ ...body, id: msg.id }) + '\r\n';
  }

  async nextCommand(): Promise<void> {
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(path.dirname(this.path), { recursive: true, force: true });
  }
}

const EVENT = (name: string, data: Record<string, unknown> = {}) =>
  JSON.stringify({ timestamp: { seconds: 1, microseconds: 2 }, event: name, data }) + '\r\n';

describe('machine/qmp client (fake server)', () => {
  let fake: FakeQmp;
  let client: QmpClient | undefined;
  afterEach(async () => {
    client?.close();
    client = undefined;
    await fake?.stop();
  });

  it('reads a greeting split into 1-byte chunks and negotiates capabilities', async () => {
    fake = await FakeQmp.start({ chunkSize: 1 });
    client = await QmpClient.connect(fake.path);
    expect(client.greeting.version.qemu).to.deep.equal({ micro: 22, minor: 2, major: 7 });
    expect(fake.received[0]).to.deep.include({ execute: 'qmp_capabilities' });
  });

  it('matches replies to commands by id, whatever order and framing they arrive in', async () => {
    fake = await FakeQmp.start();
    const held: Msg[] = [];
    fake.onCommand = (msg, f) => {
      held.push(msg);
      if (held.length < 2) return;
      // Reverse order, an event in between, all in one chunk, then re-split awkwardly.
      const text = f.reply(held[1]!, { return: { who: 'second' } }) + EVENT('RESUME') + f.reply(held[0]!, { return: { who: 'first' } });
      f.sendChunked(text, 5);
    };
    client = await QmpClient.connect(fake.path);
    const events: string[] = [];
    client.onEvent((e) => events.push(e.event));
    const [a, b] = await Promise.all([client.execute('query-status'), client.execute('query-kvm', { x: 1 })]);
    expect(a).to.deep.equal({ who: 'first' });
    expect(b).to.deep.equal({ who: 'second' });
    expect(events).to.deep.equal(['RESUME']);
    expect(fake.received[2]).to.deep.include({ execute: 'query-kvm', arguments: { x: 1 } });
    expect(fake.received[1]!.id).to.not.equal(fake.received[2]!.id);
  });

  it('turns an error reply into QmpError with class, description and command', async () => {
    fake = await FakeQmp.start();
    fake.onCommand = (msg, f) => f.send(f.reply(msg, { error: { class: 'GenericError', desc: 'Invalid parameter' } }));
    client = await QmpClient.connect(fake.path);
    const err = await client.execute('pmemsave', { val: 0 }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(QmpError);
    expect(err).to.include({ command: 'pmemsave', errorClass: 'GenericError', desc: 'Invalid parameter' });
    expect((err as QmpError).message).to.equal('QMP pmemsave failed: GenericError: Invalid parameter');
  });

  it('times out one command without breaking the connection; a late reply is ignored', async () => {
    fake = await FakeQmp.start();
    const late: Msg[] = [];
    fake.onCommand = (msg, f) => {
      if (msg.execute === 'slow') late.push(msg);
      else f.send(f.reply(msg, { return: 'ok' }));
    };
    const transcript: QmpTranscriptEntry[] = [];
    client = await QmpClient.connect(fake.path, { onTranscript: (e) => transcript.push(e) });
    const err = await client.execute('slow', undefined, { timeoutMs: 50 }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(QmpTimeoutError);
    expect((err as QmpTimeoutError).message).to.equal('QMP slow got no answer within 50 ms');
    fake.send(fake.reply(late[0]!, { return: 'too late' }));
    expect(await client.execute('fast')).to.equal('ok');
    expect(transcript.some((e) => e.direction === 'note' && /late reply/.test(e.text))).to.equal(true);
  });

  it('waits for an event matching a predicate, and times out waiting', async () => {
    fake = await FakeQmp.start();
    client = await QmpClient.connect(fake.path);
    const wanted = client.waitForEvent('SHUTDOWN', { predicate: (e) => e.data.reason === 'guest-shutdown', timeoutMs: 2000 });
    fake.send(EVENT('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' }) + EVENT('STOP') + EVENT('SHUTDOWN', { guest: true, reason: 'guest-shutdown' }));
    const e = await wanted;
    expect(e.data).to.deep.equal({ guest: true, reason: 'guest-shutdown' });
    expect(e.timestamp).to.deep.equal({ seconds: 1, microseconds: 2 });
    const err = await client.waitForEvent('RESET', { timeoutMs: 30 }).then(() => undefined, (x: unknown) => x);
    expect(err).to.be.instanceOf(QmpTimeoutError);
  });

  it('fails every pending command and waiter when the connection closes, and later commands at once', async () => {
    fake = await FakeQmp.start();
    client = await QmpClient.connect(fake.path);
    const pending = [client.execute('a'), client.execute('b'), client.waitForEvent('X')].map((p) => p.then(() => undefined, (e: unknown) => e));
    await fake.nextCommand();
    fake.socket!.destroy();
    const errors = await Promise.all(pending);
    for (const e of errors) expect(e).to.be.instanceOf(QmpClosedError);
    expect((errors[0] as Error).message).to.match(/^QMP connection closed before a was answered/);
    expect(client.closed).to.equal(true);
    const after = await client.execute('c').then(() => undefined, (e: unknown) => e);
    expect(after).to.be.instanceOf(QmpClosedError);
  });

  it('records a transcript of both directions', async () => {
    fake = await FakeQmp.start();
    fake.onCommand = (msg, f) => f.send(f.reply(msg, { return: {} }));
    const transcript: QmpTranscriptEntry[] = [];
    client = await QmpClient.connect(fake.path, { onTranscript: (e) => transcript.push(e) });
    await client.execute('query-status');
    const dirs = transcript.map((e) => e.direction);
    expect(dirs.slice(0, 5)).to.deep.equal(['recv', 'send', 'recv', 'send', 'recv']);
    expect(transcript[3]!.text).to.match(/^\{"execute":"query-status","id":"dmahil-\d+"\}$/);
    expect(transcript[0]!.at).to.be.instanceOf(Date);
  });

  it('rejects a server that does not greet like QMP, or does not greet in time', async () => {
    fake = await FakeQmp.start({ greeting: '{"hello": 1}\n' });
    const err = await QmpClient.connect(fake.path).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(QmpProtocolError);
    await fake.stop();
    fake = await FakeQmp.start({ greeting: null });
    const err2 = await QmpClient.connect(fake.path, { timeoutMs: 50 }).then(() => undefined, (e: unknown) => e);
    expect(err2).to.be.instanceOf(QmpTimeoutError);
    expect((err2 as Error).message).to.match(/greeting/);
  });

  it('skips lines that are not JSON and keeps going', async () => {
    fake = await FakeQmp.start();
    fake.onCommand = (msg, f) => f.send('garbage\r\n' + f.reply(msg, { return: 7 }));
    client = await QmpClient.connect(fake.path);
    expect(await client.execute('x')).to.equal(7);
  });
});
