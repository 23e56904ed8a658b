import { expect } from 'chai';
import { checkRange, FOUR_GIB, gpaToFileOffset, GuestRangeError, isGuestRam, layoutFromSplit, mapRange, ramLayout } from '../../harness/memory/index.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function rangeError(fn: () => unknown): GuestRangeError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(GuestRangeError);
    return err as GuestRangeError;
  }
  throw new Error('expected GuestRangeError');
}

describe('memory/address-map', () => {
  describe('low/high split (QEMU 7.2 defaults, facts §5.4)', () => {
    const cases: Array<[('q35' | 'pc'), number, number, number]> = [
      ['q35', 512 * MiB, 512 * MiB, 0],
      ['q35', 0xb0000000 - MiB, 0xb0000000 - MiB, 0], // just under 2.75 GiB: all low
      ['q35', 0xb0000000, 2 * GiB, 0xb0000000 - 2 * GiB], // 2.75 GiB: 2 GiB low
      ['q35', 3 * GiB, 2 * GiB, GiB],
      ['q35', 8 * GiB, 2 * GiB, 6 * GiB],
      ['pc', 3 * GiB, 3 * GiB, 0],
      ['pc', 0xe0000000 - MiB, 0xe0000000 - MiB, 0], // just under 3.5 GiB: all low
      ['pc', 0xe0000000, 3 * GiB, 0xe0000000 - 3 * GiB], // 3.5 GiB: 3 GiB low
      ['pc', 4 * GiB, 3 * GiB, GiB],
    ];
    for (const [type, ram, below, above] of cases) {
      it(`${type} with ${ram / MiB} MiB → ${below / MiB} MiB low, ${above / MiB} MiB at 4 GiB`, () => {
        const l = ramLayout(type, ram);
        expect([l.belowBytes, l.aboveBytes, l.aboveStart, l.ramBytes]).to.deep.equal([below, above, FOUR_GIB, ram]);
      });
    }
    it('rejects nonsense RAM sizes', () => {
      expect(() => ramLayout('q35', 1000)).to.throw(RangeError);
      expect(() => ramLayout('q35', 1.5 * GiB + 0.5)).to.throw(RangeError);
    });
  });

  describe('GPA → file offset', () => {
    it('is the identity below the split and below + (GPA − 4 GiB) above it (measured: q35 3G, pc 4G)', () => {
      const q35 = ramLayout('q35', 3 * GiB);
      expect(gpaToFileOffset(q35, 0x1000)).to.equal(0x1000);
      expect(gpaToFileOffset(q35, 0x7fffffff)).to.equal(0x7fffffff);
      expect(gpaToFileOffset(q35, 0x100000000)).to.equal(0x80000000);
      expect(gpaToFileOffset(q35, 0x13ffff000)).to.equal(0xbffff000);
      const pc = ramLayout('pc', 4 * GiB);
      expect(gpaToFileOffset(pc, 0xbffff000)).to.equal(0xbffff000);
      expect(gpaToFileOffset(pc, 0x100000000)).to.equal(0xc0000000);
    });
    it('honours a high-RAM start other than 4 GiB (AMD HyperTransport hole relocation)', () => {
      const l = layoutFromSplit('q35', 2 * GiB, GiB, 1024 * GiB);
      expect(gpaToFileOffset(l, 1024 * GiB + 5)).to.equal(2 * GiB + 5);
      rangeError(() => gpaToFileOffset(l, FOUR_GIB));
    });
  });

  describe('range check', () => {
    const q35 = ramLayout('q35', 3 * GiB);
    const small = ramLayout('q35', 256 * MiB);

    it('accepts ranges wholly in RAM, up to the last byte of each region', () => {
      checkRange(q35, 0, 0xa0000);
      checkRange(q35, 0x100000, 2 * GiB - 0x100000);
      checkRange(q35, FOUR_GIB, GiB);
      checkRange(small, 256 * MiB - 1, 1);
    });
    it('rejects the PCI hole, naming the range and the hole', () => {
      const e = rangeError(() => checkRange(q35, 0x7ffff000, 0x2000));
      expect(e.message).to.equal(
        'guest range 0x7ffff000-0x80000fff (8192 bytes) is not wholly inside guest RAM: 0x80000000 is in the PCI/MMIO hole 0x80000000-0xffffffff; ' +
          'RAM is 0x0-0x9ffff, 0x100000-0x7fffffff, 0x100000000-0x13fffffff',
      );
      expect(e).to.include({ gpa: 0x7ffff000, length: 0x2000 });
      rangeError(() => checkRange(q35, 0xbffff000, 16)); // wholly inside the hole (measured: writes there miss the file)
      rangeError(() => checkRange(q35, FOUR_GIB - 1, 2)); // straddles hole → high RAM
    });
    it('rejects the legacy VGA/ROM window', () => {
      expect(rangeError(() => checkRange(q35, 0x9f000, 0x2000)).message).to.contain('0xa0000 is in the legacy VGA/ROM window');
      rangeError(() => checkRange(q35, 0xf0000, 1));
    });
    it('rejects ranges beyond the end of RAM', () => {
      expect(rangeError(() => checkRange(q35, FOUR_GIB + GiB - 1, 2)).message).to.contain('0x140000000 is beyond the end of RAM');
      expect(rangeError(() => checkRange(small, 256 * MiB, 1)).message).to.contain('PCI/MMIO hole 0x10000000-0xffffffff');
      expect(rangeError(() => checkRange(small, FOUR_GIB, 1)).message).to.contain('beyond the end of RAM');
    });
    it('rejects non-ranges and arithmetic overflow', () => {
      expect(rangeError(() => checkRange(q35, -1, 1)).message).to.contain('non-negative safe integer');
      expect(rangeError(() => checkRange(q35, 0.5, 1)).message).to.contain('non-negative safe integer');
      expect(rangeError(() => checkRange(q35, 0x1000, 0)).message).to.contain('positive integer');
      expect(rangeError(() => checkRange(q35, 0x1000, -4)).message).to.contain('positive integer');
      expect(rangeError(() => checkRange(q35, Number.MAX_SAFE_INTEGER, 2)).message).to.contain('overflows');
      expect(rangeError(() => checkRange(q35, 2 ** 60, 1)).message).to.contain('non-negative safe integer');
    });
  });

  describe('segments', () => {
    it('splits a range over GPA-adjacent regions whose file offsets are not adjacent', () => {
      const l = { ...layoutFromSplit('q35', 8 * MiB, 0), regions: [
        { gpa: 0x0, size: 0x1000, fileOffset: 0x1000 },
        { gpa: 0x1000, size: 0x1000, fileOffset: 0x0 },
      ] };
      expect(mapRange(l, 0x800, 0x1000)).to.deep.equal([
        { gpa: 0x800, length: 0x800, fileOffset: 0x1800, rangeOffset: 0 },
        { gpa: 0x1000, length: 0x800, fileOffset: 0x0, rangeOffset: 0x800 },
      ]);
      rangeError(() => mapRange(l, 0x1800, 0x1000));
    });
    it('keeps a range that stays in one region in one piece', () => {
      expect(mapRange(ramLayout('q35', 3 * GiB), FOUR_GIB + 0x10, 0x20)).to.deep.equal([{ gpa: FOUR_GIB + 0x10, length: 0x20, fileOffset: 2 * GiB + 0x10, rangeOffset: 0 }]);
    });
  });
});

describe('memory: isGuestRam', () => {
  it('answers what a read would: inside RAM yes, across a hole or past the end no', () => {
    const l = ramLayout('q35', 256 * 1024 * 1024);
    expect(isGuestRam(l, 0x100000, 4096)).to.equal(true);
    expect(isGuestRam(l, 0xa0000, 16)).to.equal(false);
    expect(isGuestRam(l, 256 * 1024 * 1024 - 4096, 4097)).to.equal(false);
    expect(isGuestRam(l, 0x7ff00000000, 4096)).to.equal(false);
  });
});
