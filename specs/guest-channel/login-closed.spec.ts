// A server that hangs up in the middle of a login (dropbear's auth timeout under a racing guest clock
// did) must fail the login at once, not leave it pending forever. The server is ssh2's own: it completes
// the key exchange, then closes the connection when the client offers its key.
import net from 'node:net';
import { expect } from 'chai';
import ssh2 from 'ssh2';
import { loginBackoffMs, SshChannel } from '../../harness/guest/channel/ssh-channel.js';
import { GuestConnectionError } from '../../harness/guest/channel/errors.js';

describe('guest-channel: a login the server abandons', () => {
  let server: InstanceType<typeof ssh2.Server>;
  let port: number;
  before(async () => {
    server = new ssh2.Server({ hostKeys: [ssh2.utils.generateKeyPairSync('ed25519').private] }, (client) => {
      client.on('error', () => undefined);
      client.on('authentication', () => client.end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fails with the reason within moments, not at the ready timeout', async () => {
    const t0 = Date.now();
    const err = await SshChannel.connect({ host: '127.0.0.1', port, username: 'root', privateKey: ssh2.utils.generateKeyPairSync('ed25519').private }, 60_000).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(GuestConnectionError);
    expect((err as Error).message).to.match(/^SSH login to root@127\.0\.0\.1:\d+ failed: /);
    expect(Date.now() - t0).to.be.below(5000);
  });

  it('a server that hangs up on every new connection for a while (dropbear over MAX_UNAUTH_PER_IP) is waited out with backoff', async () => {
    const ok = new ssh2.Server({ hostKeys: [ssh2.utils.generateKeyPairSync('ed25519').private] }, (client) => {
      client.on('error', () => undefined);
      client.on('authentication', (ctx) => ctx.accept());
    });
    await new Promise<void>((resolve) => ok.listen(0, '127.0.0.1', resolve));
    const okPort = (ok.address() as { port: number }).port;
    // For 1.5 s every connection is closed at once, as dropbear does while 5 logins from the address are unfinished.
    const busyUntil = Date.now() + 1500;
    let refused = 0;
    const front = net.createServer((sock) => {
      sock.on('error', () => undefined);
      if (Date.now() < busyUntil) {
        refused++;
        sock.destroy();
        return;
      }
      const back = net.connect(okPort, '127.0.0.1');
      back.on('error', () => sock.destroy());
      sock.pipe(back).pipe(sock);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    try {
      const ch = await SshChannel.login({ host: '127.0.0.1', port: (front.address() as { port: number }).port, username: 'root', privateKey: ssh2.utils.generateKeyPairSync('ed25519').private }, { timeoutMs: 20_000 });
      ch.close();
      // Backing off from 50 ms, about 6 tries fit in 1.5 s; a fixed 50 ms pause would make 20 or more.
      expect(refused).to.be.within(1, 10);
    } finally {
      front.close();
      ok.close();
    }
  });

  it('the backoff doubles from 50 ms to at most 2 s, spread by jitter', () => {
    for (let i = 0; i < 50; i++) {
      expect(loginBackoffMs(0)).to.be.within(37, 63);
      expect(loginBackoffMs(3)).to.be.within(300, 500);
      expect(loginBackoffMs(20)).to.be.within(1500, 2500);
    }
  });
});
