import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { makeRunInitrd, RUN_FILES, type RunInitrd } from '../../images/linux/run-keys.js';
import type { ReferenceImage } from '../../images/linux/build.js';
import { extractFromArchive, listArchive, sharedReferenceImage } from './support.js';

describe('images: per-run keys (makeRunInitrd)', function () {
  this.timeout(180_000);
  let image: ReferenceImage;
  let dirA: string;
  let dirB: string;
  let a: RunInitrd;
  let b: RunInitrd;
  let base: Buffer;

  before(async () => {
    image = await sharedReferenceImage();
    base = await readFile(image.initrd);
    dirA = await mkdtemp(path.join(os.tmpdir(), 'dmahil-run-a-'));
    dirB = await mkdtemp(path.join(os.tmpdir(), 'dmahil-run-b-'));
    a = await makeRunInitrd(image, dirA);
    b = await makeRunInitrd(image, dirB);
  });

  after(async () => {
    for (const d of [dirA, dirB]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('makes fresh client and host keys for every run', () => {
    expect(a.clientPublicKey).to.not.equal(b.clientPublicKey);
    expect(a.hostPublicKey).to.not.equal(b.hostPublicKey);
    expect(a.clientPrivateKey).to.not.equal(b.clientPrivateKey);
    expect(a.hostPublicKey).to.match(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}$/);
    expect(a.clientPublicKey).to.match(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} dmahil-client$/);
  });

  it('appends a key archive to an unchanged copy of the base initramfs', async () => {
    const run = await readFile(a.initrd);
    expect(a.initrd.startsWith(dirA)).to.equal(true);
    expect(run.length).to.be.greaterThan(base.length);
    expect(run.subarray(0, base.length).equals(base)).to.equal(true);
    const listing = await listArchive(run.subarray(base.length));
    const entry = (name: string) => listing.find((l) => l.endsWith(` ${name}`)) ?? '';
    expect(entry('etc/dropbear/hostkey')).to.match(/^-rw------- +1 root +root /);
    expect(entry('root/.ssh/authorized_keys')).to.match(/^-rw------- +1 root +root /);
    expect(entry('root/.ssh')).to.match(/^drwx------ /);
    expect(entry('root')).to.match(/^drwx------ /);
    const authorized = await extractFromArchive(run.subarray(base.length), 'root/.ssh/authorized_keys');
    expect(authorized.toString()).to.equal(`${a.clientPublicKey}\n`);
  });

  it('writes a dropbear host key whose public half is hostPublicKey', async () => {
    const run = await readFile(a.initrd);
    const hostKey = await extractFromArchive(run.subarray(base.length), 'etc/dropbear/hostkey');
    const file = path.join(dirA, 'hostkey-check');
    await writeFile(file, hostKey, { mode: 0o600 });
    const r = await execa('dropbearkey', ['-y', '-f', file]);
    const line = r.stdout.split('\n').find((l) => l.startsWith('ssh-ed25519 ')) ?? '';
    expect(line.split(' ').slice(0, 2).join(' ')).to.equal(a.hostPublicKey);
  });

  it('hands out a client private key that ssh2 parses and that matches the authorized key', async () => {
    const parsed = ssh2.utils.parseKey(a.clientPrivateKey);
    if (parsed instanceof Error) throw parsed;
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    expect(key.type).to.equal('ssh-ed25519');
    expect(`ssh-ed25519 ${key.getPublicSSH().toString('base64')}`).to.equal(a.clientPublicKey.split(' ').slice(0, 2).join(' '));
    const data = Buffer.from('dmahil');
    const sig = key.sign(data);
    if (sig instanceof Error) throw sig;
    expect(key.verify(data, sig)).to.equal(true);
    const fromFile = await execa('ssh-keygen', ['-y', '-f', path.join(dirA, RUN_FILES.clientKey)], { reject: false });
    if (fromFile.exitCode === 0) expect(fromFile.stdout.trim()).to.equal(a.clientPublicKey);
  });

  it('writes every file in outDir with mode 0600', async () => {
    for (const f of Object.values(RUN_FILES)) {
      expect(((await stat(path.join(dirA, f))).mode & 0o777).toString(8), f).to.equal('600');
    }
    expect(await readFile(path.join(dirA, RUN_FILES.clientKey), 'utf8')).to.equal(a.clientPrivateKey);
    expect((await readFile(path.join(dirA, RUN_FILES.hostPub), 'utf8')).trim()).to.equal(a.hostPublicKey);
  });
});
