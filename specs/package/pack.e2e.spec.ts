// dmahil as a dependency (issue 14): `npm pack`, install the tarball into a fresh project with its own
// package.json, and run there a mocha spec written only against the library's public surface: the
// useGuest fixture boots the reference guest once, a round trip verifies and a negative control (wrong
// seed) is caught. Also `npx dmahil --version` and `npx dmahil setup` in that project. The reference image comes from the
// repo's cache (DMAHIL_CACHE), the npm packages from npm's cache when it has them (--prefer-offline).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { cacheDir } from '../../harness/lib/paths.js';
import { BOOT_TIMEOUT_MS, repoRoot } from '../e2e/support.js';

const CONSUMER_SPEC = `// A user's spec: only what 'dmahil' exports.
import { expect } from 'chai';
import { CATALOG, makeScenario, outcome, runScenario, useGuest } from 'dmahil';

describe('my driver on the reference guest', function () {
  this.timeout(600000);
  const guest = useGuest({ profile: 'linux', variant: 'direct' });

  it('round trip of 4096 bytes verifies', async () => {
    const v = await runScenario(guest.session, { name: 'round trip', scenario: makeScenario({ direction: 'round-trip', size: 4096, seed: 7 }) });
    expect(outcome(v), v.summary).to.equal('ok');
    expect(v.status).to.equal('pass');
  });

  it('the wrong-seed control is caught', async () => {
    const control = CATALOG.find((c) => c.name === 'control: wrong seed');
    const v = await runScenario(guest.session, control);
    expect(v.status, v.summary).to.equal('fail');
    expect(outcome(v), v.summary).to.equal('ok');
    expect(v.findings.map((f) => f.kind)).to.include('wrong-seed');
  });

  it('reads guest memory', async () => {
    expect(guest.session.memory.contains(0x100000, 16)).to.equal(true);
    expect((await guest.session.memory.read(0x100000, 16)).length).to.equal(16);
  });
});
`;

// A failing test: the fixture must name the guest's artifacts in the failure, with the guest's logs there.
const FAILING_SPEC = `import { expect } from 'chai';
import { useGuest } from 'dmahil';
describe('a failure', function () {
  this.timeout(600000);
  const guest = useGuest({ profile: 'linux' });
  it('fails on purpose', async () => {
    expect((await guest.session.info()).ok).to.equal(true);
    expect(1, 'deliberate').to.equal(2);
  });
});
`;

