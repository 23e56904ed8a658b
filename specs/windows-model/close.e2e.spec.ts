// Closing a model session is a shutdown, as for a machine: end of input, dmactl returns, the model removes
// the device, unloads the driver (checking for leaks) and exits by itself; a kill is only for one that
// hangs. Wine's helper processes keep the first model's stderr open, so the model's last line, not the
// pipe's end, says that everything it printed was read.
import { expect } from 'chai';
import { CATALOG } from '../../harness/dma/catalog.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import { outcome } from '../../harness/dma/verdict.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import { buildModel, modelCase, modelPrefix, startModel } from './support.js';

describe('windows driver in the NT DMA model: closing a session', function () {
  this.timeout(300_000);
  const world = NT_MODEL_WORLDS['map-registers'];

  before(async () => {
    await buildModel();
  });

  it('ends the model by end of input: it exits 0 by itself with nothing leaked, and is no longer healthy', async () => {
    const s = await startModel(world, 'close/clean', modelPrefix());
    const v = await runScenario(s, modelCase(world, CATALOG.find((e) => e.name === 'bounced round-trip 4096 B')!));
    expect(outcome(v), v.summary).to.equal('ok');
    await s.close();
    expect(s.exitStatus).to.deep.equal({ code: 0 });
    expect(await s.describeBugchecks()).to.deep.equal([]);
    expect(s.isHealthy()).to.equal(false);
  });

  it('a session whose model never started closes at once', async () => {
    const s = await startModel(world, 'close/unstarted', modelPrefix());
    await s.close();
    expect(s.exitStatus).to.equal(undefined);
  });
});
