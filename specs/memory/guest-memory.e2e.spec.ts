// Both readers against a real QEMU. `-device loader` puts known random blobs at chosen guest-physical
// addresses (including the last page below the split and both ends of RAM above 4 GiB) before the
// first instruction, so each reader is checked against the truth, not just against the other.

import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { Machine, escapeQemuOptValue } from '../../harness/machine/index.js';
import { FOUR_GIB, GuestMemoryError, GuestRangeError, layoutFromSplit, openGuestMemory, type GuestMemory } from '../../harness/memory/index.js';
import { pausedConfig, scratchDir } from '../machine/support/fixtures.js';

const GiB = 2 ** 30;

interface Blob {
  gpa: number;
  bytes: Buffer;
}

function loaderArgs(dir: string, blobs: Blob[]): string[] {
  return blobs.flatMap((b, i) => {
    const file = path.join(dir, `blob,${i}.bin`);
    fs.writeFileSync(file, b.bytes);
    return ['-device', `loader,file=${escapeQemuOptValue(file)},addr=0x${b.gpa.toString(16)},force-raw=on`];
  });
}

/** RAM aliases as QEMU itself reports them (`info mtree`), to check the address map against. */
async function qemuRamSplit(m: Machine): Promise<{ below: number; above: number }> {
  const text = await m.qmp.execute<string>('human-monitor-command', { 'command-line': 'info mtree' });
  const size = (name: string) => {
    const r = new RegExp(`([0-9a-f]{16})-([0-9a-f]{16}) \\(prio 0, ram\\): alias ${name} @pc\\.ram`).exec(text);
    return r ? parseInt(r[2]!, 16) - parseInt(r[1]!, 16) + 1 : 0;
  };
  return { below: size('ram-below-4g'), above: size('ram-above-4g') };
}

describe('memory readers (real QEMU)', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => (dir = scratchDir('memory')));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('q35 with 3 GiB: 2 GiB low, 1 GiB at 4 GiB', () => {
    let m: Machine;
    let shared: GuestMemory;
    let pmem: GuestMemory;
    const blobs: Blob[] = [
      { gpa: 0x1000, bytes: crypto.randomBytes(4096) },
      { gpa: 0x10000000 - 3, bytes: crypto.randomBytes(1 << 20) }, // unaligned, 1 MiB
      { gpa: 2 * GiB - 4096, bytes: crypto.randomBytes(4096) }, // last page below the split
      { gpa: FOUR_GIB, bytes: crypto.randomBytes(4096) }, // first byte above it
      { gpa: FOUR_GIB + GiB - 4096, bytes: crypto.randomBytes(4096) }, // last page of RAM
    ];

    before(async () => {
      m = await Machine.launch(pausedConfig({ name: 'mem3g', memoryMiB: 3072, extraArgs: ['-S', ...loaderArgs(dir, blobs)] }), { artifactsDir: path.join(dir, 'art-3g') });
      shared = await openGuestMemory(m);
      pmem = await openGuestMemory(m, { kind: 'pmemsave' });
    });
    after(async () => {
      await m?.shutdown();
    });

    it('the address map matches the RAM aliases QEMU reports', async () => {
      const split = await qemuRamSplit(m);
      expect(split).to.deep.equal({ below: 2 * GiB, above: GiB });
      expect(m.memoryLayout).to.deep.equal(layoutFromSplit('q35', split.below, split.above));
      expect(shared.kind).to.equal('shared-file');
      expect(pmem.kind).to.equal('pmemsave');
    });

    it('each reader returns the loaded bytes at every address, below and above 4 GiB', async () => {
      for (const b of blobs) {
        for (const mem of [shared, pmem]) {
          const got = await mem.read(b.gpa, b.bytes.length);
          expect(got.equals(b.bytes), `${mem.kind} at 0x${b.gpa.toString(16)}`).to.equal(true);
        }
      }
    });

    it('the readers agree on sub-ranges and on untouched RAM', async () => {
      for (const [gpa, len] of [[0x1000 + 17, 100], [0x500000, 8192], [FOUR_GIB + 0x123456, 3000], [2 * GiB - 1, 1]] as const) {
        expect((await shared.read(gpa, len)).equals(await pmem.read(gpa, len)), `0x${gpa.toString(16)}+${len}`).to.equal(true);
      }
    });

    it('both reject reads outside RAM before doing anything', async () => {
      for (const mem of [shared, pmem]) {
        for (const [gpa, len] of [[2 * GiB - 8, 16], [3 * GiB, 4], [FOUR_GIB + GiB - 8, 16], [0xa0000, 16], [0, 0]] as const) {
          const err = await mem.read(gpa, len).catch((e: unknown) => e);
          expect(err, `${mem.kind} 0x${gpa.toString(16)}+${len}`).to.be.instanceOf(GuestRangeError);
        }
      }
      // qmp.log is written through a stream: under load its last lines reach the file a moment later.
      const count = (): number => fs.readFileSync(path.join(m.artifactsDir, 'qmp.log'), 'utf8').match(/"pmemsave"/g)?.length ?? 0;
      for (let i = 0; i < 40 && count() < blobs.length + 4; i++) await sleep(50);
      expect(count()).to.equal(blobs.length + 4); // none for the rejected ranges
      expect(fs.readdirSync(m.runDir).sort()).to.deep.equal(['guest-ram', 'qmp.sock']); // pmemsave scratch files removed
    });

    it('after shutdown the shared reader says the machine is gone', async () => {
      await m.shutdown();
      const err = await shared.read(0x1000, 16).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestMemoryError);
      expect((err as GuestMemoryError).message).to.match(/cannot be opened \(ENOENT\)/);
    });
  });

  it('without a shared RAM file, openGuestMemory falls back to pmemsave', async () => {
    const blob: Blob = { gpa: 0x200000, bytes: crypto.randomBytes(4096) };
    const m = await Machine.launch(pausedConfig({ name: 'noshare', sharedRam: false, extraArgs: ['-S', ...loaderArgs(dir, [blob])] }), { artifactsDir: path.join(dir, 'art-noshare') });
    try {
      expect(m.ramFile).to.equal(undefined);
      expect(fs.readdirSync(m.runDir)).to.deep.equal(['qmp.sock']);
      const mem = await openGuestMemory(m);
      expect(mem.kind).to.equal('pmemsave');
      expect((await mem.read(blob.gpa, 4096)).equals(blob.bytes)).to.equal(true);
    } finally {
      await m.shutdown();
    }
  });
});
