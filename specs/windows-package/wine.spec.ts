// edudma.sys and dmactl.exe under Wine: the x64 driver loads in winedevice.exe (relocated, imports bound,
// DriverEntry and DriverUnload run); dmactl.exe parses arguments, prints the contract's JSON and exit codes,
// and its pattern generator matches the contract vectors.
//
// NOT exercised here: AddDevice, START_DEVICE, interrupts and DMA. Wine has no PCI bus, so the PnP half of
// the driver never runs; only a Windows guest on QEMU can run it. x86 binaries are checked only statically
// (Debian's wine32 needs the i386 architecture, see wdm-build-notes.md section 8.3).
import { expect } from 'chai';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pattern } from '../../harness/contract/pattern.js';
import { packageDir } from '../../harness/windows-package/package.js';
import { fixChecksum, parsePe, readImports } from '../../harness/windows-package/pe.js';
import { createWinePrefix, ensurePackage, needTools, ROOT, type WinePrefix } from './support.js';

/** Kernel exports Windows has had since Vista that Wine 8's ntoskrnl does not implement (bound to stubs). */
const KNOWN_WINE_GAPS = new Set(['IoConnectInterruptEx', 'IoDisconnectInterruptEx', 'IoCsqInitializeEx', 'IoCsqInsertIrpEx']);

interface Vectors {
  vectors: { seed: number; start: number; length: number; hex: string }[];
}

