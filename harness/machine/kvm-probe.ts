// Does KVM run a guest here? An open /dev/kvm proves nothing: on a cloud VM without nested VMX the
// device opens, then QEMU prints "KVM internal error" and stops the vCPU at the first instruction
// (hosts.md). Running the firmware proves little more: on some nested hosts SeaBIOS runs under KVM and
// a Linux kernel then hangs or fails an emulation (seen here). So, given the kernel the guest will boot,
// the probe boots it under KVM with no root file system and requires the evidence only a run to the end
// of early boot leaves: its own "Kernel panic - not syncing" on the serial console, then the reset that
// -no-reboot turns into an exit (~1 s where KVM works). Without a kernel it can only check the firmware.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QemuProcess, delay } from './qemu-process.js';
import { DEFAULT_TCG_CPU } from './cmdline.js';
import { QmpClient } from './qmp/index.js';
import { registerMachine, unregisterMachine, type RegisteredMachine } from './registry.js';

export interface KvmExecution {
  works: boolean;
  /** Evidence, one line: "the firmware ran (RIP moved from the reset vector)", or why not. */
  detail: string;
  ms: number;
}

export interface KvmExecutionProbeOptions {
  binary: string;
  setpriv: string;
  /** An uncompressed or bzImage Linux kernel to boot (the guest's own): the strong probe. */
  kernel?: string;
  /** 'tcg' only for specs: the same detection, exercised where KVM cannot run the kernel. Default 'kvm'. */
  accel?: 'kvm' | 'tcg';
  /** How long the guest gets to show it runs. Default 8000 ms with a kernel (TCG needs ~4 s, KVM ~1 s), else 5000. */
  timeoutMs?: number;
}

/** QEMU run states in which the vCPU will never run the guest again (QMP RunState). */
export const DEAD_RUN_STATES: ReadonlySet<string> = new Set(['internal-error', 'shutdown', 'guest-panicked', 'io-error']);

const RESET = { csBase: 0xffff0000n, ip: 0xfff0n };

/** CS base and instruction pointer from HMP `info registers` (EIP in 32-bit dumps, RIP in 64-bit). */
export function parseIp(registers: string): { csBase: bigint; ip: bigint } | undefined {
  const ip = /\b[RE]IP=([0-9a-fA-F]+)/.exec(registers)?.[1];
  const cs = /\bCS =[0-9a-fA-F]+ ([0-9a-fA-F]+)/.exec(registers)?.[1];
  return ip && cs ? { csBase: BigInt(`0x${cs}`), ip: BigInt(`0x${ip}`) } : undefined;
}

const PANIC = 'Kernel panic - not syncing';
/** A kernel that has not printed its banner by then under KVM is not running. */
const BANNER_MS = 4000;

function firstStderr(proc: QemuProcess): string {
  const line = proc.firstStderrLine();
  return line ? `: ${line}` : '';
}

