// Parse and check what dmactl printed. Nothing here reads memory: the checks make sure that when the
// host later reads the pages a guest reported, it reads only guest RAM, and only what the scenario covers.
import AjvModule from 'ajv';
import schema from './result.schema.json' with { type: 'json' };
import { GuestContractError } from '../errors.js';
import { EDU_MAX_OP, PAGE_SIZE, type Scenario } from './scenario.js';

// ajv is CommonJS; under NodeNext its class is the default export's `default`.
const Ajv = AjvModule.default;
const validateSchema = new Ajv({ allErrors: false, strict: false }).compile(schema);

export type BufferRole = 'source' | 'destination';
export type BufferKind = 'client' | 'staging' | 'readback' | 'common';

export interface Segment {
  offset: number;
  length: number;
  /** The address the device was programmed with. */
  device: number;
}

export interface BufferReport {
  role: BufferRole;
  kind: BufferKind;
  offset: number;
  length: number;
  /** The device reaches other pages than the CPU's: a bounce buffer or map registers. */
  bounced: boolean;
  /** Device addresses are IOVAs an IOMMU translates: never read them as guest-physical addresses. */
  translated: boolean;
  /** CPU physical address of each page. */
  pages: number[];
  segments: Segment[];
}

export interface DriverReport {
  name: string;
  version: string;
  api: string;
  dmaMaskBits?: number;
  adapterVersion?: number;
  dmaOpsSize?: number;
  flushDmaBuffer?: boolean;
  device?: string;
}

export interface CallReport {
  name: string;
  count: number;
  status?: number;
}

export interface GuestError {
  code: string;
  message: string;
}

export interface RunResult {
  ok: boolean;
  os: 'linux' | 'windows';
  driver: DriverReport;
  scenario: Scenario;
  handle?: number;
  buffers: BufferReport[];
  calls: CallReport[];
  timings: { toDeviceUs?: number; fromDeviceUs?: number; totalUs?: number; eduOps?: number };
  error: GuestError | null;
}

export interface InfoResult {
  ok: boolean;
  os: 'linux' | 'windows';
  driver: DriverReport;
  faults: string[];
  methods: string[];
  maxSize: number;
  held: number;
  error: GuestError | null;
}

export interface ReattachResult {
  ok: boolean;
  /** The first 16 dwords of the device's PCI config space, read by the guest OS (not reported by the driver). */
  config: number[];
  error: GuestError | null;
}

/** Answers whether [gpa, gpa + length) lies wholly in guest RAM. */
export type RamPredicate = (gpa: number, length: number) => boolean;

function fail(what: string): never {
  throw new GuestContractError(`guest result rejected: ${what}`, {
    hint: 'the guest tool or driver reported something impossible; no guest memory was read for it',
  });
}

function hexToNumber(field: string, hex: string): number {
  const value = BigInt(hex);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${field} ${hex} is beyond any physical address`);
  return Number(value);
}

/** The last line of dmactl output that parses as a JSON object. */
export function parseDmactlOutput(stdout: string): Record<string, unknown> {
  const lines = stdout.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.startsWith('{'));
  const last = lines.at(-1);
  if (last === undefined) fail(`no JSON object in dmactl output ${JSON.stringify(stdout.slice(0, 200))}`);
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch (e) {
    fail(`dmactl output is not valid JSON (${(e as Error).message}): ${last.slice(0, 200)}`);
  }
}

function checkSchema(raw: unknown, command: string): void {
  if (!validateSchema(raw)) {
    const err = validateSchema.errors?.[0];
    fail(`does not match the result schema: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim());
  }
  const cmd = (raw as { command: string }).command;
  if (cmd !== command && cmd !== 'usage') fail(`answered command "${cmd}", expected "${command}"`);
}

/** Pages are always checked (the host may read them); segments must cover the data only after a complete run. */
function checkBuffer(b: BufferReport, expected: Scenario, inRam: RamPredicate, where: string, complete: boolean): void {
  if (b.length !== expected.size) fail(`${where} length ${b.length} is not the scenario size ${expected.size}`);
  // The client's data starts where the scenario put it; a report that moves it reads other bytes.
  if (b.kind === 'client' && b.offset !== expected.offset) fail(`${where} offset ${b.offset} is not the scenario offset ${expected.offset}`);
  const pageCount = Math.ceil((b.offset + b.length) / PAGE_SIZE);
  if (b.pages.length !== pageCount) {
    fail(`${where} reports ${b.pages.length} pages; offset ${b.offset} + length ${b.length} needs ${pageCount}`);
  }
  b.pages.forEach((p, i) => {
    if (p % PAGE_SIZE !== 0) fail(`${where} page ${i} at 0x${p.toString(16)} is not page aligned`);
    if (!inRam(p, PAGE_SIZE)) fail(`${where} page ${i} at 0x${p.toString(16)} is outside guest RAM`);
  });
  let next = 0;
  b.segments.forEach((s, i) => {
    if (s.offset !== next) fail(`${where} segment ${i} starts at ${s.offset}, expected ${next} (gap or overlap)`);
    if (s.length < 1 || s.length > EDU_MAX_OP) fail(`${where} segment ${i} length ${s.length} is outside 1..${EDU_MAX_OP}`);
    next += s.length;
  });
  if (complete && next !== b.length) fail(`${where} segments cover ${next} bytes of ${b.length}`);
}

