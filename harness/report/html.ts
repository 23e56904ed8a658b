// The run as one self-contained HTML file (no script, font or image from anywhere): every scenario with
// its verdict and timing, and for a mismatch a side-by-side hex view of expected against actual, with
// the bounce or map-register pages beside the client buffer and the differing bytes marked.
import { outcome } from '../dma/verdict.js';
import type { SuiteVerdict } from '../dma/run-suite.js';
import type { MemoryExcerpt } from '../dma/excerpts.js';
import { formatDuration, rerunCommand, tally } from './verdict-table.js';

export interface HtmlMeta {
  version: string;
  artifacts: string;
  /** When the run ended; default now. */
  finishedAt?: Date;
  /** Set when the run was interrupted before every scenario ran. */
  interrupted?: string;
  /** The heading (default "dmahil run"). */
  title?: string;
  /** Lines shown above the table (dmahil explore: what was explored and found). */
  preamble?: string[];
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} .meta{color:#555;margin-bottom:1em}
.banner{padding:.5em 1em;border-radius:4px;font-weight:600;display:inline-block;margin-bottom:1em}
.banner.ok{background:#dff5df;color:#135e13}.banner.bad{background:#fbe0e0;color:#8a1010}
table.verdicts{border-collapse:collapse;width:100%}
table.verdicts th,table.verdicts td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
td.outcome-ok{color:#135e13;font-weight:600} td.outcome-not-ok{color:#a01010;font-weight:700} td.outcome-skipped{color:#777}
td.time{text-align:right;white-space:nowrap} .summary{color:#444;font-size:.92em}
details{margin:.4em 0} summary{cursor:pointer}
.excerpt{margin:.6em 0 1em;overflow-x:auto}
.hexgrid{display:grid;gap:.2em 1.2em;font:12px/1.35 ui-monospace,monospace}
.hexgrid .col h4{font:600 12px system-ui,sans-serif;margin:0 0 .2em;white-space:nowrap}
.hexgrid .col .gpa{color:#777;font-weight:400}
.hexline{white-space:pre} .off{color:#888} .diff{background:#ffd0d0;color:#900;font-weight:700}
.files{font-size:.9em;color:#444} code{background:#f3f3f3;padding:0 .2em}
.preamble{margin:0 0 1em;font:13px/1.45 ui-monospace,monospace;white-space:pre-wrap}
`;

function hexColumns(e: MemoryExcerpt): string {
  const differs = (i: number): boolean => e.differing.some((d) => i >= d.start && i < d.end);
  const cols = e.rows.map((r) => {
    const bytes = Buffer.from(r.hex, 'hex');
    const lines: string[] = [];
    for (let line = 0; line < bytes.length; line += 16) {
      const cells = [...bytes.subarray(line, line + 16)].map((b, k) => {
        const i = e.offset + line + k;
        const h = b.toString(16).padStart(2, '0');
        return differs(i) ? `<span class="diff" data-offset="${i}">${h}</span>` : h;
      });
      lines.push(`<div class="hexline"><span class="off">${String(e.offset + line).padStart(6, '0')}</span> ${cells.join(' ')}</div>`);
    }
    const gpa = r.gpa === null ? '' : ` <span class="gpa">@ 0x${r.gpa.toString(16)}</span>`;
    return `<div class="col" data-row="${esc(r.label)}"><h4>${esc(r.label)}${gpa}</h4>${lines.join('')}</div>`;
  });
  return `<div class="hexgrid" style="grid-template-columns:repeat(${e.rows.length},max-content)">${cols.join('')}</div>`;
}

function scenarioRow(v: SuiteVerdict, i: number): string {
  const o = outcome(v);
  const expected = v.expectFinding ? `caught: ${v.expectFinding}` : 'pass';
  const details: string[] = [];
  if (v.excerpts?.length) {
    details.push(
      `<details class="mismatch" open><summary>memory around the differing bytes (${v.mismatch ? `${v.mismatch.differing} of ${v.mismatch.length} bytes differ` : ''})</summary>` +
        v.excerpts.map((e) => `<div class="excerpt" data-offset="${e.offset}"><div class="off">bytes ${e.offset}..${e.offset + e.length - 1}</div>${hexColumns(e)}</div>`).join('') +
        '</details>',
    );
  }
  if (v.artifacts?.length) details.push(`<div class="files">files: ${v.artifacts.map((f) => `<code>${esc(f)}</code>`).join(' ')}</div>`);
  if (o === 'not-ok') details.push(`<div class="files">re-run alone: <code class="rerun">${esc(v.rerun ?? rerunCommand(v.name))}</code></div>`);
  return `<tr class="scenario" id="s${i}" data-name="${esc(v.name)}" data-outcome="${o}">
<td>${esc(v.variant)}</td><td>${esc(v.name)}<div class="summary">${esc(v.summary)}</div>${details.join('')}</td>
<td>${esc(expected)}</td><td>${esc(v.status)}${v.trouble ? ` (${esc(v.trouble)})` : ''}</td><td class="time">${formatDuration(v.durationMs)}</td>
<td class="outcome-${o}">${o === 'ok' ? 'ok' : o === 'skipped' ? 'skipped' : 'FAILED'}</td></tr>`;
}

export function htmlReport(verdicts: SuiteVerdict[], meta: HtmlMeta): string {
  const t = tally(verdicts);
  const ok = t.notOk === 0 && t.ok > 0 && !meta.interrupted;
  const when = (meta.finishedAt ?? new Date()).toISOString();
  const totalS = verdicts.reduce((a, v) => a + v.durationMs, 0) / 1000;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(meta.title ?? 'dmahil')} ${ok ? 'PASS' : 'FAIL'}: ${t.ok} ok, ${t.notOk} failed</title><style>${CSS}</style></head>
<body>
<h1>${esc(meta.title ?? 'dmahil run')}</h1>
<div class="meta">dmahil ${esc(meta.version)} · ${esc(when)} · ${verdicts.length} scenarios, ${totalS.toFixed(1)} s in scenarios · artifacts <code>${esc(meta.artifacts)}</code></div>
<div class="banner ${ok ? 'ok' : 'bad'}" id="result">${ok ? 'PASS' : 'FAIL'}: ${t.ok} ok, ${t.notOk} failed, ${t.skipped} skipped${meta.interrupted ? ` — interrupted: ${esc(meta.interrupted)}` : ''}</div>
${meta.preamble?.length ? `<div class="preamble">${meta.preamble.map((l) => `<div>${esc(l)}</div>`).join('')}</div>` : ''}
<table class="verdicts"><thead><tr><th>guest</th><th>scenario</th><th>expected</th><th>verdict</th><th>time</th><th></th></tr></thead>
<tbody>
${verdicts.map(scenarioRow).join('\n')}
</tbody></table>
</body></html>
`;
}
