import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { EnvironmentError } from '../../harness/errors.js';
import { createRunDir } from '../../harness/machine/run-dir.js';

describe('machine: run directories', () => {
  it('creates a private directory, with any missing parents', () => {
    const base = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-rd-')), 'a', 'b');
    const dir = createRunDir(base, 'x');
    expect(fs.statSync(dir).mode & 0o777).to.equal(0o700);
    fs.rmSync(path.dirname(path.dirname(base)), { recursive: true, force: true });
  });

  // Node's recursive mkdirSync never returns for a path under /proc; this must fail, not hang.
  for (const base of ['/proc/dmahil-no/such', '/etc/passwd/sub']) {
    it(`fails with a clear error for an unusable base ${base}`, () => {
      expect(() => createRunDir(base, 'x')).to.throw(EnvironmentError, /run directory base .* \((ENOENT|ENOTDIR)\)/);
    });
  }
});
