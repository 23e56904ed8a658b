import { expect } from 'chai';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import AjvModule from 'ajv';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const dmactl = path.join(repoRoot, 'build/linux/dmactl');

interface Ran {
  exitCode: number;
  lines: string[];
  json: Record<string, any>;
}

async function run(args: string[]): Promise<Ran> {
  const r = await execa(dmactl, args, { reject: false });
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  return { exitCode: r.exitCode ?? -1, lines, json: JSON.parse(lines[0] ?? 'null') };
}

describe('guest-driver/linux: dmactl on the host', function () {
  this.timeout(60_000);
  let validate: (x: unknown) => boolean;

  before(async () => {
    // Builds only dmactl (no kernel headers needed); make keeps it if it is current.
    await execa('make', ['-s', '-C', path.join(repoRoot, 'guest-driver/linux'), 'dmactl-linux']);
    const Ajv = AjvModule.default;
    const schema = JSON.parse(await readFile(path.join(repoRoot, 'harness/contract/result.schema.json'), 'utf8'));
    validate = new Ajv({ strict: false }).compile(schema);
  });

  it('prints the pattern vectors of harness/contract/pattern-vectors.json', async () => {
    const { vectors } = JSON.parse(await readFile(path.join(repoRoot, 'harness/contract/pattern-vectors.json'), 'utf8')) as {
      vectors: { seed: number; start: number; length: number; hex: string }[];
    };
    expect(vectors.length).to.be.greaterThan(0);
    for (const v of vectors) {
      const r = await run(['pattern', '--seed', String(v.seed), '--size', String(v.length), '--start', String(v.start)]);
      expect(r.exitCode).to.equal(0);
      expect(r.lines).to.have.length(1);
      expect(r.json).to.include({ contract: 1, ok: true, command: 'pattern', seed: v.seed, start: v.start, size: v.length });
      expect(r.json.hex, `seed ${v.seed} start ${v.start}`).to.equal(v.hex);
    }
  });

  it('accepts hex numbers and defaults --start to 0', async () => {
    const dec = await run(['pattern', '--seed', '2779096485', '--size', '64']);
    const hex = await run(['pattern', '--seed', '0xa5a5a5a5', '--size', '0x40', '--start', '0']);
    expect(dec.json.hex).to.have.length(128);
    expect(hex.json.hex).to.equal(dec.json.hex);
  });

  const usageCases: [string[], RegExp][] = [
    [[], /no command/],
    [['fly'], /unknown command 'fly'/],
    [['run', '--size', '4096'], /needs --direction/],
    [['run', '--direction', 'to-device'], /needs --size/],
    [['run', '--direction', 'sideways', '--size', '1'], /--direction must be/],
    [['run', '--direction', 'to-device', '--size', '12x'], /--size '12x' is not a number/],
    [['run', '--direction', 'to-device', '--size', '-1'], /is not a number/],
    [['run', '--direction', 'to-device', '--size', '4294967296'], /is not a number/],
    [['run', '--direction', 'to-device', '--size', '1', '--method', 'dma-magic'], /--method must be/],
    [['run', '--direction', 'to-device', '--size', '1', '--fault', 'bitflip'], /unknown --fault/],
    [['run', '--direction', 'to-device', '--size', '1', '--bogus', '1'], /unknown option '--bogus'/],
    [['run', '--direction', 'to-device', '--size'], /needs a value/],
    [['release'], /needs a HANDLE/],
    [['release', 'abc'], /HANDLE 'abc'/],
    [['release', '3', '4'], /extra argument/],
    [['info', 'extra'], /unexpected argument 'extra'/],
    [['reattach', 'now'], /unexpected argument 'now'/],
    [['pattern', '--seed', '1'], /needs --seed and --size/],
    [['pattern', '--seed', '1', '--size', '0'], /--size must be 1\.\.1048576/],
    [['pattern', '--seed', '1', '--size', '16', '--start', '4294967290'], /must not pass 2\^32/],
  ];
  for (const [args, why] of usageCases) {
    it(`answers "dmactl ${args.join(' ')}" with a JSON usage error and exit 1`, async () => {
      const r = await run(args);
      expect(r.exitCode).to.equal(1);
      expect(r.lines).to.have.length(1);
      expect(r.json).to.include({ contract: 1, ok: false, os: 'linux' });
      expect(r.json.error.code).to.equal('usage');
      expect(r.json.error.message).to.match(why);
      expect(validate(r.json), JSON.stringify(r.json)).to.equal(true);
    });
  }

  it('prints its usage for --help, exit 0', async () => {
    const r = await run(['--help']);
    expect(r.exitCode).to.equal(0);
    expect(r.json.ok).to.equal(true);
    expect(r.json.usage).to.match(/dmactl \[--device PATH\] run --direction/);
  });

  for (const args of [['info'], ['run', '--direction', 'round-trip', '--size', '4096'], ['release', '1'], ['reattach']]) {
    it(`fails "dmactl ${args[0]}" without the device: JSON error "open", exit 2`, async () => {
      const r = await run(['--device', '/nonexistent/edudma', ...args]);
      expect(r.exitCode).to.equal(2);
      expect(r.lines).to.have.length(1);
      expect(r.json).to.include({ contract: 1, ok: false, command: args[0], os: 'linux' });
      expect(r.json.error.code).to.equal('open');
      expect(r.json.error.message).to.match(/cannot open \/nonexistent\/edudma: No such file or directory/);
      expect(validate(r.json), JSON.stringify(r.json)).to.equal(true);
    });
  }

  it('reattach on a device whose driver does not know it (/dev/null): JSON error "device" that says so, exit 3', async () => {
    const r = await run(['--device', '/dev/null', 'reattach']);
    expect(r.exitCode).to.equal(3);
    expect(r.json).to.include({ ok: false, command: 'reattach', os: 'linux' });
    expect(r.json.error.code).to.equal('device');
    expect(r.json.error.message).to.match(/EDUDMA_IOC_REATTACH: Inappropriate ioctl for device \(the driver behind this device does not know reattach/);
    expect(validate(r.json), JSON.stringify(r.json)).to.equal(true);
  });

  it('opens /dev/edudma by default', async function () {
    if (existsSync('/dev/edudma')) this.skip();
    const r = await run(['info']);
    expect(r.exitCode).to.equal(2);
    expect(r.json.error.message).to.match(/\/dev\/edudma/);
  });

  describe('serve: one process, a JSON line per command line', () => {
    async function serve(input: string, device = '/nonexistent/edudma'): Promise<{ exitCode: number; json: Record<string, any>[] }> {
      const r = await execa(dmactl, ['--device', device, 'serve'], { input, reject: false });
      return { exitCode: r.exitCode ?? -1, json: r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)) };
    }

    it('answers each command in order, skips blank lines and exits 0 at EOF', async () => {
      const r = await serve('pattern --seed 1 --size 4\n\n  \ninfo\npattern --seed 0xa5a5a5a5 --size 0x40\n');
      expect(r.exitCode).to.equal(0);
      expect(r.json.map((j) => j.command)).to.deep.equal(['pattern', 'info', 'pattern']);
      const single = await run(['pattern', '--seed', '1', '--size', '4']);
      expect(r.json[0]).to.deep.equal(single.json);
      expect(r.json[1].error).to.include({ code: 'open' }); // serve's --device applies to every command
      expect(r.json[2].hex).to.have.length(128);
      for (const j of r.json) expect(validate(j), JSON.stringify(j)).to.equal(true);
    });

    it('answers bad lines with usage errors and goes on', async () => {
      const r = await serve(`fly\nserve\nrun --size 1\n${'x'.repeat(2000)}\n${Array(50).fill('a').join(' ')}\npattern --seed 2 --size 1\n`);
      expect(r.exitCode).to.equal(0);
      const messages = r.json.map((j) => (j.error?.message as string | undefined) ?? 'ok');
      expect(messages).to.have.length(6);
      expect(messages[0]).to.match(/unknown command 'fly'/);
      expect(messages[1]).to.match(/serve does not nest/);
      expect(messages[2]).to.match(/needs --direction/);
      expect(messages[3]).to.match(/longer than 1023 bytes/);
      expect(messages[4]).to.match(/more than 40 arguments/);
      expect(r.json[5]).to.include({ ok: true, command: 'pattern' });
    });

    it('a held run that could not open the device still takes its release line and answers it', async () => {
      // One protocol whatever happened: the host always sends "release" after a held run.
      const r = await serve('run --direction round-trip --size 64 --hold\nrelease\npattern --seed 3 --size 2\n');
      expect(r.json.map((j) => j.command)).to.deep.equal(['run', 'release', 'pattern']);
      expect(r.json[0]).to.include({ ok: false });
      expect(r.json[0].error.code).to.equal('open');
      expect(r.json[1]).to.include({ ok: true, handle: 0 });
      for (const j of r.json) expect(validate(j), JSON.stringify(j)).to.equal(true);
    });
  });

  it('is a static executable, so it runs in the guest without libraries', async () => {
    const r = await execa('file', ['-L', dmactl], { reject: false });
    if (r.exitCode === 0) expect(r.stdout).to.match(/statically linked/);
    const ldd = await execa('ldd', [dmactl], { reject: false });
    expect(`${ldd.stdout}${ldd.stderr}`).to.match(/not a dynamic executable|statically linked/);
  });
});
