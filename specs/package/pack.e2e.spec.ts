// dmahil as a dependency (issue 14): `npm pack`, install the tarball into a fresh project with its own
// package.json, and run there the example spec the package ships (examples/dma.spec.mjs, copied from the
// installed package), written only against the library's public surface: the useGuest fixture boots the
// reference guest once and gives each test a pristine restored guest (restore 'per-test'): a round trip
// verifies, a negative control (wrong seed) is caught, and after guest.restore() within a test the round
// trip's bytes are gone from guest RAM; the guest loads a driver build given as DRIVER_DIR. Also
// `npx dmahil --version` and `npx dmahil setup` in that project. The reference image comes from the
// repo's cache (DMAHIL_CACHE), the npm packages from npm's cache when it has them (--prefer-offline).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { cacheDir } from '../../harness/lib/paths.js';
import { buildReferenceImage } from '../../images/linux/build.js';
import { buildLinuxDriver } from '../../guest-driver/linux/build.js';
import { BOOT_TIMEOUT_MS, repoRoot } from '../e2e/support.js';

// A failing test on a restored guest: the fixture must name that test's own guest's artifacts, with its logs there.
const FAILING_SPEC = `import { expect } from 'chai';
import { useGuest } from 'dmahil';
describe('a failure', function () {
  this.timeout(600000);
  const guest = useGuest({ profile: 'linux', restore: 'per-test' });
  it('fails on purpose', async () => {
    expect((await guest.session.info()).ok).to.equal(true);
    expect(1, 'deliberate').to.equal(2);
  });
});
`;

// restore 'per-test' on a Windows golden image: refused when the spec loads, before anything boots.
const WINDOWS_PER_TEST_SPEC = `import { useGuest } from 'dmahil';
describe('windows per test', function () {
  useGuest({ profile: 'windows', image: '/nonexistent/golden.json', restore: 'per-test' });
  it('never runs', () => {});
});
`;

describe('package: the packed tarball in a fresh project', function () {
  this.timeout(BOOT_TIMEOUT_MS);
  let scratch: string;
  let project: string;
  let myDriver: string;

  before(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'dmahil-pack-'));
    const packed = await execa('npm', ['pack', '--pack-destination', scratch, '--json'], { cwd: repoRoot });
    const tarball = path.join(scratch, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
    project = path.join(scratch, 'project');
    await fs.mkdir(project);
    await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'my-driver-tests', version: '1.0.0', private: true, type: 'module' }, null, 2));
    await execa('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, 'mocha', 'chai'], { cwd: project });
    // A driver build of the team's own for the consumer spec: dmahil's, built for the reference kernel (cached), copied.
    const kernelVersion = (await buildReferenceImage({ cacheDir: path.join(cacheDir(repoRoot), 'images') })).kernelVersion;
    const built = await buildLinuxDriver({ kernelVersion, repoRoot });
    myDriver = path.join(scratch, 'my-driver');
    await fs.mkdir(myDriver);
    await fs.copyFile(built.module, path.join(myDriver, 'edudma.ko'));
    await fs.copyFile(built.tool, path.join(myDriver, 'dmactl'));
  });
  after(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  it('carries the library with its types, the CLI, the driver sources, the image recipe and the example spec', async () => {
    const installed = path.join(project, 'node_modules', 'dmahil');
    for (const f of ['dist/harness/index.js', 'dist/harness/index.d.ts', 'dist/harness/cli/main.js', 'guest-driver/linux/edudma.c', 'guest-driver/linux/Makefile', 'images/linux/init.sh', 'examples/dma.spec.mjs', 'LICENSE']) {
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
    const good = `import { makeScenario, outcome, runScenario, startGuest, type GuestFixture, type GuestSession, type UseGuestOptions, type VariantMachine, type Verdict } from 'dmahil';
export async function once(s: GuestSession): Promise<'ok' | 'not-ok' | 'skipped'> {
  const v: Verdict = await runScenario(s, { name: 'x', scenario: makeScenario({ size: 16 }) });
  return outcome(v);
}
export const start = () => startGuest({ profile: 'linux', artifactsDir: '/tmp/x' });
// Back to the saved state within a test: the fixture's restore() gives the restored guest.
export const again = (guest: GuestFixture): Promise<GuestSession> => guest.restore();
// A pristine guest per test, the user's driver build and a variant of their own.
const wide: VariantMachine = { memoryMiB: 192, eduDmaMask: '0xffffffff' };
export const fixture: UseGuestOptions = { profile: 'linux', restore: 'per-test', driver: 'my-edudma/build/linux', variant: { id: 'wide-edu', forceBounce: false, description: 'a wider edu', machine: wide } };
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

  it("the example spec the package ships, copied into the project, passes under its own mocha on the driver build it is given", async () => {
    await fs.copyFile(path.join(project, 'node_modules', 'dmahil', 'examples', 'dma.spec.mjs'), path.join(project, 'dma.spec.mjs'));
    const artifacts = path.join(scratch, 'artifacts');
    const r = await execa(path.join(project, 'node_modules', '.bin', 'mocha'), ['--timeout', '600000', 'dma.spec.mjs'], {
      cwd: project,
      reject: false,
      all: true,
      env: { DMAHIL_CACHE: cacheDir(repoRoot), DMAHIL_ARTIFACTS: artifacts, DRIVER_DIR: myDriver },
    });
    expect(r.exitCode, r.all).to.equal(0);
    expect(r.all).to.match(/3 passing/).and.not.match(/failing/);
    // The guest ran the driver it was given (its progress lines), and every test's guest was a pristine restore.
    expect(r.all).to.match(/dmahil: loading edudma/).and.not.match(/building the edudma module/);
    expect(r.all).to.not.match(/not a pristine restore/);
    // One boot for the file; a restore for each of the 3 tests and one for guest.restore().
    const [dir, ...others] = await fs.readdir(artifacts);
    expect(others, 'one fixture, one artifacts folder').to.deep.equal([]);
    const entries = await fs.readdir(path.join(artifacts, dir!));
    expect(entries.filter((e) => e.startsWith('boot')), entries.join(' ')).to.deep.equal(['boot']);
    expect(entries.filter((e) => /^restore-\d+$/.test(e)).length, entries.join(' ')).to.be.at.least(4);
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
    // The failed test's own restored guest, not the booted one the snapshot was saved from.
    expect(dir!.startsWith(path.join(scratch, 'failing-artifacts'))).to.equal(true);
    expect(path.basename(dir!), r.all).to.match(/^restore-\d+$/);
    await fs.access(path.join(dir!, 'serial.log'));
    expect(await fs.readFile(path.join(dir!, 'guest-dmesg.txt'), 'utf8'), 'the dmesg of the failed test\'s guest').to.match(/edudma/);
  });

  it("restore 'per-test' on a Windows golden image is refused, naming why, before anything boots", async () => {
    await fs.writeFile(path.join(project, 'windows.spec.mjs'), WINDOWS_PER_TEST_SPEC);
    const r = await execa(path.join(project, 'node_modules', '.bin', 'mocha'), ['windows.spec.mjs'], { cwd: project, reject: false, all: true });
    expect(r.exitCode, r.all).to.not.equal(0);
    expect(r.all).to.match(/restore 'per-test' needs a snapshot of the booted guest, and only the reference guest \(profile 'linux'\) has snapshots/);
  });
});
