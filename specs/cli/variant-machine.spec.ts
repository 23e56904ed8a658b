// A declared guest variant's machine (dmahil.config.json "variants") on the reference guest's machine
// config: memory, CPUs, the edu's mask, swiotlb, and no -icount with more than one CPU. The real boot of
// such a variant is in specs/e2e/scenarios-file.e2e.spec.ts.
import { expect } from 'chai';
import { icountFits, swiotlbAppend, variantMachineConfig } from '../../harness/guest/linux/variant-machine.js';
import { runSuite } from '../../harness/dma/run-suite.js';
import { makeScenario } from '../../harness/contract/scenario.js';
import { ReusingSessionSource } from '../../harness/dma/session-source.js';
import { UsageError } from '../../harness/errors.js';
import { startGuest } from '../../harness/lib/guest.js';

describe('guest variants declared in the config', () => {
  const base = { memoryMiB: 256, cpus: 1, edu: { enabled: true } };

  it('override the built-in machine only where they say', () => {
    expect(variantMachineConfig(undefined, base)).to.deep.equal(base);
    expect(variantMachineConfig({ memoryMiB: 512, cpus: 2, eduDmaMask: '0xffffffff' }, base)).to.deep.equal({ memoryMiB: 512, cpus: 2, edu: { enabled: true, dmaMask: 0xffffffffn } });
    expect(variantMachineConfig({ swiotlb: 'off' }, base)).to.deep.equal(base);
  });

  it('say what swiotlb does; without a setting the built-in bounce variant forces it', () => {
    expect([swiotlbAppend(undefined, false), swiotlbAppend(undefined, true), swiotlbAppend('force', false), swiotlbAppend('off', false), swiotlbAppend('default', false)]).to.deep.equal(['', 'swiotlb=force', 'swiotlb=force', 'swiotlb=noforce', '']);
  });

  it('keep -icount for one CPU only (TCG does not bring up a second CPU with it)', () => {
    expect([icountFits(undefined), icountFits({ cpus: 1 }), icountFits({ memoryMiB: 512 }), icountFits({ cpus: 2 })]).to.deep.equal([true, true, true, false]);
  });

  it('are the reference guest\'s: startGuest refuses one for a Windows golden image before anything starts', async () => {
    const variant = { id: 'two-cpus', forceBounce: false, description: '', machine: { cpus: 2 } };
    let error: unknown;
    await startGuest({ profile: 'windows', image: '/nonexistent/golden.json', variant, artifactsDir: '/nonexistent/artifacts' }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(UsageError);
    expect((error as UsageError).message).to.equal('guest variant "two-cpus" sets the reference guest\'s machine, not a Windows golden image\'s');
  });

  it('an entry on a variant the suite was not given is refused before any guest is asked for', async () => {
    let asked = 0;
    const source = new ReusingSessionSource(async () => {
      asked++;
      throw new Error('no guest here');
    });
    const entry = { variant: 'big-ram', quick: true, name: 'x', scenario: makeScenario({}) };
    let error: unknown;
    await runSuite([entry], { source }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(UsageError);
    expect((error as UsageError).message).to.match(/"x" runs on guest variant "big-ram", which is not one of direct, bounce/);
    expect(asked).to.equal(0);
  });
});
