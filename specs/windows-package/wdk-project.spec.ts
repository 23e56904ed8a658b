// The WDK project (guest-driver/windows/wdk) cannot be built here (no Windows), so what a current WDK needs
// is checked from the project file itself, read by xmllint: x64 only (the current WDK builds no x86
// kernel drivers), the kernel toolset, Windows Driver mode (InfVerif /w, for the INF of this repo), the
// Spectre setting stated, the same sources make driver compiles, StampInf pinned to the INF's own DriverVer,
// and paths that do not depend on the solution.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseInf } from '../../harness/windows-package/inf.js';
import { needTools, ROOT } from './support.js';

const WDK = join(ROOT, 'guest-driver', 'windows', 'wdk');
const PROJECT = join(WDK, 'edudma.vcxproj');

/** XPath over the project with MSBuild's namespace ignored. */
function xpath(expr: string): string {
  return execFileSync('xmllint', ['--xpath', expr, PROJECT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}
const el = (...names: string[]) => names.map((n) => `*[local-name()='${n}']`).join('/');
const prop = (name: string) => xpath(`string(/${el('Project', 'PropertyGroup', name)})`);
const includes = (item: string) => xpath(`/${el('Project', 'ItemGroup', item)}/@Include`).split(/\s+/).map((a) => a.replace(/^Include="(.*)"$/, '$1'));

/** A project item pattern (backslashes, an optional * in the file name) expanded against the disk. */
function expand(pattern: string): string[] {
  const path = resolve(WDK, pattern.replaceAll('\\', '/'));
  const slash = path.lastIndexOf('/');
  const dir = path.slice(0, slash);
  const name = path.slice(slash + 1);
  if (!name.includes('*')) return existsSync(path) ? [path] : [];
  const re = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`);
  return readdirSync(dir).filter((f) => re.test(f)).map((f) => join(dir, f));
}

describe('windows-package: the WDK project is set up for a current WDK (read, not built: no Windows here)', function () {
  before(function () {
    needTools(this, { xmllint: 'libxml2-utils' });
  });

  it('is well-formed MSBuild XML', function () {
    execFileSync('xmllint', ['--noout', PROJECT], { stdio: ['ignore', 'ignore', 'pipe'] });
    expect(xpath('local-name(/*)')).to.equal('Project');
  });

  it('x64 only, in the project and the solution: the current WDK builds no x86 kernel drivers', function () {
    expect(includes('ProjectConfiguration')).to.deep.equal(['Debug|x64', 'Release|x64']);
    const sln = readFileSync(join(WDK, 'edudma.sln'), 'utf8');
    expect(sln).not.to.match(/x86|Win32/);
    expect(sln.match(/\|x64 = /g)).to.have.length(2);
  });

  it('the kernel-mode toolset, WDM, Windows 10 target with the newest SDK, Windows Driver mode, Spectre stated', function () {
    expect(prop('PlatformToolset')).to.equal('WindowsKernelModeDriver10.0');
    expect(prop('ConfigurationType')).to.equal('Driver');
    expect(prop('DriverType')).to.equal('WDM');
    expect(prop('TargetVersion')).to.equal('Windows10');
    expect(prop('WindowsTargetPlatformVersion')).to.equal('$(LatestTargetPlatformVersion)');
    expect(prop('DriverTargetPlatform')).to.equal('Windows Driver');
    expect(prop('Driver_SpectreMitigation')).to.equal('Spectre');
    // Warnings stay errors: the deprecated pool call must be resolved in the source, not by the project.
    expect(xpath(`string(/${el('Project', 'ItemDefinitionGroup', 'ClCompile', 'TreatWarningAsError')})`)).to.equal('true');
    expect(xpath(`count(//${el('DisableSpecificWarnings')})`)).to.equal('0');
  });

  it('compiles exactly the sources make driver compiles (src/*.c), and every header it names exists', function () {
    const compiled = includes('ClCompile').flatMap(expand).sort();
    const src = join(ROOT, 'guest-driver', 'windows', 'src');
    expect(compiled).to.deep.equal(readdirSync(src).filter((f) => f.endsWith('.c')).map((f) => join(src, f)).sort());
    for (const h of includes('ClInclude')) expect(expand(h), h).not.to.deep.equal([]);
    expect(includes('Inf').flatMap(expand)).to.deep.equal([join(ROOT, 'guest-driver', 'windows', 'edudma.inf')]);
  });

  it("StampInf keeps the INF's own DriverVer: DateStamp and TimeStamp equal it", function () {
    const inf = parseInf(readFileSync(join(ROOT, 'guest-driver', 'windows', 'edudma.inf'), 'utf8'));
    const [date, version] = inf.sections.get('version')!.lines.find((l) => l.key === 'DriverVer')!.values;
    const stamp = (n: string) => xpath(`string(/${el('Project', 'ItemDefinitionGroup', 'Inf', n)})`);
    expect([stamp('SpecifyDriverVerDirectiveDate'), stamp('DateStamp'), stamp('SpecifyDriverVerDirectiveVersion'), stamp('TimeStamp')]).to.deep.equal(['true', date, 'true', version]);
  });

  it('output paths are relative to the project, so msbuild edudma.vcxproj works without the solution', function () {
    for (const p of ['OutDir', 'IntDir']) expect(prop(p), p).to.match(/^\$\(MSBuildProjectDirectory\)\\\.\.\\\.\.\\\.\.\\build\\windows-wdk\\/);
    expect(readFileSync(PROJECT, 'utf8')).not.to.contain('$(SolutionDir)');
  });
});
