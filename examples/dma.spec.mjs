// A spec of your own against dmahil: the file a project starts from (docs/library.md explains every call).
// In your project: npm install <the dmahil tarball> mocha chai, copy this file there, then
//   npx mocha --timeout 600000 dma.spec.mjs
// DRIVER_DIR=<folder with edudma.ko built for the reference guest's kernel and a static dmactl> loads your
// driver build instead of the one dmahil builds from its sources.
import { expect } from 'chai';
import { CATALOG, makeScenario, outcome, runScenario, useGuest } from 'dmahil';

describe('DMA on the reference guest', function () {
  // The first run builds the reference guest image and the driver (minutes, cached); a boot takes seconds.
  this.timeout(600_000);
  // One boot for this block, saved; each test gets its own guest restored from that state ('per-test').
  const guest = useGuest({
    profile: 'linux',
    variant: 'direct',
    restore: 'per-test',
    driver: process.env.DRIVER_DIR,
    onProgress: (message) => process.stderr.write(`      dmahil: ${message}\n`),
  });

  it('a 4096-byte round trip verifies byte for byte', async () => {
    const v = await runScenario(guest.session, {
      name: 'round trip 4096 B',
      scenario: makeScenario({ direction: 'round-trip', size: 4096, seed: 7 }),
    });
    expect(v.status, v.summary).to.equal('pass');
    expect(outcome(v), v.summary).to.equal('ok');
  });

  it('the wrong-seed negative control is caught, for its reason', async () => {
    // The host expects another seed's pattern than the one the guest writes: the check must fail, saying why.
    const control = CATALOG.find((c) => c.name === 'control: wrong seed');
    const v = await runScenario(guest.session, control);
    expect(v.status, v.summary).to.equal('fail');
    expect(v.findings.map((f) => f.kind), v.summary).to.include('wrong-seed');
    expect(outcome(v), v.summary).to.equal('ok'); // a control is ok when it is caught for its reason
  });

  it("guest.restore() starts over from the saved state: the round trip's bytes are gone from guest RAM", async () => {
    const v = await runScenario(guest.session, {
      name: 'round trip 4096 B',
      scenario: makeScenario({ direction: 'round-trip', size: 4096, seed: 8 }),
    });
    expect(outcome(v), v.summary).to.equal('ok');
    // Guest RAM as the host reads it: the freed destination page still holds the pattern (Linux does not clear it).
    const gpa = v.result.buffers.find((b) => b.role === 'destination').pages[0];
    const written = await guest.session.memory.read(gpa, 256);
    expect(new Set(written).size, 'the pattern is in the destination page').to.be.above(16);

    const used = guest.session;
    await guest.restore();
    expect(guest.session).to.not.equal(used);
    const now = await guest.session.memory.read(gpa, 256);
    expect(now.equals(written), "the restored guest still holds the round trip's bytes").to.equal(false);
  });
});
