// A structural checker for a device driver INF: the usual mistakes InfVerif would also catch
// (not InfVerif itself: no universal/declarative rules). Sections and keys are case-insensitive.

export interface InfLine {
  key?: string;
  values: string[];
  raw: string;
  line: number;
}

export interface Inf {
  sections: Map<string, { name: string; line: number; lines: InfLine[] }>;
  errors: string[];
}

/** Split on commas outside quotes; trim; strip surrounding quotes. */
function splitValues(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (const ch of s) {
    if (ch === '"') q = !q;
    if (ch === ',' && !q) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((v) => v.trim().replace(/^"(.*)"$/, '$1'));
}

function stripComment(s: string): string {
  let q = false;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '"') q = !q;
    if (s[i] === ';' && !q) return s.slice(0, i);
  }
  return s;
}

export function parseInf(text: string): Inf {
  const inf: Inf = { sections: new Map(), errors: [] };
  let current: { name: string; line: number; lines: InfLine[] } | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    let raw = stripComment(lines[i]).trim();
    const lineNo = i + 1;
    while (raw.endsWith('\\') && i + 1 < lines.length) raw = raw.slice(0, -1) + stripComment(lines[++i]).trim();
    if (!raw) continue;
    if (raw.startsWith('[')) {
      const m = /^\[([^\]]+)\]$/.exec(raw);
      if (!m) {
        inf.errors.push(`line ${lineNo}: malformed section header '${raw}'`);
        current = undefined;
        continue;
      }
      const name = m[1].trim();
      const key = name.toLowerCase();
      if (inf.sections.has(key)) current = inf.sections.get(key);
      else {
        current = { name, line: lineNo, lines: [] };
        inf.sections.set(key, current);
      }
      continue;
    }
    if (!current) {
      inf.errors.push(`line ${lineNo}: '${raw}' is outside any section`);
      continue;
    }
    const eq = (() => {
      let q = false;
      for (let j = 0; j < raw.length; j++) {
        if (raw[j] === '"') q = !q;
        if (raw[j] === '=' && !q) return j;
      }
      return -1;
    })();
    if (eq >= 0) current.lines.push({ key: raw.slice(0, eq).trim(), values: splitValues(raw.slice(eq + 1)), raw, line: lineNo });
    else current.lines.push({ values: splitValues(raw), raw, line: lineNo });
  }
  return inf;
}

function section(inf: Inf, name: string) {
  return inf.sections.get(name.toLowerCase());
}

function values(inf: Inf, sec: string, key: string): string[][] {
  return (section(inf, sec)?.lines ?? []).filter((l) => l.key?.toLowerCase() === key.toLowerCase()).map((l) => l.values);
}

function first(inf: Inf, sec: string, key: string): string | undefined {
  return values(inf, sec, key)[0]?.[0];
}

export interface InfCheck {
  id: string;
  ok: boolean;
  detail: string;
}

/**
 * Every line ends in CR LF. cmd.exe misparses LF-only batch files (labels, blocks), and a shipped INF is
 * CRLF as the WDK's tools write it; the package build converts both before the catalog hashes the INF.
 */
export function checkCrlf(text: string, id = 'line-endings'): InfCheck {
  const bare: number[] = [];
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\n') continue;
    if (text[i - 1] !== '\r') bare.push(line);
    line++;
  }
  const lines = line - (text.endsWith('\n') ? 1 : 0);
  if (bare.length === 0) return { id, ok: true, detail: `CRLF on all ${lines} lines` };
  const where = bare.length === lines ? 'every line' : `line${bare.length > 1 ? 's' : ''} ${bare.slice(0, 5).join(', ')}${bare.length > 5 ? ', ...' : ''}`;
  return { id, ok: false, detail: `LF without CR on ${where} (${bare.length} of ${lines}): ship it with CRLF line endings` };
}

export interface InfCheckOptions {
  /** hardware ID every models section must list */
  hardwareId: string;
  /** decorations the [Manufacturer] line must name, e.g. NTamd64, NTx86 */
  decorations: string[];
  catalogFile: string;
  driverFile: string;
  /** true/false: the driver does / does not connect message-signaled interrupts */
  driverUsesMsi?: boolean;
  /** 'crlf' (default): the INF as shipped; 'any': a source INF the build converts. */
  lineEndings?: 'crlf' | 'any';
  /** Check the Windows Driver rules this checker can (a subset of InfVerif /w; see windowsDriverChecks). */
  windowsDriver?: WindowsDriverRules;
  /** Every install opts into DMA remapping, per device and per driver (see dmaRemappingProblems). */
  dmaRemappingOptIn?: boolean;
}

