// An SSH server (ssh2's own) that misbehaves as real guests' servers do, for the guest-channel specs. It runs
// as a child process so it can answer while a spec holds its own event loop. Prints its port on stdout.
//  - exec "drop K then exit N": the first K requests with this text are dropped as dropbear 2022 drops them
//    (the channel is closed, the request never answered, nothing runs); later ones exit with N at once.
//  - exec "die K then exit N": the first K requests with this text end the whole connection unanswered, as
//    dropbear 2022 does when it ran the request on a channel it had closed (its assertion exit).
//  - exec "drop K, die M then exit N": K dropped, then M that end the connection, then exit N.
//  - any other exec is answered 100 ms late, all at once: success, the exit status ("exit N" gives N,
//    "killed" a SIGTERM), EOF and close.
//  - SFTP: the first subsystem request of each connection is dropped the same way; later ones get a
//    server that can only write files (open, write, fsetstat, close).
import fs from 'node:fs';
import ssh2 from 'ssh2';

const { OK, FAILURE } = ssh2.utils.sftp.STATUS_CODE;
const drops = new Map<string, number>();

/** Close the session channel without answering its request (dropbear before 2024.86). */
function drop(client: ssh2.Connection, session: object): void {
  const proto = (client as unknown as { _protocol: { channelClose(id: number): void } })._protocol;
  proto.channelClose((session as { _chanInfo: { outgoing: { id: number } } })._chanInfo.outgoing.id);
}

function writeOnlySftp(sftp: ssh2.SFTPWrapper): void {
  const files = new Map<number, number>();
  let next = 0;
  sftp.on('OPEN', (id, filename) => {
    const h = next++;
    files.set(h, fs.openSync(filename, 'w'));
    const handle = Buffer.alloc(4);
    handle.writeUInt32BE(h);
    sftp.handle(id, handle);
  });
  sftp.on('WRITE', (id, handle, offset, data) => {
    fs.writeSync(files.get(handle.readUInt32BE())!, data, 0, data.length, offset);
    sftp.status(id, OK);
  });
  sftp.on('FSETSTAT', (id) => sftp.status(id, OK));
  // ssh2 leaves a server's SFTP channel open when the client closes it.
  sftp.on('end', () => sftp.end());
  sftp.on('CLOSE', (id, handle) => {
    const fd = files.get(handle.readUInt32BE());
    if (fd !== undefined) fs.closeSync(fd);
    sftp.status(id, fd === undefined ? FAILURE : OK);
  });
}

const server = new ssh2.Server({ hostKeys: [ssh2.utils.generateKeyPairSync('ed25519').private] }, (client) => {
  let sftpDropped = false;
  client.on('error', () => undefined);
  client.on('authentication', (ctx) => ctx.accept());
  client.on('session', (acceptSession) => {
    const session = acceptSession();
    session.on('exec', (acceptExec, _reject, info) => {
      const scripted = /^(?:drop (\d+))?(?:, )?(?:die (\d+))? then exit (\d+)$/.exec(info.command);
      if (scripted && (scripted[1] || scripted[2])) {
        const seen = drops.get(info.command) ?? 0;
        drops.set(info.command, seen + 1);
        const dropped = Number(scripted[1] ?? 0);
        if (seen < dropped) drop(client, session);
        else if (seen < dropped + Number(scripted[2] ?? 0)) client.end();
        else {
          const stream = acceptExec();
          stream.exit(Number(scripted[3]));
          stream.end();
        }
        return;
      }
      setTimeout(() => {
        const stream = acceptExec();
        if (info.command === 'killed') stream.exit('TERM', false, '');
        else stream.exit(Number(/^exit (\d+)$/.exec(info.command)?.[1] ?? 0));
        stream.end();
      }, 100);
    });
    session.on('sftp', (acceptSftp) => {
      if (!sftpDropped) {
        sftpDropped = true;
        drop(client, session);
        return;
      }
      writeOnlySftp(acceptSftp());
    });
  });
});
server.listen(0, '127.0.0.1', () => console.log((server.address() as { port: number }).port));
