import { expect } from 'chai';
import { makeScenario } from '../../harness/contract/scenario.js';
import { formatDuration, verdictTable, type TableRow } from '../../harness/report/verdict-table.js';

describe('report: the terminal verdict table', () => {
  it('shows a scenario on a restored guest in ms and a long one in s', () => {
    expect(formatDuration(11.4)).to.equal('11 ms');
    expect(formatDuration(999.4)).to.equal('999 ms');
    expect(formatDuration(1000)).to.equal('1.0 s');
    expect(formatDuration(52_340)).to.equal('52.3 s');
  });

  it('a failed row carries its summary and the command that re-runs it alone', () => {
    const row = (name: string, status: 'pass' | 'fail', durationMs: number): TableRow => ({
      variant: 'direct', name, scenario: makeScenario({ size: 16, seed: 1 }), expectSeed: 1, status, summary: `${name} summary`, findings: [], mismatch: null, durationMs,
    });
    const lines = verdictTable([row('round-trip 16 B', 'pass', 12), row('round-trip 1 MiB', 'fail', 3400)]).split('\n');
    expect(lines[2]).to.match(/^direct\s+round-trip 16 B\s+pass\s+pass\s+12 ms\s+ok$/);
    expect(lines[3]).to.match(/^direct\s+round-trip 1 MiB\s+pass\s+fail\s+3\.4 s\s+FAILED$/);
    expect(lines[4]).to.equal('    round-trip 1 MiB summary');
    expect(lines[5]).to.equal("    re-run alone: dmahil run --grep '^round-trip 1 MiB$'");
  });
});
