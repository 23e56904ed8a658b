// A free 127.0.0.1 TCP port for the host forward. Bind-testing only narrows the race (someone may take
// the port before QEMU binds it); launch retries on QEMU's "Could not set up host forwarding rule".

import net from 'node:net';

export type PortPicker = () => Promise<number>;

export const pickFreePort: PortPicker = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });

/** QEMU's stderr line when the forward's host port is taken. */
export const HOSTFWD_FAILURE = /Could not set up host forwarding rule/;
