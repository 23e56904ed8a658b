import { expect } from 'chai';
import { MachineConfigError, validateMachineConfig } from '../../harness/machine/index.js';
import { UsageError } from '../../harness/errors.js';
import { baseConfig } from './support/fixtures.js';

function problemsOf(input: unknown): Array<{ field: string; message: string; hint: string }> {
  try {
    validateMachineConfig(input);
  } catch (err) {
    expect(err).to.be.instanceOf(MachineConfigError);
    expect(err).to.be.instanceOf(UsageError);
    return (err as MachineConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

function expectProblem(overrides: Record<string, unknown>, field: string, message: RegExp, hint?: RegExp): void {
  const problems = problemsOf({ ...baseConfig(), ...overrides });
  const p = problems.find((x) => x.field === field);
  expect(p, `no problem for ${field} in ${JSON.stringify(problems)}`).to.not.equal(undefined);
  expect(p!.message).to.match(message);
  if (hint) expect(p!.hint).to.match(hint);
}

describe('machine/config validation', () => {
  it('accepts a complete valid config and returns it', () => {
    const config = baseConfig({
      kernel: '/k', initrd: '/i', append: 'console=ttyS0',
      drives: [{ file: '/d', format: 'raw', interface: 'virtio', readOnly: true }],
      cdroms: [{ file: '/c.iso' }],
      edu: { enabled: true, dmaMask: 0xfffffffn, pciAddr: '0x4' },
      cpuModel: 'qemu64,+rdrand', tcgCpuModel: 'Nehalem-v1,+sse4.2,+popcnt', pvpanic: true, sharedRam: true, logGuestErrors: false, extraArgs: ['-S'], qemuBinary: 'qemu-system-x86_64',
    });
    expect(validateMachineConfig(config)).to.equal(config);
  });

  it('rejects a non-object', () => {
    expect(() => validateMachineConfig(null)).to.throw(MachineConfigError, /must be an object/);
  });

  const cases: Array<[string, Record<string, unknown>, string, RegExp, RegExp?]> = [
    ['name with a slash', { name: 'a/b' }, 'name', /letters, digits/, /linux-ref/],
    ['memory too small', { memoryMiB: 8 }, 'memoryMiB', /integer from 16 to 524288 \(got 8\)/, /512/],
    ['fractional memory', { memoryMiB: 100.5 }, 'memoryMiB', /integer/],
    ['zero cpus', { cpus: 0 }, 'cpus', /integer from 1 to 64/],
    ['unknown accel', { accel: 'hvf' }, 'accel', /'auto', 'kvm' or 'tcg' \(got "hvf"\)/, /auto/],
    ['empty kernel', { kernel: '' }, 'kernel', /non-empty file path/],
    ['initrd without kernel', { initrd: '/i' }, 'initrd', /needs kernel/],
    ['append without kernel', { append: 'x' }, 'append', /needs kernel/],
    ['drives not an array', { drives: {} }, 'drives', /must be an array/],
    ['drive with a bad format', { drives: [{ file: '/d', format: 'vmdk', interface: 'virtio' }] }, 'drives[0].format', /'qcow2' or 'raw' \(got "vmdk"\)/],
    ['drive with a bad interface', { drives: [{ file: '/d', format: 'raw', interface: 'scsi' }] }, 'drives[0].interface', /'virtio', 'ahci' or 'ide'/],
    ['drive without file', { drives: [{ format: 'raw', interface: 'virtio' }] }, 'drives[0].file', /non-empty file path \(got nothing\)/],
    ['drive with readOnly as a string', { drives: [{ file: '/d', format: 'raw', interface: 'virtio', readOnly: 'yes' }] }, 'drives[0].readOnly', /boolean/],
    ['drive with an unknown field', { drives: [{ file: '/d', format: 'raw', interface: 'virtio', cache: 'none' }] }, 'drives[0].cache', /not a drive field/],
    ['too many AHCI devices', { drives: Array.from({ length: 5 }, () => ({ file: '/d', format: 'raw', interface: 'ahci' })), cdroms: [{ file: '/a' }, { file: '/b' }] }, 'drives', /need 7 ports; q35's AHCI has 6/, /virtio/],
    ['cdrom without file', { cdroms: [{}] }, 'cdroms[0].file', /non-empty file path/],
    ['edu missing', { edu: undefined }, 'edu', /must be an object/],
    ['edu.enabled not boolean', { edu: { enabled: 1 } }, 'edu.enabled', /boolean/],
    ['edu.dmaMask as a number', { edu: { enabled: true, dmaMask: 0xffffffff } }, 'edu.dmaMask', /bigint/, /0xffffffffn/],
    ['edu.dmaMask above 64 bits', { edu: { enabled: true, dmaMask: 1n << 64n } }, 'edu.dmaMask', /2\^64-1/],
    ['edu.pciAddr slot 0', { edu: { enabled: true, pciAddr: '00.0' } }, 'edu.pciAddr', /slot 0x01-0x1f/, /04\.0/],
    ['edu.pciAddr function 8', { edu: { enabled: true, pciAddr: '04.8' } }, 'edu.pciAddr', /function 0-7/],
    ['nic model unknown', { nic: { model: 'rtl8139', guestPort: 22 } }, 'nic.model', /'virtio-net-pci', 'e1000e' or 'e1000'/],
    ['nic port out of range', { nic: { model: 'e1000', guestPort: 70000 } }, 'nic.guestPort', /1-65535 \(got 70000\)/, /22/],
    ['cpuModel with a space', { cpuModel: 'qemu64 +rdrand' }, 'cpuModel', /-cpu value/],
    ['tcgCpuModel with a space', { tcgCpuModel: 'Nehalem-v1 +popcnt' }, 'tcgCpuModel', /-cpu value/],
    ['pvpanic not boolean', { pvpanic: 'on' }, 'pvpanic', /boolean/],
    ['agentPort not boolean', { agentPort: 1 }, 'agentPort', /boolean/],
    ['sharedRam not boolean', { sharedRam: 0 }, 'sharedRam', /boolean/],
    ['extraArgs with a number', { extraArgs: ['-S', 1] }, 'extraArgs', /array of strings/],
    ['empty qemuBinary', { qemuBinary: '' }, 'qemuBinary', /non-empty/],
    ['misspelt field', { memoryMib: 512 }, 'memoryMib', /not a MachineConfig field/, /memoryMiB/],
  ];
  for (const [what, overrides, field, message, hint] of cases) {
    it(`${what} → ${field}`, () => expectProblem(overrides, field, message, hint));
  }

  it('reports every bad field at once, first in the message, all in the hint', () => {
    const problems = problemsOf({ ...baseConfig(), memoryMiB: 1, cpus: 0 });
    expect(problems.map((p) => p.field)).to.deep.equal(['memoryMiB', 'cpus']);
    try {
      validateMachineConfig({ ...baseConfig(), memoryMiB: 1, cpus: 0 });
    } catch (err) {
      expect((err as MachineConfigError).message).to.match(/^machine config: memoryMiB must be .*; cpus must be/);
      expect((err as MachineConfigError).describe()).to.contain('memoryMiB: use e.g. 512');
    }
  });
});

describe('machine/config validation: firmware and Windows options', () => {
  it('accepts OVMF, display, panic action, vmcoreinfo, reboots, RTC and boot indexes', () => {
    const config = baseConfig({
      firmware: { kind: 'ovmf', code: '/c.fd', vars: '/v.fd' }, display: 'std', panicAction: 'pause', vmcoreinfo: true,
      allowReboot: true, rtcLocalTime: true,
      drives: [{ file: '/d', format: 'qcow2', interface: 'ahci', bootIndex: 0 }], cdroms: [{ file: '/c.iso', bootIndex: 1 }],
    });
    expect(validateMachineConfig(config)).to.equal(config);
  });
  it('names each bad field', () => {
    expectProblem({ firmware: { kind: 'seabios' } }, 'firmware', /kind: 'ovmf'/, /OVMF_CODE_4M/);
    expectProblem({ firmware: { kind: 'ovmf', code: '', vars: '/v' } }, 'firmware.code', /non-empty/);
    expectProblem({ firmware: { kind: 'ovmf', code: '/c', vars: '/v', secure: true } }, 'firmware.secure', /not a firmware field/);
    expectProblem({ display: 'gtk' }, 'display', /'none' or 'std'/);
    expectProblem({ panicAction: 'reboot' }, 'panicAction', /'shutdown', 'pause' or 'none'/);
    expectProblem({ vmcoreinfo: 'yes' }, 'vmcoreinfo', /boolean/);
    expectProblem({ drives: [{ file: '/d', format: 'raw', interface: 'ahci', bootIndex: -1 }] }, 'drives[0].bootIndex', /0 to 99/);
    expectProblem({ cdroms: [{ file: '/c.iso', boot: 1 }] }, 'cdroms[0].boot', /not a cdrom field/);
  });
});