export async function probeKvmExecution(opts: KvmExecutionProbeOptions): Promise<KvmExecution> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-kvm-probe-'));
  const socket = path.join(dir, 'qmp.sock');
  const serial = path.join(dir, 'serial.log');
  const accel = opts.accel ?? 'kvm';
  const args = ['-accel', accel, '-cpu', accel === 'kvm' ? 'host' : DEFAULT_TCG_CPU, '-machine', 'q35', '-m', opts.kernel ? '256' : '32', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${socket},server=on,wait=off`];
  if (opts.kernel) args.push('-no-reboot', '-kernel', opts.kernel, '-append', 'console=ttyS0 panic=-1', '-serial', `file:${serial}`);
  const timeoutMs = opts.timeoutMs ?? (opts.kernel ? 8000 : 5000);
  const readSerial = (): string => {
    try {
      return fs.readFileSync(serial, 'utf8');
    } catch {
      return '';
    }
  };
  const proc = QemuProcess.start({ setpriv: opts.setpriv, binary: opts.binary, args, stdoutLog: '/dev/null', stderrLog: path.join(dir, 'stderr.log'), appendLogs: false });
  const registration: RegisteredMachine = { runDir: dir, killNow: () => proc.signal('SIGKILL') };
  registerMachine(registration);
  const started = Date.now();
  const deadline = started + timeoutMs;
  const result = (works: boolean, detail: string): KvmExecution => ({ works, detail, ms: Date.now() - started });
  const kvmError = (): string | undefined => {
    const m = proc.messages.find((x) => x.kind === 'kvm-internal-error');
    if (!m) return undefined;
    const next = proc.earlyStderr[proc.earlyStderr.indexOf(m.line) + 2]; // after "extra data[0]: ...": "emulation failure"
    return `QEMU: "${m.line}${next && !/=/.test(next) ? ` … ${next.trim()}` : ''}"`;
  };
  let qmp: QmpClient | undefined;
  try {
    while (!fs.existsSync(socket)) {
      if (!proc.isRunning) return result(false, `QEMU exited at start under KVM${firstStderr(proc) || ': (nothing on stderr)'}`);
      if (Date.now() > deadline) return result(false, 'QEMU did not open its QMP socket under KVM');
      await delay(10);
    }
    qmp = await QmpClient.connect(socket, { timeoutMs: Math.max(500, deadline - Date.now()) });
    for (;;) {
      const said = kvmError();
      if (said) return result(false, `KVM cannot run the guest: ${said}`);
      if (opts.kernel) {
        const booted = readSerial().includes(PANIC);
        if (booted && !proc.isRunning) return result(true, `a Linux kernel ran its early boot under KVM (to its "${PANIC}" without a root file system)`);
        if (!proc.isRunning) return result(false, `QEMU exited under KVM before the kernel got through early boot${firstStderr(proc)}`);
      } else if (!proc.isRunning) return result(false, `QEMU exited under KVM${firstStderr(proc)}`);
      const st = await qmp.execute<{ status: string; running: boolean }>('query-status').catch(() => undefined);
      if (st && DEAD_RUN_STATES.has(st.status) && st.status !== 'shutdown') return result(false, `KVM stopped the vCPU: run state ${st.status}${kvmError() ? `, ${kvmError()}` : ''}`);
      if (st && !opts.kernel) {
        const regs = parseIp(await qmp.execute<string>('human-monitor-command', { 'command-line': 'info registers' }));
        if (st.running && regs && (regs.csBase !== RESET.csBase || regs.ip !== RESET.ip)) {
          // It ran; a vCPU that fails on a later instruction stops within a moment: look once more.
          await delay(100);
          const again = await qmp.execute<{ status: string; running: boolean }>('query-status');
          const late = kvmError();
          if (again.running && !late) return result(true, `the firmware ran under KVM (no guest OS was tried)`);
          return result(false, `KVM stopped the vCPU: run state ${again.status}${late ? `, ${late}` : ''}`);
        }
      }
      // Where KVM works the banner is out within a fraction of a second: a silent kernel is not coming.
      const silent = opts.kernel && Date.now() > started + BANNER_MS && !readSerial().includes('Linux version');
      if (Date.now() > deadline || silent) {
        const what = opts.kernel ? `a Linux kernel did not get through early boot under KVM within ${Math.round((Date.now() - started) / 1000)} s (it takes about 1 s where KVM works${readSerial().includes('Linux version') ? '' : '; it printed nothing'})` : `the vCPU did not execute under KVM within ${timeoutMs / 1000} s`;
        return result(false, `${what}, run state ${st?.status ?? 'unknown'}`);
      }
      await delay(50);
    }
  } catch (e) {
    return result(false, `the KVM probe failed: ${kvmError() ?? (e as Error).message}`);
  } finally {
    qmp?.close('probe done');
    proc.signal('SIGKILL');
    await proc.exited;
    unregisterMachine(registration);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
