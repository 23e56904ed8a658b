import { expect } from 'chai';
import { execa } from 'execa';
import { normalizeCpioPath, writeCpio, type CpioEntry } from '../../images/linux/cpio.js';

async function cpio(args: string[], archive: Buffer): Promise<string> {
  const r = await execa('cpio', ['--quiet', ...args], { input: archive, env: { LC_ALL: 'C', TZ: 'UTC' } });
  return r.stdout;
}

const entries: CpioEntry[] = [
  { type: 'dir', path: '/etc', mode: 0o700 },
  { type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n'), mode: 0o644 },
  { type: 'file', path: 'usr/lib/odd-length', data: Buffer.from('abcde'), mode: 0o755 },
  { type: 'file', path: 'empty', data: Buffer.alloc(0) },
  { type: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
  { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
];

describe('images: newc cpio writer', () => {
  const archive = writeCpio(entries);

  it('writes an archive GNU cpio lists, parents first, in order', async () => {
    const names = (await cpio(['-it'], archive)).split('\n');
    expect(names).to.deep.equal([
      'etc', 'etc/passwd', 'usr', 'usr/lib', 'usr/lib/odd-length', 'empty', 'bin', 'bin/sh', 'dev', 'dev/console', 'tmp',
    ]);
  });

  it('keeps types, modes, owners and device numbers', async () => {
    const lines = (await cpio(['-itv'], archive)).split('\n');
    const find = (name: string) => lines.find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `)) ?? '';
    expect(find('etc')).to.match(/^drwx------ +\d+ root +root /);
    expect(find('etc/passwd')).to.match(/^-rw-r--r-- +1 root +root +30 /);
    expect(find('usr/lib/odd-length')).to.match(/^-rwxr-xr-x +1 root +root +5 /);
    expect(find('bin/sh')).to.match(/^lrwxrwxrwx .* bin\/sh -> \/bin\/busybox$/);
    expect(find('dev/console')).to.match(/^crw------- +1 root +root +5, +1 /);
    expect(find('tmp')).to.match(/^drwxrwxrwt /);
    expect(find('usr')).to.match(/^drwxr-xr-x /);
  });

  it('round-trips file contents, including odd lengths that need padding', async () => {
    expect(await cpio(['-i', '--to-stdout', 'etc/passwd'], archive)).to.equal('root:x:0:0:root:/root:/bin/sh');
    expect(await cpio(['-i', '--to-stdout', 'usr/lib/odd-length'], archive)).to.equal('abcde');
  });

  it('is 4-byte aligned, starts with the newc magic and ends with the trailer', () => {
    expect(archive.length % 4).to.equal(0);
    expect(archive.subarray(0, 6).toString('ascii')).to.equal('070701');
    expect(archive.includes(Buffer.from('TRAILER!!!\0'))).to.equal(true);
    expect(archive.lastIndexOf(Buffer.from('TRAILER!!!\0'))).to.be.greaterThan(archive.length - 24);
  });

  it('is reproducible: the same entries give the same bytes', () => {
    expect(writeCpio(entries).equals(archive)).to.equal(true);
  });

  it('lets a second archive appended to the first be read on its own', async () => {
    const second = writeCpio([{ type: 'file', path: 'root/.ssh/authorized_keys', data: Buffer.from('k\n'), mode: 0o600 }]);
    const both = Buffer.concat([archive, second]);
    expect((await cpio(['-it'], both.subarray(archive.length))).split('\n')).to.deep.equal(['root', 'root/.ssh', 'root/.ssh/authorized_keys']);
  });

  it('rejects duplicate, empty and escaping paths', () => {
    expect(() => writeCpio([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a/' }])).to.throw(/listed twice/);
    expect(() => normalizeCpioPath('../etc')).to.throw(/bad path/);
    expect(() => normalizeCpioPath('/')).to.throw(/bad path/);
    expect(normalizeCpioPath('/./usr//bin/')).to.equal('usr/bin');
  });
});
