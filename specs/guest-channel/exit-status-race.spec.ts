// A command's exit status must not be lost when the server's answer to the exec, the status and the close
// are read at once: on a loaded machine the harness's event loop is late, the packets wait in the socket,
// and ssh2 emits 'exit' before the exec's promise has let anyone listen (CI saw `true` exit "with null",
// through OpenSSH and dropbear). Here a server in another process answers each exec 100 ms late, all at
// once, while the spec holds its own event loop for 300 ms. The real servers are covered by ssh-channel.spec
// (OpenSSH) and every guest spec (dropbear).
import { expect } from 'chai';
import type { SshChannel } from '../../harness/guest/channel/ssh-channel.js';
import { startScriptedServer, type ScriptedServer } from './scripted-server.js';

/** Busy-wait: what a loaded machine does to the harness's event loop. */
const holdEventLoop = (ms: number): void => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};
/** Hold the event loop from 30 ms after now, over the moment the server answers. */
const late = <T>(p: Promise<T>): Promise<T> => {
  setTimeout(() => holdEventLoop(300), 30);
  return p;
};

describe('guest-channel: an exit status read at once with the exec answer and the close (a late event loop)', function () {
  this.timeout(30_000);
  let server: ScriptedServer | undefined;
  let channel: SshChannel | undefined;
  before(async () => {
    server = await startScriptedServer();
    channel = server.channel;
  });
  after(() => server?.stop());

  it('exec returns the status: 0, 3, and a signal', async () => {
    expect((await late(channel!.exec('true', { timeoutMs: 5000 }))).code).to.equal(0);
    expect((await late(channel!.exec('exit 3', { timeoutMs: 5000 }))).code).to.equal(3);
    const killed = await late(channel!.exec('killed', { timeoutMs: 5000 }));
    expect([killed.code, killed.signal]).to.deep.equal([null, 'SIGTERM']);
  });

  it('a line stream whose command ends at once says how it ended', async () => {
    const stream = await late(channel!.openLineStream('exit 7'));
    const err = await stream.readLine(5000, 'a line').then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).to.match(/guest command "exit 7" exited with 7/);
  });
});
