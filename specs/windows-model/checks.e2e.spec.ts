// The review's races and waits (guest-driver/windows/README.md, "Review findings"), run as the model's
// sequences (`edudma-model.exe model-check <name>`: another CPU at every point the driver gives away,
// an interrupt at the timer's expiry, a request behind held map registers). The driver passes each;
// a mutant that undoes one fix fails its check, so the checks can fail.
import { expect } from 'chai';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { NT_MODEL_EXE } from '../../harness/guest/nt-model/session.js';
import type { WinePrefix } from '../windows-package/support.js';
import { buildModel, buildMutant, modelPrefix, repoRoot } from './support.js';

const CHECKS = ['held-run-blocks-map-registers', 'cancel-while-mapping', 'remove-with-queued-dpc', 'stale-timer-dpc', 'finish-vs-release', 'cancel-vs-completion'];

interface CheckLine {
  check: string;
  ok: boolean;
  detail: string;
}

async function modelCheck(prefix: WinePrefix, exe: string, name: string): Promise<{ code: number; line: CheckLine; stderr: string }> {
  const r = await execa('wine', [exe, 'model-check', name], { env: prefix.env, reject: false, timeout: 120_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let line: CheckLine;
  try {
    line = JSON.parse(last) as CheckLine;
  } catch {
    throw new Error(`model-check ${name} printed no result line (exit ${r.exitCode}): ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
  }
  return { code: r.exitCode ?? -1, line, stderr: r.stderr };
}

describe('windows driver in the NT DMA model: the review\'s races and waits', function () {
  this.timeout(300_000);
  let prefix: WinePrefix;
  const exe = path.join(repoRoot, NT_MODEL_EXE);

  before(async () => {
    await buildModel();
    prefix = modelPrefix();
  });

  for (const name of CHECKS) {
    it(`${name}: the driver passes`, async () => {
      const r = await modelCheck(prefix, exe, name);
      expect(r.line.check).to.equal(name);
      expect(r.line.ok, r.line.detail).to.equal(true);
      expect(r.code).to.equal(0);
    });
  }

  it('an unknown check is refused by name', async () => {
    const r = await execa('wine', [exe, 'model-check', 'no-such-check'], { env: prefix.env, reject: false });
    expect(r.exitCode).to.not.equal(0);
    expect(r.stdout + r.stderr).to.match(/no-such-check/);
  });

  describe('a mutant without KeFlushQueuedDpcs before the device goes', () => {
    let root = '';
    after(async () => {
      if (root) await fs.rm(root, { recursive: true, force: true });
    });
    it('remove-with-queued-dpc catches it as a DPC left queued on a deleted device', async () => {
      const m = await buildMutant('no-dpc-flush', 'pnp.c', (t) => t.replace(/\tKeFlushQueuedDpcs\(\);\n/, ''));
      root = m.root;
      const r = await modelCheck(prefix, m.exe, 'remove-with-queued-dpc');
      expect(r.line.ok, r.line.detail).to.equal(false);
      expect(r.line.detail).to.match(/MODEL BUGCHECK rule=dpc-after-delete ddi=IoDeleteDevice/);
      expect(r.code).to.equal(3);
    });
  });
});
