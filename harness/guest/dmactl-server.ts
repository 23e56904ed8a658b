// dmactl as a server: one `dmactl serve` process in the guest answers every info and run of a session,
// a JSON line per command (docs/contract.md). Requests take turns: a held run keeps the turn until it
// is released, because the guest holds the scenario's buffers only while nothing else runs.
// A held run is two-phase: the guest prepares the buffers and answers "armed" with their pages; the
// host reads them (the caller's onArmed) before it says "go"; then the device runs and the result follows.
// That costs one more line each way. To give some of it back, "release" goes out in one write with the
// next command (or on the next turn of the event loop when none follows at once), and its answer is read
// just before that command's.
// A stream that broke (time limit, guest command gone) is dropped and the next request starts a new one.
import { parseArmedReport, parseDmactlOutput, parseInfoResult, parseReattachResult, parseRunResult, type ArmedReport, type InfoResult, type ReattachResult } from '../contract/result.js';
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
  /** A release sent whose answer is still to be read: true when the guest released (read before the next answer). */
  private ack?: { stream: LineStream; released: Promise<boolean> };
  /** A "release" not written yet: it goes out with the next command, or on the next turn of the event loop. */
  private unsent?: LineStream;

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
      const { answer } = await this.send(name, this.opts.commandTimeoutMs, `dmactl ${name}`);
      return parse(parseDmactlOutput(answer));
    } finally {
      unlock();
    }
  }

  /**
   * Run a scenario held: the guest keeps its buffers until release(), and no other request runs meanwhile.
   * Between the armed line and "go", onArmed reads what it needs (the device has not run yet); if it
   * throws, the host sends "release" instead of "go" (no DMA runs) and the error is the run's.
   */
  async run(scenario: Scenario, onArmed?: (armed: ArmedReport) => Promise<void>): Promise<HeldRun> {
    const unlock = await this.take();
    const label = `dmactl run (${scenario.direction} ${scenario.size} B)`;
    let stream: LineStream;
    let line: string;
    try {
      ({ stream, answer: line } = await this.send(dmactlRunArgs(scenario, true).join(' '), this.opts.runTimeoutMs, label));
    } catch (e) {
      unlock();
      throw e;
    }
    let released: Promise<void> | undefined;
    const release = (): Promise<void> => (released ??= this.release(stream).finally(unlock));
    const contractError = (e: unknown): Error =>
      e instanceof DmahilError ? e : new GuestContractError(`dmactl output could not be used: ${(e as Error).message}`, { cause: e });
    let armed: ArmedReport | undefined;
    try {
      const first = parseDmactlOutput(line);
      if (first.command === 'armed') {
        armed = parseArmedReport(first, scenario, this.opts.contains);
        await onArmed?.(armed);
      }
    } catch (e) {
      // Not "go": dmactl releases the buffers without a DMA and answers the line as a release.
      await release().catch(() => undefined);
      this.flushRelease(); // a rejected run's release goes out now, not with the next command
      throw contractError(e);
    }
    if (armed) {
      try {
        line = await stream.request('go', this.opts.runTimeoutMs, label);
      } catch (e) {
        unlock();
        throw e;
      }
    }
    try {
      const result = parseRunResult(parseDmactlOutput(line), scenario, this.opts.contains);
      if (result.ok && !armed) {
        throw new GuestContractError('guest result rejected: a held run came back ok without an armed line first, so the host never saw the destination before the DMA', {
          hint: 'dmactl run --hold must print the armed line and wait for "go" (docs/contract.md); an older dmactl?',
        });
      }
      return { result, raw: line, armed, release };
    } catch (e) {
      await release().catch(() => undefined);
      this.flushRelease(); // a rejected run's release goes out now, not with the next command
      throw contractError(e);
    }
  }

  /** Stop the guest's dmactl; settles once its channel is gone. */
  async close(): Promise<void> {
    const s = this.stream;
    this.stream = undefined;
    this.ack = undefined;
    this.unsent = undefined; // EOF releases too
    await s?.close();
  }

  /**
   * Write a command and read its answer, after the answer to a release sent before it. A release the
   * guest refused leaves the stream out of step (dropped): the command is asked again on a new one.
   */
  private async send(line: string, timeoutMs: number, what: string): Promise<{ stream: LineStream; answer: string }> {
    const pending = this.ack;
    this.ack = undefined;
    const stream = await this.live();
    if (this.unsent === stream) {
      this.unsent = undefined;
      stream.writeLine(`release\n${line}`);
    } else {
      this.flushRelease();
      stream.writeLine(line);
    }
    if (pending?.stream === stream && !(await pending.released)) {
      const fresh = await this.live();
      return { stream: fresh, answer: await fresh.request(line, timeoutMs, what) };
    }
    return { stream, answer: await stream.readLine(timeoutMs, what) };
  }

  private flushRelease(): void {
    const s = this.unsent;
    this.unsent = undefined;
    if (s?.isOpen) {
      try {
        s.writeLine('release');
      } catch {
        // the stream ended under it: the guest's dmactl releases at EOF
      }
    }
  }

  /** Queue "release" (see unsent); its answer is checked before the next command's (send). */
  private async release(stream: LineStream): Promise<void> {
    if (!stream.isOpen) throw new DmahilError('the dmactl stream of the held run is gone; the guest releases its buffers at EOF');
    this.flushRelease();
    this.unsent = stream;
    setImmediate(() => {
      if (this.unsent === stream) this.flushRelease();
    });
    const released = stream.readLine(this.opts.commandTimeoutMs, 'dmactl release').then(
      (ack) => {
        let r: { ok?: unknown; command?: unknown } | undefined;
        try {
          r = parseDmactlOutput(ack) as typeof r;
        } catch {
          r = undefined;
        }
        if (r?.command === 'release' && r.ok === true) return true;
        void stream.close(`out of step after a failed release: ${ack.slice(0, 200)}`);
        return false;
      },
      () => false,
    );
    this.ack = { stream, released };
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