describe('package: the packed tarball in a fresh project', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let scratch: string;
  let project: string;

  before(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-pack-'));
    const packed = await execa('npm', ['pack', '--pack-destination', scratch, '--json'], { cwd: repoRoot });
    const tarball = path.join(scratch, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
    project = path.join(scratch, 'project');
    await fs.mkdir(project);
    await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'my-driver-tests', version: '1.0.0', private: true, type: 'module' }, null, 2));
    await execa('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, 'mocha', 'chai'], { cwd: project });
  });
  after(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  it('carries the library with its types, the CLI, the driver sources and the image recipe', async () => {
    const installed = path.join(project, 'node_modules', 'dmahil');
    for (const f of ['dist/harness/index.js', 'dist/harness/index.d.ts', 'dist/harness/cli/main.js', 'guest-driver/linux/edudma.c', 'guest-driver/linux/Makefile', 'images/linux/init.sh', 'LICENSE']) {
      await fs.access(path.join(installed, f));
    }
    const r = await execa('npx', ['--no-install', 'dmahil', '--version'], { cwd: project, reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    const ours = JSON.parse(await fs.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout.trim()).to.equal(ours.version);
  });

  it('npx dmahil setup runs the install-deps.sh the package ships (this machine has every package: exit 0)', async () => {
    const r = await execa('npx', ['--no-install', 'dmahil', 'setup'], { cwd: project, reject: false });
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/this machine has the Debian packages dmahil run needs/);
  });

  it('carries the example config and scenarios file a project starts from; copied to its root, they work there', async () => {
    const installed = path.join(project, 'node_modules', 'dmahil');
    for (const f of ['dmahil.config.json', 'scenarios.json']) {
      await fs.copyFile(path.join(installed, 'examples', f), path.join(project, f));
      // Their "$schema" (for editors) names the schema shipped in the package, from the project's root.
      const { $schema } = JSON.parse(await fs.readFile(path.join(project, f), 'utf8')) as { $schema: string };
      await fs.access(path.join(project, $schema));
    }
    // The config in the current folder is read, and the scenarios file it names; a --grep matching none of
    // its scenarios ends the run before anything boots, naming them.
    const r = await execa('npx', ['--no-install', 'dmahil', 'run', '--grep', '^nothing$'], { cwd: project, reject: false });
    expect(r.exitCode, r.stderr).to.equal(2);
    expect(r.stderr).to.match(/no scenario of \S+scenarios\.json matches --grep/).and.match(/"control: my wrong seed"/);
  });

  it('its declarations type a TypeScript spec (and catch a misuse)', async () => {
    const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
    const flags = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck'];
    const good = `import { makeScenario, outcome, runScenario, startGuest, type GuestSession, type Verdict } from 'dmahil';
export async function once(s: GuestSession): Promise<'ok' | 'not-ok' | 'skipped'> {
  const v: Verdict = await runScenario(s, { name: 'x', scenario: makeScenario({ size: 16 }) });
  return outcome(v);
}
export const start = () => startGuest({ profile: 'linux', artifactsDir: '/tmp/x' });
`;
    await fs.writeFile(path.join(project, 'typed.ts'), good);
    const ok = await execa(tsc, [...flags, 'typed.ts'], { cwd: project, reject: false, all: true });
    expect(ok.exitCode, ok.all).to.equal(0);
    await fs.writeFile(path.join(project, 'misuse.ts'), `import { startGuest } from 'dmahil';
export const s = startGuest({ profile: 'solaris', artifactsDir: '/tmp/x' });
`);
    const bad = await execa(tsc, [...flags, 'misuse.ts'], { cwd: project, reject: false, all: true });
    expect(bad.exitCode).to.not.equal(0);
    expect(bad.all).to.match(/misuse\.ts.*'"solaris"' is not assignable/);
  });

  it("a spec written with the library and its fixture passes under the project's own mocha", async () => {
    await fs.writeFile(path.join(project, 'driver.spec.mjs'), CONSUMER_SPEC);
    const r = await execa(path.join(project, 'node_modules', '.bin', 'mocha'), ['--timeout', '600000', 'driver.spec.mjs'], {
      cwd: project,
      reject: false,
      all: true,
      env: { DMAHIL_CACHE: cacheDir(repoRoot), DMAHIL_ARTIFACTS: path.join(scratch, 'artifacts') },
    });
    expect(r.exitCode, r.all).to.equal(0);
    expect(r.all).to.match(/3 passing/).and.not.match(/failing/);
  });

  it("the fixture names the guest's artifacts in a failed test, with the guest's logs there", async () => {
    await fs.writeFile(path.join(project, 'failing.spec.mjs'), FAILING_SPEC);
    const r = await execa(path.join(project, 'node_modules', '.bin', 'mocha'), ['--timeout', '600000', 'failing.spec.mjs'], {
      cwd: project,
      reject: false,
      all: true,
      env: { DMAHIL_CACHE: cacheDir(repoRoot), DMAHIL_ARTIFACTS: path.join(scratch, 'failing-artifacts') },
    });
    expect(r.exitCode, r.all).to.equal(1);
    const dir = /guest artifacts \(logs, dmesg, serial\): (\S+)/.exec(r.all ?? '')?.[1];
    expect(dir, r.all).to.be.a('string');
    expect(dir!.startsWith(path.join(scratch, 'failing-artifacts'))).to.equal(true);
    await fs.access(path.join(dir!, 'serial.log'));
  });
});
