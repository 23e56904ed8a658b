// Starts scripted-sshd.ts in a child process and connects an SshChannel to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import { SshChannel } from '../../harness/guest/channel/ssh-channel.js';

export interface ScriptedServer {
  channel: SshChannel;
  stop(): void;
}

export async function startScriptedServer(): Promise<ScriptedServer> {
  const server: ChildProcess = spawn(process.execPath, [fileURLToPath(new URL('./scripted-sshd.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [first] = (await once(server.stdout!, 'data')) as [Buffer];
    const privateKey = ssh2.utils.generateKeyPairSync('ed25519').private;
    const channel = await SshChannel.connect({ host: '127.0.0.1', port: Number(String(first).trim()), username: 'root', privateKey }, 10_000);
    return { channel, stop: () => (channel.close(), server.kill()) };
  } catch (e) {
    server.kill();
    throw e;
  }
}