export interface OsVersion {
  major: number;
  minor: number;
  build: number;
}

export interface WindowsDriverRules {
  /** The build from which InfVerif /w enforces its rules: its /wbuild, 10.0.17763 unless told otherwise. */
  enforceFromBuild: number;
  /** The oldest Windows the package must still install on, e.g. Windows 7 SP1 (6.1.7601). */
  downlevel?: OsVersion;
}

/** The first Windows 10 build (1709) with general support for running drivers from the driver store (DIRID 13). */
export const DRIVER_STORE_BUILD = 16299;
export const INFVERIF_WBUILD = 17763;

/** System-defined device setup classes a vendor may use (learn.microsoft.com: system-defined device setup classes). */
export const SYSTEM_CLASSES: Readonly<Record<string, string>> = {
  system: '{4d36e97d-e325-11ce-bfc1-08002be10318}',
  softwaredevice: '{62f9c741-b25a-46ce-b54c-9bccce08b6f2}',
  softwarecomponent: '{5c4c3332-344d-483c-8739-259e934c9cc8}',
  extension: '{e2f84ce7-8efa-411c-aa69-97454ca4cb57}',
  net: '{4d36e972-e325-11ce-bfc1-08002be10318}',
  hdc: '{4d36e96a-e325-11ce-bfc1-08002be10318}',
  scsiadapter: '{4d36e97b-e325-11ce-bfc1-08002be10318}',
  usb: '{36fc9e60-c465-11cf-8056-444553540000}',
  media: '{4d36e96c-e325-11ce-bfc1-08002be10318}',
};

