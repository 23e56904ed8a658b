import { expect } from 'chai';
import { parseDmactlOutput, parseInfoResult, parseReattachResult, parseRunResult } from '../../harness/contract/result.js';
import { restoredConfigProblem } from '../../harness/guest/linux/profile.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { GuestContractError } from '../../harness/errors.js';

const RAM = 256 * 1024 * 1024;
const inRam = (gpa: number, len: number): boolean => gpa >= 0 && gpa + len <= RAM;
const scenario = makeScenario({ size: 5000, offset: 100, seed: 9 });

function good(): Record<string, any> {
  const buffer = (role: string, page: number) => ({
    role, kind: 'client', offset: 100, length: 5000, bounced: false,
    pages: [`0x${page.toString(16)}`, `0x${(page + 4096).toString(16)}`],
    segments: [
      { offset: 0, length: 4095, device: `0x${(page + 100).toString(16)}` },
      { offset: 4095, length: 905, device: `0x${(page + 100 + 4095).toString(16)}` },
    ],
  });
  return {
    contract: 1, ok: true, command: 'run', os: 'linux',
    driver: { name: 'edudma', version: '0.1.0', api: 'linux-dma-api', dmaMaskBits: 28 },
    scenario: { ...scenario }, handle: 1,
    buffers: [buffer('source', 0x100000), buffer('destination', 0x200000)],
    calls: [{ name: 'dma_map_single', count: 2, status: 0 }],
    timings: { toDeviceUs: 1, fromDeviceUs: 2, totalUs: 3, eduOps: 4 }, error: null,
  };
}

function rejects(mutate: (r: Record<string, any>) => void, why: RegExp): void {
  const r = good();
  mutate(r);
  expect(() => parseRunResult(r, scenario, inRam)).to.throw(GuestContractError, why);
}

