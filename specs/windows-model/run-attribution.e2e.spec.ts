// The model's device messages belong to the run whose GO printed them, by their order on stderr, not by the
// millisecond they were read: a run takes a few ms here, and CI's loaded Debian 12 lane read a control's
// clamp lines in the very millisecond the next scenario started, which was then blamed for them.
import { expect } from 'chai';
import { CATALOG } from '../../harness/dma/catalog.js';
import { runScenario } from '../../harness/dma/run-scenario.js';
import type { NtModelSession } from '../../harness/guest/nt-model/session.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import { buildModel, modelCase, modelPrefix, startModel } from './support.js';

describe('windows driver in the NT DMA model: a run is given only its own device messages', function () {
  this.timeout(300_000);
  let session: NtModelSession;
  const world = NT_MODEL_WORLDS.direct;
  const entry = (name: string) => modelCase(world, CATALOG.find((e) => e.variant === 'direct' && e.name === name)!);

  before(async () => {
    await buildModel();
    session = await startModel(world, 'run-attribution', modelPrefix());
  });
  after(async () => {
    await session?.close();
  });

  it("a clamp control's lines are its own; the next run sees none of them, even asked for all time", async () => {
    const control = await runScenario(session, entry('control: address beyond the 28-bit mask'));
    expect(control.findings.map((f) => f.kind), control.summary).to.include('device-model-clamp');
    expect(session.deviceModelEvents(0).filter((e) => e.kind === 'edu-clamp').length, 'the control printed its clamps').to.be.greaterThan(0);

    const next = await runScenario(session, entry('round-trip 4096 B'));
    expect(next.status, next.summary).to.equal('pass');
    // Since 0: a time filter cannot hide them, only the order can.
    expect(session.deviceModelEvents(0)).to.deep.equal([]);
  });
});
