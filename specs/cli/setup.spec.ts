// dmahil setup: what `make run`'s dependency step does, from the CLI (and so from an installed package:
// specs/package/pack.e2e.spec.ts runs `npx dmahil setup` there). make test has installed every package
// already, so here the shipped scripts/install-deps.sh finds nothing missing; its refusal to install
// without root or sudo is its own message, passed through with exit 2.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { execa } from 'execa';
import { setupCommand } from '../../harness/cli/setup.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = path.join(repoRoot, 'dist/harness/cli/main.js');

describe('dmahil setup', function () {
  this.timeout(60_000);

  it("runs the package's install-deps.sh: on a prepared machine, exit 0 and the next step", async () => {
    const r = await execa('node', [cli, 'setup'], { reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/this machine has the Debian packages dmahil run needs; next: dmahil doctor, then dmahil run/);
  });

  it('takes no options: one line, exit 2, nothing installed', async () => {
    for (const args of [['setup', '--all'], ['setup', 'test']]) {
      const r = await execa('node', [cli, ...args], { reject: false });
      expect(r.exitCode, r.stderr).to.equal(2);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(/is not an option of dmahil setup — run "dmahil setup" alone/);
    }
  });

  it("a failing install step: its own message stands, and setup exits 2", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-setup-'));
    try {
      const script = path.join(dir, 'install-deps.sh');
      // What install-deps.sh prints without root or sudo, for a package this machine lacks.
      await fs.writeFile(script, 'echo "dmahil: missing Debian packages: qemu-system-x86. Run as root or with passwordless sudo, or install them: sudo apt-get install -y qemu-system-x86" >&2\nexit 1\n');
      expect(await setupCommand(script, 'ignore')).to.equal(2);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
