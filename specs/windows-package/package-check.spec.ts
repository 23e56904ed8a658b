// The built package as shipped, checked as a whole by the same command make driver runs after each build
// (cli.js pkgcheck): every file, the signed .sys, the INF's rules and CRLF line endings for the INF and
// install.cmd. A copy of the package with each defect seeded must fail, naming the file and the check.
import { expect } from 'chai';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { catalogLists } from '../../harness/windows-package/catalog.js';
import { packageDir } from '../../harness/windows-package/package.js';
import { ensurePackage, ROOT, run } from './support.js';

const CLI = join(ROOT, 'build', 'windows', 'tools', 'harness', 'windows-package', 'cli.js');

describe('windows-package: the built package as shipped (pkgcheck, CRLF)', function () {
  let tmp: string;
  before(function () {
    ensurePackage(this);
    tmp = mkdtempSync(join(tmpdir(), 'dmahil-pkg-'));
  });
  after(() => tmp && rmSync(tmp, { recursive: true, force: true }));

  const pkgcheck = (dir: string, arch: string) => run('node', [CLI, 'pkgcheck', '--arch', arch, '--quiet', dir]);
  /** A copy of the x64 package with one file changed. */
  function seeded(name: string, change: (dir: string) => void): string {
    const dir = join(tmp, name);
    cpSync(packageDir('x64', ROOT), dir, { recursive: true });
    change(dir);
    return dir;
  }
  const toLf = (dir: string, f: string) => writeFileSync(join(dir, f), readFileSync(join(dir, f), 'latin1').replace(/\r\n/g, '\n'), 'latin1');

  it('both built packages pass: INF and install.cmd with CRLF, the INF rules, the signed .sys', function () {
    for (const arch of ['x64', 'x86']) {
      const r = pkgcheck(packageDir(arch as 'x64', ROOT), arch);
      expect(r.status, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout).to.match(/: [3-9]\d passed, 0 failed/);
    }
    for (const f of ['edudma.inf', 'install.cmd']) {
      const text = readFileSync(join(packageDir('x64', ROOT), f), 'latin1');
      expect(text.match(/\r\n/g)?.length, f).to.equal(text.match(/\n/g)?.length);
    }
  });

  it('the catalog hashes the INF as shipped (CRLF), not the LF-only source: the conversion comes before mkcat', function () {
    const cat = readFileSync(join(packageDir('x64', ROOT), 'edudma.cat'));
    expect(catalogLists(cat, { name: 'edudma.inf', data: readFileSync(join(packageDir('x64', ROOT), 'edudma.inf')) })).to.equal(true);
    const source = readFileSync(join(ROOT, 'guest-driver', 'windows', 'edudma.inf'));
    expect(source.includes('\r\n'), 'the source is LF-only: otherwise this proves nothing').to.equal(false);
    expect(catalogLists(cat, { name: 'edudma.inf', data: source })).to.equal(false);
  });

  const seeds: [string, (dir: string) => void, RegExp][] = [
    ['an LF-only edudma.inf', (d) => toLf(d, 'edudma.inf'), /^FAIL edudma\.inf: line-endings: LF without CR on every line/m],
    ['an LF-only install.cmd', (d) => toLf(d, 'install.cmd'), /^FAIL install\.cmd: line-endings: LF without CR on every line/m],
    ['one bare LF in install.cmd', (d) => writeFileSync(join(d, 'install.cmd'), readFileSync(join(d, 'install.cmd'), 'latin1').replace('\r\n', '\n'), 'latin1'), /^FAIL install\.cmd: line-endings: LF without CR on line 1 \(1 of \d+\)/m],
    ['install.cmd missing', (d) => rmSync(join(d, 'install.cmd')), /^FAIL files: missing install\.cmd/m],
    ['an unsigned edudma.sys', (d) => cpSync(join(ROOT, 'build', 'windows', 'obj', 'x64', 'edudma.sys'), join(d, 'edudma.sys')), /^FAIL edudma\.sys: /m],
    ['an INF without CatalogFile', (d) => writeFileSync(join(d, 'edudma.inf'), readFileSync(join(d, 'edudma.inf'), 'latin1').replace(/^CatalogFile.*\r\n/m, ''), 'latin1'), /^FAIL edudma\.inf: version-catalog/m],
  ];
  for (const [name, change, expected] of seeds) {
    it(`fails: ${name}`, function () {
      const r = pkgcheck(seeded(name.replace(/\W+/g, '-'), change), 'x64');
      expect(r.status, r.stdout).to.equal(1);
      expect(r.stdout).to.match(expected);
    });
  }
});