function toBuffer(raw: Record<string, unknown>, i: number): BufferReport {
  const r = raw as unknown as {
    role: BufferRole; kind: BufferKind; offset: number; length: number; bounced: boolean; translated?: boolean;
    pages: string[]; segments: Array<{ offset: number; length: number; device: string }>;
  };
  return {
    role: r.role,
    kind: r.kind,
    offset: r.offset,
    length: r.length,
    bounced: r.bounced,
    translated: r.translated ?? false,
    pages: r.pages.map((p, j) => hexToNumber(`buffer ${i} page ${j}`, p)),
    segments: r.segments.map((s, j) => ({
      offset: s.offset,
      length: s.length,
      device: hexToNumber(`buffer ${i} segment ${j} device address`, s.device),
    })),
  };
}

/**
 * A checked run result. A result with ok=false is returned (the caller reports the guest's error),
 * but every buffer it names is still checked, since the host may read it to explain the failure.
 */
export function parseRunResult(raw: unknown, expected: Scenario, inRam: RamPredicate): RunResult {
  checkSchema(raw, 'run');
  const r = raw as Record<string, unknown> & { scenario?: Scenario; buffers?: Record<string, unknown>[] };
  if ((r as { command: string }).command === 'usage') {
    const err = r.error as GuestError | null;
    fail(`dmactl refused its arguments: ${err?.message ?? 'usage error'}`);
  }
  if (!r.driver) fail('no driver description');
  if (r.scenario) {
    for (const key of Object.keys(expected) as (keyof Scenario)[]) {
      if (r.scenario[key] !== expected[key]) {
        fail(`scenario ${key} came back as ${JSON.stringify(r.scenario[key])}, asked for ${JSON.stringify(expected[key])}`);
      }
    }
  } else if (r.ok) {
    fail('no scenario echo');
  }
  const buffers = (r.buffers ?? []).map(toBuffer);
  buffers.forEach((b, i) => checkBuffer(b, expected, inRam, `buffer ${i} (${b.role})`, r.ok as boolean));
  const roles = buffers.map((b) => b.role);
  if (new Set(roles).size !== roles.length) fail('two buffers with the same role');
  if (r.ok && !(roles.includes('source') && roles.includes('destination'))) {
    fail('ok without both a source and a destination buffer');
  }
  return {
    ok: r.ok as boolean,
    os: (r.os as 'linux' | 'windows') ?? fail('no os'),
    driver: r.driver as DriverReport,
    scenario: r.scenario ?? expected,
    handle: r.handle as number | undefined,
    buffers,
    calls: (r.calls as CallReport[]) ?? [],
    timings: (r.timings as RunResult['timings']) ?? {},
    error: (r.error as GuestError | null) ?? null,
  };
}

/** The first line of a held run: the buffers' pages before the device runs (docs/contract.md). */
export interface ArmedReport {
  handle: number;
  scenario: Scenario;
  /** Pages only: the device has been given no address yet, so segments may be empty. */
  buffers: BufferReport[];
}

/**
 * A checked armed line: the scenario echoed back, a handle, a source and a destination whose pages are
 * inside guest RAM and consistent with offset and length (the host reads them before it says go).
 */
export function parseArmedReport(raw: unknown, expected: Scenario, inRam: RamPredicate): ArmedReport {
  checkSchema(raw, 'armed');
  const r = raw as Record<string, unknown> & { scenario?: Scenario; buffers?: Record<string, unknown>[]; handle?: number };
  if (r.command !== 'armed') fail(`answered command "${String(r.command)}" where the armed line belongs`);
  if (r.ok !== true) fail('an armed line that is not ok');
  if (!r.scenario) fail('an armed line without the scenario echo');
  for (const key of Object.keys(expected) as (keyof Scenario)[]) {
    if (r.scenario[key] !== expected[key]) fail(`armed: scenario ${key} came back as ${JSON.stringify(r.scenario[key])}, asked for ${JSON.stringify(expected[key])}`);
  }
  if (!r.handle) fail('an armed line without a handle');
  const buffers = (r.buffers ?? []).map(toBuffer);
  buffers.forEach((b, i) => checkBuffer(b, expected, inRam, `armed buffer ${i} (${b.role})`, false));
  const roles = buffers.map((b) => b.role);
  if (roles.length !== 2 || !(roles.includes('source') && roles.includes('destination'))) fail('an armed line needs exactly a source and a destination buffer');
  return { handle: r.handle, scenario: r.scenario, buffers };
}

export function parseInfoResult(raw: unknown): InfoResult {
  checkSchema(raw, 'info');
  const r = raw as Record<string, unknown>;
  if (r.ok && !r.driver) fail('info without a driver description');
  return {
    ok: r.ok as boolean,
    os: (r.os as 'linux' | 'windows') ?? fail('no os'),
    driver: r.driver as DriverReport,
    faults: (r.faults as string[]) ?? [],
    methods: (r.methods as string[]) ?? [],
    maxSize: (r.maxSize as number) ?? 0,
    held: (r.held as number) ?? 0,
    error: (r.error as GuestError | null) ?? null,
  };
}

export function parseReattachResult(raw: unknown): ReattachResult {
  checkSchema(raw, 'reattach');
  const r = raw as Record<string, unknown>;
  if (r.command === 'usage') fail(`dmactl does not know reattach: ${(r.error as GuestError | null)?.message ?? 'usage error'}`);
  if (r.ok && !r.config) fail('reattach without the config space');
  return {
    ok: r.ok as boolean,
    config: ((r.config as string[] | undefined) ?? []).map((h) => parseInt(h, 16)),
    error: (r.error as GuestError | null) ?? null,
  };
}
