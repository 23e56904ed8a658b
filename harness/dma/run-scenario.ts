// One scenario, end to end: the guest prepares its buffers and reports their pages (armed), the host
// reads them before the DMA (the destination must hold the fill byte, the source the pattern) and says
// go; the device runs; the host checks the result, reads guest RAM again, compares with the pattern,
// explains any difference, then lets the guest go. Bytes that changed from the fill to the pattern in
// the armed pages between the two reads are the device's work (or the driver's after go).
//
// While the guest runs, a watch races it: a guest panic (pvpanic GUEST_PANICKED) or QEMU's exit ends
// the scenario at once, naming the cause; a scenario past its deadline escalates (ask QMP for the VM's
// state, dump the guest's memory, save its screen or console) and fails with what was found. A mismatch
// leaves memory excerpts (expected, client buffer, bounce pages) in the artifacts.
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pattern } from '../contract/pattern.js';
import { EDU_DMA_BITS, eduOpsPerLeg, type Scenario } from '../contract/scenario.js';
import type { RunResult } from '../contract/result.js';
import { checkReportConsistency } from '../contract/report-consistency.js';
import { DmahilError, GuestPanicError } from '../errors.js';
import type { DebugTarget, GuestSession, HeldRun } from '../guest/session.js';
import { captureScreen, dumpGuestMemory, serialTail, vmStatus, watchMachine, type DumpFormat, type MachineTrouble } from '../machine/evidence.js';
import { parseDeviceModelLine, type DeviceModelMessage } from '../machine/device-messages.js';
import { compareBytes, describeMismatch } from './compare.js';
import { excerptText, iovaNote, memoryExcerpts, slug, type MemoryExcerpt } from './excerpts.js';
import { explain, type BeforeDma, type ClampMessage, type Evidence, type FindingKind } from './explain.js';
import { readThroughCpu, readThroughDevice } from './guest-buffer.js';
import { gatherIommuFaults, type IommuFaults } from './iommu-faults.js';
import type { GuestTrouble, Verdict } from './verdict.js';

export interface ScenarioCase {
  name: string;
  scenario: Scenario;
  /** The seed the host expects; differs from scenario.seed only in the wrong-seed control. */
  expectSeed?: number;
  /** Marks a negative control: the finding the harness must report. */
  expectFinding?: FindingKind;
  /** How long the guest may take before the scenario is a hang (default: scenarioDeadlineMs). */
  timeoutMs?: number;
  /** The guest variant the host booted: on 'direct' nothing may bounce (report-consistency.ts). */
  variant?: string;
  /** Nothing can bounce on that guest though it is not 'direct' (a declared variant with swiotlb off). */
  nothingBounces?: boolean;
  /**
   * The device sits behind an IOMMU (the variant's machine has one): an access nothing answered is then a
   * refused IOVA. Default: the session's machine config says; without a machine, translated buffers do.
   */
  behindIommu?: boolean;
}

export interface RunScenarioOptions {
  /** Overrides the case's deadline. */
  timeoutMs?: number;
  /** Memory dump format for a hang or panic (default kdump-zlib; DMAHIL_DUMP_FORMAT=elf for a raw ELF). */
  dumpFormat?: DumpFormat;
}

const UNSUPPORTED = 'unsupported';
/** After the SSH command fails, how long to wait for QEMU's exit or panic to explain it. */
const EXPLAIN_GRACE_MS = 2000;
/** Dumps are 20 MB (kdump) to 256 MiB (ELF) each: a run that breaks every guest keeps only the first few. */
const MAX_DUMPS_PER_PROCESS = Number(process.env.DMAHIL_MAX_DUMPS ?? 3);
let dumpsTaken = 0;

/**
 * The wall-clock budget of a scenario: 60 s of slack plus 0.4 s per edu operation (each is 100 ms of
 * virtual time, and a round trip moves every byte twice in pieces of at most 4095 bytes).
 */
export function scenarioDeadlineMs(s: Scenario): number {
  const ops = eduOpsPerLeg(s) * (s.direction === 'round-trip' ? 2 : 1);
  return 60_000 + ops * 400;
}

/**
 * The scenario's device-model messages: the machine's own when there is one (a burst folded, with its
 * count in `more`, which DeviceModelEvent does not carry), else the session's events read again.
 */