export function checkInf(text: string, opts: InfCheckOptions): InfCheck[] {
  const inf = parseInf(text);
  const checks: InfCheck[] = [];
  const add = (id: string, problems: string[], okDetail: string) =>
    checks.push({ id, ok: problems.length === 0, detail: problems.length ? problems.join('; ') : okDetail });

  add('syntax', inf.errors, `${inf.sections.size} sections`);
  if (opts.lineEndings !== 'any') checks.push(checkCrlf(text));

  const sig = first(inf, 'Version', 'Signature');
  add('version-signature', section(inf, 'Version') && sig && /^\$(WINDOWS NT|Chicago)\$$/i.test(sig) ? [] : [`[Version] Signature is ${sig ?? 'missing'} (want "$WINDOWS NT$")`], `Signature ${sig}`);
  const cls = first(inf, 'Version', 'Class');
  const guid = first(inf, 'Version', 'ClassGuid');
  add('version-class', cls && guid && /^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$/i.test(guid) ? [] : [`Class ${cls ?? 'missing'}, ClassGuid ${guid ?? 'missing'}`], `Class ${cls} ${guid}`);
  add('version-provider', first(inf, 'Version', 'Provider') ? [] : ['[Version] has no Provider'], `Provider ${first(inf, 'Version', 'Provider')}`);
  const cat = first(inf, 'Version', 'CatalogFile');
  add('version-catalog', cat && cat.toLowerCase() === opts.catalogFile.toLowerCase() ? [] : [`CatalogFile is ${cat ?? 'missing'} (want ${opts.catalogFile}; PnP installs need a signed catalog)`], `CatalogFile ${cat}`);
  const dv = values(inf, 'Version', 'DriverVer')[0];
  add('version-driverver', dv && /^\d{2}\/\d{2}\/\d{4}$/.test(dv[0]) && /^\d+\.\d+\.\d+\.\d+$/.test(dv[1] ?? '') ? [] : [`DriverVer ${dv?.join(',') ?? 'missing'} (want mm/dd/yyyy,w.x.y.z)`], `DriverVer ${dv?.join(',')}`);

  // %strings%
  const strings = new Set((section(inf, 'Strings')?.lines ?? []).map((l) => l.key?.toLowerCase()).filter(Boolean) as string[]);
  const unresolved = new Set<string>();
  for (const [name, sec] of inf.sections) {
    if (name === 'strings') continue;
    for (const l of sec.lines)
      for (const m of l.raw.matchAll(/%([^%\s]*)%/g)) if (m[1] && !/^\d+$/.test(m[1]) && !strings.has(m[1].toLowerCase())) unresolved.add(`%${m[1]}% (line ${l.line})`);
  }
  add('strings-resolved', [...unresolved].map((u) => `unresolved string token ${u}`), `${strings.size} strings, all tokens resolve`);

  // Manufacturer -> models sections -> install sections
  const mfg = section(inf, 'Manufacturer')?.lines ?? [];
  const modelProblems: string[] = [];
  const models: string[] = [];
  if (mfg.length === 0) modelProblems.push('[Manufacturer] missing or empty');
  for (const l of mfg) {
    const [base, ...decos] = l.values;
    for (const want of opts.decorations)
      if (!decos.some((d) => d.toLowerCase() === want.toLowerCase())) modelProblems.push(`[Manufacturer] ${l.key} does not name decoration ${want}`);
    const names = decos.length ? decos.map((d) => `${base}.${d}`) : [base];
    for (const n of names) {
      if (!section(inf, n)) modelProblems.push(`models section [${n}] missing`);
      else models.push(n);
    }
  }
  add('manufacturer-models', modelProblems, `models ${models.join(', ')}`);

  const hwProblems: string[] = [];
  const installs = new Set<string>();
  for (const m of models) {
    const entries = section(inf, m)!.lines.filter((l) => l.key);
    if (entries.length === 0) hwProblems.push(`[${m}] lists no device`);
    for (const e of entries) {
      installs.add(e.values[0]);
      const ids = e.values.slice(1).map((v) => v.toUpperCase());
      if (!ids.includes(opts.hardwareId.toUpperCase())) hwProblems.push(`[${m}] line ${e.line}: hardware ID ${e.values.slice(1).join(',') || 'missing'} (want ${opts.hardwareId})`);
    }
  }
  add('hardware-id', hwProblems, `${opts.hardwareId} in ${models.length} models section(s)`);

  const instProblems: string[] = [];
  const copied = new Set<string>();
  const serviceBinaries: string[] = [];
  let msi: boolean | undefined;
  const remapProblems: string[] = [];
  for (const inst of installs) {
    const ddi = section(inf, `${inst}.NT`) ? `${inst}.NT` : section(inf, inst) ? inst : undefined;
    if (!ddi) {
      instProblems.push(`install section [${inst}] / [${inst}.NT] missing`);
      continue;
    }
    for (const kind of ['CopyFiles', 'AddReg']) {
      for (const list of values(inf, ddi, kind).concat(values(inf, `${ddi}.HW`, kind)))
        for (const target of list) {
          if (kind === 'CopyFiles' && target.startsWith('@')) {
            copied.add(target.slice(1).toLowerCase());
            continue;
          }
          const s = section(inf, target);
          if (!s) {
            instProblems.push(`${kind} section [${target}] (from [${ddi}]) missing`);
            continue;
          }
          if (kind === 'CopyFiles') for (const l of s.lines) copied.add((l.key ? l.raw.split('=')[0] : l.values[0]).trim().toLowerCase());
          if (kind === 'AddReg')
            for (const l of s.lines)
              if (/MSISupported/i.test(l.raw)) msi = (l.values[4] ?? '').trim() === '1';
        }
    }
    const svc = values(inf, `${ddi}.Services`, 'AddService');
    if (svc.length === 0) instProblems.push(`[${ddi}.Services] with AddService missing`);
    if (opts.dmaRemappingOptIn) remapProblems.push(...dmaRemappingProblems(inf, ddi, svc.map((a) => a[2] ?? '')));
    for (const a of svc) {
      const flags = parseInt(a[1] ?? '0', 16);
      if (!(flags & 0x2)) instProblems.push(`AddService ${a[0]} lacks flag 0x2 (SPSVCINST_ASSOCSERVICE)`);
      const s = section(inf, a[2] ?? '');
      if (!s) {
        instProblems.push(`service section [${a[2]}] missing`);
        continue;
      }
      const get = (k: string) => first(inf, a[2], k);
      if (get('ServiceType') !== '1') instProblems.push(`[${a[2]}] ServiceType ${get('ServiceType') ?? 'missing'} (must be 1, SERVICE_KERNEL_DRIVER)`);
      if (!/^[0-4]$/.test(get('StartType') ?? '')) instProblems.push(`[${a[2]}] StartType ${get('StartType') ?? 'missing'} (0..4)`);
      if (!/^[0-3]$/.test(get('ErrorControl') ?? '')) instProblems.push(`[${a[2]}] ErrorControl ${get('ErrorControl') ?? 'missing'} (0..3)`);
      const serviceBinary = get('ServiceBinary');
      if (!serviceBinary) instProblems.push(`[${a[2]}] ServiceBinary missing`);
      else serviceBinaries.push(serviceBinary);
    }
  }
  add('install-sections', instProblems, `install section(s) ${[...installs].join(', ')}`);

  const sdf = new Set<string>();
  const diskIds = new Set((section(inf, 'SourceDisksNames')?.lines ?? []).map((l) => l.key?.split('.')[0].trim()));
  const fileProblems: string[] = [];
  for (const [name, sec] of inf.sections)
    if (name === 'sourcedisksfiles' || name.startsWith('sourcedisksfiles.'))
      for (const l of sec.lines) {
        sdf.add((l.key ?? l.values[0]).toLowerCase());
        if (l.key && !diskIds.has(l.values[0])) fileProblems.push(`[SourceDisksFiles] ${l.key}: disk ${l.values[0]} not in [SourceDisksNames]`);
      }
  for (const f of copied) if (!sdf.has(f)) fileProblems.push(`${f} is copied but not in [SourceDisksFiles]`);
  if (!copied.has(opts.driverFile.toLowerCase())) fileProblems.push(`${opts.driverFile} is not copied by any install section`);
  for (const serviceBinary of serviceBinaries)
    if (!serviceBinary.toLowerCase().endsWith(`\\${opts.driverFile.toLowerCase()}`)) fileProblems.push(`ServiceBinary ${serviceBinary} is not ${opts.driverFile}`);
  if (!section(inf, 'DestinationDirs')) fileProblems.push('[DestinationDirs] missing');
  add('files', fileProblems, `copies ${[...copied].join(', ')}; SourceDisksFiles ${[...sdf].join(', ')}`);

  if (opts.driverUsesMsi !== undefined)
    add('msi-consistent', (msi ?? false) === opts.driverUsesMsi ? [] : [`INF MSISupported=${msi ? 1 : 0} but the driver ${opts.driverUsesMsi ? 'connects' : 'does not connect'} message-signaled interrupts`], `MSISupported=${msi ? 1 : 0}, matches the driver`);
  if (opts.dmaRemappingOptIn) add('dma-remapping-opt-in', remapProblems, 'every install opts into DMA remapping: "DMA Management" RemappingSupported=1 (per device) and Parameters DmaRemappingCompatible=1 (per driver)');
  if (opts.windowsDriver) checks.push(...windowsDriverChecks(inf, opts.windowsDriver));
  return checks;
}