describe('contract: checking what the guest reported', () => {
  it('accepts a consistent result and turns addresses into numbers', () => {
    const r = parseRunResult(good(), scenario, inRam);
    expect(r.buffers[1]!.pages).to.deep.equal([0x200000, 0x201000]);
    expect(r.buffers[1]!.segments[1]!.device).to.equal(0x200000 + 100 + 4095);
  });

  it('rejects a page outside guest RAM before anything is read', () => {
    rejects((r) => (r.buffers[1].pages[1] = '0x7fff0000000'), /outside guest RAM/);
  });
  it('rejects an unaligned page', () => rejects((r) => (r.buffers[0].pages[0] = '0x100010'), /not page aligned/));
  it('rejects a page count that does not fit offset and length', () => rejects((r) => r.buffers[0].pages.pop(), /needs 2/));
  it('rejects segments with a gap', () => rejects((r) => (r.buffers[0].segments[1].offset = 4096), /gap or overlap/));
  it('rejects segments that do not cover the data', () => rejects((r) => (r.buffers[0].segments[1].length = 900), /cover 4995 bytes of 5000/));
  it('rejects a segment longer than one edu operation', () => rejects((r) => (r.buffers[0].segments[0].length = 4096), /result schema|outside 1..4095/));
  it('rejects a scenario echo that differs from the request', () => rejects((r) => (r.scenario.seed = 10), /seed came back as 10/));
  it('rejects a length other than the scenario size', () => rejects((r) => (r.buffers[1].length = 4999), /length 4999/));
  it('rejects a client buffer whose data is not at the scenario offset', () => rejects((r) => (r.buffers[1].offset = 101), /offset 101 is not the scenario offset 100/));
  it('rejects an address beyond any physical address', () => rejects((r) => (r.buffers[0].segments[0].device = '0xffffffffffffffff'), /beyond any physical address/));
  it('rejects a malformed address', () => rejects((r) => (r.buffers[0].pages[0] = '4096'), /result schema/));
  it('rejects an unknown contract version', () => rejects((r) => (r.contract = 2), /result schema/));
  it('rejects ok without a destination', () => rejects((r) => r.buffers.pop(), /both a source and a destination/));

  it('passes a guest failure through with its error', () => {
    const r = good();
    r.ok = false;
    r.buffers = [];
    r.error = { code: 'map', message: 'dma_map_single failed' };
    expect(parseRunResult(r, scenario, inRam).error).to.deep.equal({ code: 'map', message: 'dma_map_single failed' });
  });

  it('accepts partial segments from a run that failed part-way, but still checks its pages', () => {
    const r = good();
    r.ok = false;
    r.error = { code: 'timeout', message: 'no completion interrupt' };
    r.buffers[1].segments.pop();
    expect(parseRunResult(r, scenario, inRam).error!.code).to.equal('timeout');
    r.buffers[1].pages[0] = '0x7fff0000000';
    expect(() => parseRunResult(r, scenario, inRam)).to.throw(GuestContractError, /outside guest RAM/);
  });

  it('finds the JSON line in noisy output and rejects output without one', () => {
    expect(parseDmactlOutput('warning: x\r\n{"a":1}\r\n')).to.deep.equal({ a: 1 });
    expect(() => parseDmactlOutput('Segmentation fault\n')).to.throw(GuestContractError, /no JSON object/);
    expect(() => parseDmactlOutput('{"a":\n')).to.throw(GuestContractError, /not valid JSON/);
  });

  it('parses info', () => {
    const info = parseInfoResult({
      contract: 1, ok: true, command: 'info', os: 'windows',
      driver: { name: 'edudma', version: '0.1.0', api: 'wdm-dma-v3', adapterVersion: 3, dmaOpsSize: 320, flushDmaBuffer: true },
      faults: ['none', 'skip-sync'], methods: ['streaming'], maxSize: 1048576, held: 0, error: null,
    });
    expect(info.driver.flushDmaBuffer).to.equal(true);
    expect(() => parseInfoResult({ contract: 1, ok: true, command: 'run' })).to.throw(GuestContractError, /expected "info"/);
  });

  describe('reattach (after a snapshot restore)', () => {
    // The edu's config space as Linux reads it after a good re-attach: IDs, COMMAND 0x0406, BAR0 0xfea00000.
    const good = ['0x11e81234', '0x00100406', '0x00ff0010', '0x00000000', '0xfea00000', ...Array(11).fill('0x00000000')];
    const answer = (config: string[]): Record<string, unknown> => ({ contract: 1, ok: true, command: 'reattach', os: 'linux', config, error: null });

    it('parses the config dwords and finds nothing wrong with a live edu', () => {
      const r = parseReattachResult(answer(good));
      expect(r.config[4]).to.equal(0xfea00000);
      expect(restoredConfigProblem(r.config)).to.equal(undefined);
    });
    it('rejects a config of the wrong length or format before using it', () => {
      expect(() => parseReattachResult(answer(good.slice(1)))).to.throw(GuestContractError, /result schema/);
      expect(() => parseReattachResult(answer([...good.slice(1), 'fea00000']))).to.throw(GuestContractError, /result schema/);
    });
    it('names what is dead: bus mastering off, no BAR0, another device', () => {
      const config = (i: number, v: number): number[] => parseReattachResult(answer(good)).config.map((d, j) => (j === i ? v : d));
      expect(restoredConfigProblem(config(1, 0x00100002))).to.match(/COMMAND 0002 \(memory and bus-master bits 0x6 must be set\)/);
      expect(restoredConfigProblem(config(4, 0))).to.match(/BAR0 00000000/);
      expect(restoredConfigProblem(config(0, 0x10001af4))).to.match(/IDs 1af4:1000, not the edu's 1234:11e8/);
    });
    it("passes the driver's refusal through", () => {
      const r = parseReattachResult({ contract: 1, ok: false, command: 'reattach', os: 'linux', error: { code: 'device', message: 'edu ID register reads 0x00000000' } });
      expect(r.error?.message).to.match(/ID register/);
    });
  });
});
