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

  for (const [argv, why] of [
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['fly'], /unknown command "fly"/],
    [['run', 'extra'], /unexpected argument "extra"/],
    [['--accel', 'hvf'], /not one of auto, kvm, tcg/],
    [['--boot-timeout', 'soon'], /not a positive number/],
    [['--grep', '('], /not a valid regular expression/],
    [['--image', 'win.qcow2'], /unknown image/],
  ] as const) {
    it(`rejects ${argv.join(' ')} with a clear message`, () => {
      expect(() => parseCommandLine([...argv])).to.throw(UsageError, why);
    });
  }
});
