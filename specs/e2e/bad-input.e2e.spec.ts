// Failures a user meets, caused for real: each must give a one-line error naming the cause and the
// log to read, and leave no QEMU running.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { makeScenario } from '../../harness/contract/scenario.js';
import { GuestContractError } from '../../harness/errors.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { GuestNotReadyError } from '../../harness/guest/channel/errors.js';
import { DriverLoadError, type LinuxSession } from '../../harness/guest/linux/profile.js';
import { liveMachineCount } from '../../harness/machine/index.js';
import { BOOT_TIMEOUT_MS, startReferenceGuest } from './support.js';

async function expectRejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure');
}

// A stand-in for dmactl: a valid info, then for run a result that must not be trusted.
// Speaks dmactl's serve protocol (docs/contract.md), and lies: a page outside guest RAM, or a crash.
const LYING_TOOL = `#!/bin/sh
[ "$1" = serve ] || exit 1
while read cmd rest; do
  case "$cmd" in
    info) echo '{"contract":1,"ok":true,"command":"info","os":"linux","driver":{"name":"liar","version":"0","api":"linux-dma-api"},"faults":[],"methods":[],"maxSize":1048576,"held":0,"error":null}' ;;
    run)
      seed=; set -- $rest
      while [ $# -gt 0 ]; do [ "$1" = --seed ] && seed=$2; shift; done
      seg='"segments":[{"offset":0,"length":16,"device":"0x100000"}]'
      case "$seed" in
        1) echo '{"contract":1,"ok":true,"command":"run","os":"linux","driver":{"name":"liar","version":"0","api":"linux-dma-api"},"scenario":{"direction":"round-trip","method":"streaming","sync":"full","fault":"none","size":16,"offset":0,"seed":1},"handle":1,"buffers":[{"role":"source","kind":"client","offset":0,"length":16,"bounced":false,"pages":["0x100000"],'"$seg"'},{"role":"destination","kind":"client","offset":0,"length":16,"bounced":false,"pages":["0x7ff00000000"],'"$seg"'}],"calls":[],"timings":{},"error":null}' ;;
        *) echo 'Segmentation fault'; exit 139 ;;
      esac
      read release
      echo '{"contract":1,"ok":true,"command":"release","os":"linux","handle":1,"error":null}' ;;
  esac
done
`;

describe('e2e: bad input and broken guests', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let scratch: string;

  before(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-bad-'));
  });
  after(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });
  const noMachineLeft = (): void => {
    expect(liveMachineCount(), 'a QEMU outlived the failure').to.equal(0);
  };

  it('a driver that fails to load: names insmod, the kernel messages and the serial log', async () => {
    const junk = path.join(scratch, 'edudma.ko');
    await fs.writeFile(junk, 'this is not an ELF module\n');
    const e = await expectRejects(startReferenceGuest('bad-driver', false, { driverOverride: { module: junk } }));
    expect(e).to.be.instanceOf(DriverLoadError);
    const line = (e as DriverLoadError).describe();
    expect(line).to.match(/insmod edudma\.ko failed/).and.match(/serial\.log/);
    expect(line.split('\n')).to.have.length(1);
    noMachineLeft();
  });

  it('a guest that never becomes ready: fails as soon as the machine is gone, naming the serial log', async () => {
    const started = Date.now();
    const e = await expectRejects(startReferenceGuest('no-init', false, { extraAppend: 'rdinit=/does-not-exist' }));
    expect(e).to.be.instanceOf(GuestNotReadyError);
    expect((e as GuestNotReadyError).describe()).to.match(/the guest cannot boot: (the guest panicked|QEMU exited)/).and.match(/serial\.log/);
    expect(Date.now() - started, 'waited for the whole boot timeout').to.be.below(120_000);
    const serial = await fs.readFile((e as GuestNotReadyError).logFile!, 'utf8');
    expect(serial).to.match(/Kernel panic|not syncing|Unable to mount root/);
    noMachineLeft();
  });

  describe('a guest tool that reports nonsense', () => {
    let session: LinuxSession;
    before(async () => {
      const tool = path.join(scratch, 'dmactl');
      await fs.writeFile(tool, LYING_TOOL, { mode: 0o755 });
      session = await startReferenceGuest('lying-tool', false, { driverOverride: { tool } });
    });
    after(async () => {
      await session?.close();
      noMachineLeft();
    });

    it('a page outside guest RAM is rejected before any memory is read', async () => {
      const e = await expectRejects(session.run(makeScenario({ size: 16, seed: 1 })));
      expect(e).to.be.instanceOf(GuestContractError);
      expect(e.message).to.match(/page 0 at 0x7ff00000000 is outside guest RAM/);
    });

    it('output that is not JSON fails the scenario with the reason', async () => {
      const v = await runScenario(session, { name: 'garbage', scenario: makeScenario({ size: 16, seed: 2 }) });
      expect(v.status).to.equal('error');
      expect(v.summary).to.match(/no JSON object in dmactl output "Segmentation fault/);
    });
  });
});
