// The quoting module, fed hostile names. PowerShell is not available here, so each literal is read back
// by an independent reader written from the language specification (about_Quoting_Rules: inside '…'
// nothing is expanded; a quote — ' or one of U+2018..U+201B — is written twice).
import { expect } from 'chai';
import { cmdToken, decodePowerShellCommand, encodePowerShell, powershellCommand, psArray, psQuote, QuotingError, sftpPath, winJoin } from '../../harness/guest/windows/powershell.js';

const QUOTE = /['\u2018\u2019\u201A\u201B]/;

/** Read one single-quoted PowerShell literal at the start of s; returns its value and the rest. */
function readLiteral(s: string): { value: string; rest: string } {
  if (!QUOTE.test(s[0] ?? '')) throw new Error(`not a literal: ${s}`);
  let value = '';
  let i = 1;
  for (;;) {
    if (i >= s.length) throw new Error('unterminated literal');
    const c = s[i]!;
    if (QUOTE.test(c)) {
      if (QUOTE.test(s[i + 1] ?? '')) {
        value += c;
        i += 2;
        continue;
      }
      return { value, rest: s.slice(i + 1) };
    }
    value += c;
    i++;
  }
}

const HOSTILE = [
  "O'Brien",
  "it''s",
  "'",
  "''''",
  'C:\\Program Files\\dmahil\\edu dma.inf',
  '$env:SystemRoot',
  '$(Remove-Item -Recurse C:\\)',
  '`n`r`0 backtick',
  'a"double"b',
  'line1\nline2\r\nline3',
  '\u2018smart\u2019 \u201Aquotes\u201B',
  '; Stop-Computer #',
  '%PATH% ^& | < > !x!',
  '',
  '   ',
  'ünïcödé 名前 🙂',
];

describe('windows-guest/powershell: quoting', () => {
  for (const name of HOSTILE) {
    it(`psQuote round-trips ${JSON.stringify(name)}`, () => {
      const lit = psQuote(name);
      const { value, rest } = readLiteral(lit);
      expect(value).to.equal(name);
      expect(rest, 'the literal ends exactly where psQuote ended it').to.equal('');
    });
  }

  it('psQuote wraps in plain single quotes and expands nothing', () => {
    expect(psQuote('$x')).to.equal("'$x'");
    expect(psQuote("a'b")).to.equal("'a''b'");
    expect(psQuote('a\u2019b')).to.equal("'a\u2019\u2019b'");
  });

  it('refuses NUL', () => {
    expect(() => psQuote('a\0b')).to.throw(QuotingError, /NUL/);
  });

  it('psArray is a list of literals that read back in order', () => {
    const arr = psArray(["a'b", '$c', 'd e']);
    expect(arr.startsWith('@(') && arr.endsWith(')')).to.equal(true);
    let body = arr.slice(2, -1);
    const values: string[] = [];
    for (;;) {
      const { value, rest } = readLiteral(body);
      values.push(value);
      if (rest === '') break;
      expect(rest[0]).to.equal(',');
      body = rest.slice(1);
    }
    expect(values).to.deep.equal(["a'b", '$c', 'd e']);
  });

  it('powershellCommand carries the script as base64 UTF-16LE: cmd.exe sees no metacharacter', () => {
    const script = `Write-Output ${psQuote(HOSTILE.join('|'))}`;
    const cmd = powershellCommand(script);
    expect(cmd).to.match(/^powershell\.exe -NoLogo -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand [A-Za-z0-9+/=]+$/);
    const decoded = decodePowerShellCommand(cmd)!;
    expect(decoded).to.contain(script);
    expect(decoded).to.match(/^\$ErrorActionPreference = 'Stop'/);
    expect(decoded).to.match(/catch \{ \[Console\]::Error\.WriteLine\(\$_\.Exception\.Message\); exit 1 \}$/);
    expect(encodePowerShell('A')).to.equal(Buffer.from([0x41, 0]).toString('base64'));
  });

  it('cmdToken passes words, numbers and paths, and refuses anything cmd.exe would interpret', () => {
    for (const ok of ['C:\\dmahil\\dmactl.exe', 'run', '--direction', 'round-trip', '4096', '--seed=3']) expect(cmdToken(ok)).to.equal(ok);
    for (const bad of ['a b', 'a&b', '%PATH%', 'a^b', 'a|b', 'a>b', '"q"', "it's", 'x\ny', '!v!', '']) {
      expect(() => cmdToken(bad), bad).to.throw(QuotingError, /cannot be passed through cmd\.exe/);
    }
  });

  it('winJoin refuses names that leave the directory; sftpPath converts drive paths', () => {
    expect(winJoin('C:\\dmahil\\', 'edudma.sys')).to.equal('C:\\dmahil\\edudma.sys');
    for (const bad of ['..', '.', 'a\\b', 'a/b', 'c:x', 'a\nb', '']) expect(() => winJoin('C:\\d', bad), bad).to.throw(QuotingError);
    expect(sftpPath('C:\\dmahil\\edudma.sys')).to.equal('/C:/dmahil/edudma.sys');
    expect(sftpPath('c:/Windows/INF/setupapi.dev.log')).to.equal('/C:/Windows/INF/setupapi.dev.log');
    expect(() => sftpPath('relative\\x')).to.throw(QuotingError, /drive letter/);
  });
});
