import { expect } from 'chai';
import { pattern, patternByte } from '../../harness/contract/pattern.js';
import patternVectors from '../../harness/contract/pattern-vectors.json' with { type: 'json' };

const { vectors } = patternVectors;

describe('contract: test pattern', () => {
  it('reproduces every shared test vector', () => {
    expect(vectors.length).to.be.greaterThan(5);
    for (const v of vectors) {
      expect(pattern(v.seed, v.length, v.start).toString('hex'), `seed ${v.seed} start ${v.start}`).to.equal(v.hex);
    }
  });

  it('computes any byte alone, equal to the byte in a whole buffer', () => {
    const whole = pattern(7, 10000);
    for (const i of [0, 1, 3, 4, 4095, 4096, 9999]) expect(patternByte(7, i)).to.equal(whole[i]);
    expect(pattern(7, 100, 4000).equals(whole.subarray(4000, 4100))).to.equal(true);
  });

  it('differs between seeds and under any shift', () => {
    const a = pattern(1, 4096);
    expect(a.equals(pattern(2, 4096))).to.equal(false);
    for (const shift of [1, 2, 3, 4, 8, 4095]) {
      expect(a.subarray(shift).equals(pattern(1, 4096 - shift))).to.equal(false);
    }
  });

  it('never looks like the fill bytes for a whole page', () => {
    const p = pattern(0xa5a5a5a5, 4096);
    expect(p.every((b) => b === 0xa5)).to.equal(false);
    expect(p.every((b) => b === 0x3c)).to.equal(false);
  });
});
