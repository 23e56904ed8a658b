import { expect } from 'chai';
import { buildQemuCommand, escapeQemuOptValue, resolveAccel, shellQuote, WINDOWS_TCG_CPU, type QemuCommandInputs } from '../../harness/machine/index.js';
import { EnvironmentError } from '../../harness/errors.js';
import { parseIp } from '../../harness/machine/kvm-probe.js';
import { baseConfig } from './support/fixtures.js';

function build(over: Partial<QemuCommandInputs> = {}, config = baseConfig()) {
  return buildQemuCommand({ config, accel: 'tcg', runDir: '/dev/shm/run', artifactsDir: '/art', hostPort: 40022, ...over });
}

/** The value following the flag whose value satisfies pred. */
function opt(args: string[], flag: string, pred: (v: string) => boolean = () => true): string | undefined {
  for (let i = 0; i < args.length - 1; i++) if (args[i] === flag && pred(args[i + 1]!)) return args[i + 1];
  return undefined;
}

describe('machine/cmdline', () => {
  describe('accelerator', () => {
    it('TCG uses qemu64,+rdrand', () => {
      const { args } = build();
      expect(opt(args, '-accel')).to.equal('tcg');
      expect(opt(args, '-cpu')).to.equal('qemu64,+rdrand');
    });
    it('KVM uses the host CPU', () => {
      const { args } = build({ accel: 'kvm' });
      expect(opt(args, '-accel')).to.equal('kvm');
      expect(opt(args, '-cpu')).to.equal('host');
    });
    it('an explicit cpuModel wins', () => {
      expect(opt(build({}, baseConfig({ cpuModel: 'max' })).args, '-cpu')).to.equal('max');
      expect(opt(build({}, baseConfig({ cpuModel: 'max', tcgCpuModel: WINDOWS_TCG_CPU })).args, '-cpu')).to.equal('max');
    });
    it('tcgCpuModel (Windows guests) is the CPU under TCG only; KVM keeps host', () => {
      const win = baseConfig({ tcgCpuModel: WINDOWS_TCG_CPU });
      expect(opt(build({}, win).args, '-cpu')).to.equal('Nehalem-v1,+sse4.2,+popcnt');
      expect(opt(build({ accel: 'kvm' }, win).args, '-cpu')).to.equal('host');
    });
    it("resolves 'auto' from what KVM did, not from whether /dev/kvm opens; refuses 'kvm' without it", () => {
      const runs = { device: { usable: true }, execution: { works: true, detail: 'the firmware ran', ms: 200 } };
      const broken = { device: { usable: true }, execution: { works: false, detail: 'KVM cannot run the guest: QEMU: "KVM internal error. Suberror: 1"', ms: 300 } };
      expect(resolveAccel('auto', runs, 'a')).to.deep.equal({ accel: 'kvm' });
      expect(resolveAccel('auto', { device: { usable: false, reason: 'ENOENT' } }, 'a')).to.deep.equal({ accel: 'tcg' });
      expect(resolveAccel('tcg', runs, 'a')).to.deep.equal({ accel: 'tcg' });
      expect(() => resolveAccel('kvm', { device: { usable: false, reason: 'EACCES' } }, 'a'))
        .to.throw(EnvironmentError, /accel 'kvm' requested but \/dev\/kvm is not usable \(EACCES\)/);
      // The device opens, the guest does not run: kvm fails naming the cause and the fix; auto warns once.
      expect(() => resolveAccel('kvm', broken, 'b')).to.throw(EnvironmentError, /KVM cannot run a guest here: .*KVM internal error/);
      const first = resolveAccel('auto', broken, 'spec-binary-b');
      expect(first.accel).to.equal('tcg');
      expect(first.warning).to.match(/^warning: \/dev\/kvm opens but KVM cannot run a guest \(.*Suberror: 1.*\): running under TCG instead$/);
      expect(resolveAccel('auto', broken, 'spec-binary-b')).to.deep.equal({ accel: 'tcg' });
    });
    it('reads the instruction pointer from HMP info registers, 32- and 64-bit dumps', () => {
      expect(parseIp('EIP=0000fff0 EFL=00000002\nCS =f000 ffff0000 0000ffff 00009b00')).to.deep.equal({ csBase: 0xffff0000n, ip: 0xfff0n });
      expect(parseIp('RIP=ffffffff81000000 RFL=00000246\nCS =0010 0000000000000000 ffffffff 00a09b00')).to.deep.equal({ csBase: 0n, ip: 0xffffffff81000000n });
    });
  });

  describe('guest RAM', () => {
    it('is a shared file-backed pc.ram in the run directory, same size as -m', () => {
      const cmd = build({}, baseConfig({ memoryMiB: 3072 }));
      expect(cmd.ramFile).to.equal('/dev/shm/run/guest-ram');
      expect(opt(cmd.args, '-object')).to.equal('memory-backend-file,id=pc.ram,size=3072M,mem-path=/dev/shm/run/guest-ram,share=on');
      expect(opt(cmd.args, '-machine')).to.equal('q35,dump-guest-core=off,memory-backend=pc.ram');
      expect(opt(cmd.args, '-m')).to.equal('3072M');
    });
    it('is plain anonymous RAM when sharedRam is false', () => {
      const cmd = build({}, baseConfig({ sharedRam: false }));
      expect(cmd.ramFile).to.equal(undefined);
      expect(cmd.args).not.to.include('-object');
      expect(opt(cmd.args, '-machine')).to.equal('q35,dump-guest-core=off');
    });
  });

  describe('escaping', () => {
    it("doubles commas in option values", () => {
      expect(escapeQemuOptValue('/a,b,,c')).to.equal('/a,,b,,,,c');
    });
    it('escapes every path given through an option string', () => {
      const config = baseConfig({
        drives: [{ file: '/img/d,1.qcow2', format: 'qcow2', interface: 'virtio', readOnly: true }],
        cdroms: [{ file: '/iso/w,in.iso' }],
      });
      const { args } = build({ runDir: '/r,un', artifactsDir: '/a,rt' }, config);
      expect(opt(args, '-object')).to.contain('mem-path=/r,,un/guest-ram,');
      expect(opt(args, '-chardev', (v) => v.startsWith('socket'))).to.equal('socket,id=qmp,path=/r,,un/qmp.sock,server=on,wait=off');
      expect(opt(args, '-chardev', (v) => v.startsWith('file'))).to.equal('file,id=serial0,path=/a,,rt/serial.log');
      expect(opt(args, '-drive', (v) => v.includes('disk0'))).to.equal('file=/img/d,,1.qcow2,format=qcow2,if=none,id=disk0,readonly=on');
      expect(opt(args, '-drive', (v) => v.includes('cd0'))).to.equal('file=/iso/w,,in.iso,if=none,id=cd0,media=cdrom,readonly=on');
    });
    it('passes -kernel/-initrd/-append verbatim (QEMU 7.2 does not parse them as options)', () => {
      const { args } = build({}, baseConfig({ kernel: '/k,1', initrd: '/i,1', append: 'console=ttyS0 a=b,c' }));
      expect(opt(args, '-kernel')).to.equal('/k,1');
      expect(opt(args, '-initrd')).to.equal('/i,1');
      expect(opt(args, '-append')).to.equal('console=ttyS0 a=b,c');
    });
    it('quotes cmdline.txt for a shell', () => {
      expect(shellQuote(['qemu', '-append', "a b'c", '-m', '512M'])).to.equal(`qemu -append 'a b'\\''c' -m 512M`);
    });
  });

  describe('devices', () => {
    it('has no default devices, no display, no monitor, no reboot; serial and QMP go to files/sockets', () => {
      const { args, qmpSocket, serialLog } = build();
      for (const a of ['-nodefaults', '-no-reboot', '-no-user-config']) expect(args).to.include(a);
      expect(opt(args, '-display')).to.equal('none');
      expect(opt(args, '-vga')).to.equal('none');
      expect(opt(args, '-monitor')).to.equal('none');
      expect(opt(args, '-serial')).to.equal('chardev:serial0');
      expect(opt(args, '-mon')).to.equal('chardev=qmp,mode=control');
      expect(qmpSocket).to.equal('/dev/shm/run/qmp.sock');
      expect(serialLog).to.equal('/art/serial.log');
    });
    it('forwards 127.0.0.1:hostPort to the guest port, NIC without option ROM', () => {
      const { args } = build({ hostPort: 45555 }, baseConfig({ nic: { model: 'e1000e', guestPort: 2222 } }));
      expect(opt(args, '-netdev')).to.equal('user,id=net0,hostfwd=tcp:127.0.0.1:45555-:2222');
      expect(opt(args, '-device', (v) => v.startsWith('e1000e'))).to.equal('e1000e,netdev=net0,romfile=');
    });
    it('adds edu with dma_mask in hex and the pinned address', () => {
      const plain = build({}, baseConfig({ edu: { enabled: true } }));
      expect(opt(plain.args, '-device', (v) => v.startsWith('edu'))).to.equal('edu');
      const tuned = build({}, baseConfig({ edu: { enabled: true, dmaMask: 0xffffffffffffffffn, pciAddr: '04.0' } }));
      expect(opt(tuned.args, '-device', (v) => v.startsWith('edu'))).to.equal('edu,dma_mask=0xffffffffffffffff,addr=04.0');
      expect(build({}, baseConfig({ edu: { enabled: false, dmaMask: 1n } })).args.join(' ')).not.to.contain('edu');
    });
    it('puts AHCI/IDE disks and cdroms on consecutive AHCI ports, virtio disks on virtio-blk', () => {
      const { args } = build({}, baseConfig({
        drives: [
          { file: '/a.qcow2', format: 'qcow2', interface: 'ahci' },
          { file: '/b.raw', format: 'raw', interface: 'virtio' },
          { file: '/c.raw', format: 'raw', interface: 'ide' },
        ],
        cdroms: [{ file: '/w.iso' }],
      }));
      const devices = args.filter((_, i) => args[i - 1] === '-device');
      expect(devices).to.include.members(['ide-hd,drive=disk0,bus=ide.0', 'virtio-blk-pci,drive=disk1', 'ide-hd,drive=disk2,bus=ide.1', 'ide-cd,drive=cd0,bus=ide.2']);
    });
    it('adds pvpanic, guest_errors logging and the extra args last', () => {
      const { args } = build({}, baseConfig({ pvpanic: true, extraArgs: ['-S', '-d', 'int'] }));
      expect(args).to.include('pvpanic');
      expect(opt(args, '-d')).to.equal('guest_errors');
      expect(args.slice(-3)).to.deep.equal(['-S', '-d', 'int']);
      expect(build({}, baseConfig({ logGuestErrors: false })).args).not.to.include('guest_errors');
    });
    it('adds the agent port: a virtio-serial port named dmahil.agent on a Unix socket in the run dir', () => {
      const { args } = build({ runDir: '/r,un' }, baseConfig({ agentPort: true }));
      const devices = args.filter((_, i) => args[i - 1] === '-device');
      expect(devices).to.include.members(['virtio-serial-pci,id=agent-serial', 'virtserialport,bus=agent-serial.0,chardev=agent,id=agent-port,name=dmahil.agent']);
      expect(args.filter((_, i) => args[i - 1] === '-chardev')).to.include('socket,id=agent,path=/r,,un/agent.sock,server=on,wait=off');
      expect(build().args.join(' ')).to.not.match(/virtio-serial|agent/);
    });
    it('uses qemu-system-x86_64 unless qemuBinary says otherwise', () => {
      expect(build().binary).to.equal('qemu-system-x86_64');
      expect(build({}, baseConfig({ qemuBinary: '/opt/q' })).binary).to.equal('/opt/q');
    });
  });
});

