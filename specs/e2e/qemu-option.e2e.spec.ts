// --qemu PATH (issue 14): a QEMU of the user's own build instead of qemu-system-x86_64 on PATH. A symlink
// to the system QEMU at another path stands in for that build (a copy would not do: Debian's QEMU loads its
// accelerator modules from beside its real path): the run must launch it (cmdline.txt), probe its
// edu and name it in results.json; a path that is not a usable QEMU is one line and exit 2, nothing booted.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { findExecutable } from '../../harness/machine/launch-checks.js';
import { BOOT_TIMEOUT_MS, cliPath } from './support.js';

describe('e2e: dmahil --qemu PATH', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let scratch: string;
  let ownQemu: string;

  before(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-qemu-'));
    const system = findExecutable('qemu-system-x86_64');
    if (!system) throw new Error('qemu-system-x86_64 is not on PATH');
    ownQemu = path.join(scratch, 'build', 'qemu-system-x86_64');
    await fs.mkdir(path.dirname(ownQemu));
    await fs.symlink(system, ownQemu);
  });
  after(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  it('runs on the given binary: launched, its edu probed, named in results.json', async () => {
    const artifacts = path.join(scratch, 'run');
    // The beyond-mask control needs the edu probe, so the probe runs on the given binary too.
    const r = await execa('node', [cliPath, 'run', '--qemu', ownQemu, '--grep', '^(round-trip 4096 B|control: address beyond the 28-bit mask)$', '--json', '--artifacts', artifacts], {
      reject: false,
    });
    expect(r.exitCode, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; host: { qemu: string; qemuBinary: string; edu: string | null } };
    expect(report.ok).to.equal(true);
    expect(report.host.qemuBinary).to.equal(ownQemu);
    expect(report.host.qemu).to.match(/^\d+\.\d+(\.\d+)?/);
    expect(report.host.edu).to.match(/^QEMU \d/);
    const onDisk = JSON.parse(await fs.readFile(path.join(artifacts, 'results.json'), 'utf8')) as { host: { qemuBinary: string } };
    expect(onDisk.host.qemuBinary).to.equal(ownQemu);
    // Every machine the run launched is the given binary, not the one on PATH.
    const cmdlines: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await fs.readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.name === 'cmdline.txt') cmdlines.push(await fs.readFile(p, 'utf8'));
      }
    };
    await walk(artifacts);
    expect(cmdlines, 'no machine was launched').to.not.be.empty;
    for (const c of cmdlines) {
      const words = c.replace(/^#.*\n/, '').trim().split(' ').map((w) => w.replace(/'/g, ''));
      expect(words, c).to.include(ownQemu).and.not.include('qemu-system-x86_64').and.not.include('/usr/bin/qemu-system-x86_64');
    }
  });

  const notQemu = (): Array<[string, () => Promise<string>, RegExp]> => [
    ['a nonexistent path', async () => path.join(scratch, 'no-such-qemu'), /--qemu \S+no-such-qemu: no such file/],
    ['a directory', async () => scratch, /--qemu \S+ is not a file/],
    [
      'a file that is not executable',
      async () => {
        const f = path.join(scratch, 'not-executable');
        await fs.writeFile(f, 'x', { mode: 0o644 });
        return f;
      },
      /--qemu \S+not-executable is not executable/,
    ],
    ['/bin/true', async () => '/bin/true', /--qemu \/bin\/true is not a QEMU dmahil can use: .*did not say which QEMU it is/],
    [
      'a script that prints something else',
      async () => {
        const f = path.join(scratch, 'impostor');
        await fs.writeFile(f, '#!/bin/sh\necho "hello from an impostor"\n', { mode: 0o755 });
        return f;
      },
      /--qemu \S+impostor is not a QEMU dmahil can use: .*did not say which QEMU it is \(hello from an impostor\)/,
    ],
    [
      'a QEMU without the edu device',
      async () => {
        const f = path.join(scratch, 'no-edu');
        await fs.writeFile(f, '#!/bin/sh\n[ "$1" = --version ] && echo "QEMU emulator version 9.9.9" && exit 0\necho "Controller/Bridge/Hub devices:"\n', { mode: 0o755 });
        return f;
      },
      /--qemu \S+no-edu is not a QEMU dmahil can use: QEMU 9\.9\.9 at \S+ has no edu device/,
    ],
  ];

  it('a binary that answers like QEMU but cannot start a machine: the error, exit 2, no hang', async () => {
    const f = path.join(scratch, 'cannot-start');
    await fs.writeFile(
      f,
      '#!/bin/sh\ncase "$1" in --version) echo "QEMU emulator version 7.2.22"; exit 0;; esac\n' +
        'for a in "$@"; do [ "$a" = help ] && { echo \'name "edu", bus PCI\'; exit 0; }; done\n' +
        'echo "qemu-system-x86_64: fatal: could not load module for type \'tcg-accel-ops\'" >&2; exit 1\n',
      { mode: 0o755 },
    );
    // The beyond-mask control makes the run probe the edu, which launches the binary.
    const r = await execa('node', [cliPath, 'run', '--qemu', f, '--grep', '^control: address beyond the 28-bit mask$', '--artifacts', path.join(scratch, 'cannot-start-run')], {
      reject: false,
      timeout: 120_000,
    });
    expect(r.timedOut, 'dmahil hung after the error').to.equal(false);
    expect(r.exitCode, r.stderr).to.equal(2);
    expect(r.stderr.trim().split('\n').at(-1)).to.match(/^dmahil: QEMU exited at start \(exit code 1\)/);
  });

  for (const command of ['run', 'explore', 'shell', 'doctor']) {
    for (const [what, make, message] of notQemu()) {
      if (command !== 'run' && what !== '/bin/true' && what !== 'a nonexistent path') continue;
      it(`dmahil ${command} --qemu ${what}: one line naming it and the fix, exit 2, nothing started`, async () => {
        const bin = await make();
        const artifacts = path.join(scratch, `bad-${command}-${what.replace(/\W+/g, '-')}`);
        const argv = command === 'doctor' ? [command, '--qemu', bin] : [command, '--qemu', bin, '--artifacts', artifacts];
        const r = await execa('node', [cliPath, ...argv], { reject: false, input: '' });
        expect(r.exitCode, r.stderr).to.equal(2);
        expect(r.stderr.trim().split('\n'), r.stderr).to.have.length(1);
        expect(r.stderr).to.match(message).and.match(/ — pass --qemu |chmod \+x it, or pass --qemu /);
        expect(await fs.access(artifacts).then(() => true, () => false), 'the command created its artifacts').to.equal(false);
      });
    }
  }
});
