// How this QEMU's edu behaves, measured, not inferred from its version: the edu changed between the
// QEMU versions users have (7.2 on Debian 12, 10.x on Debian 13 and backports; facts §4.4, hosts.md).
// A machine with no guest (a firmware that only halts) and qtest driving the edu from outside; two
// short launches, about a second under TCG, once per QEMU binary and process.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Machine } from './machine.js';
import { Qtest, writeHaltFirmware } from './qtest.js';
import { checkQemu } from './qemu-check.js';
import { delay } from './qemu-process.js';

export interface EduBehaviour {
  qemuVersion: string;
  /** A DMA to a RAM address above the 28-bit mask lands at the address masked into it. */
  clamps: boolean;
  /** Where QEMU says so: 7.2 prints a stdout line, 10 writes stderr without a newline; undefined: silent. */
  clampMessage?: 'stdout' | 'stderr';
  /** A transfer of exactly the 4096-byte buffer aborts QEMU (7.2's off-by-one, fixed in 9.1). */
  fullBufferAborts: boolean;
  /**
   * A transfer past the edu's 4 KiB buffer (8192 bytes, read out of it): 'aborts' QEMU with hw_error
   * (7.2), is 'logged' as a guest error and carried out anyway (9.1+: an edu bug, never provoked toward
   * the edu, where it overruns QEMU's own memory), or 'silent'.
   */
  outOfRange: 'aborts' | 'logged' | 'silent';
  ms: number;
}

const BAR = 0xfea00000;
const SLOT = 4;
const EDU_BUFFER = 0x40000;
/** Above the edu's default 28-bit mask; clamps to 0x1000. */
const BEYOND_MASK = 0x10001000;

const probes = new Map<string, Promise<EduBehaviour>>();

export function probeEduBehaviour(qemuBinary = 'qemu-system-x86_64'): Promise<EduBehaviour> {
  let p = probes.get(qemuBinary);
  if (!p) {
    p = measure(qemuBinary);
    probes.set(qemuBinary, p);
    p.catch(() => probes.delete(qemuBinary)); // a failed probe is not a verdict: try again next time
  }
  return p;
}

/** One edu: BAR0 placed, memory space and bus mastering on. */
async function withEdu<T>(dir: string, qemuBinary: string, name: string, body: (q: Qtest, m: Machine) => Promise<T>): Promise<T> {
  const qtest = await Qtest.listen(dir);
  const m = await Machine.launch(
    {
      name,
      memoryMiB: 64,
      cpus: 1,
      accel: 'tcg',
      qemuBinary,
      sharedRam: false,
      edu: { enabled: true, pciAddr: `0${SLOT}.0` },
      nic: { model: 'virtio-net-pci', guestPort: 22 },
      icount: { shift: 0, sleep: false }, // edu's 100 ms timer costs no wall time while the firmware halts
      extraArgs: ['-bios', writeHaltFirmware(dir), ...qtest.args],
    },
    { artifactsDir: path.join(dir, name) },
  ).catch(async (e: unknown) => {
    await qtest.close(); // a listening qtest socket would keep the process alive after the error
    throw e;
  });
  try {
    await qtest.pciConfigWrite(SLOT, 0x10, BAR);
    await qtest.pciConfigWrite(SLOT, 0x04, 0x6);
    return await body(qtest, m);
  } finally {
    await m.shutdown({ graceMs: 500 });
    await qtest.close();
  }
}

/** Start a transfer and wait until the edu says done; 'aborted' when QEMU died doing it. */
async function dma(q: Qtest, m: Machine, src: number, dst: number, count: number, toRam: boolean): Promise<'done' | 'aborted'> {
  try {
    for (const [reg, v] of [[0x80, src], [0x88, dst], [0x90, count], [0x98, toRam ? 3 : 1]] as const) await q.cmd(`writeq 0x${(BAR + reg).toString(16)} 0x${v.toString(16)}`);
    const deadline = Date.now() + 5000;
    while ((await q.readq(BAR + 0x98)) & 1n) {
      if (Date.now() > deadline) throw new Error('the edu DMA did not complete in 5 s');
      await delay(5);
    }
    return 'done';
  } catch (e) {
    if (!m.isRunning() || (await Promise.race([m.exited.then(() => true), delay(1000).then(() => false)]))) return 'aborted';
    throw e;
  }
}

async function measure(qemuBinary: string): Promise<EduBehaviour> {
  const started = performance.now();
  const { version } = await checkQemu(qemuBinary);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-edu-probe-'));
  let measured = false;
  try {
    const first = await withEdu(dir, qemuBinary, 'edu-probe-1', async (q, m) => {
      const mark = '5a'.repeat(16);
      await q.cmd(`write 0x2000 16 0x${mark}`);
      await dma(q, m, 0x2000, EDU_BUFFER, 16, false);
      const since = Date.now();
      await dma(q, m, EDU_BUFFER, BEYOND_MASK, 16, true);
      const landed = (await q.cmd('read 0x1000 16')).split(' ')[1] === `0x${mark}`;
      await delay(50); // the output pipes may lag the register
      const msg = m.deviceModelMessages(since).find((x) => x.kind === 'edu-clamp');
      const full = await dma(q, m, EDU_BUFFER, 0x3000, 4096, true);
      return { clamps: landed, clampMessage: msg?.stream, fullBufferAborts: full === 'aborted' };
    });
    const outOfRange = await withEdu(dir, qemuBinary, 'edu-probe-2', async (q, m) => {
      const since = Date.now();
      if ((await dma(q, m, EDU_BUFFER, 0x3000, 8192, true)) === 'aborted') return 'aborts' as const;
      await delay(50);
      return m.deviceModelMessages(since).some((x) => x.kind === 'edu-range') ? ('logged' as const) : ('silent' as const);
    });
    measured = true;
    return { qemuVersion: version, ...first, outOfRange, ms: Math.round(performance.now() - started) };
  } finally {
    // A failed probe keeps its folder: the error names QEMU's logs in it.
    if (measured) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One line for doctor and reports. */
export function describeEdu(b: EduBehaviour): string {
  const clamp = b.clamps ? `out-of-mask DMA is clamped${b.clampMessage ? ` (message on ${b.clampMessage})` : ' silently'}` : 'out-of-mask DMA is not clamped';
  return `QEMU ${b.qemuVersion} edu: ${clamp}; a 4096-byte transfer ${b.fullBufferAborts ? 'aborts QEMU' : 'works'}; an out-of-range transfer ${b.outOfRange === 'aborts' ? 'aborts QEMU' : b.outOfRange === 'logged' ? 'is logged, not stopped' : 'passes silently'}`;
}
