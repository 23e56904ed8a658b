// Does KVM run a guest here? An open /dev/kvm proves nothing: on a cloud VM without nested VMX the
// device opens, then QEMU prints "KVM internal error" and stops the vCPU at the first instruction
// (hosts.md). So the probe boots the firmware under KVM and looks for evidence that it executed: the
// vCPU left the reset vector and the VM is still running. Takes a few hundred ms; memoized per QEMU binary.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QemuProcess, delay } from './qemu-process.js';
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
  /** How long the firmware gets to show it runs. Default 5000 ms. */
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

export async function probeKvmExecution(opts: KvmExecutionProbeOptions): Promise<KvmExecution> {
  const started = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-kvm-probe-'));
  const socket = path.join(dir, 'qmp.sock');
  const args = ['-accel', 'kvm', '-cpu', 'host', '-machine', 'q35', '-m', '32', '-nodefaults', '-no-user-config', '-display', 'none', '-qmp', `unix:${socket},server=on,wait=off`];
  const proc = QemuProcess.start({ setpriv: opts.setpriv, binary: opts.binary, args, stdoutLog: '/dev/null', stderrLog: path.join(dir, 'stderr.log'), appendLogs: false });
  const registration: RegisteredMachine = { runDir: dir, killNow: () => proc.signal('SIGKILL') };
  registerMachine(registration);
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const result = (works: boolean, detail: string): KvmExecution => ({ works, detail, ms: Math.round(performance.now() - started) });
  const kvmError = (): string | undefined => {
    const m = proc.messages.find((x) => x.kind === 'kvm-internal-error');
    if (!m) return undefined;
    const next = proc.earlyStderr[proc.earlyStderr.indexOf(m.line) + 2]; // after "extra data[0]: ...": "emulation failure"
    return `QEMU: "${m.line}${next && !/=/.test(next) ? ` … ${next.trim()}` : ''}"`;
  };
  let qmp: QmpClient | undefined;
  try {
    while (!fs.existsSync(socket)) {
      if (!proc.isRunning) return result(false, `QEMU exited at start under KVM: ${proc.earlyStderr.find((l) => l.trim()) ?? '(nothing on stderr)'}`);
      if (Date.now() > deadline) return result(false, 'QEMU did not open its QMP socket under KVM');
      await delay(10);
    }
    qmp = await QmpClient.connect(socket, { timeoutMs: Math.max(500, deadline - Date.now()) });
    for (;;) {
      const said = kvmError();
      if (said) return result(false, `KVM cannot run the guest: ${said}`);
      if (!proc.isRunning) return result(false, `QEMU exited under KVM: ${proc.earlyStderr.find((l) => l.trim()) ?? '(nothing on stderr)'}`);
      const st = await qmp.execute<{ status: string; running: boolean }>('query-status');
      if (DEAD_RUN_STATES.has(st.status)) return result(false, `KVM stopped the vCPU: run state ${st.status}${kvmError() ? `, ${kvmError()}` : ''}`);
      const regs = parseIp(await qmp.execute<string>('human-monitor-command', { 'command-line': 'info registers' }));
      if (st.running && regs && (regs.csBase !== RESET.csBase || regs.ip !== RESET.ip)) {
        // It ran; a vCPU that fails on a later instruction stops within a moment: look once more.
        await delay(100);
        const again = await qmp.execute<{ status: string; running: boolean }>('query-status');
        const late = kvmError();
        if (again.running && !late) return result(true, `the firmware ran under KVM (IP 0x${regs.ip.toString(16)})`);
        return result(false, `KVM stopped the vCPU: run state ${again.status}${late ? `, ${late}` : ''}`);
      }
      if (Date.now() > deadline) return result(false, `the vCPU did not execute under KVM within ${opts.timeoutMs ?? 5000} ms (run state ${st.status})`);
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
