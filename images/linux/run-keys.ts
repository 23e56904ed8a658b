// Per-run SSH identity for the reference guest: a fresh client key and dropbear host key every run,
// written into a small second newc archive appended to a copy of the base initramfs (the kernel
// unpacks concatenated archives in order). Nothing secret is ever cached or shared between runs.

import { chmod, copyFile, mkdir, open, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeCpio } from './cpio.js';
import type { ReferenceImage } from './build.js';
import { dropbearPrivateKey, generateEd25519, openSshPrivateKey, openSshPublicKey } from './ssh-keys.js';

export interface RunInitrd {
  /** Base initramfs + the run's key archive; pass to -initrd. */
  initrd: string;
  /** OpenSSH-format private key (ed25519) for ssh2's privateKey. */
  clientPrivateKey: string;
  /** "ssh-ed25519 AAAA... dmahil-client", as in the guest's /root/.ssh/authorized_keys. */
  clientPublicKey: string;
  /** "ssh-ed25519 AAAA..." of the guest's dropbear host key, for pinning. */
  hostPublicKey: string;
}

/** Files written to outDir (all mode 0600). */
export const RUN_FILES = {
  initrd: 'initrd.cpio',
  clientKey: 'client_ed25519',
  clientPub: 'client_ed25519.pub',
  hostPub: 'host_ed25519.pub',
} as const;

export async function makeRunInitrd(image: ReferenceImage, outDir: string): Promise<RunInitrd> {
  const dir = resolve(outDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });

  const client = generateEd25519();
  const host = generateEd25519();
  const clientPublicKey = openSshPublicKey(client, 'dmahil-client');
  const clientPrivateKey = openSshPrivateKey(client, 'dmahil-client');
  const hostPublicKey = openSshPublicKey(host);

  const keys = writeCpio([
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'dir', path: 'etc/dropbear', mode: 0o700 },
    { type: 'file', path: 'etc/dropbear/hostkey', data: dropbearPrivateKey(host), mode: 0o600 },
    { type: 'dir', path: 'root', mode: 0o700 },
    { type: 'dir', path: 'root/.ssh', mode: 0o700 },
    { type: 'file', path: 'root/.ssh/authorized_keys', data: Buffer.from(`${clientPublicKey}\n`), mode: 0o600 },
  ]);

  const initrd = join(dir, RUN_FILES.initrd);
  await copyFile(image.initrd, initrd);
  await chmod(initrd, 0o600);
  const fh = await open(initrd, 'a');
  try {
    await fh.write(keys);
  } finally {
    await fh.close();
  }
  await writeFile(join(dir, RUN_FILES.clientKey), clientPrivateKey, { mode: 0o600 });
  await writeFile(join(dir, RUN_FILES.clientPub), `${clientPublicKey}\n`, { mode: 0o600 });
  await writeFile(join(dir, RUN_FILES.hostPub), `${hostPublicKey}\n`, { mode: 0o600 });
  // writeFile's mode only applies to new files; a reused outDir keeps stale modes otherwise.
  for (const f of [RUN_FILES.clientKey, RUN_FILES.clientPub, RUN_FILES.hostPub]) await chmod(join(dir, f), 0o600);
  return { initrd, clientPrivateKey, clientPublicKey, hostPublicKey };
}