/** An AddReg line of any of `lists`' sections: root, subkey, value name, REG_DWORD (0x00010001), data. */
function hasDword(inf: Inf, lists: string[][], root: string, subkey: string, name: string, data: string): boolean {
  return lists.some((list) =>
    list.some((target) =>
      (section(inf, target)?.lines ?? []).some((l) => {
        const [r, k, n, type, d] = l.values.map((v) => v.trim());
        return r?.toUpperCase() === root && k?.toLowerCase() === subkey.toLowerCase() && n?.toLowerCase() === name.toLowerCase() && parseInt(type ?? '', 16) === 0x10001 && d !== undefined && Number(d) === Number(data);
      }),
    ),
  );
}

/**
 * "Enabling DMA remapping for device drivers" (Microsoft Learn): per device, in the device's hardware key,
 * HKR,"DMA Management",RemappingSupported,0x00010001,1 (Windows 11 24H2 and later; it overrides the
 * other); per driver, in the service's AddReg, HKR,Parameters,DmaRemappingCompatible,0x00010001,1
 * (Windows 10 1803 to 23H2). Both, so the opt-in holds on every Windows that reads one.
 */
function dmaRemappingProblems(inf: Inf, ddi: string, serviceSections: string[]): string[] {
  const problems: string[] = [];
  if (!hasDword(inf, values(inf, `${ddi}.HW`, 'AddReg'), 'HKR', 'DMA Management', 'RemappingSupported', '1')) {
    problems.push(`[${ddi}.HW] AddReg lacks HKR,"DMA Management",RemappingSupported,0x00010001,1 (the per-device DMA remapping opt-in)`);
  }
  for (const s of serviceSections)
    if (!hasDword(inf, values(inf, s, 'AddReg'), 'HKR', 'Parameters', 'DmaRemappingCompatible', '1')) {
      problems.push(`service section [${s}] AddReg lacks HKR,Parameters,DmaRemappingCompatible,0x00010001,1 (the per-driver DMA remapping opt-in)`);
    }
  return problems;
}

