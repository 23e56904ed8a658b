import { expect } from 'chai';
import { parseCommandLine } from '../../harness/cli/args.js';
import { UsageError } from '../../harness/errors.js';

describe('cli: arguments', () => {
  it('defaults to run on the reference guest', () => {
    const c = parseCommandLine([]);
    expect(c).to.include({ command: 'run', image: 'linux', all: false, json: false, accel: 'auto', bootTimeoutMs: 120000 });
  });

  it('reads every run option', () => {
    const c = parseCommandLine(['run', '--all', '--json', '--grep', 'bounce', '--accel', 'tcg', '--boot-timeout', '30', '--artifacts', '/tmp/x']);
    expect(c).to.include({ command: 'run', all: true, json: true, accel: 'tcg', bootTimeoutMs: 30000, artifacts: '/tmp/x' });
    expect((c as { grep: RegExp }).grep.test('Bounced round-trip')).to.equal(true);
  });

  it('takes a Windows golden image by path, or by "windows" from DMAHIL_WINDOWS_IMAGE', () => {
    expect(parseCommandLine(['--image', '/img/win11.json'])).to.include({ image: '/img/win11.json' });
    const saved = process.env.DMAHIL_WINDOWS_IMAGE;
    try {
      delete process.env.DMAHIL_WINDOWS_IMAGE;
      expect(() => parseCommandLine(['--image', 'windows'])).to.throw(UsageError, /needs DMAHIL_WINDOWS_IMAGE/);
      process.env.DMAHIL_WINDOWS_IMAGE = '/img/win11.qcow2';
      expect(parseCommandLine(['--image', 'windows'])).to.include({ image: '/img/win11.qcow2' });
    } finally {
      if (saved === undefined) delete process.env.DMAHIL_WINDOWS_IMAGE;
      else process.env.DMAHIL_WINDOWS_IMAGE = saved;
    }
  });

  for (const [argv, why] of [
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['fly'], /unknown command "fly"/],
    [['run', 'extra'], /unexpected argument "extra"/],
    [['--accel', 'hvf'], /not one of auto, kvm, tcg/],
    [['--boot-timeout', 'soon'], /not a positive number/],
    [['--grep', '('], /not a valid regular expression/],
    [['--image', 'win.vhdx'], /unknown image/],
  ] as const) {
    it(`rejects ${argv.join(' ')} with a clear message`, () => {
      expect(() => parseCommandLine([...argv])).to.throw(UsageError, why);
    });
  }
});
