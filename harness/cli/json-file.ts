// A JSON file a user writes by hand (dmahil.config.json, a --scenarios file), checked against its JSON
// Schema. Every problem is one UsageError line naming the file, where in it (the line, found by locating
// the value in the text), the key and what is wrong; the hint says what the key takes.
import fs from 'node:fs';
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { UsageError } from '../errors.js';

// ajv is CommonJS; under NodeNext its class is the default export's `default`.
const Ajv = AjvModule.default;

/** verbose: the errors carry the offending data and the schema around it (its description is the fix). */
export function compileSchema(schema: object): ValidateFunction {
  return new Ajv({ allErrors: true, strict: false, verbose: true }).compile(schema);
}

/**
 * The one error to show: a misspelt key first (its entry then also lacks the key it meant, and "did you
 * mean" is the better fix), else the first in the file's order.
 */
export function firstError(errors: ErrorObject[]): ErrorObject {
  return errors.find((e) => e.keyword === 'additionalProperties') ?? errors[0]!;
}

/** The text and parsed value of a JSON file; a missing, unreadable or malformed file is a UsageError. */
export function readJsonFile(file: string, label: string, hint: string): { text: string; value: unknown } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a file' : `cannot read it (${code ?? (e as Error).message})`;
    throw new UsageError(`${label}: ${what}`, { hint });
  }
  try {
    return { text, value: JSON.parse(text) };
  } catch (e) {
    // V8 says "… in JSON at position N", or quotes the text around an unexpected token (newlines and all).
    const msg = (e as Error).message.replace(/\s*\n\s*/g, ' ');
    const at = /at position (\d+)/.exec(msg);
    const line = at ? lineAt(text, Number(at[1])) : syntaxErrorLine(text);
    throw new UsageError(`${label}: not valid JSON (line ${line}): ${msg}`, { hint });
  }
}

/** Does JSON.parse of this prefix fail before its end (not merely because the text stops there)? */
function failsBefore(prefix: string): boolean {
  try {
    JSON.parse(prefix);
    return false;
  } catch (e) {
    const msg = (e as Error).message;
    const at = /at position (\d+)/.exec(msg);
    return at ? Number(at[1]) < prefix.trimEnd().length : !/Unexpected end of JSON input/.test(msg);
  }
}

/** The first line whose end already makes the text invalid JSON: a binary search over prefixes. */
function syntaxErrorLine(text: string): number {
  const ends = [...text.matchAll(/\n/g)].map((m) => m.index!).concat(text.length);
  let lo = 0;
  let hi = ends.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (failsBefore(text.slice(0, ends[mid]))) hi = mid;
    else lo = mid + 1;
  }
  return lo + 1;
}

export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The 1-based line where the value at a JSON pointer (ajv's instancePath, "/scenarios/2/size") starts. */
export function lineOfPointer(text: string, pointer: string): number | undefined {
  const segments = pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
  const at = findValue(text, skipWs(text, 0), segments);
  return at === undefined ? undefined : lineAt(text, at);
}

function skipWs(t: string, i: number): number {
  while (i < t.length && /\s/.test(t[i]!)) i++;
  return i;
}

/** End (exclusive) of the string starting at t[i] === '"'. */
function skipString(t: string, i: number): number {
  for (i++; i < t.length; i++) {
    if (t[i] === '\\') i++;
    else if (t[i] === '"') return i + 1;
  }
  return i;
}

/** End (exclusive) of any value starting at i (the text is valid JSON: JSON.parse read it). */
function skipValue(t: string, i: number): number {
  if (t[i] === '"') return skipString(t, i);
  if (t[i] === '{' || t[i] === '[') {
    let depth = 0;
    for (; i < t.length; i++) {
      const c = t[i];
      if (c === '"') i = skipString(t, i) - 1;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') if (--depth === 0) return i + 1;
    }
    return i;
  }
  while (i < t.length && !/[\s,\]}]/.test(t[i]!)) i++;
  return i;
}

function findValue(t: string, i: number, path: string[]): number | undefined {
  if (path.length === 0) return i;
  const [want, ...rest] = path;
  if (t[i] === '{') {
    i = skipWs(t, i + 1);
    while (t[i] === '"') {
      const end = skipString(t, i);
      const key = JSON.parse(t.slice(i, end)) as string;
      i = skipWs(t, skipWs(t, end) + 1); // past the colon
      if (key === want) return findValue(t, i, rest);
      i = skipWs(t, skipValue(t, i));
      if (t[i] === ',') i = skipWs(t, i + 1);
    }
    return undefined;
  }
  if (t[i] === '[') {
    i = skipWs(t, i + 1);
    for (let n = 0; i < t.length && t[i] !== ']'; n++) {
      if (String(n) === want) return findValue(t, i, rest);
      i = skipWs(t, skipValue(t, i));
      if (t[i] === ',') i = skipWs(t, i + 1);
    }
  }
  return undefined;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function nearest(word: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(word, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  type?: string;
}

/** What went wrong, in words, and the fix: the schema's description of the key. */
export function describeSchemaError(e: ErrorObject, key: string): { what: string; fix?: string } {
  const parent = (e.parentSchema ?? {}) as SchemaNode;
  const shown = JSON.stringify(e.data);
  switch (e.keyword) {
    case 'additionalProperties': {
      const unknown = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys(parent.properties ?? {}).filter((k) => k !== '$schema');
      const near = nearest(unknown, known);
      return { what: `unknown key "${key ? `${key}.` : ''}${unknown}"${near ? ` (did you mean "${near}"?)` : ''}`, fix: `the keys are: ${known.join(', ')}` };
    }
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return { what: `${key ? `${key} ` : ''}lacks "${missing}"`, fix: parent.properties?.[missing]?.description ? `add "${missing}": ${parent.properties[missing].description}` : `add "${missing}"` };
    }
    case 'enum':
      return { what: `${key} ${shown} is not one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`, fix: parent.description };
    case 'type': {
      const type = e.params.type === 'integer' ? 'whole number' : String(e.params.type);
      return { what: `${key} ${shown} is not ${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`, fix: parent.description };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const low = parent.minimum !== undefined ? `from ${parent.minimum}` : parent.exclusiveMinimum !== undefined ? `above ${parent.exclusiveMinimum}` : '';
      const high = parent.maximum === undefined ? '' : parent.minimum !== undefined ? ` to ${parent.maximum}` : `${low ? ' and ' : ''}at most ${parent.maximum}`;
      return { what: `${key} ${shown} is out of range: it must be ${low}${high}`, fix: parent.description };
    }
    case 'pattern':
      return { what: `${key} ${shown} is not in the form it takes`, fix: parent.description };
    case 'minLength':
      return { what: `${key} is empty`, fix: parent.description };
    case 'minItems':
      return { what: `${key} is empty`, fix: parent.description };
    default:
      return { what: `${key} ${e.message ?? 'is not valid'}`, fix: parent.description };
  }
}
