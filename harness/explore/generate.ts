// What the explorer generates: a scenario from the whole contract (fault none) on one guest variant,
// with sizes and offsets biased toward the boundaries where coherency bugs hide. Generation and
// shrinking are fast-check's; this file only says what the space is and how to name a point in it.
import fc from 'fast-check';
import { DIRECTIONS, EDU_MAX_OP, MAX_SIZE, METHODS, PAGE_SIZE, SYNC_MODES, makeScenario, type Scenario } from '../contract/scenario.js';
import { EXPLORED_VARIANTS } from '../dma/catalog.js';

/** A guest variant's id: direct and bounce by default, any other with --variants (explore/variants.ts). */
export type VariantId = string;

/** One point of the space: a scenario and the guest variant it runs on. */
export interface ExploreCase {
  variant: VariantId;
  scenario: Scenario;
}

/** The fields fast-check generates and shrinks (a plain record, so fast-check can shrink it without context). */
export interface CaseFields {
  variant: VariantId;
  direction: Scenario['direction'];
  method: Scenario['method'];
  sync: Scenario['sync'];
  size: number;
  offset: number;
  seed: number;
}

const KiB = 1024;
/** Sizes where behaviour changes: an edu operation, a page, 64 KiB, and swiotlb's largest mapping (256 KiB). */
export const SIZE_BOUNDARIES = [EDU_MAX_OP, PAGE_SIZE, 64 * KiB, 256 * KiB] as const;
/** fast-check integers are 32-bit signed; the pattern seed space used is their non-negative half. */
const MAX_SEED = 0x7fffffff;

const variantArb = (variants: readonly VariantId[]) => fc.constantFrom(...variants);
const enums = {
  direction: fc.constantFrom(...DIRECTIONS),
  method: fc.constantFrom(...METHODS),
  sync: fc.constantFrom(...SYNC_MODES),
};

/** A multiple of a boundary, exactly or one off: 4095, 4096, 4097, 8192, 65535, 131072, 1 MiB... */
const nearBoundary = fc
  .tuple(fc.constantFrom(...SIZE_BOUNDARIES), fc.integer({ min: 1, max: 4 }), fc.constantFrom(0, 0, -1, 1))
  .map(([b, k, d]) => Math.min(MAX_SIZE, Math.max(1, b * k + d)));

const sizeArb = fc.oneof(
  { arbitrary: nearBoundary, weight: 4 },
  { arbitrary: fc.integer({ min: 1, max: 3 * PAGE_SIZE }), weight: 4 },
  { arbitrary: fc.integer({ min: 1, max: MAX_SIZE }), weight: 1 },
);

/** Offsets: the page's first and last bytes and their neighbours, or anywhere. */
const offsetArb = fc.oneof(fc.constantFrom(0, 1, PAGE_SIZE - 2, PAGE_SIZE - 1), fc.integer({ min: 0, max: PAGE_SIZE - 1 }));

/** The generator: every field of the contract but the fault (faults are the catalog's negative controls). */
export function caseArbitrary(variants: readonly VariantId[] = EXPLORED_VARIANTS): fc.Arbitrary<CaseFields> {
  return fc.record({
    variant: variantArb(variants),
    ...enums,
    size: sizeArb,
    offset: offsetArb,
    seed: fc.integer({ min: 0, max: MAX_SEED }),
  });
}

/**
 * The same space for shrinking, as plain integers fast-check shrinks toward 0 by halving the distance
 * (so multiples of a power of two are tried on the way: 131072, then 65536). Enums are indices into the
 * contract's lists (constantFrom would only try the first value), a size or end of 0 means 1. Two
 * coordinate systems: by (size, offset) a bug that needs a bigger buffer shrinks to the smallest size at
 * offset 0; by (end of the data, distance of the offset from the page's end) a bug that needs the data to
 * cross a page shrinks to the fewest bytes that still cross it (2 bytes at offset 4095). The explorer
 * alternates both until neither shrinks further.
 */
