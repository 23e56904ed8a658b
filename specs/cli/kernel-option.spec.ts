// --kernel DIR refusals (issue 14): a kernel root that cannot give the reference guest its kernel, modules
// and headers is one line naming --kernel and the fix, exit 2, before anything is built or booted. The
// layout cases are checked on small made-up roots; the module build that fails is the real compiler on the
// installed kernel's headers with a broken autoconf.h, run through the CLI with a QEMU that logs every
// launch (nothing boots).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { UsageError } from '../../harness/errors.js';
import { kernelRootOption } from '../../harness/kernel/kernel-root.js';
import { findKernelVersion } from '../../images/linux/build.js';
import { cliPath, repoRoot } from '../e2e/support.js';

/** A made-up root: only the files each check looks at. */
function fakeRoot(dir: string, opts: { versions?: string[]; modules?: boolean; depmod?: boolean; headers?: string | null } = {}): string {
  for (const v of opts.versions ?? ['6.1.0-9-amd64']) {
    fs.mkdirSync(path.join(dir, 'boot'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'boot', `vmlinuz-${v}`), '');
    if (opts.modules === false) continue;
    const mods = path.join(dir, 'lib/modules', v);
    fs.mkdirSync(path.join(mods, 'kernel'), { recursive: true });
    if (opts.depmod !== false) fs.writeFileSync(path.join(mods, 'modules.dep'), '');
    if (opts.headers === null) continue;
    const build = path.join(dir, 'usr/src', `linux-headers-${v}`);
    fs.mkdirSync(path.join(build, 'include/generated'), { recursive: true });
    fs.writeFileSync(path.join(build, 'Makefile'), '');
    fs.writeFileSync(path.join(build, 'include/generated/utsrelease.h'), `#define UTS_RELEASE "${opts.headers ?? v}"\n`);
  }
  return dir;
}

