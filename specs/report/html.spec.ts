// The HTML report rendered by a real browser (Debian's chromium through playwright-core, headless):
// the page loads from a file with no network, shows every scenario, and a failing scenario's
// side-by-side hex diff is visible with the differing bytes marked. A screenshot goes to reports/.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type Browser } from 'playwright-core';
import { FILL_BYTE, pattern } from '../../harness/contract/pattern.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import type { BufferReport } from '../../harness/contract/result.js';
import { compareBytes } from '../../harness/dma/compare.js';
import { excerptText, memoryExcerpts } from '../../harness/dma/excerpts.js';
import type { SuiteVerdict } from '../../harness/dma/run-suite.js';
import { htmlReport } from '../../harness/report/html.js';
import { repoRoot } from '../e2e/support.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** A stale-client-buffer failure as the bounce guest produces it: the bounce page has the data, the client page the fill. */
export function staleBounceVerdict(): SuiteVerdict {
  const size = 4096;
  const expected = pattern(7, size);
  const client = Buffer.from(expected);
  client.fill(FILL_BYTE, 1000, 1300); // one stale stretch in the client buffer
  const destination: BufferReport = {
    role: 'destination', kind: 'client', offset: 0, length: size, bounced: true, translated: false,
    pages: [0x2a3d000], segments: [{ offset: 0, device: 0xb3c7000, length: size }],
  };
  const mismatch = compareBytes(expected, client)!;
  const excerpts = memoryExcerpts({ mismatch, expected, destination, destinationCpu: client, destinationDevice: expected, sourceCpu: null, sourceDevice: null });
  const base = { variant: 'bounce' as const, expectSeed: 7, findings: [], durationMs: 412 };
  return {
    ...base,
    name: 'round-trip 4096 B',
    scenario: makeScenario({ size, seed: 7 }),
    status: 'fail',
    summary: 'stale data in the client buffer: the device wrote the right bytes to the bounce buffer at 0xb3c7000, but they never reached the client buffer at 0x2a3d000',
    findings: [{ kind: 'stale-client-buffer', message: 'stale data in the client buffer' }],
    mismatch,
    excerpts,
    artifacts: ['/tmp/run/bounce/mismatches/round-trip-4096-b.txt'],
  };
}

describe('report: the HTML report in headless Chromium', function () {
  this.timeout(60_000);
  let browser: Browser;
  const outDir = path.join(repoRoot, 'reports', 'html-report');
  const file = path.join(outDir, 'report.html');

  before(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (scripts/install-deps.sh test installs it)`);
    fs.mkdirSync(outDir, { recursive: true });
    const pass: SuiteVerdict = { variant: 'direct', name: 'round-trip 64 KiB', scenario: makeScenario({ size: 65536 }), expectSeed: 1, status: 'pass', summary: '65536 bytes verified from guest RAM', findings: [], mismatch: null, durationMs: 3100 };
    const control: SuiteVerdict = { ...pass, name: 'control: wrong seed', status: 'fail', expectFinding: 'wrong-seed', findings: [{ kind: 'wrong-seed', message: 'the destination holds the pattern of seed 31' }], summary: 'the destination holds the pattern of seed 31' };
    fs.writeFileSync(file, htmlReport([pass, control, staleBounceVerdict()], { version: '0.1.0', artifacts: '/tmp/run' }));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  });

  after(async () => {
    await browser?.close();
  });

  it('renders from one file with no network, every scenario with its verdict, and a visible hex diff for the failure', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`file://${file}`);
    expect(requests.filter((u) => !u.startsWith('file://')), 'the report loads nothing from anywhere').to.deep.equal([]);

    expect(await page.title()).to.match(/^dmahil FAIL: 2 ok, 1 failed/);
    expect(await page.locator('#result').innerText()).to.match(/FAIL: 2 ok, 1 failed, 0 skipped/);
    expect(await page.locator('tr.scenario').evaluateAll((rows) => rows.map((r) => [(r as HTMLElement).dataset.name, (r as HTMLElement).dataset.outcome]))).to.deep.equal([
      ['round-trip 64 KiB', 'ok'],
      ['control: wrong seed', 'ok'],
      ['round-trip 4096 B', 'not-ok'],
    ]);

    const failing = page.locator('tr.scenario[data-outcome="not-ok"]');
    const grid = failing.locator('.excerpt').first().locator('.hexgrid');
    expect(await grid.isVisible()).to.equal(true);
    const columns = await grid.locator('.col h4').allInnerTexts();
    expect(columns).to.deep.equal(['expected', 'destination (client buffer) @ 0x2a3d3d0', 'destination (bounce / map-register page) @ 0xb3c73d0']);
    // Side by side: the columns share a top edge and go left to right.
    const boxes = await grid.locator('.col').evaluateAll((cols) => cols.map((c) => c.getBoundingClientRect()).map((r) => ({ x: r.x, y: r.y })));
    expect(boxes[0]!.y).to.equal(boxes[1]!.y);
    expect(boxes[0]!.x).to.be.below(boxes[1]!.x);
    expect(boxes[1]!.x).to.be.below(boxes[2]!.x);
    // The stale stretch 1000..1299 is marked in the client column, as 0xa5 fill bytes; the bounce column has none marked as fill.
    const client = grid.locator('.col').nth(1);
    const marked = await client.locator('.diff').evaluateAll((spans) => spans.map((s) => [Number((s as HTMLElement).dataset.offset), s.textContent]));
    expect(marked.length).to.be.greaterThan(100);
    expect(marked.every(([o, t]) => (o as number) >= 1000 && (o as number) < 1300 && t === 'a5')).to.equal(true);
    expect(await client.locator('.diff').first().evaluate((s) => getComputedStyle(s).backgroundColor)).to.equal('rgb(255, 208, 208)');
    expect(await failing.locator('code.rerun').innerText()).to.equal("dmahil run --grep '^round-trip 4096 B$'");

    await failing.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(repoRoot, 'reports', 'html-report.png'), fullPage: true });
    expect(fs.statSync(path.join(repoRoot, 'reports', 'html-report.png')).size).to.be.greaterThan(10_000);
  });

  it('the text excerpt marks the same bytes', () => {
    const v = staleBounceVerdict();
    const text = excerptText('x', v.excerpts!);
    expect(text).to.match(/destination \(client buffer\)\s+@0x002a3d3e0\s+[0-9a-f ]*a5 a5/);
    expect(text).to.include('^^');
  });
});
