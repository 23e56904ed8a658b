// Ed25519 keys in the three encodings a run needs, made with node:crypto (no ssh-keygen/dropbearkey):
// the OpenSSH private key for the ssh2 client, the OpenSSH public key line for authorized_keys and
// host-key pinning, and dropbear's own private key format for the guest's host key.

import { generateKeyPairSync, randomBytes } from 'node:crypto';

export interface Ed25519Key {
  /** 32-byte private seed. */
  seed: Buffer;
  /** 32-byte public key. */
  pub: Buffer;
}

const KEY_TYPE = 'ssh-ed25519';

export function generateEd25519(): Ed25519Key {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  if (!jwk.d || !jwk.x) throw new Error('ed25519: key export lacks d/x');
  const seed = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  if (seed.length !== 32 || pub.length !== 32) throw new Error('ed25519: unexpected key length');
  return { seed, pub };
}

function sshString(b: Buffer | string): Buffer {
  const data = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function publicBlob(key: Ed25519Key): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(key.pub)]);
}

/** "ssh-ed25519 AAAA... comment" (no trailing newline). */
export function openSshPublicKey(key: Ed25519Key, comment = ''): string {
  const line = `${KEY_TYPE} ${publicBlob(key).toString('base64')}`;
  return comment ? `${line} ${comment}` : line;
}

/** Unencrypted "-----BEGIN OPENSSH PRIVATE KEY-----" (openssh-key-v1), as ssh-keygen writes it. */
export function openSshPrivateKey(key: Ed25519Key, comment = ''): string {
  const check = randomBytes(4);
  let priv = Buffer.concat([
    check, check,
    sshString(KEY_TYPE), sshString(key.pub),
    sshString(Buffer.concat([key.seed, key.pub])),
    sshString(comment),
  ]);
  const padLen = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: padLen }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'), sshString('none'), sshString(''),
    u32(1),
    sshString(publicBlob(key)),
    sshString(priv),
  ]);
  const b64 = body.toString('base64').replace(/.{1,70}/g, '$&\n');
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}-----END OPENSSH PRIVATE KEY-----\n`;
}

/** dropbear's host key file: string "ssh-ed25519", string(seed || pub). Checked against `dropbearkey -y`. */
export function dropbearPrivateKey(key: Ed25519Key): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(Buffer.concat([key.seed, key.pub]))]);
}
