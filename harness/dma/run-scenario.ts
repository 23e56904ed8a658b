// One scenario, end to end: the guest runs it and holds its buffers, the host checks the result,
// reads guest RAM, compares with the pattern, explains any difference, then lets the guest go.
import { pattern } from '../contract/pattern.js';
import { EDU_DMA_BITS, type Scenario } from '../contract/scenario.js';
import type { RunResult } from '../contract/result.js';
import { DmahilError } from '../errors.js';
import type { GuestSession, HeldRun } from '../guest/session.js';
import { compareBytes, describeMismatch } from './compare.js';
import { explain, type ClampMessage, type Evidence, type FindingKind } from './explain.js';
import { readThroughCpu, readThroughDevice } from './guest-buffer.js';
import type { Verdict } from './verdict.js';

export interface ScenarioCase {
  name: string;
  scenario: Scenario;
  /** The seed the host expects; differs from scenario.seed only in the wrong-seed control. */
  expectSeed?: number;
  /** Marks a negative control: the finding the harness must report. */
  expectFinding?: FindingKind;
}

const UNSUPPORTED = 'unsupported';

async function gatherEvidence(session: GuestSession, r: RunResult, expectSeed: number, clamps: ClampMessage[]): Promise<Evidence> {
  const destination = r.buffers.find((b) => b.role === 'destination')!;
  const source = r.buffers.find((b) => b.role === 'source');
  const destinationCpu = await readThroughCpu(session.memory, destination);
  const mismatch = compareBytes(pattern(expectSeed, destination.length), destinationCpu);
  const needsMore = mismatch !== null;
  return {
    result: r,
    expectSeed,
    destination,
    source,
    mismatch,
    destinationCpu,
    destinationDevice: needsMore && destination.bounced ? await readThroughDevice(session.memory, destination) : null,
    sourceCpu: needsMore && source ? await readThroughCpu(session.memory, source) : null,
    sourceDevice: needsMore && source?.bounced ? await readThroughDevice(session.memory, source) : null,
    clamps,
    dmaMaskBits: r.driver.dmaMaskBits ?? EDU_DMA_BITS,
  };
}

export async function runScenario(session: GuestSession, c: ScenarioCase): Promise<Verdict> {
  const started = Date.now();
  const expectSeed = c.expectSeed ?? c.scenario.seed;
  const base = { name: c.name, scenario: c.scenario, expectSeed, expectFinding: c.expectFinding, findings: [], mismatch: null };
  const done = (v: Omit<Verdict, 'durationMs'>): Verdict => ({ ...v, durationMs: Date.now() - started });

  let held: HeldRun;
  try {
    held = await session.run(c.scenario);
  } catch (e) {
    const why = e instanceof DmahilError ? e.describe() : (e as Error).message;
    return done({ ...base, status: 'error', summary: why });
  }
  try {
    const r = held.result;
    if (!r.ok) {
      const err = r.error ?? { code: 'unknown', message: 'the guest reported failure without a reason' };
      const status = err.code === UNSUPPORTED ? 'skip' : 'error';
      return done({ ...base, status, result: r, guestError: err, summary: `guest ${err.code}: ${err.message}` });
    }
    const clamps = session
      .deviceModelEvents(started)
      .filter((m) => m.kind === 'edu-clamp')
      .map((m) => ({ from: m.from ?? 0, to: m.to ?? 0, line: m.line }));
    const evidence = await gatherEvidence(session, r, expectSeed, clamps);
    const findings = explain(evidence);
    const status = findings.length === 0 ? 'pass' : 'fail';
    const summary =
      status === 'pass'
        ? `${evidence.destination.length} bytes verified from guest RAM${evidence.destination.bounced ? ' (through a bounce buffer)' : ''}`
        : [...findings.map((f) => f.message), evidence.mismatch ? describeMismatch(evidence.mismatch) : 'data intact'].join('; ');
    return done({ ...base, status, summary, findings, mismatch: evidence.mismatch, result: r });
  } catch (e) {
    const why = e instanceof DmahilError ? e.describe() : (e as Error).message;
    return done({ ...base, status: 'error', result: held.result, summary: why });
  } finally {
    await held.release().catch(() => undefined);
  }
}