function scenarioMessages(session: GuestSession, target: DebugTarget | undefined, since: number): DeviceModelMessage[] {
  if (target) return target.machine.deviceModelMessages(since);
  return session.deviceModelEvents(since).flatMap((e) => parseDeviceModelLine(e.line, 'stderr', e.atMs) ?? []);
}

async function gatherEvidence(session: GuestSession, r: RunResult, expectSeed: number, clamps: ClampMessage[], iommuFaults: IommuFaults | undefined, before: BeforeDma | undefined): Promise<Evidence> {
  const destination = r.buffers.find((b) => b.role === 'destination')!;
  const source = r.buffers.find((b) => b.role === 'source');
  const destinationCpu = await readThroughCpu(session.memory, destination);
  const mismatch = compareBytes(pattern(expectSeed, destination.length), destinationCpu);
  const needsMore = mismatch !== null;
  return {
    result: r,
    before,
    expectSeed,
    destination,
    source,
    mismatch,
    destinationCpu,
    destinationDevice: needsMore && destination.bounced ? await readThroughDevice(session.memory, destination) : null,
    sourceCpu: needsMore && source ? await readThroughCpu(session.memory, source) : null,
    sourceDevice: needsMore && source?.bounced ? await readThroughDevice(session.memory, source) : null,
    clamps,
    ...(iommuFaults ? { iommuFaults } : {}),
    dmaMaskBits: r.driver.dmaMaskBits ?? EDU_DMA_BITS,
  };
}

function describeError(e: unknown): string {
  return e instanceof DmahilError ? e.describe() : (e as Error).message;
}

type RunOutcome = { kind: 'held'; held: HeldRun } | { kind: 'error'; error: unknown } | { kind: 'trouble'; trouble: MachineTrouble } | { kind: 'deadline' };

