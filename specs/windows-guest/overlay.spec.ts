// Per-run overlays: created over the golden image with an explicit backing format, and the golden image
// is never written — proven by writing through the overlay with qemu-io and hashing the base.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createOverlay, imageInfo, overlayArgs } from '../../harness/guest/windows/overlay.js';
import { UsageError } from '../../harness/errors.js';

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('windows-guest/overlay', function () {
  this.timeout(30_000);
  let dir: string;
  let base: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-overlay-'));
    base = path.join(dir, 'golden image.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xaa 0 1M', base], { stdio: 'ignore' });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('builds the qemu-img command with absolute paths and -F qcow2', () => {
    expect(overlayArgs('a/base.qcow2', '/r/o.qcow2')).to.deep.equal(['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', '-b', path.resolve('a/base.qcow2'), '-F', 'qcow2', '/r/o.qcow2']);
  });

  it('creates an overlay backed by the base; writes land in the overlay, never in the base', async () => {
    const before = sha(base);
    const overlay = path.join(dir, 'run 1', 'disk-overlay.qcow2');
    const info = await createOverlay(base, overlay);
    expect(info.format).to.equal('qcow2');
    expect(info.backingFile).to.equal(base);
    expect(info.backingFormat).to.equal('qcow2');
    expect(info.virtualSize).to.equal(64 * 1024 * 1024);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x55 0 64k', '-c', 'write -P 0x77 8M 1M', overlay], { stdio: 'ignore' });
    // the overlay reads the new data, the untouched range from the base
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x55 0 64k', '-c', 'read -P 0xaa 64k 960k', '-c', 'read -P 0x77 8M 1M', overlay], { stdio: 'ignore' });
    expect(sha(base)).to.equal(before);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0xaa 0 1M', base], { stdio: 'ignore' });
    // a second run gets a fresh overlay, not the first run's disk
    await createOverlay(base, overlay);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0xaa 0 64k', overlay], { stdio: 'ignore' });
    expect((await imageInfo(base)).backingFile).to.equal(undefined);
  });

  it('refuses a missing base, a raw base, and the base as its own overlay, naming the next step', async () => {
    const expectUsage = async (p: Promise<unknown>, re: RegExp) => {
      let err: unknown;
      try {
        await p;
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(UsageError);
      expect((err as UsageError).describe()).to.match(re);
    };
    await expectUsage(createOverlay(path.join(dir, 'nope.qcow2'), path.join(dir, 'o.qcow2')), /not readable \(ENOENT\).*make windows-image/);
    const raw = path.join(dir, 'raw.img');
    fs.writeFileSync(raw, Buffer.alloc(1024 * 1024));
    await expectUsage(createOverlay(raw, path.join(dir, 'o.qcow2')), /is raw, not qcow2.*qemu-img convert/);
    await expectUsage(createOverlay(base, base), /would replace its own base image/);
  });
});
