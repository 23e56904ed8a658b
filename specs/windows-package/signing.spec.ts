// Test signing: the .sys and the catalog verify against the generated certificate, the catalog lists the
// .sys and the INF, and each check fails when it should.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { catalogHash, catalogLists, readCatalog } from '../../harness/windows-package/catalog.js';
import { ARCHES, packageDir, signingCert } from '../../harness/windows-package/package.js';
import { authenticodeHash, parsePe } from '../../harness/windows-package/pe.js';
import { ensurePackage, run, ROOT } from './support.js';

function verify(args: string[]): { ok: boolean; out: string } {
  const r = run('osslsigncode', ['verify', ...args]);
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

describe('windows-package: test signing and catalogs', function () {
  let tmp: string;
  let cert: string;
  let otherCert: string;

  before(function () {
    ensurePackage(this);
    tmp = mkdtempSync(join(tmpdir(), 'dmahil-sign-'));
    cert = signingCert(ROOT);
    otherCert = join(tmp, 'other.crt');
    const r = run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(tmp, 'other.key'), '-out', otherCert,
      '-days', '2', '-subj', '/CN=not the dmahil test certificate', '-addext', 'extendedKeyUsage=codeSigning']);
    if (r.status !== 0) throw new Error(r.stderr);
    const v = run('osslsigncode', ['--version']);
    console.log(`      ${(v.stdout || v.stderr).split('\n')[0]}`);
  });
  after(() => tmp && rmSync(tmp, { recursive: true, force: true }));

  for (const arch of ARCHES) {
    describe(arch, function () {
      const sys = () => join(packageDir(arch, ROOT), 'edudma.sys');
      const cat = () => join(packageDir(arch, ROOT), 'edudma.cat');
      const inf = () => join(packageDir(arch, ROOT), 'edudma.inf');

      it('edudma.sys verifies against the test certificate', function () {
        const v = verify(['-CAfile', cert, '-in', sys()]);
        expect(v.ok, v.out).to.equal(true);
        expect(v.out).to.match(/Signature verification: ok/);
      });
      it('... and not against another certificate', function () {
        expect(verify(['-CAfile', otherCert, '-in', sys()]).ok).to.equal(false);
      });
      it('... and not once a byte of its code changed', function () {
        const bad = join(tmp, `tampered-${arch}.sys`);
        const b = readFileSync(sys());
        const text = parsePe(b).sections.find((s) => s.name === '.text')!;
        b[text.rawPointer + 16] ^= 0xff;
        writeFileSync(bad, b);
        expect(verify(['-CAfile', cert, '-in', bad]).ok).to.equal(false);
      });
      it('the signature covers the unsigned image: same Authenticode hash', function () {
        const unsigned = readFileSync(join(ROOT, 'build', 'windows', 'obj', arch, 'edudma.sys'));
        expect(authenticodeHash(readFileSync(sys())).toString('hex')).to.equal(authenticodeHash(unsigned).toString('hex'));
      });
      it('edudma.cat is signed and lists edudma.sys (osslsigncode verify -catalog)', function () {
        const v = verify(['-CAfile', cert, '-catalog', cat(), '-in', sys()]);
        expect(v.ok, v.out).to.equal(true);
      });
      it('... but not the other architecture\'s edudma.sys', function () {
        const other = join(packageDir(arch === 'x64' ? 'x86' : 'x64', ROOT), 'edudma.sys');
        expect(verify(['-CAfile', cert, '-catalog', cat(), '-in', other]).ok).to.equal(false);
      });
      it('the catalog lists exactly edudma.sys (PE hash) and edudma.inf (flat hash), by name', function () {
        const members = readCatalog(readFileSync(cat()));
        expect(members.map((m) => m.file).sort()).to.deep.equal(['edudma.inf', 'edudma.sys']);
        const sysMember = members.find((m) => m.file === 'edudma.sys')!;
        expect(sysMember.pe).to.equal(true);
        expect(sysMember.hash.equals(catalogHash(readFileSync(sys())))).to.equal(true);
        expect(sysMember.tag).to.equal(sysMember.hash.toString('hex').toUpperCase());
        expect(catalogLists(readFileSync(cat()), { name: 'edudma.inf', data: readFileSync(inf()) })).to.equal(true);
      });
      it('a changed INF is no longer covered by the catalog', function () {
        const changed = Buffer.concat([readFileSync(inf()), Buffer.from('; edited\r\n')]);
        expect(catalogLists(readFileSync(cat()), { name: 'edudma.inf', data: changed })).to.equal(false);
      });
    });
  }
});
