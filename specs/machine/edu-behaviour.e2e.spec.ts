// The edu's behaviour, measured on this host's QEMU (no guest: qtest drives the device), against what
// is known of the versions users have (facts §4.4, hosts.md). Where the version is neither, the probe
// must still say something consistent.
import { expect } from 'chai';
import { describeEdu, probeEduBehaviour } from '../../harness/machine/edu-behaviour.js';
import { versionAtLeast } from '../../harness/machine/qemu-check.js';
import { liveMachineCount } from '../../harness/machine/index.js';

describe("machine: this QEMU's edu, measured (real QEMU, qtest)", function () {
  this.timeout(30_000);

  it('clamps, where it says so, and which transfers abort: as known for 7.2 and 9.1+', async () => {
    const b = await probeEduBehaviour();
    expect(b.clamps, 'an out-of-mask DMA lands at the masked address').to.equal(true);
    // 7.2 aborts (hw_error); 10 logs it as a guest error and carries it out (its edu.c). Between: either.
    if (b.qemuVersion.startsWith('7.2')) expect(b.outOfRange, 'an 8192-byte transfer').to.equal('aborts');
    else if (versionAtLeast(b.qemuVersion, [10, 0])) expect(b.outOfRange, 'an 8192-byte transfer').to.equal('logged');
    else expect(b.outOfRange).to.be.oneOf(['aborts', 'logged']);
    expect(b.fullBufferAborts, '4096 bytes abort only before 9.1').to.equal(!versionAtLeast(b.qemuVersion, [9, 1]));
    if (b.qemuVersion.startsWith('7.2')) expect(b.clampMessage).to.equal('stdout');
    if (versionAtLeast(b.qemuVersion, [10, 0])) expect(b.clampMessage).to.equal('stderr');
    expect(describeEdu(b)).to.match(new RegExp(`^QEMU ${b.qemuVersion.replace(/\./g, '\\.')} edu: out-of-mask DMA is clamped \\(message on (stdout|stderr)\\)`));
    expect(liveMachineCount()).to.equal(0);
  });

  it('is measured once per process', async () => {
    const t0 = performance.now();
    const [a, b] = [await probeEduBehaviour(), await probeEduBehaviour()];
    expect(a).to.equal(b);
    expect(performance.now() - t0).to.be.below(50);
  });
});
