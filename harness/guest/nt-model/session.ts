// The Windows driver run in the NT DMA model, as a GuestSession: the DMA layer runs and verifies the
// catalog on it exactly as on a booted guest (the same dmactl JSON, guest RAM read from a file by the
// host, the same explanations). A model process is the "machine": a DMA-rule violation ends it like a
// bug check, and the session is then unhealthy, so the source starts a fresh one for the next scenario.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ArmedReport, InfoResult } from '../../contract/result.js';
import type { Scenario } from '../../contract/scenario.js';
import { DmahilError, EnvironmentError, GuestPanicError } from '../../errors.js';
import { findExecutable, requireSetpriv } from '../../machine/launch-checks.js';
import { parseDeviceModelLine } from '../../machine/device-messages.js';
import { SharedFileMemory, type RamLayout } from '../../memory/index.js';
import { toDeviceModelEvents } from '../device-events.js';
import { DmactlServer } from '../dmactl-server.js';
import { LineStream } from '../channel/line-stream.js';
import type { DeviceModelEvent, GuestSession, HeldRun } from '../session.js';
import { ModelProcess } from './model-process.js';
import { callSite, parseBugcheck, type ModelBugcheck } from './bugcheck.js';
import { NT_MODEL_RAM_BYTES, type NtModelWorld } from './worlds.js';

export const NT_MODEL_EXE = 'build/windows/model/edudma-model.exe';
/** The model exe's image base (model.mk links it there): a bug check's caller is an RVA from it. */
const NT_MODEL_IMAGE_BASE = 0x140000000;
const COMMAND_TIMEOUT_MS = 30_000;
/**
 * How long a run's result may wait for the model's stderr to catch up. Usually a line behind; on a loaded
 * runner 5 s was not enough, and the late clamp lines of one run were blamed on the next.
 */
const STDERR_CATCH_UP_MS = 30_000;
/** How long a failed run waits for the bug-check line that explains it (stderr may trail the exit). */
const BUGCHECK_LINE_WAIT_MS = 1_000;
const GO_DONE = /^MODEL: go done handle=(\d+)$/;
const RUN_TIMEOUT_MS = 60_000;

export interface NtModelOptions {
  repoRoot: string;
  artifactsDir: string;
  world: NtModelWorld;
  /** Another build of the model (a mutated driver, say); default NT_MODEL_EXE under repoRoot. */
  exe?: string;
  /** The edu's DMA address width; default the world's. */
  eduDmaBits?: number;
  /** A Wine prefix to use (one is made under the artifacts otherwise; the first start takes seconds). */
  winePrefix?: string;
  /** Extra model settings (DMAHIL_MODEL_* variables). */
  env?: Record<string, string>;
}

/** A RAM file with physical address = file offset: the model has no PCI hole or legacy window. */
function flatLayout(ramBytes: number): RamLayout {
  return { machineType: 'q35', ramBytes, belowBytes: ramBytes, aboveBytes: 0, aboveStart: 4 * 1024 ** 3, regions: [{ gpa: 0, size: ramBytes, fileOffset: 0 }] };
}

