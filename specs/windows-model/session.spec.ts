// The NT model session's refusals and its bug-check lines, without starting the model.
import { expect } from 'chai';
import os from 'node:os';
import path from 'node:path';
import { parseBugcheck } from '../../harness/guest/nt-model/bugcheck.js';
import { NtModelSession, winePath } from '../../harness/guest/nt-model/session.js';
import { NT_MODEL_WORLDS } from '../../harness/guest/nt-model/worlds.js';
import { DmahilError } from '../../harness/errors.js';

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof DmahilError ? e.describe() : (e as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('windows-model/session (no model started)', () => {
  const artifactsDir = path.join(os.tmpdir(), 'dmahil-nt-model-session-spec');

  it('a model that is not built: names the file and make windows-model', async () => {
    const said = await refusal(NtModelSession.start({ repoRoot: '/nonexistent', artifactsDir, world: NT_MODEL_WORLDS.direct }));
    expect(said).to.match(/NT DMA model is not built: \/nonexistent\/build\/windows\/model\/edudma-model\.exe is missing.*make windows-model/);
  });

  it('no wine on PATH: names wine and the package', async () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const said = await refusal(NtModelSession.start({ repoRoot: '/', exe: process.execPath, artifactsDir, world: NT_MODEL_WORLDS.direct }));
      expect(said).to.match(/wine not found on PATH.*apt-get install -y wine wine64/);
    } finally {
      process.env.PATH = saved;
    }
  });

  it('reads a bug-check line, and nothing else as one', () => {
    expect(parseBugcheck('MODEL BUGCHECK rule=map-register-overrun ddi=MapTransfer caller=0x4c94 :: MapTransfer of 1 bytes')).to.deep.include({
      rule: 'map-register-overrun',
      ddi: 'MapTransfer',
      caller: 0x4c94,
      message: 'MapTransfer of 1 bytes',
    });
    expect(parseBugcheck('EDU: clamping DMA 0x1 to 0x1!')).to.equal(undefined);
    expect(parseBugcheck('MODEL: go done handle=3')).to.equal(undefined);
  });

  it('gives Wine the Z: path of a host file', () => {
    expect(winePath('/tmp/x/ram.bin')).to.equal('Z:\\tmp\\x\\ram.bin');
  });
});
