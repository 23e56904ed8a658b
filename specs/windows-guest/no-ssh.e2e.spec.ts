// A real QEMU boot of a "golden image" that holds no Windows (a blank qcow2) with OVMF: the profile must
// give up with a clear error naming OpenSSH and the next step, keep the overlay, the screendump and the
// logs, leave the golden image and its OVMF variable store untouched, and leave no QEMU behind.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GuestNotReadyError } from '../../harness/guest/channel/errors.js';
import { startWindowsGuest } from '../../harness/guest/windows/profile.js';
import { liveMachineCount } from '../../harness/machine/index.js';
import { writeManifest } from '../../images/windows/manifest.js';

const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('windows-guest e2e: an image without SSH (real QEMU, OVMF, TCG)', function () {
  this.timeout(120_000);
  let dir: string;

  before(function () {
    if (!fs.existsSync(OVMF_CODE)) {
      this.test!.title += ' (skipped: no OVMF; apt-get install -y ovmf)';
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmahil-win-nossh-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('fails naming OpenSSH and the next step; overlay, screendump and logs kept; golden image untouched', async () => {
    const img = path.join(dir, 'img');
    fs.mkdirSync(img);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(img, 'win.qcow2'), '1G']);
    fs.copyFileSync(OVMF_VARS, path.join(img, 'win.vars.fd'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(img, 'win.id_ed25519')]);
    writeManifest(path.join(img, 'win.json'), {
      kind: 'dmahil-windows-image', version: 1, disk: 'win.qcow2', firmware: 'uefi', ovmfVars: 'win.vars.fd', ovmfCode: OVMF_CODE, arch: 'x64',
      username: 'dmahil', privateKey: 'win.id_ed25519', edition: 'none', driverVerifier: false, pvpanicDriver: false, createdAt: new Date().toISOString(),
    });
    const pkg = path.join(dir, 'pkg');
    fs.mkdirSync(pkg);
    for (const f of ['edudma.sys', 'edudma.inf', 'edudma.cat', 'edudma-test.cer', 'dmactl.exe']) fs.writeFileSync(path.join(pkg, f), f);
    const before = { disk: sha(path.join(img, 'win.qcow2')), vars: sha(path.join(img, 'win.vars.fd')) };
    const art = path.join(dir, 'art');

    let err: unknown;
    try {
      await startWindowsGuest({ image: path.join(img, 'win.qcow2'), repoRoot: dir, driverDir: pkg, artifactsDir: art, forceBounce: true, accel: 'tcg', bootTimeoutMs: 15_000, memoryMiB: 512, cpus: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(GuestNotReadyError);
    const text = (err as GuestNotReadyError).describe();
    expect(text).to.match(/Windows did not offer an SSH login: guest SSH at 127\.0\.0\.1:\d+ not ready after 15 s/);
    expect(text).to.match(/OpenSSH Server installed and enabled.*make windows-image.*overlay .*disk-overlay\.qcow2 are kept/);
    expect(liveMachineCount()).to.equal(0);
    expect(fs.existsSync(path.join(art, 'disk-overlay.qcow2')), 'overlay kept').to.equal(true);
    expect(fs.existsSync(path.join(art, 'ovmf-vars.fd')), 'per-run OVMF vars').to.equal(true);
    const screen = fs.readFileSync(path.join(art, 'screen-boot.ppm'));
    expect(screen.subarray(0, 2).toString()).to.equal('P6');
    const cmdline = fs.readFileSync(path.join(art, 'cmdline.txt'), 'utf8');
    expect(cmdline).to.contain(`if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`);
    expect(cmdline).to.contain(`disk-overlay.qcow2,format=qcow2,if=none,id=disk0`);
    expect(cmdline).to.match(/ide-hd,drive=disk0,bus=ide\.0/);
    expect(cmdline).to.match(/e1000e,netdev=net0/);
    expect(cmdline).to.match(/-action panic=pause/);
    expect(cmdline).to.match(/-device edu/);
    expect(cmdline).to.match(/-m 512M/);
    // Under TCG a Windows guest gets a CPU with SSE4.2 and POPCNT (24H2 needs both), without a TCG warning.
    expect(cmdline).to.contain(' -accel tcg -cpu Nehalem-v1,+sse4.2,+popcnt ');
    expect(fs.readFileSync(path.join(art, 'qemu-stderr.log'), 'utf8')).not.to.match(/TCG doesn't support/);
    expect({ disk: sha(path.join(img, 'win.qcow2')), vars: sha(path.join(img, 'win.vars.fd')) }).to.deep.equal(before);
  });
});