/** The path Wine gives a host file (its Z: drive is /). */
export function winePath(file: string): string {
  return 'Z:' + path.resolve(file).replace(/\//g, '\\');
}

export class NtModelSession implements GuestSession {
  readonly profile = 'windows-nt-model';
  /** edudma.sys runs a transfer larger than its map registers window by window, reusing them. */
  readonly bounceMappings = 'per-window' as const;
  readonly bugchecks: ModelBugcheck[] = [];
  private readonly events: DeviceModelEvent[] = [];
  /**
   * The first event of the current run. A run starts only after the last one's GO marker was read, so every
   * event before this index is an earlier run's, even one read in the millisecond the next run started
   * (a run here takes a few ms: a time filter alone blamed a control's clamp on the next scenario in CI).
   */
  private runFrom = 0;
  private readonly stderrLog: string[] = [];
  /** Handles whose GO the model finished, by its stderr: what the edu printed for them is in. */
  private readonly goDone = new Set<number>();
  private goWaiter?: () => void;
  private readonly dmactl: DmactlServer;
  private process?: ModelProcess;
  private broken = false;
  private exit?: { code: number | null; signal?: string };

  private constructor(
    readonly exe: string,
    readonly memory: SharedFileMemory,
    readonly artifactsDir: string,
    readonly world: NtModelWorld,
    private readonly start: () => ModelProcess,
  ) {
    this.dmactl = new DmactlServer({
      open: async () => {
        if (this.process) throw new EnvironmentError('the model process ended; this session cannot start another (its driver state is gone)');
        this.process = this.start();
        return new LineStream(this.process, `edudma-model.exe serve (${world.id})`);
      },
      contains: (gpa, len) => memory.contains(gpa, len),
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      runTimeoutMs: RUN_TIMEOUT_MS,
    });
  }

  static async start(opts: NtModelOptions): Promise<NtModelSession> {
    const exe = opts.exe ?? path.join(opts.repoRoot, NT_MODEL_EXE);
    try {
      await fs.access(exe);
    } catch {
      throw new EnvironmentError(`the NT DMA model is not built: ${exe} is missing`, { hint: 'build it with: make windows-model' });
    }
    if (!findExecutable('wine')) {
      throw new EnvironmentError('wine not found on PATH: the NT DMA model is a Windows program', { hint: 'install it with: apt-get install -y wine wine64 (or: make deps)' });
    }
    await fs.mkdir(opts.artifactsDir, { recursive: true });
    const ramFile = path.join(opts.artifactsDir, 'model-ram.bin');
    await fs.writeFile(ramFile, '');
    await fs.truncate(ramFile, NT_MODEL_RAM_BYTES); // sparse: only the pages the model touches take space
    const memory = await SharedFileMemory.open(ramFile, flatLayout(NT_MODEL_RAM_BYTES));
    const prefix = opts.winePrefix ?? path.join(opts.artifactsDir, 'wineprefix');
    const setpriv = requireSetpriv();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DISPLAY: undefined, // a console program: no window system
      WINEARCH: 'win64',
      WINEPREFIX: prefix,
      WINEDEBUG: '-all',
      WINEDLLOVERRIDES: 'mscoree,mshtml=', // no Mono/Gecko prompts in a new prefix
      DMAHIL_MODEL_WORLD: opts.world.id,
      DMAHIL_MODEL_RAM: winePath(ramFile),
      DMAHIL_MODEL_RAM_BYTES: String(NT_MODEL_RAM_BYTES),
      DMAHIL_MODEL_EDU_DMA_BITS: String(opts.eduDmaBits ?? opts.world.eduDmaBits),
      ...opts.env,
    };
    let session: NtModelSession | undefined = undefined;
    const onStderrLine = (line: string, at: number): void => session?.onStderr(line, at);
    session = new NtModelSession(exe, memory, opts.artifactsDir, opts.world, () =>
      new ModelProcess({ setpriv, exe, args: ['serve'], env, onStderrLine }),
    );
    return session;
  }

  private onStderr(line: string, at: number): void {
    this.stderrLog.push(line);
    const done = GO_DONE.exec(line);
    if (done) {
      this.goDone.add(Number(done[1]));
      this.goWaiter?.();
      return;
    }
    const bug = parseBugcheck(line);
    if (bug) {
      this.bugchecks.push(bug);
      this.broken = true;
      this.events.push({ atMs: at, kind: 'model-bugcheck', line });
      return;
    }
    const m = parseDeviceModelLine(line, 'stderr', at);
    if (m) this.events.push(...toDeviceModelEvents([m]));
  }

  /** The bug checks so far, each with the driver's source line that made the call (addr2line). */
  async describeBugchecks(): Promise<string[]> {
    return Promise.all(this.bugchecks.map(async (b) => `${b.line}${await callSite(this.exe, NT_MODEL_IMAGE_BASE, b.caller).then((w) => (w ? ` [at ${w}]` : ''))}`));
  }

  /** How the model process ended, once close() settled (undefined if it never started). */
  get exitStatus(): { code: number | null; signal?: string } | undefined {
    return this.exit;
  }

  /** Everything the model printed on stderr so far. */
  get stderr(): readonly string[] {
    return this.stderrLog;
  }

  info(): Promise<InfoResult> {
    return this.dmactl.info();
  }

  /**
   * The result line comes on stdout, the edu's messages (a clamp) on stderr: two pipes the host reads
   * apart. The model marks the end of each GO on stderr before dmactl prints the result, so a run is
   * handed over only once its messages are in, and a late one cannot land on the next scenario.
   */
  async run(scenario: Scenario, onArmed?: (armed: ArmedReport) => Promise<void>): Promise<HeldRun> {
    this.runFrom = this.events.length;
    const checked = this.bugchecks.length;
    let held: HeldRun;
    try {
      held = await this.dmactl.run(scenario, onArmed);
    } catch (e) {
      // A bug check ends the model: say so as a panic (trouble), not as a lost command, once its line is in.
      for (let waited = 0; this.bugchecks.length === checked && waited < BUGCHECK_LINE_WAIT_MS; waited += 50) await new Promise((r) => setTimeout(r, 50));
      const bug = this.bugchecks[checked];
      if (bug) throw new GuestPanicError(`the model bug-checked: ${bug.line.trim()}`, { cause: e });
      throw e;
    }
    const handle = held.armed?.handle;
    // Without the marker the run's device messages may still be in the pipe: judging it now could miss a
    // clamp (a false pass), and the late lines would land on the next run.
    if (handle !== undefined && !(await this.stderrCaughtUp(handle)) && this.isHealthy()) {
      this.broken = true;
      throw new DmahilError(`the model's stderr did not show the end of GO ${handle} within ${STDERR_CATCH_UP_MS / 1000} s: its device messages cannot be told apart from the next run's`);
    }
    return held;
  }

  /** True once the model marked the end of this GO on stderr (every line before it is read). */
  private async stderrCaughtUp(handle: number): Promise<boolean> {
    const deadline = Date.now() + STDERR_CATCH_UP_MS;
    while (!this.goDone.has(handle) && this.isHealthy() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.goWaiter = () => (clearTimeout(t), resolve());
      });
    }
    this.goWaiter = undefined;
    return this.goDone.delete(handle);
  }

  deviceModelEvents(sinceMs: number): DeviceModelEvent[] {
    return this.events.slice(this.runFrom).filter((e) => e.atMs >= sinceMs);
  }

  isHealthy(): boolean {
    return !this.broken && (this.process === undefined || (this.process.running && !this.process.closing));
  }

  async collectLogs(): Promise<void> {
    await fs.writeFile(path.join(this.artifactsDir, 'model-stderr.txt'), this.stderrLog.join('\n') + '\n');
  }

  /**
   * Ends the model: dmactl sees end of input, the model closes its handle, removes the device, unloads the
   * driver and checks that nothing leaked (as after every command's handle). Settles once all it printed
   * is read: a bug check at unload is in `bugchecks` by then.
   */
  async close(): Promise<void> {
    await this.dmactl.close();
    this.exit = await this.process?.ended;
    await this.memory.close();
    await fs.rm(this.memory.file, { force: true });
  }
}