const cmpOs = (a: OsVersion, b: OsVersion) => a.major - b.major || a.minor - b.minor || a.build - b.build;
const showOs = (v: OsVersion) => `${v.major}.${v.minor}.${v.build}`;

/** A [Manufacturer] decoration: nt[Architecture][.[Major][.[Minor][.[ProductType][.[SuiteMask]][.[Build]]]]]. */
export function parseDecoration(d: string): { arch: string | undefined; version: OsVersion } | undefined {
  const parts = d.split('.');
  const m = /^nt(amd64|x86|arm64|arm|ia64)?$/i.exec(parts[0] ?? '');
  if (!m) return undefined;
  const num = (i: number) => (parts[i] ? parseInt(parts[i]!, 10) || 0 : 0);
  return { arch: m[1]?.toLowerCase(), version: { major: num(1), minor: num(2), build: num(5) } };
}

/**
 * The models section Windows picks for a device on `arch` running `os`: among the [Manufacturer] entry's
 * decorations for that architecture (or none) whose version is at most the OS's, the highest; with no
 * decoration at all, the undecorated section.
 */
export function modelsSectionFor(inf: Inf, entry: InfLine, arch: string, os: OsVersion): string | undefined {
  const [base, ...decos] = entry.values;
  if (decos.length === 0) return base;
  let best: { name: string; version: OsVersion; arch: boolean } | undefined;
  for (const d of decos) {
    const p = parseDecoration(d);
    if (!p || (p.arch && p.arch !== arch) || cmpOs(p.version, os) > 0) continue;
    const better = !best || cmpOs(p.version, best.version) > 0 || (cmpOs(p.version, best.version) === 0 && !!p.arch && !best.arch);
    if (better) best = { name: `${base}.${d}`, version: p.version, arch: !!p.arch };
  }
  return best && section(inf, best.name) ? best.name : undefined;
}

/** Where an install section puts its files (DIRIDs, via [DestinationDirs]) and its services' binaries. */
function installTargets(inf: Inf, inst: string, arch: string): { ddi: string; dirids: { copy: string; dirid: string }[]; binaries: string[] } | undefined {
  const ddi = [`${inst}.NT${arch}`, `${inst}.NT`, inst].find((n) => section(inf, n));
  if (!ddi) return undefined;
  const dest = new Map((section(inf, 'DestinationDirs')?.lines ?? []).filter((l) => l.key).map((l) => [l.key!.toLowerCase(), (l.values[0] ?? '').trim()]));
  const dirids: { copy: string; dirid: string }[] = [];
  for (const list of values(inf, ddi, 'CopyFiles'))
    for (const target of list) {
      const key = target.startsWith('@') ? 'defaultdestdir' : target.toLowerCase();
      dirids.push({ copy: target, dirid: dest.get(key) ?? dest.get('defaultdestdir') ?? '(none)' });
    }
  const binaries: string[] = [];
  for (const a of values(inf, `${ddi}.Services`, 'AddService')) {
    const b = first(inf, a[2] ?? '', 'ServiceBinary');
    if (b) binaries.push(b);
  }
  return { ddi, dirids, binaries };
}

/**
 * The Windows Driver rules of InfVerif /w that can be checked from the text (a subset: InfVerif itself
 * needs Windows): no [ClassInstall32] (invalid in a Windows Driver package), a system-defined class,
 * and driver package isolation's DIRID 13 for files and service binaries in every models section
 * used from the /w build on; and, for the older Windows the package must still install on, models
 * sections that exist and do not use DIRID 13 (unsupported before Windows 10 1709).
 */