const index = (n: number) => fc.integer({ min: 0, max: n - 1 });
const enumIndices = (variants: readonly VariantId[]) => ({
  variant: index(variants.length),
  direction: index(DIRECTIONS.length),
  method: index(METHODS.length),
  sync: index(SYNC_MODES.length),
  seed: fc.integer({ min: 0, max: MAX_SEED }),
});
type Encoded = Record<string, number>;
const encodeEnums = (c: CaseFields, variants: readonly VariantId[]): Encoded => ({
  variant: variants.indexOf(c.variant),
  direction: DIRECTIONS.indexOf(c.direction),
  method: METHODS.indexOf(c.method),
  sync: SYNC_MODES.indexOf(c.sync),
  seed: c.seed,
});
const decodeEnums = (v: Encoded, variants: readonly VariantId[]) => ({
  variant: variants[v.variant!]!,
  direction: DIRECTIONS[v.direction!]!,
  method: METHODS[v.method!]!,
  sync: SYNC_MODES[v.sync!]!,
  seed: v.seed!,
});

export interface ShrinkCoordinates {
  arbitrary: (variants: readonly VariantId[]) => fc.Arbitrary<Encoded>;
  encode: (c: CaseFields, variants: readonly VariantId[]) => Encoded;
  decode: (v: Encoded, variants: readonly VariantId[]) => CaseFields;
}

export const SHRINK_SYSTEMS: Record<'size-offset' | 'end-tail', ShrinkCoordinates> = {
  'size-offset': {
    arbitrary: (variants) => fc.record({ ...enumIndices(variants), size: fc.integer({ min: 0, max: MAX_SIZE }), offset: fc.integer({ min: 0, max: PAGE_SIZE - 1 }) }),
    encode: (c, variants) => ({ ...encodeEnums(c, variants), size: c.size, offset: c.offset }),
    decode: (v, variants) => ({ ...decodeEnums(v, variants), size: Math.max(1, v.size!), offset: v.offset! }),
  },
  'end-tail': {
    arbitrary: (variants) =>
      fc.record({ ...enumIndices(variants), end: fc.integer({ min: 0, max: MAX_SIZE + PAGE_SIZE - 1 }), tail: fc.integer({ min: 0, max: PAGE_SIZE - 1 }) }),
    encode: (c, variants) => {
      const end = c.offset + c.size;
      return { ...encodeEnums(c, variants), end, tail: Math.min(PAGE_SIZE - 1, end - 1) - c.offset };
    },
    decode: (v, variants) => {
      const end = Math.max(1, v.end!);
      const offset = Math.max(0, end - MAX_SIZE, Math.min(PAGE_SIZE - 1, end - 1) - v.tail!);
      return { ...decodeEnums(v, variants), size: end - offset, offset };
    },
  },
};

export type ShrinkSystem = keyof typeof SHRINK_SYSTEMS;

export function toCase(f: CaseFields): ExploreCase {
  const { variant, ...s } = f;
  return { variant, scenario: makeScenario({ ...s, fault: 'none' }) };
}

export function toFields(c: ExploreCase): CaseFields {
  const { direction, method, sync, size, offset, seed } = c.scenario;
  return { variant: c.variant, direction, method, sync, size, offset, seed };
}

/** The scenario's name in reports; the guest variant has its own column. */
export function caseName(c: ExploreCase): string {
  const s = c.scenario;
  return `${s.direction} ${s.method} ${s.size} B at offset ${s.offset}, ${s.sync} sync, seed ${s.seed}`;
}

/** What --grep matches: the variant and the name. */
export function caseLabel(c: ExploreCase): string {
  return `${c.variant} ${caseName(c)}`;
}

/**
 * The explored sequence for a seed: deterministic, generated ahead in chunks (fast-check gives the same
 * first values for a seed whatever the count asked for).
 */
export class CaseSequence {
  private cases: CaseFields[] = [];

  constructor(
    private readonly arbitrary: fc.Arbitrary<CaseFields>,
    readonly seed: number,
    private readonly chunk = 5000,
  ) {}

  at(index: number): ExploreCase {
    while (index >= this.cases.length) this.cases = fc.sample(this.arbitrary, { seed: this.seed, numRuns: this.cases.length + this.chunk });
    return toCase(this.cases[index]!);
  }
}
