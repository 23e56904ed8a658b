// Long-running guest commands spoken to in lines, and DmactlServer on top, against a real OpenSSH sshd
// on loopback running the real (host-built) dmactl. The reference guest's e2e specs run every scenario
// through the same code against dropbear and edudma.
import { expect } from 'chai';
import { execa } from 'execa';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { makeScenario } from '../../harness/contract/scenario.js';
import { GuestCommandTimeoutError, GuestConnectionError, GuestNotReadyError } from '../../harness/guest/channel/errors.js';
import { SshChannel, type SshTarget } from '../../harness/guest/channel/ssh-channel.js';
import { DmactlServer } from '../../harness/guest/dmactl-server.js';
import { GuestContractError } from '../../harness/errors.js';
import { startSshdOrSkip, type LoopbackSshd } from './sshd.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const dmactl = path.join(repoRoot, 'build/linux/dmactl');

describe('guest-channel: line streams and the dmactl server against a real sshd', function () {
  this.timeout(120_000);
  let sshd: LoopbackSshd;
  let target: SshTarget;
  let channel: SshChannel;

  before(async function () {
    ({ sshd, target } = await startSshdOrSkip(this));
    await execa('make', ['-s', '-C', path.join(repoRoot, 'guest-driver/linux'), 'dmactl-linux']);
    channel = await SshChannel.login(target, { timeoutMs: 60_000 });
  });

  after(async () => {
    channel?.close();
    await sshd?.stop();
  });

  describe('LineStream', () => {
    it('answers requests in order over one process, lines buffered or awaited', async () => {
      const s = await channel.openLineStream('cat');
      for (let i = 0; i < 20; i++) expect(await s.request(`line ${i}`, 10_000, 'echo')).to.equal(`line ${i}`);
      s.writeLine('a');
      s.writeLine('b');
      await sleep(200); // both answers arrive before anyone reads
      expect(await s.readLine(10_000, 'a')).to.equal('a');
      expect(await s.readLine(10_000, 'b')).to.equal('b');
      await s.close();
      expect(s.isOpen).to.equal(false);
    });

    it('a time limit closes the stream and says what ran late', async () => {
      const s = await channel.openLineStream('sleep 30');
      const err = await s.readLine(300, 'the answer').catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestCommandTimeoutError);
      expect((err as Error).message).to.match(/"sleep 30": the answer ran past 300 ms/);
      expect(s.isOpen).to.equal(false);
      const next = await s.request('x', 1000, 'more').catch((e: unknown) => e);
      expect(next).to.be.instanceOf(GuestConnectionError);
      expect((next as Error).message).to.match(/was closed: the answer ran past 300 ms/);
    });

    it('a command that ends fails the waiting reader with its exit status and stderr', async () => {
      const s = await channel.openLineStream('read x; echo "broken: $x" >&2; exit 7');
      const err = await s.request('pipe', 10_000, 'the answer').catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestConnectionError);
      expect((err as Error).message).to.match(/exited with 7: broken: pipe/);
      expect(s.ended).to.include({ code: 7 });
    });

    it('lines printed before the command ended are still read', async () => {
      const s = await channel.openLineStream('echo one; echo two');
      expect(await s.readLine(10_000, 'first')).to.equal('one');
      expect(await s.readLine(10_000, 'second')).to.equal('two');
      expect(await s.readLine(10_000, 'third').catch((e: unknown) => e)).to.be.instanceOf(GuestConnectionError);
    });
  });

  describe('SshChannel.login (a restored guest: no banner probe)', () => {
    it('logs in to a listening sshd', async () => {
      const c = await SshChannel.login(target, { timeoutMs: 30_000 });
      expect((await c.exec('echo in', { timeoutMs: 10_000 })).stdout).to.equal('in\n');
      c.close();
    });

    it('gives up at its deadline naming the last failure', async () => {
      const err = await SshChannel.login({ ...target, port: 1 }, { timeoutMs: 500, logFile: '/art/serial.log' }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestNotReadyError);
      expect((err as Error).message).to.match(/no SSH login at 127\.0\.0\.1:1 within 1 s \(\d+ tries\): .*ECONNREFUSED/);
    });

    it('stops at once when the machine is gone', async () => {
      const t = Date.now();
      const err = await SshChannel.login({ ...target, port: 1 }, { timeoutMs: 30_000, deadReason: () => 'QEMU exited' }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestNotReadyError);
      expect((err as Error).message).to.match(/the guest cannot answer: QEMU exited/);
      expect(Date.now() - t).to.be.lessThan(10_000);
    });
  });

  describe('DmactlServer on the real dmactl (no edudma on this host: every command fails to open it)', () => {
    const device = `/nonexistent/edudma-${process.pid}`;
    let opened = 0;
    const server = (): DmactlServer =>
      new DmactlServer({
        open: () => {
          opened++;
          return channel.openLineStream(`exec ${dmactl} --device ${device} serve`);
        },
        contains: () => true,
        commandTimeoutMs: 10_000,
        runTimeoutMs: 10_000,
      });

    it('one process answers many infos', async () => {
      opened = 0;
      const s = server();
      for (let i = 0; i < 5; i++) {
        const info = await s.info();
        expect(info.ok).to.equal(false);
        expect(info.error?.code).to.equal('open');
      }
      expect(opened).to.equal(1);
      await s.close();
    });

    it('a run the contract rejects is released at once, and the protocol stays in step', async () => {
      opened = 0;
      const s = server();
      const err = await s.run(makeScenario({ size: 64, seed: 1 })).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestContractError);
      expect((err as Error).message).to.match(/no driver description/);
      // The release line was sent and answered: the next answer is info's, from the same process.
      expect((await s.info()).error?.code).to.equal('open');
      expect(opened).to.equal(1);
      await s.close();
    });

    it('a held run keeps the turn until it is released: an info asked meanwhile waits', async () => {
      // A scripted dmactl with a canned, valid result: edudma is not on this host. The real one holds
      // buffers in the reference guest's e2e specs.
      const scenario = makeScenario({ size: 64, seed: 1 });
      const page = '0x100000';
      const result = {
        contract: 1, ok: true, command: 'run', os: 'linux',
        driver: { name: 'edudma', version: '0.1.0', api: 'linux-dma-api', dmaMaskBits: 28 },
        scenario, handle: 5,
        buffers: ['source', 'destination'].map((role) => ({
          role, kind: 'client', offset: 0, length: 64, bounced: false, pages: [page], segments: [{ offset: 0, length: 64, device: page }],
        })),
        calls: [], timings: { toDeviceUs: 1, fromDeviceUs: 1, totalUs: 2, eduOps: 2 }, error: null,
      };
      const release = { contract: 1, ok: true, command: 'release', os: 'linux', handle: 5, error: null };
      const info = { contract: 1, ok: false, command: 'info', os: 'linux', error: { code: 'open', message: 'scripted' } };
      // Two-phase (docs/contract.md): the pages first (armed), the result after "go".
      const armed = { contract: 1, ok: true, command: 'armed', os: 'linux', driver: result.driver, scenario, handle: 5, buffers: result.buffers.map((b) => ({ ...b, segments: [] })), error: null };
      const script = `while read l; do case "$l" in run*) echo '${JSON.stringify(armed)}';; go) echo '${JSON.stringify(result)}';; release*) echo '${JSON.stringify(release)}';; *) echo '${JSON.stringify(info)}';; esac; done`;
      const s = new DmactlServer({ open: () => channel.openLineStream(script), contains: () => true, commandTimeoutMs: 10_000, runTimeoutMs: 10_000 });
      let armedSeen: number[] = [];
      const held = await s.run(scenario, async (a) => void (armedSeen = a.buffers.flatMap((b) => b.pages)));
      expect(held.result.ok).to.equal(true);
      expect(armedSeen, 'onArmed saw the pages before go').to.deep.equal([0x100000, 0x100000]);
      expect(held.armed?.handle).to.equal(5);
      let infoDone = false;
      const asked = s.info().then((r) => ((infoDone = true), r));
      await sleep(300);
      expect(infoDone, 'info ran while the run was held').to.equal(false);
      await held.release();
      expect((await asked).error?.message).to.equal('scripted');
      await held.release(); // a second release is the same release, not a second "release" line
      expect((await s.info()).error?.message).to.equal('scripted');
      await s.close();
    });

    it('a held run that comes back ok without an armed line is rejected (no evidence before the DMA), and released', async () => {
      const scenario = makeScenario({ size: 64, seed: 1 });
      const page = '0x100000';
      const result = {
        contract: 1, ok: true, command: 'run', os: 'linux', driver: { name: 'edudma', version: '0.1.0', api: 'linux-dma-api' }, scenario, handle: 5,
        buffers: ['source', 'destination'].map((role) => ({ role, kind: 'client', offset: 0, length: 64, bounced: false, pages: [page], segments: [{ offset: 0, length: 64, device: page }] })),
        calls: [], timings: {}, error: null,
      };
      const release = { contract: 1, ok: true, command: 'release', os: 'linux', handle: 5, error: null };
      const lines: string[] = [];
      const script = `while read l; do echo "$l" >&2; case "$l" in run*) echo '${JSON.stringify(result)}';; release*) echo '${JSON.stringify(release)}';; esac; done`;
      const s = new DmactlServer({ open: () => channel.openLineStream(script), contains: () => true, commandTimeoutMs: 10_000, runTimeoutMs: 10_000 });
      const err = await s.run(scenario, async () => void lines.push('armed')).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(GuestContractError);
      expect((err as Error).message).to.match(/without an armed line/);
      expect(lines, 'no armed line, no read before the DMA').to.deep.equal([]);
      await s.close();
    });

    it('starts a new dmactl when the one it had died', async () => {
      opened = 0;
      const s = server();
      await s.info();
      const pids = (await execa('pgrep', ['-f', '--', `--device ${device} serve`], { reject: false })).stdout.split('\n').filter(Boolean).map(Number);
      expect(pids.length).to.be.greaterThan(0);
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      await sleep(300);
      const info = await s.info().catch((e: unknown) => e);
      // The request that meets the dead process may fail (it was in flight) or go to a fresh one.
      if (info instanceof Error) expect(info).to.be.instanceOf(GuestConnectionError);
      expect((await s.info()).error?.code).to.equal('open');
      expect(opened).to.equal(2);
      await s.close();
    });
  });
});
