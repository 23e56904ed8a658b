// A server that hangs up in the middle of a login (dropbear's auth timeout under a racing guest clock
// did) must fail the login at once, not leave it pending forever. The server is ssh2's own: it completes
// the key exchange, then closes the connection when the client offers its key.
import { expect } from 'chai';
import ssh2 from 'ssh2';
import { SshChannel } from '../../harness/guest/channel/ssh-channel.js';
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
});