describe('windows-package: under Wine (x64)', function () {
  let prefix: WinePrefix | undefined;
  let drive: string;

  before(function () {
    needTools(this, { wine: 'wine64', wineserver: 'wine64' });
    ensurePackage(this);
    this.timeout(180_000);
    prefix = createWinePrefix();
    drive = join(prefix.dir, 'drive_c');
    copyFileSync(join(packageDir('x64', ROOT), 'edudma.sys'), join(drive, 'windows', 'system32', 'drivers', 'edudma.sys'));
    copyFileSync(join(packageDir('x64', ROOT), 'dmactl.exe'), join(drive, 'dmactl.exe'));
  });
  after(() => prefix?.dispose());

  interface LoadResult {
    states: string[];
    log: string;
    out: string;
    mappedAt?: bigint;
    /** Imports Wine could not bind (each once). */
    missing: string[];
  }

  /**
   * load once more when no `sc query` answered at all: Wine's service manager was not reachable (seen once
   * on a loaded CI runner: every sc line silent, dmactl's answered). A driver that fails still gets a STATE.
   */
  function load(image: Buffer): LoadResult {
    const first = loadOnce(image);
    if (first.states.length > 0) return first;
    console.log('      note: no sc query answered (Wine\'s service manager); loading once more');
    return loadOnce(image);
  }

  /** Install, start, query, stop and delete the driver in one cmd script; WINEDEBUG shows the loader and DbgPrintEx. */
  function loadOnce(image: Buffer): LoadResult {
    writeFileSync(join(drive, 'windows', 'system32', 'drivers', 'edudma.sys'), image);
    // The driver appends its log to C:\dmahil\edudma.log when the folder exists (the Windows profile creates it).
    mkdirSync(join(drive, 'dmahil'), { recursive: true });
    rmSync(join(drive, 'dmahil', 'edudma.log'), { force: true });
    // One cmd script: Wine stops the driver's service process when the last ordinary process exits.
    writeFileSync(join(drive, 'load.bat'), [
      'sc create edudma type= kernel start= demand binPath= C:\\windows\\system32\\drivers\\edudma.sys',
      'sc start edudma',
      'sc query edudma',
      'C:\\dmactl.exe info',
      'echo dmactl-exit=%ERRORLEVEL%',
      'sc stop edudma',
      'sc query edudma',
      'sc delete edudma',
      '',
    ].join('\r\n'));
    const r = prefix!.wine(['cmd', '/c', 'C:\\load.bat'], { WINEDEBUG: 'warn+debugstr,+module' });
    const mapped = /mapping PE file L"[^"]*edudma\.sys" at 0x([0-9a-f]+)-/i.exec(r.stderr);
    return {
      states: [...r.stdout.matchAll(/STATE\s*:\s*(\d+)\s+(\w+)/g)].map((m) => m[2]),
      log: r.stderr,
      out: r.stdout,
      mappedAt: mapped ? BigInt(`0x${mapped[1]}`) : undefined,
      missing: [...new Set([...r.stderr.matchAll(/No implementation for ([\w.]+)\.(\w+) imported from L"[^"]*edudma\.sys"/g)].map((m) => m[2]!))],
    };
  }

  it('loads edudma.sys in winedevice.exe: relocated, imports bound, DriverEntry and unload run (AddDevice, START_DEVICE, interrupts and DMA are NOT exercised: Wine has no PCI)', function () {
    this.timeout(120_000);
    console.log('      note: Wine has no PCI bus: AddDevice, START_DEVICE, the ISR/DPC and every DMA path are not exercised here');
    const image = readFileSync(join(packageDir('x64', ROOT), 'edudma.sys'));
    const r = load(image);
    expect(r.states, r.out).to.deep.equal(['RUNNING', 'RUNNING', 'STOPPED', 'STOPPED']);
    expect(r.mappedAt, 'the loader mapped edudma.sys').to.not.equal(undefined);
    expect(r.mappedAt, 'loaded away from its image base, so the relocations were applied').to.not.equal(parsePe(image).imageBase);
    expect(r.missing.filter((f) => !KNOWN_WINE_GAPS.has(f)), 'imports Wine could not bind (beyond its known gaps)').to.deep.equal([]);
    const imported = readImports(parsePe(image)).reduce((n, d) => n + d.functions.length, 0);
    const lacks = r.missing.length > 0 ? `; this Wine lacks ${r.missing.join(', ')} (bound to stubs never called before START_DEVICE)` : '';
    console.log(`      ${imported - r.missing.length} of ${imported} imports bound to Wine's ntoskrnl/hal${lacks}`);
    expect(r.log).to.match(/edudma: DriverEntry: version 0\.1\.0, contract 1/);
    expect(r.log).to.match(/edudma: unload/);
    expect(r.log.indexOf('edudma: unload')).to.be.greaterThan(r.log.indexOf('edudma: DriverEntry'));
    expect(r.out).to.match(/dmactl-exit=2/); // no device object: Wine never calls AddDevice
    // The driver's own log file, the one the Windows profile collects after every run.
    const fileLog = readFileSync(join(drive, 'dmahil', 'edudma.log'), 'latin1').split('\r\n').filter(Boolean);
    expect(fileLog[0]).to.match(/^DriverEntry: version 0\.1\.0, contract 1/);
    expect(fileLog.at(-1)).to.equal('unload');
  });

  it('the load test fails for a driver with an import no kernel has (negative control)', function () {
    this.timeout(120_000);
    const image = Buffer.from(readFileSync(join(packageDir('x64', ROOT), 'edudma.sys')));
    const at = image.indexOf('KeInsertQueueDpc\0', 0, 'latin1');
    expect(at).to.be.greaterThan(0);
    image.write('KeInsertQueueDpX', at, 'latin1');
    fixChecksum(image);
    expect(load(image).missing.filter((f) => !KNOWN_WINE_GAPS.has(f))).to.deep.equal(['KeInsertQueueDpX']);
  });

  it('the load test fails for the x86 image, which a 64-bit kernel cannot load (negative control)', function () {
    this.timeout(120_000);
    const r = load(readFileSync(join(packageDir('x86', ROOT), 'edudma.sys')));
    // The service manager answered (a silent sc would pass this vacuously) and never saw it run.
    expect(r.states, r.out).to.not.deep.equal([]);
    expect(r.states).to.not.include('RUNNING');
    expect(r.log).to.not.match(/edudma: DriverEntry/);
  });

  // Every dmactl.exe call runs in one cmd script (one Wine start instead of one per call); each call's
  // output and exit code go to files.
  const calls = new Map<string, { code: number; raw: string }>();
  const usageCases = [[], ['bogus'], ['run', '--size', '5'], ['run', '--direction', 'sideways', '--size', '5'], ['pattern', '--seed', '1'],
    ['pattern', '--seed', '1', '--size', '1048577'], ['release', 'zero']];
  const noDriverCases = [['info'], ['run', '--direction', 'round-trip', '--size', '4096'], ['release', '3'], ['reattach']];
  function vectorCases(): string[][] {
    const vectors = JSON.parse(readFileSync(join(ROOT, 'harness', 'contract', 'pattern-vectors.json'), 'utf8')) as Vectors;
    return vectors.vectors.map((v) => ['pattern', '--seed', String(v.seed), '--size', String(v.length), '--start', String(v.start)]);
  }

  function runAll(): void {
    const cases = [...usageCases, ['--help'], ...noDriverCases, ...vectorCases()];
    const lines = ['@echo off', 'mkdir C:\\out 2>nul'];
    cases.forEach((args, i) => {
      lines.push(`C:\\dmactl.exe ${args.join(' ')} > C:\\out\\${i}.txt`, `echo %ERRORLEVEL% > C:\\out\\${i}.rc`);
    });
    // serve, fed a file with Windows line endings: the persistent mode the host uses over SSH.
    writeFileSync(join(drive, 'serve-in.txt'), SERVE_INPUT.join('\r\n') + '\r\n');
    lines.push('C:\\dmactl.exe serve < C:\\serve-in.txt > C:\\out\\serve.txt', 'echo %ERRORLEVEL% > C:\\out\\serve.rc');
    writeFileSync(join(drive, 'dmactl.bat'), lines.join('\r\n') + '\r\n');
    const r = prefix!.wine(['cmd', '/c', 'C:\\dmactl.bat']);
    expect(r.status, r.stderr.slice(-2000)).to.equal(0);
    cases.forEach((args, i) => {
      calls.set(args.join(' '), {
        code: Number(readFileSync(join(drive, 'out', `${i}.rc`), 'utf8').trim()),
        raw: readFileSync(join(drive, 'out', `${i}.txt`), 'utf8'),
      });
    });
  }

  const SERVE_INPUT = ['pattern --seed 1 --size 4', '', 'run --direction round-trip --size 64 --hold', 'release', 'bogus'];

  function dmactl(args: string[]): { code: number; json: Record<string, unknown>; raw: string } {
    if (calls.size === 0) runAll();
    const c = calls.get(args.join(' '));
    if (!c) throw new Error(`dmactl ${args.join(' ')} was not in the batch`);
    const lines = c.raw.split(/\r?\n/).filter((l) => l.trim());
    expect(lines, `one line of output: ${c.raw}`).to.have.length(1);
    expect(c.raw.endsWith('\r\n'), 'a Windows line ending').to.equal(true);
    return { code: c.code, json: JSON.parse(lines[0]) as Record<string, unknown>, raw: c.raw };
  }

  it('dmactl.exe: usage errors are JSON with exit 1', function () {
    this.timeout(120_000);
    for (const args of usageCases) {
      const r = dmactl(args);
      expect(r.code, args.join(' ')).to.equal(1);
      expect(r.json).to.include({ contract: 1, ok: false, os: 'windows' });
      expect((r.json.error as { code: string }).code).to.equal('usage');
    }
  });

  it('dmactl.exe --help is JSON with exit 0', function () {
    this.timeout(120_000);
    const r = dmactl(['--help']);
    expect(r.code).to.equal(0);
    expect(r.json).to.include({ ok: true, command: 'usage' });
  });

  it('dmactl.exe pattern reproduces harness/contract/pattern-vectors.json (the Windows build of the generator)', function () {
    this.timeout(120_000);
    const vectors = JSON.parse(readFileSync(join(ROOT, 'harness', 'contract', 'pattern-vectors.json'), 'utf8')) as Vectors;
    expect(vectors.vectors.length).to.be.greaterThan(3);
    for (const v of vectors.vectors) {
      const r = dmactl(['pattern', '--seed', String(v.seed), '--size', String(v.length), '--start', String(v.start)]);
      expect(r.code).to.equal(0);
      expect(r.json.hex, `seed ${v.seed} start ${v.start}`).to.equal(v.hex);
    }
  });

  it('dmactl.exe info without the driver: JSON error "open", exit 2', function () {
    this.timeout(120_000);
    for (const cmd of noDriverCases) {
      const r = dmactl(cmd);
      expect(r.code, cmd.join(' ')).to.equal(2);
      expect(r.json).to.include({ ok: false, os: 'windows', command: cmd[0] });
      const err = r.json.error as { code: string; message: string };
      expect(err.code).to.equal('open');
      expect(err.message).to.match(/CreateFile\(\\\\\.\\EduDma\) failed: win32 error 2/);
    }
  });

  it('dmactl.exe serve answers a JSON line per command line (CRLF input), a held run with its release', function () {
    this.timeout(120_000);
    if (calls.size === 0) runAll();
    expect(readFileSync(join(drive, 'out', 'serve.rc'), 'utf8').trim()).to.equal('0');
    const out = readFileSync(join(drive, 'out', 'serve.txt'), 'utf8').split(/\r?\n/).filter((l) => l.trim());
    const json = out.map((l) => JSON.parse(l) as { command: string; ok: boolean; hex?: string; handle?: number; error?: { code: string } });
    expect(json.map((j) => j.command)).to.deep.equal(['pattern', 'run', 'release', 'usage']);
    expect(json[0]!.hex).to.equal(pattern(1, 4).toString('hex'));
    expect(json[1]!.error?.code).to.equal('open');
    expect(json[2]).to.include({ ok: true, handle: 0 });
    expect(json[3]!.error?.code).to.equal('usage');
  });
});