export function windowsDriverChecks(inf: Inf, rules: WindowsDriverRules): InfCheck[] {
  const checks: InfCheck[] = [];
  const add = (id: string, problems: string[], okDetail: string) =>
    checks.push({ id, ok: problems.length === 0, detail: problems.length ? problems.join('; ') : okDetail });

  const ci = [...inf.sections.values()].filter((sec) => /^classinstall32(\.|$)/i.test(sec.name));
  add('no-classinstall32', ci.map((sec) => `[${sec.name}] (line ${sec.line}) is invalid in a Windows Driver package: use a system-defined class`), 'no [ClassInstall32]');

  const cls = first(inf, 'Version', 'Class') ?? '';
  const guid = (first(inf, 'Version', 'ClassGuid') ?? '').toLowerCase();
  const want = SYSTEM_CLASSES[cls.toLowerCase()];
  add('system-class', want === guid ? [] : [want ? `Class ${cls} has ClassGuid ${want}, not ${guid}` : `Class ${cls || 'missing'} ${guid} is not a system-defined class (e.g. System ${SYSTEM_CLASSES.system})`], `Class ${cls} ${guid} (system-defined)`);

  const mfg = (section(inf, 'Manufacturer')?.lines ?? []).filter((l) => l.key);
  const arches = [...new Set(mfg.flatMap((l) => l.values.slice(1).map((d) => parseDecoration(d)?.arch).filter((a): a is string => !!a)))];
  if (arches.length === 0) arches.push('amd64');
  const uses13 = (t: { dirids: { dirid: string }[]; binaries: string[] }) => t.dirids.some((d) => /^13\b/.test(d.dirid)) || t.binaries.some((b) => /^%13%/.test(b));

  const enforced: OsVersion = { major: 10, minor: 0, build: rules.enforceFromBuild };
  const storeProblems: string[] = [];
  const storeSeen: string[] = [];
  for (const entry of mfg)
    for (const arch of arches) {
      const models = modelsSectionFor(inf, entry, arch, enforced);
      if (!models) {
        storeProblems.push(`no models section of ${entry.key} applies to ${arch} Windows ${showOs(enforced)}`);
        continue;
      }
      storeSeen.push(models);
      for (const e of section(inf, models)!.lines.filter((l) => l.key)) {
        const t = installTargets(inf, e.values[0]!, arch);
        if (!t) continue; // install-sections reports it
        for (const d of t.dirids) if (!/^13\b/.test(d.dirid)) storeProblems.push(`[${models}] -> [${t.ddi}] copies [${d.copy}] to DIRID ${d.dirid}, not 13 (run from the driver store)`);
        for (const b of t.binaries) if (!/^%13%\\/.test(b)) storeProblems.push(`[${models}] -> [${t.ddi}] ServiceBinary ${b} is not under %13%`);
      }
    }
  add('driver-store', storeProblems, `DIRID 13 in ${[...new Set(storeSeen)].join(', ')} (used from ${showOs(enforced)} on)`);

  const olds: OsVersion[] = [{ major: 10, minor: 0, build: DRIVER_STORE_BUILD - 1 }];
  if (rules.downlevel) olds.push(rules.downlevel);
  const downProblems: string[] = [];
  const downSeen: string[] = [];
  for (const os of olds)
    for (const entry of mfg)
      for (const arch of arches) {
        const models = modelsSectionFor(inf, entry, arch, os);
        if (!models) {
          if (os === rules.downlevel) downProblems.push(`no models section of ${entry.key} applies to ${arch} Windows ${showOs(os)}: it cannot install there`);
          continue;
        }
        downSeen.push(`${models} (${showOs(os)})`);
        for (const e of section(inf, models)!.lines.filter((l) => l.key)) {
          const t = installTargets(inf, e.values[0]!, arch);
          if (t && uses13(t)) downProblems.push(`[${models}] -> [${t.ddi}] uses DIRID 13 but applies to Windows ${showOs(os)}: DIRID 13 needs ${showOs({ major: 10, minor: 0, build: DRIVER_STORE_BUILD })} (decorate it NT${arch}.10.0...${DRIVER_STORE_BUILD})`);
        }
      }
  add('dirid-13-downlevel', downProblems, `no DIRID 13 before ${showOs({ major: 10, minor: 0, build: DRIVER_STORE_BUILD })}: ${[...new Set(downSeen)].join(', ')}`);
  return checks;
}
