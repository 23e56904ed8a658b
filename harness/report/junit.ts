// The run as JUnit XML (junit.xml in the artifacts), for CI systems that publish test results: one
// testcase per scenario, in report order, with the summary and the command that re-runs it alone.
import { outcome } from '../dma/verdict.js';
import type { SuiteVerdict } from '../dma/run-suite.js';
import { rerunCommand, tally } from './verdict-table.js';

const xml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');

export function junitReport(verdicts: SuiteVerdict[], meta: { suite: string; interrupted?: string }): string {
  const t = tally(verdicts);
  const errors = verdicts.filter((v) => outcome(v) === 'not-ok' && v.status !== 'fail').length;
  const seconds = (ms: number): string => (ms / 1000).toFixed(3);
  const cases = verdicts.map((v) => {
    const o = outcome(v);
    const head = `  <testcase classname="${xml(`${meta.suite}.${v.variant}`)}" name="${xml(v.name)}" time="${seconds(v.durationMs)}"`;
    if (o === 'ok') return `${head}/>`;
    if (o === 'skipped') return `${head}>\n    <skipped message="${xml(v.summary)}"/>\n  </testcase>`;
    const tag = v.status === 'fail' ? 'failure' : 'error';
    const body = `${v.summary}\nre-run alone: ${v.rerun ?? rerunCommand(v.name)}`;
    return `${head}>\n    <${tag} message="${xml(v.summary.slice(0, 500))}" type="${xml(v.status)}">${xml(body)}</${tag}>\n  </testcase>`;
  });
  const total = verdicts.reduce((a, v) => a + v.durationMs, 0);
  const props = meta.interrupted ? `\n  <properties><property name="interrupted" value="${xml(meta.interrupted)}"/></properties>` : '';
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<testsuite name="${xml(meta.suite)}" tests="${verdicts.length}" failures="${t.notOk - errors}" errors="${errors}" skipped="${t.skipped}" time="${seconds(total)}">${props}\n` +
    `${cases.join('\n')}\n</testsuite>\n`
  );
}
