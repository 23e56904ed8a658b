// Host-side evidence of a guest that went wrong, taken without the guest's help: a memory dump
// (QMP dump-guest-memory), a picture of its screen (QMP screendump for a VGA guest, else the tail of
// the serial console, which is a headless Linux guest's screen), the VM's run state, and a watch that
// says at once when the guest panicked or QEMU ended.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Machine } from './machine.js';
import type { MachineExit } from './exit.js';

/**
 * 'kdump-zlib' is the default: the crash utility reads it, and a 256 MiB guest compresses to about
 * 20 MB; 'elf' is the whole RAM (gdb and crash read it) and as large as the guest.
 */
export type DumpFormat = 'elf' | 'kdump-zlib';

export interface DumpResult {
  file: string;
  format: DumpFormat;
  bytes: number;
  ms: number;
}

/** Write the guest's memory to file (the VM is paused while QEMU writes it, then resumed if it ran). */
export async function dumpGuestMemory(machine: Machine, file: string, opts: { format?: DumpFormat; timeoutMs?: number } = {}): Promise<DumpResult> {
  const format = opts.format ?? 'kdump-zlib';
  const started = Date.now();
  await fs.mkdir(path.dirname(file), { recursive: true });
  await machine.qmp.execute('dump-guest-memory', { paging: false, protocol: `file:${path.resolve(file)}`, format }, { timeoutMs: opts.timeoutMs ?? 120_000 });
  const { size } = await fs.stat(file);
  return { file, format, bytes: size, ms: Date.now() - started };
}

export interface ScreenCapture {
  file: string;
  /** 'png' from the display; 'serial' when the machine has no display (-vga none) and the console is the screen. */
  kind: 'png' | 'serial';
}

/** A PNG of the display when there is one, else the last lines of the serial console. */
export async function captureScreen(machine: Machine, dir: string, opts: { serialLines?: number } = {}): Promise<ScreenCapture> {
  await fs.mkdir(dir, { recursive: true });
  const png = path.resolve(dir, 'screen.png');
  try {
    await machine.qmp.execute('screendump', { filename: png, format: 'png' }, { timeoutMs: 10_000 });
    return { file: png, kind: 'png' };
  } catch {
    // "There is no console to take a screendump from": the reference guest runs with -vga none.
  }
  const file = path.join(dir, 'console-tail.txt');
  await fs.writeFile(file, (await serialTail(machine.artifactsDir, opts.serialLines ?? 80)).join('\n') + '\n');
  return { file, kind: 'serial' };
}

/** The last `lines` lines of the serial console (serial.log in the machine's artifacts). */
export async function serialTail(artifactsDir: string, lines: number): Promise<string[]> {
  const text = await fs.readFile(path.join(artifactsDir, 'serial.log'), 'latin1').catch(() => '');
  const all = text.replace(/\r/g, '').split('\n');
  if (all.at(-1) === '') all.pop();
  return all.slice(-lines);
}

/** QMP query-status ('running', 'paused', 'guest-panicked', …), or undefined when QMP does not answer in time. */
export async function vmStatus(machine: Machine, timeoutMs = 5000): Promise<string | undefined> {
  if (!machine.isRunning()) return undefined;
  try {
    const r = await machine.qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs });
    return r.status;
  } catch {
    return undefined;
  }
}

export type MachineTrouble =
  | { kind: 'panic'; at: number; detail: string }
  | { kind: 'exit'; at: number; exit: MachineExit };

/** Resolves on the first sign that the guest is gone: a GUEST_PANICKED event or QEMU's exit. */
export function watchMachine(machine: Machine): { trouble: Promise<MachineTrouble>; dispose(): void } {
  let off: () => void = () => undefined;
  let disposed = false;
  const trouble = new Promise<MachineTrouble>((resolve) => {
    if (machine.hasPanicked) resolve({ kind: 'panic', at: Date.now(), detail: 'the guest had already panicked' });
    off = machine.qmp.onEvent((e) => {
      if (e.event === 'GUEST_PANICKED') {
        const action = (e.data as { action?: string } | undefined)?.action;
        resolve({ kind: 'panic', at: Date.now(), detail: `QMP GUEST_PANICKED${action ? ` (action ${action})` : ''}` });
      }
    });
    void machine.exited.then((exit) => {
      if (!disposed) resolve(exit.cause === 'guest-panic' ? { kind: 'panic', at: exit.at, detail: exit.detail } : { kind: 'exit', at: exit.at, exit });
    });
  });
  return {
    trouble,
    dispose: () => {
      disposed = true;
      off();
    },
  };
}
