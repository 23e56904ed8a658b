// Windows 11 24H2 and Server 2025 do not boot without SSE4.2 and POPCNT. Under TCG the harness gives
// Windows machines WINDOWS_TCG_CPU; here QEMU itself says what that model is: the golden-image install
// machine is launched as the harness launches it (TCG, paused before the first instruction) and its
// vCPUs' own properties and QEMU's stderr are read back; query-cpu-model-expansion, asked of a QEMU with
// no -cpu, says what the model string means.
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_TCG_CPU, liveMachineCount, Machine, QmpClient, WINDOWS_TCG_CPU } from '../../harness/machine/index.js';
import { installMachineConfig, OVMF_CODE, OVMF_VARS } from '../../images/windows/build.js';
import { pausedConfig, scratchDir } from './support/fixtures.js';

/** A -cpu value as QMP's CpuModelInfo: 'Nehalem-v1,+sse4.2,-x2apic,rdrand=on' → name and boolean props. */
function cpuModelInfo(value: string): { name: string; props: Record<string, boolean> } {
  const [name, ...opts] = value.split(',');
  const props: Record<string, boolean> = {};
  for (const o of opts) {
    if (o.startsWith('+') || o.startsWith('-')) props[o.slice(1)] = o.startsWith('+');
    else {
      const [k, v] = o.split('=');
      if (v !== 'on' && v !== 'off') throw new Error(`cpuModelInfo: only boolean features are handled, not '${o}'`);
      props[k!] = v === 'on';
    }
  }
  return { name: name!, props };
}

type Expansion = { model: { name: string; props: Record<string, unknown> } };

describe('machine: the TCG CPU of Windows machines has SSE4.2 and POPCNT (real QEMU, query-cpu-model-expansion)', function () {
  this.timeout(60_000);
  let dir: string;
  let machine: Machine | undefined;
  let linuxLike: Machine | undefined;
  let bare: { proc: ChildProcess; qmp: QmpClient } | undefined;

  before(async function () {
    if (!fs.existsSync(OVMF_CODE)) {
      this.test!.parent!.title += ' (skipped: no OVMF; apt-get install -y ovmf)';
      this.skip();
    }
    dir = scratchDir('wincpu');
    const disk = path.join(dir, 'w.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '1G']);
    const vars = path.join(dir, 'w.vars.fd');
    fs.copyFileSync(OVMF_VARS, vars);
    const iso = path.join(dir, 'win.iso');
    const configIso = path.join(dir, 'config.iso');
    fs.writeFileSync(iso, Buffer.alloc(2048 * 16));
    fs.writeFileSync(configIso, Buffer.alloc(2048 * 16));
    // The golden-image install machine exactly as images/windows/build.ts makes it, paused (-S).
    const config = installMachineConfig({ disk, iso, configIso, vars, firmware: 'uefi', memoryMiB: 1024, cpus: 2, accel: 'tcg' });
    machine = await Machine.launch({ ...config, extraArgs: ['-S'] }, { artifactsDir: path.join(dir, 'art') });
    // Control: a machine with the default TCG CPU (the Linux reference guest's).
    linuxLike = await Machine.launch(pausedConfig({ name: 'linux-like', accel: 'tcg' }), { artifactsDir: path.join(dir, 'art-linux') });
    // query-cpu-model-expansion asks a QEMU with no -cpu: on a machine started with one, QEMU applies that
    // -cpu's features to every CPU object it makes as global properties, so every expansion would have them.
    const sock = path.join(dir, 'bare.qmp');
    const proc = spawn('qemu-system-x86_64', ['-machine', 'none', '-accel', 'tcg', '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await sleep(25);
    bare = { proc, qmp: await QmpClient.connect(sock) };
  });
  after(async () => {
    bare?.qmp.close();
    bare?.proc.kill('SIGKILL');
    await machine?.shutdown({ graceMs: 200 });
    await linuxLike?.shutdown({ graceMs: 200 });
    expect(liveMachineCount()).to.equal(0);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const expand = async (value: string) => (await bare!.qmp.execute<Expansion>('query-cpu-model-expansion', { type: 'full', model: cpuModelInfo(value) })).model.props;
  const vcpuProps = async (m: Machine, props: string[]) => {
    const out: Record<string, unknown>[] = [];
    for (const c of await m.qmp.execute<Array<{ 'qom-path': string }>>('query-cpus-fast')) {
      const one: Record<string, unknown> = {};
      for (const p of props) one[p] = await m.qmp.execute('qom-get', { path: c['qom-path'], property: p });
      out.push(one);
    }
    return out;
  };

  it('the launched command line asks for WINDOWS_TCG_CPU under TCG', () => {
    expect(machine!.accel).to.equal('tcg');
    const cmdline = fs.readFileSync(path.join(dir, 'art', 'cmdline.txt'), 'utf8');
    expect(cmdline).to.contain(` -accel tcg -cpu ${WINDOWS_TCG_CPU} `);
  });

  it("QEMU's full expansion of that model: sse4.2 and popcnt on, the named model alone too (and 24H2's older needs: sse4.1, cx16, lahf_lm, nx)", async () => {
    const props = await expand(WINDOWS_TCG_CPU);
    for (const f of ['sse4.2', 'popcnt', 'sse4.1', 'ssse3', 'cx16', 'lahf_lm', 'nx', 'lm']) expect(props[f], f).to.equal(true);
    const model = await expand(WINDOWS_TCG_CPU.split(',')[0]!);
    expect([model['sse4.2'], model['popcnt']]).to.deep.equal([true, true]);
  });

  it('the check can fail: the default TCG CPU (qemu64,+rdrand) expands without sse4.2 and popcnt', async () => {
    const props = await expand(DEFAULT_TCG_CPU);
    expect([props['sse4.2'], props['popcnt'], props['rdrand']]).to.deep.equal([false, false, true]);
  });

  it("each vCPU of the running Windows machine has them (qom-get on its own properties); the default CPU's have not", async () => {
    expect(await vcpuProps(machine!, ['sse4.2', 'popcnt'])).to.deep.equal([{ 'sse4.2': true, popcnt: true }, { 'sse4.2': true, popcnt: true }]);
    expect(await vcpuProps(linuxLike!, ['sse4.2', 'popcnt'])).to.deep.equal([{ 'sse4.2': false, popcnt: false }]);
  });

  it("TCG implements every feature of the model: QEMU printed no \"TCG doesn't support requested feature\" warning", async () => {
    const warnings = (m: Machine) => m.deviceModelMessages().filter((x) => x.kind === 'qemu-warning' || x.kind === 'qemu-error').map((x) => x.line);
    expect(warnings(machine!)).to.deep.equal([]);
    expect(fs.readFileSync(path.join(dir, 'art', 'qemu-stderr.log'), 'utf8')).not.to.match(/TCG doesn't support/);
    // The check can fail: a feature TCG never implements (VMX) is warned about, and seen.
    const vmx = await Machine.launch(pausedConfig({ name: 'vmx', accel: 'tcg', tcgCpuModel: `${WINDOWS_TCG_CPU},+vmx` }), { artifactsDir: path.join(dir, 'art-vmx') });
    try {
      for (let i = 0; i < 40 && warnings(vmx).length === 0; i++) await sleep(25);
      expect(warnings(vmx).join('\n')).to.match(/TCG doesn't support requested feature: CPUID\.01H:ECX\.vmx/);
    } finally {
      await vmx.shutdown({ graceMs: 200 });
    }
  });
});
