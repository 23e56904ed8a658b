// An SSH server (ssh2's own) for exit-status-race.spec, run as a child process so it can write while the
// spec's event loop is held. Every exec is answered 100 ms late, all at once: success, the exit status
// ("exit N" gives N, "killed" a SIGTERM), EOF and close. Prints its port on stdout.
import ssh2 from 'ssh2';

const server = new ssh2.Server({ hostKeys: [ssh2.utils.generateKeyPairSync('ed25519').private] }, (client) => {
  client.on('error', () => undefined);
  client.on('authentication', (ctx) => ctx.accept());
  client.on('session', (accept) => {
    accept().on('exec', (acceptExec, _reject, info) => {
      setTimeout(() => {
        const stream = acceptExec();
        if (info.command === 'killed') stream.exit('TERM', false, '');
        else stream.exit(Number(/^exit (\d+)$/.exec(info.command)?.[1] ?? 0));
        stream.end();
      }, 100);
    });
  });
});
server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port));
