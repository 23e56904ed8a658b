// No QEMU outlives the harness: a Node child process launches a machine and is then killed from outside.

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isProcessAlive, sweepStaleRunDirs } from '../../harness/machine/index.js';
import { scratchDir, waitForProcessGone } from './support/fixtures.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support', 'launch-child.js');

interface Launched {
  child: ChildProcess;
  qemuPid: number;
  runDir: string;
  privateDir: string;
}

function launchInChild(artifactsDir: string, runBase: string, mode = 'idle'): Promise<Launched> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, artifactsDir, runBase, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('\n')) resolve({ child, ...(JSON.parse(out) as { qemuPid: number; runDir: string; privateDir: string }) });
    });
    child.once('exit', (code, signal) => {
      if (!out.includes('\n')) reject(new Error(`child exited before launching (${code ?? signal})`));
    });
  });
}

function exitOf(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.signalCode ?? child.exitCode);
    else child.once('exit', (code, signal) => resolve(signal ?? code));
  });
}

describe('machine lifetime (real QEMU, child harness)', function () {
  this.timeout(30_000);
  let dir: string;
  let runBase: string;
  const qemuPids: number[] = [];

  before(() => {
    dir = scratchDir('lifetime');
    runBase = path.join(dir, 'run');
  });
  after(() => {
    for (const pid of qemuPids) if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('QEMU is gone within seconds after the launching Node process is SIGKILLed; a later launch sweeps its run dir', async () => {
    const { child, qemuPid, runDir } = await launchInChild(path.join(dir, 'art-kill'), runBase);
    qemuPids.push(qemuPid);
    expect(isProcessAlive(qemuPid)).to.equal(true);
    child.kill('SIGKILL');
    expect(await exitOf(child)).to.equal('SIGKILL');
    expect(await waitForProcessGone(isProcessAlive, qemuPid, 3000), `QEMU ${qemuPid} survived its harness`).to.equal(true);
    // No exit handler ran, so the run dir (and its RAM file) is still there until someone sweeps.
    expect(fs.existsSync(runDir)).to.equal(true);
    expect(sweepStaleRunDirs(runBase)).to.deep.equal([runDir]);
    expect(fs.existsSync(runDir)).to.equal(false);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the harness kills its machines and removes their run dirs and its private dirs, then the harness dies of ${signal}`, async () => {
      const { child, qemuPid, runDir, privateDir } = await launchInChild(path.join(dir, `art-${signal}`), runBase);
      qemuPids.push(qemuPid);
      expect(fs.existsSync(privateDir)).to.equal(true);
      child.kill(signal);
      expect(await exitOf(child)).to.equal(signal);
      expect(await waitForProcessGone(isProcessAlive, qemuPid, 3000)).to.equal(true);
      expect(fs.existsSync(runDir)).to.equal(false);
      expect(fs.existsSync(privateDir), 'the private dir (per-run keys) outlived the harness').to.equal(false);
    });
  }

  it('a harness that exits without shutdown() still kills its machines and removes their run dirs', async () => {
    const { child, qemuPid, runDir, privateDir } = await launchInChild(path.join(dir, 'art-exit'), runBase, 'exit');
    qemuPids.push(qemuPid);
    expect(await exitOf(child)).to.equal(0);
    expect(await waitForProcessGone(isProcessAlive, qemuPid, 3000)).to.equal(true);
    expect(fs.existsSync(runDir)).to.equal(false);
    expect(fs.existsSync(privateDir)).to.equal(false);
  });
});