function refusal(dir: string): UsageError {
  try {
    kernelRootOption(dir);
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
  throw new Error(`--kernel ${dir} was accepted`);
}

describe('--kernel DIR refusals', function () {
  let scratch: string;
  before(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-kernel-'));
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));
  const sub = (name: string): string => fs.mkdirSync(path.join(scratch, name), { recursive: true }) ?? path.join(scratch, name);

  it('accepts a root laid out as dpkg -x gives, and names its version, modules and headers', () => {
    const dir = fakeRoot(sub('good'));
    const k = kernelRootOption(dir);
    expect(k).to.include({ root: dir, version: '6.1.0-9-amd64', modulesBase: dir });
    expect(k.buildDir).to.equal(path.join(dir, 'usr/src/linux-headers-6.1.0-9-amd64'));
  });

  it('accepts a root whose kernel is usr/lib/modules/<ver>/vmlinuz only (newer Debian packages, unpacked)', () => {
    const dir = sub('usr-lib-modules');
    const mods = path.join(dir, 'usr/lib/modules/7.0.1-amd64');
    fs.mkdirSync(path.join(mods, 'kernel'), { recursive: true });
    fs.writeFileSync(path.join(mods, 'vmlinuz'), '');
    fs.writeFileSync(path.join(mods, 'modules.dep'), '');
    fs.mkdirSync(path.join(dir, 'usr/src/linux-headers-7.0.1-amd64/include/generated'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'usr/src/linux-headers-7.0.1-amd64/Makefile'), '');
    fs.writeFileSync(path.join(dir, 'usr/src/linux-headers-7.0.1-amd64/include/generated/utsrelease.h'), '#define UTS_RELEASE "7.0.1-amd64"\n');
    const k = kernelRootOption(dir);
    expect(k).to.include({ version: '7.0.1-amd64', vmlinuz: path.join(mods, 'vmlinuz'), modulesDir: mods, modulesBase: path.join(dir, 'usr') });
  });

  const cases: Array<[string, (d: string) => string, RegExp, RegExp]> = [
    ['a missing folder', (d) => path.join(d, 'nowhere'), /no such folder/, /pass --kernel a kernel root/],
    ['no vmlinuz', (d) => d, /no kernel image \(.*boot\/vmlinuz-<ver> is missing\)/, /pass --kernel a kernel root/],
    ['several kernels', (d) => fakeRoot(d, { versions: ['6.1.0-9-amd64', '6.12.1-amd64'] }), /several kernels \(6\.1\.0-9-amd64, 6\.12\.1-amd64\)/, /keep one kernel per folder/],
    ['no modules', (d) => fakeRoot(d, { modules: false }), /no modules \(.*lib\/modules\/6\.1\.0-9-amd64 is missing\)/, /modules_install INSTALL_MOD_PATH/],
    ['no modules.dep (dpkg -x without depmod)', (d) => fakeRoot(d, { depmod: false }), /has no modules\.dep/, /^run depmod -b .* 6\.1\.0-9-amd64$/],
    ['no headers', (d) => fakeRoot(d, { headers: null }), /no headers for 6\.1\.0-9-amd64/, /linux-headers-6\.1\.0-9-amd64/],
    ['headers of another version', (d) => fakeRoot(d, { headers: '6.1.0-8-amd64' }), /headers in .* are for 6\.1\.0-8-amd64, not 6\.1\.0-9-amd64/, /use the headers of 6\.1\.0-9-amd64/],
  ];
  for (const [name, make, message, hint] of cases) {
    it(`refuses ${name} in one line naming --kernel, with the fix`, () => {
      const e = refusal(make(sub(name.replace(/\W+/g, '-'))));
      expect(e.message).to.match(/^--kernel /);
      expect(e.message).to.match(message);
      expect(e.message).to.not.include('\n');
      expect(e.hint).to.match(hint);
    });
  }

  it('a module build that fails: exit 2 with the compiler\'s first error, and no guest launched', async function () {
    this.timeout(120_000);
    const ver = await findKernelVersion();
    const installedBuild = fs.realpathSync(`/lib/modules/${ver}/build`);
    const root = sub('broken-build');
    // The installed kernel, linked; its build tree's files linked too, but autoconf.h ends in an #error.
    fs.mkdirSync(path.join(root, 'boot'));
    fs.symlinkSync(`/boot/vmlinuz-${ver}`, path.join(root, 'boot', `vmlinuz-${ver}`));
    const mods = path.join(root, 'lib/modules', ver);
    fs.mkdirSync(mods, { recursive: true });
    for (const f of fs.readdirSync(`/lib/modules/${ver}`)) if (f !== 'build') fs.symlinkSync(path.join(`/lib/modules/${ver}`, f), path.join(mods, f));
    const build = path.join(mods, 'build');
    fs.mkdirSync(path.join(build, 'include/generated'), { recursive: true });
    for (const f of fs.readdirSync(installedBuild)) if (f !== 'include') fs.symlinkSync(path.join(installedBuild, f), path.join(build, f));
    for (const f of fs.readdirSync(path.join(installedBuild, 'include'))) if (f !== 'generated') fs.symlinkSync(path.join(installedBuild, 'include', f), path.join(build, 'include', f));
    const generated = path.join(installedBuild, 'include/generated');
    for (const f of fs.readdirSync(generated)) {
      if (f === 'autoconf.h') fs.writeFileSync(path.join(build, 'include/generated', f), `${fs.readFileSync(path.join(generated, f), 'utf8')}\n#error "this kernel's configuration is broken"\n`);
      else fs.symlinkSync(path.join(generated, f), path.join(build, 'include/generated', f));
    }
    // A QEMU that logs each command line and runs the real one: a guest launch would show as -kernel.
    const log = path.join(scratch, 'qemu.log');
    const qemu = path.join(scratch, 'qemu-system-x86_64');
    fs.writeFileSync(qemu, `#!/bin/sh\necho "$*" >> ${log}\nexec qemu-system-x86_64 "$@"\n`, { mode: 0o755 });

    const r = await execa('node', [cliPath, 'run', '--kernel', root, '--qemu', qemu, '--artifacts', path.join(scratch, 'run')], { reject: false, cwd: repoRoot });
    expect(r.exitCode, r.stderr).to.equal(2);
    const line = r.stderr.split('\n').find((l) => l.startsWith('dmahil: '));
    expect(line).to.match(/^dmahil: --kernel: edudma does not build against .* \(\S+\): .*error: #error "this kernel's configuration is broken"/);
    expect(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '').to.not.include('-kernel');
  });
});
