import { expect } from 'chai';
import { CATALOG } from '../../harness/dma/catalog.js';
import { parseShard, shardEntries } from '../../harness/dma/run-suite.js';

describe('shardEntries (--shard i/n)', () => {
  for (const n of [1, 2, 3, 4, 7, CATALOG.length, CATALOG.length + 3]) {
    it(`puts every catalog scenario in exactly one of ${n} shards, sizes within one`, () => {
      const shards = Array.from({ length: n }, (_, i) => shardEntries(CATALOG, { index: i + 1, count: n }));
      const all = shards.flat();
      expect(all).to.have.length(CATALOG.length);
      expect(new Set(all)).to.have.property('size', CATALOG.length);
      const sizes = shards.map((s) => s.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).to.be.at.most(1);
    });
  }
  it('is deterministic: the same selection gives the same shard', () => {
    expect(shardEntries(CATALOG, { index: 2, count: 3 }).map((e) => e.name)).to.deep.equal(shardEntries([...CATALOG], { index: 2, count: 3 }).map((e) => e.name));
  });
  it('parses i/n and rejects the rest', () => {
    expect(parseShard('2/4')).to.deep.equal({ index: 2, count: 4 });
    for (const bad of ['0/2', '3/2', '1/0', '1', 'a/b', '1/2/3', '-1/2']) expect(() => parseShard(bad), bad).to.throw(/--shard/);
  });
});

describe('saveSnapshot bad input (no QEMU)', () => {
  it('a snapshot directory that cannot be created is a SnapshotError naming the place', async () => {
    const { saveSnapshot } = await import('../../harness/snapshot/index.js');
    const fake = { machine: { ramFile: '/nonexistent/guest-ram', config: { memoryMiB: 256 }, name: 'fake' }, identity: { clientPrivateKey: '', hostPublicKey: '', keyDir: '', initrd: '' } };
    const err = await saveSnapshot(fake as never, { key: 'spec', base: '/etc/hostname/sub' }).then(() => undefined, (e: Error) => e);
    expect(err?.name).to.equal('SnapshotError');
    expect(err?.message).to.match(/cannot create a snapshot directory under \/etc\/hostname\/sub/);
  });
});
