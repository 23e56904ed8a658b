// The image cache forgets entries nobody used for two weeks, and only those.
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PRUNE_AFTER_MS, stampAndPrune } from '../../images/linux/cache-prune.js';

describe('images: cache pruning', () => {
  let dir: string;
  const now = new Date('2026-11-24T12:00:00Z');
  const entry = (name: string, ageDays: number): string => {
    const p = path.join(dir, name);
    mkdirSync(p);
    writeFileSync(path.join(p, 'vmlinux'), 'x');
    const t = new Date(now.getTime() - ageDays * 24 * 3600 * 1000);
    utimesSync(p, t, t);
    return p;
  };
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'dmahil-cache-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('removes image and kernel entries unused for 14 days, keeps recent ones, used ones and anything else', async () => {
    const used = [entry('linux-kernel-6.1.0-56-amd64-aaaa', 40), entry('linux-image-aaaa', 40)];
    entry('linux-kernel-6.1.0-55-amd64-bbbb', 15);
    entry('linux-image-bbbb', 20);
    entry('linux-image-cccc', 13); // another run may still use it
    entry('windows-base', 100); // not ours to judge
    const removed = await stampAndPrune(dir, used, PRUNE_AFTER_MS, now);
    expect(removed.sort()).to.deep.equal(['linux-image-bbbb', 'linux-kernel-6.1.0-55-amd64-bbbb']);
    for (const kept of ['linux-kernel-6.1.0-56-amd64-aaaa', 'linux-image-aaaa', 'linux-image-cccc', 'windows-base']) {
      expect(existsSync(path.join(dir, kept)), kept).to.equal(true);
    }
    // The entries in use are stamped now, so a later prune keeps them for another 14 days.
    expect(statSync(used[0]!).mtimeMs).to.equal(now.getTime());
  });
});