describe('machine/cmdline: firmware, display and Windows options', () => {
  function args(over: Partial<import('../../harness/machine/config.js').MachineConfig>): string[] {
    return buildQemuCommand({ config: baseConfig(over), accel: 'tcg', runDir: '/dev/shm/run', artifactsDir: '/art', hostPort: 40022 }).args;
  }
  it('keeps the defaults: -no-reboot, no VGA, SeaBIOS, no -action', () => {
    const a = args({});
    expect(a).to.include('-no-reboot');
    expect(a[a.indexOf('-vga') + 1]).to.equal('none');
    expect(a.join(' ')).not.to.match(/pflash|-action|vmcoreinfo|bootindex|-rtc/);
  });
  it('a vIOMMU comes before every PCI device (QEMU translates only for devices realized after it)', () => {
    for (const [iommu, device] of [['intel-iommu', 'intel-iommu,intremap=off'], ['amd-iommu', 'amd-iommu'], ['virtio-iommu', 'virtio-iommu-pci']] as const) {
      const a = args({ iommu, agentPort: true });
      const at = a.indexOf(device);
      expect(at, iommu).to.be.greaterThan(a.indexOf('-machine'));
      const pci = a.map((v, i) => (a[i - 1] === '-device' && /^(edu|e1000|virtio-net-pci|virtio-serial-pci)\b/.test(v) ? i : -1)).filter((i) => i >= 0);
      expect(pci.length, iommu).to.be.greaterThan(0);
      expect(Math.min(...pci), iommu).to.be.greaterThan(at);
    }
    expect(args({}).join(' ')).not.to.match(/iommu/);
  });
  it("-d guest_errors, with invalid_mem where QEMU has it (QEMU 10 logs an IOMMU's refused accesses there)", () => {
    const d = (a: string[]) => a[a.indexOf('-d') + 1];
    expect(d(args({}))).to.equal('guest_errors');
    expect(d(buildQemuCommand({ config: baseConfig(), accel: 'tcg', runDir: '/r', artifactsDir: '/a', hostPort: 1, invalidMemLog: true }).args)).to.equal('guest_errors,invalid_mem');
    expect(buildQemuCommand({ config: baseConfig({ logGuestErrors: false }), accel: 'tcg', runDir: '/r', artifactsDir: '/a', hostPort: 1, invalidMemLog: true }).args).not.to.include('-d');
  });
  it('OVMF as two pflash drives, code read-only, paths escaped', () => {
    const a = args({ firmware: { kind: 'ovmf', code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/tmp/a,b/vars.fd' } });
    expect(a).to.include('if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd');
    expect(a).to.include('if=pflash,format=raw,unit=1,file=/tmp/a,,b/vars.fd');
  });
  it('display std, panic action, vmcoreinfo, localtime RTC, reboots allowed', () => {
    const a = args({ display: 'std', panicAction: 'pause', vmcoreinfo: true, rtcLocalTime: true, allowReboot: true });
    expect(a[a.indexOf('-vga') + 1]).to.equal('std');
    expect(a[a.indexOf('-display') + 1]).to.equal('none');
    expect(a[a.indexOf('-action') + 1]).to.equal('panic=pause');
    expect(a[a.indexOf('-rtc') + 1]).to.equal('base=localtime');
    expect(a).to.include('vmcoreinfo');
    expect(a).not.to.include('-no-reboot');
  });
  it('boot order on AHCI disks and CD-ROMs', () => {
    const a = args({ drives: [{ file: '/d.qcow2', format: 'qcow2', interface: 'ahci', bootIndex: 0 }], cdroms: [{ file: '/w.iso', bootIndex: 1 }, { file: '/c.iso' }] });
    expect(a).to.include('ide-hd,drive=disk0,bus=ide.0,bootindex=0');
    expect(a).to.include('ide-cd,drive=cd0,bus=ide.1,bootindex=1');
    expect(a).to.include('ide-cd,drive=cd1,bus=ide.2');
  });
});
