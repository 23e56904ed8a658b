// Both readers against a synthetic RAM file and a stand-in for QMP pmemsave that copies from that file,
// so the bounds checks, segment assembly and scratch-file handling are pinned without QEMU.
// guest-memory.e2e.spec compares them against a real QEMU.

import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GuestMemoryError, GuestRangeError, layoutFromSplit, openGuestMemory, SharedFileMemory, type QmpExecutor, type RamLayout } from '../../harness/memory/index.js';
import { scratchDir } from '../machine/support/fixtures.js';

const MiB = 2 ** 20;

describe('memory/readers (synthetic RAM file)', () => {
  let dir: string;
  let ramFile: string;
  let bytes: Buffer;
  const layout: RamLayout = layoutFromSplit('q35', 2 * MiB, 0);
  const commands: Array<Record<string, unknown>> = [];
  const fakeQmp: QmpExecutor = {
    async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
      commands.push({ command, ...args });
      const { val, size, filename } = args as { val: number; size: number; filename: string };
      fs.writeFileSync(filename, bytes.subarray(val, val + size)); // below the split, GPA = offset
      return {} as T;
    },
  };

  before(() => {
    dir = scratchDir('readers');
    ramFile = path.join(dir, 'guest-ram');
    bytes = crypto.randomBytes(2 * MiB);
    fs.writeFileSync(ramFile, bytes);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('picks the shared file when there is one, pmemsave otherwise', async () => {
    expect((await openGuestMemory({ qmp: fakeQmp, ramFile, memoryLayout: layout, runDir: dir })).kind).to.equal('shared-file');
    expect((await openGuestMemory({ qmp: fakeQmp, ramFile: undefined, memoryLayout: layout, runDir: dir })).kind).to.equal('pmemsave');
    const err = await openGuestMemory({ qmp: fakeQmp, ramFile: undefined, memoryLayout: layout, runDir: dir }, { kind: 'shared-file' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(GuestMemoryError);
  });

  it('both read the right bytes, and pmemsave leaves no scratch file', async () => {
    for (const kind of ['shared-file', 'pmemsave'] as const) {
      const mem = await openGuestMemory({ qmp: fakeQmp, ramFile, memoryLayout: layout, runDir: dir }, { kind });
      expect(mem.ramBytes).to.equal(2 * MiB);
      expect((await mem.read(0x1234, 4095)).equals(bytes.subarray(0x1234, 0x1234 + 4095)), kind).to.equal(true);
      expect((await mem.read(0x100000, MiB)).equals(bytes.subarray(0x100000)), kind).to.equal(true);
      await mem.close();
      expect(await mem.read(0, 1).catch((e: unknown) => e)).to.be.instanceOf(GuestMemoryError);
    }
    expect(fs.readdirSync(dir)).to.deep.equal(['guest-ram']);
  });

  it('bounds-check before touching anything: no pmemsave is issued for a bad range', async () => {
    const mem = await openGuestMemory({ qmp: fakeQmp, ramFile: undefined, memoryLayout: layout, runDir: dir });
    const before = commands.length;
    expect(await mem.read(0xa0000, 16).catch((e: unknown) => e)).to.be.instanceOf(GuestRangeError);
    expect(await mem.read(2 * MiB - 8, 16).catch((e: unknown) => e)).to.be.instanceOf(GuestRangeError);
    expect(commands.length).to.equal(before);
  });

  it('assembles a read from GPA-adjacent regions stored apart in the file', async () => {
    const swapped: RamLayout = { ...layout, regions: [{ gpa: 0, size: 0x1000, fileOffset: 0x1000 }, { gpa: 0x1000, size: 0x1000, fileOffset: 0 }] };
    const mem = await SharedFileMemory.open(ramFile, { ...swapped, ramBytes: 2 * MiB });
    const got = await mem.read(0x800, 0x1000);
    expect(got.equals(Buffer.concat([bytes.subarray(0x1800, 0x2000), bytes.subarray(0, 0x800)]))).to.equal(true);
  });

  it('refuses a file whose size is not the RAM size, and reports a vanished file clearly', async () => {
    const err = await SharedFileMemory.open(ramFile, layoutFromSplit('q35', 4 * MiB, 0)).catch((e: unknown) => e);
    expect((err as Error).message).to.match(/is 2097152 bytes, but the machine has 4194304 bytes of RAM/);
    const copy = path.join(dir, 'gone');
    fs.copyFileSync(ramFile, copy);
    const mem = await SharedFileMemory.open(copy, layout);
    fs.rmSync(copy);
    const gone = await mem.read(0, 16).catch((e: unknown) => e);
    expect(gone).to.be.instanceOf(GuestMemoryError);
    expect((gone as GuestMemoryError).describe()).to.match(/cannot be opened \(ENOENT\).*shut down/);
  });
});