export async function runScenario(session: GuestSession, c: ScenarioCase, opts: RunScenarioOptions = {}): Promise<Verdict> {
  const started = Date.now();
  const expectSeed = c.expectSeed ?? c.scenario.seed;
  const base = { name: c.name, scenario: c.scenario, expectSeed, expectFinding: c.expectFinding, findings: [], mismatch: null };
  const done = (v: Omit<Verdict, 'durationMs'>): Verdict => ({ ...v, durationMs: Date.now() - started });
  const evidenceDir = path.join(session.artifactsDir, 'evidence', slug(c.name));

  const target = session.debugTarget?.();
  const watch = target ? watchMachine(target.machine) : undefined;
  const deadlineMs = opts.timeoutMs ?? c.timeoutMs ?? scenarioDeadlineMs(c.scenario);
  let timer: NodeJS.Timeout | undefined;
  // Between the armed line and "go": the buffers as the driver prepared them, before the device runs.
  let before: BeforeDma | undefined;
  const running = session.run(c.scenario, async (armed) => {
    const cpu = (role: 'source' | 'destination'): Promise<Buffer> => readThroughCpu(session.memory, armed.buffers.find((b) => b.role === role)!);
    const [destinationCpu, sourceCpu] = await Promise.all([cpu('destination'), cpu('source')]);
    before = { armed, destinationCpu, sourceCpu };
  });
  const outcome: RunOutcome = await Promise.race<RunOutcome>([
    running.then((held) => ({ kind: 'held', held }) as const, (error: unknown) => ({ kind: 'error', error }) as const),
    ...(watch ? [watch.trouble.then((trouble) => ({ kind: 'trouble', trouble }) as const)] : []),
    new Promise<RunOutcome>((resolve) => (timer = setTimeout(() => resolve({ kind: 'deadline' }), deadlineMs))),
  ]);
  clearTimeout(timer);

  try {
    if (outcome.kind !== 'held') {
      // The held run may still arrive (or fail) later; its buffers are let go, its error is not news.
      running.then((h) => h.release().catch(() => undefined), () => undefined);
      return done({ ...base, ...(await diagnose(outcome, target, watch?.trouble, evidenceDir, deadlineMs, opts)) });
    }
  } finally {
    watch?.dispose();
  }

  const held = outcome.held;
  try {
    const r = held.result;
    if (!r.ok) {
      const err = r.error ?? { code: 'unknown', message: 'the guest reported failure without a reason' };
      const status = err.code === UNSUPPORTED ? 'skip' : 'error';
      return done({ ...base, status, result: r, guestError: err, summary: `guest ${err.code}: ${err.message}` });
    }
    const messages = scenarioMessages(session, target, started);
    const clamps = messages.flatMap((m) => (m.kind === 'edu-clamp' ? [{ from: Number(m.from), to: Number(m.to), line: m.line, ...(m.more ? { more: m.more } : {}) }] : []));
    // The host's own machine says whether there is an IOMMU; only without one is the guest's word taken.
    const iommu = c.behindIommu ?? (target ? target.machine.config.iommu !== undefined : undefined);
    const iommuFaults = gatherIommuFaults(messages, iommu ?? r.buffers.some((b) => b.translated));
    // The report must hold together before its bytes mean anything: a page the source and the
    // destination share would let the CPU's pattern pass for the device's.
    const direct = c.variant === 'direct' || c.nothingBounces === true;
    const violations = checkReportConsistency(r, { direct, ...(c.variant ? { guest: c.variant } : {}), dmaMaskBits: r.driver.dmaMaskBits ?? EDU_DMA_BITS, ...(iommu !== undefined ? { iommu } : {}), ...(session.bounceMappings ? { bounceMappings: session.bounceMappings } : {}) });
    const evidence = await gatherEvidence(session, r, expectSeed, clamps, iommuFaults, before);
    const findings = [...violations.map((v) => ({ kind: 'inconsistent-report' as const, message: `the guest's report does not hold together (${v.rule}): ${v.message}` })), ...explain(evidence)];
    if (!before) {
      const why = held.armed ? 'the host did not read the armed pages before go' : 'the run was never armed';
      findings.push({ kind: 'inconsistent-report', message: `${why}: nothing shows the device wrote the destination during the DMA` });
    }
    const status = findings.length === 0 ? 'pass' : 'fail';
    // Translated buffers: the device addresses are IOVAs, and `bounced` compares what they translate to.
    const iovas = iovaNote(r.buffers);
    const through = evidence.destination.translated
      ? ` (${iovas}${evidence.destination.bounced ? '; translated to a bounce buffer' : ''})`
      : evidence.destination.bounced
        ? ' (through a bounce buffer)'
        : '';
    const summary =
      status === 'pass'
        ? `${evidence.destination.length} bytes verified from guest RAM${through}`
        : [...findings.map((f) => f.message), evidence.mismatch ? describeMismatch(evidence.mismatch) : 'data intact', ...(iovas ? [iovas] : [])].join('; ');
    let excerpts: MemoryExcerpt[] | undefined;
    const artifacts: string[] = [];
    if (evidence.mismatch) {
      excerpts = memoryExcerpts({ ...evidence, mismatch: evidence.mismatch, expected: pattern(expectSeed, evidence.destination.length), source: evidence.source });
      artifacts.push(...(await writeExcerpts(session.artifactsDir, c.name, summary, excerpts)));
    }
    return done({ ...base, status, summary, findings, mismatch: evidence.mismatch, result: r, ...(excerpts ? { excerpts, artifacts } : {}) });
  } catch (e) {
    return done({ ...base, status: 'error', result: held.result, summary: describeError(e) });
  } finally {
    await held.release().catch(() => undefined);
  }
}

async function writeExcerpts(artifactsDir: string, name: string, summary: string, excerpts: MemoryExcerpt[]): Promise<string[]> {
  const dir = path.join(artifactsDir, 'mismatches');
  await fs.mkdir(dir, { recursive: true });
  const txt = path.join(dir, `${slug(name)}.txt`);
  const json = path.join(dir, `${slug(name)}.json`);
  await fs.writeFile(txt, excerptText(`${name}: ${summary}`, excerpts) + '\n');
  await fs.writeFile(json, JSON.stringify({ name, summary, excerpts }, null, 2) + '\n');
  return [txt, json];
}

interface Diagnosis {
  status: 'error';
  summary: string;
  trouble?: GuestTrouble;
  artifacts: string[];
}

