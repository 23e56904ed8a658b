// Readiness, step one: does anything speak SSH on the forwarded port? With user-mode networking the
// host side of a forward accepts at once even while the guest is still booting, so a successful TCP
// connect proves nothing; only the "SSH-" banner does. Probing like this avoids an ssh client that
// hangs on a half-open forward (measured: 1–3 s lost per boot).
import net from 'node:net';

export function probeBanner(host: string, port: number, waitMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.once('data', (chunk: Buffer) => finish(chunk.subarray(0, 4).toString('latin1') === 'SSH-'));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
  });
}
