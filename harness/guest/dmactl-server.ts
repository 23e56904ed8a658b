// dmactl as a server: one `dmactl serve` process in the guest answers every info and run of a session,
// a JSON line per command (docs/contract.md). Requests take turns: a held run keeps the turn until it
// is released, because the guest holds the scenario's buffers only while nothing else runs.
// A stream that broke (time limit, guest command gone) is dropped and the next request starts a new one.
import { parseDmactlOutput, parseInfoResult, parseReattachResult, parseRunResult, type InfoResult, type ReattachResult } from '../contract/result.js';
import { dmactlRunArgs, type Scenario } from '../contract/scenario.js';
import { DmahilError, GuestContractError } from '../errors.js';
import type { LineStream } from './channel/line-stream.js';
import type { HeldRun } from './session.js';

export interface DmactlServerOptions {
  /** Starts `dmactl serve` in the guest. */
  open: () => Promise<LineStream>;
  /** Is this range inside guest RAM (results naming anything else are rejected before any read)? */
  contains: (gpa: number, length: number) => boolean;
  commandTimeoutMs: number;
  /** For the result line of a run (the guest waits on edu operations). */
  runTimeoutMs: number;
}

export class DmactlServer {
  private stream?: LineStream;
  private turn: Promise<void> = Promise.resolve();

  constructor(private readonly opts: DmactlServerOptions) {}

  /** Use a `dmactl serve` the caller started (after a preamble of its own, say). */
  adopt(stream: LineStream): void {
    void this.stream?.close('replaced');
    this.stream = stream;
  }

  info(): Promise<InfoResult> {
    return this.command('info', parseInfoResult);
  }

  /** After a snapshot restore: the driver writes the device's PCI config back and checks it (Linux guests). */
  reattach(): Promise<ReattachResult> {
    return this.command('reattach', parseReattachResult);
  }

  /** A command answered by one line. */
  private async command<T>(name: string, parse: (raw: unknown) => T): Promise<T> {
    const unlock = await this.take();
    try {
      const line = await (await this.live()).request(name, this.opts.commandTimeoutMs, `dmactl ${name}`);
      return parse(parseDmactlOutput(line));
    } finally {
      unlock();
    }
  }

  /** Run a scenario held: the guest keeps its buffers until release(), and no other request runs meanwhile. */
  async run(scenario: Scenario): Promise<HeldRun> {
    const unlock = await this.take();
    let stream: LineStream;
    let line: string;
    try {
      stream = await this.live();
      line = await stream.request(dmactlRunArgs(scenario, true).join(' '), this.opts.runTimeoutMs, `dmactl run (${scenario.direction} ${scenario.size} B)`);
    } catch (e) {
      unlock();
      throw e;
    }
    let released: Promise<void> | undefined;
    const release = (): Promise<void> => (released ??= this.release(stream).finally(unlock));
    try {
      const result = parseRunResult(parseDmactlOutput(line), scenario, this.opts.contains);
      return { result, raw: line, release };
    } catch (e) {
      await release().catch(() => undefined);
      if (e instanceof GuestContractError) throw e;
      throw new GuestContractError(`dmactl output could not be used: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Stop the guest's dmactl; settles once its channel is gone. */
  async close(): Promise<void> {
    const s = this.stream;
    this.stream = undefined;
    await s?.close();
  }

  private async release(stream: LineStream): Promise<void> {
    const ack = await stream.request('release', this.opts.commandTimeoutMs, 'dmactl release');
    const r = parseDmactlOutput(ack) as { ok?: unknown; command?: unknown; error?: { message?: string } | null };
    if (r.command !== 'release' || r.ok !== true) {
      void stream.close('out of step after a failed release');
      throw new DmahilError(`the guest did not release the run's buffers: ${r.error?.message ?? ack.slice(0, 200)}`);
    }
  }

  private async live(): Promise<LineStream> {
    if (!this.stream?.isOpen) this.stream = await this.opts.open();
    return this.stream;
  }

  /** Wait for the previous request (and its release) to finish; returns the function that passes the turn on. */
  private async take(): Promise<() => void> {
    const before = this.turn;
    let unlock!: () => void;
    this.turn = new Promise<void>((resolve) => (unlock = resolve));
    await before;
    return unlock;
  }
}