/** The scenario did not come back: find out why, keep what shows it, say it in one line. */
async function diagnose(
  outcome: Exclude<RunOutcome, { kind: 'held' }>,
  target: DebugTarget | undefined,
  trouble: Promise<MachineTrouble> | undefined,
  evidenceDir: string,
  deadlineMs: number,
  opts: RunScenarioOptions,
): Promise<Diagnosis> {
  // An SSH failure is often the echo of QEMU dying or the guest panicking: give that a moment to show.
  let t: MachineTrouble | undefined = outcome.kind === 'trouble' ? outcome.trouble : undefined;
  if (outcome.kind === 'error' && trouble) t = await Promise.race([trouble, sleep(EXPLAIN_GRACE_MS).then(() => undefined)]);

  const artifacts: string[] = [];
  const machine = target?.machine;
  const keep = async (what: () => Promise<string | undefined>): Promise<string | undefined> => {
    try {
      const f = await what();
      if (f) artifacts.push(f);
      return f;
    } catch (e) {
      return `(${(e as Error).message})`;
    }
  };
  const dump = async (): Promise<string> => {
    if (!machine?.isRunning()) return '';
    if (dumpsTaken >= MAX_DUMPS_PER_PROCESS) return `; no memory dump (already ${dumpsTaken} in this run; DMAHIL_MAX_DUMPS raises it)`;
    dumpsTaken++;
    const format = opts.dumpFormat ?? (process.env.DMAHIL_DUMP_FORMAT === 'elf' ? 'elf' : 'kdump-zlib');
    const file = path.join(evidenceDir, format === 'elf' ? 'guest-memory.elf' : 'guest-memory.kdump');
    const r = await keep(async () => (await dumpGuestMemory(machine, file, { format })).file);
    return `; memory dump: ${r}`;
  };
  const screen = async (): Promise<string> => {
    if (!machine?.isRunning()) return '';
    const r = await keep(async () => (await captureScreen(machine, evidenceDir)).file);
    return `; ${r?.endsWith('.png') ? 'screen' : 'console'}: ${r}`;
  };
  const consoleLine = async (re: RegExp): Promise<string | undefined> =>
    machine ? (await serialTail(machine.artifactsDir, 200)).reverse().find((l) => re.test(l))?.trim() : undefined;

  if (t?.kind === 'panic') {
    const why = (await consoleLine(/Kernel panic|BUG:|Oops|bug ?check/i)) ?? 'no panic message on the console';
    const files = (await dump()) + (await screen());
    return { status: 'error', trouble: 'guest-panic', summary: `the guest kernel panicked (${t.detail}): ${why}${files}`, artifacts };
  }
  if (t?.kind === 'exit') {
    const tail = machine ? await keep(async () => (await captureScreen(machine, evidenceDir)).file).catch(() => undefined) : undefined;
    return {
      status: 'error',
      trouble: 'qemu-exit',
      summary: `QEMU ended during the scenario (${t.exit.cause}): ${t.exit.detail}${tail ? `; console: ${tail}` : ''}`,
      artifacts,
    };
  }
  if (outcome.kind === 'deadline') {
    const status = machine ? await vmStatus(machine) : undefined;
    const state =
      status === undefined
        ? machine?.isRunning()
          ? 'QEMU does not answer QMP (the device model itself is stuck)'
          : 'no machine to ask'
        : status === 'running'
          ? 'the VM is running, so the guest or its driver is stuck (a deadlock, or waiting for an interrupt that never came)'
          : `the VM is not running (QMP status '${status}'): its CPUs are stopped`;
    const files = status === undefined ? '' : (await dump()) + (await screen());
    return { status: 'error', trouble: 'hang', summary: `the scenario did not finish within ${Math.round(deadlineMs / 1000)} s; ${state}${files}`, artifacts };
  }
  // The guest said what stopped it: a bug check it raised (the NT model's rules).
  const error = (outcome as { error: unknown }).error;
  if (error instanceof GuestPanicError) return { status: 'error', trouble: 'guest-panic', summary: error.message, artifacts };
  // The command failed and neither QEMU nor the kernel explains it: the connection broke under it.
  const why = describeError(error);
  const alive = machine ? await vmStatus(machine) : undefined;
  const connectionLost = /connection|closed|dropped|ECONNRESET|not connected/i.test(why);
  if (!connectionLost) return { status: 'error', summary: why, artifacts };
  return { status: 'error', trouble: 'connection-lost', summary: `${why} (QEMU ${alive ? `still runs, VM status '${alive}'` : 'is gone'}; the guest gets replaced)`, artifacts };
}
