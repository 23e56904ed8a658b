// A DMA scenario as the host describes it, and how it becomes dmactl arguments.
// The values and their meaning are documented in docs/contract.md.
import { UsageError } from '../errors.js';

export const DIRECTIONS = ['to-device', 'from-device', 'round-trip'] as const;
export const METHODS = ['streaming', 'scatter-gather', 'common-buffer'] as const;
export const SYNC_MODES = ['full', 'minimal'] as const;
export const FAULTS = [
  'none',
  'skip-sync',
  'skip-flush-dma-buffer',
  'wrong-direction',
  'read-before-completion',
  'addr-beyond-mask',
  'use-after-unmap',
  'short-mapping',
  'other-mapping',
] as const;

export type Direction = (typeof DIRECTIONS)[number];
export type Method = (typeof METHODS)[number];
export type SyncMode = (typeof SYNC_MODES)[number];
export type Fault = (typeof FAULTS)[number];

/** The contract this harness speaks: DMAHIL_CONTRACT_VERSION in dmahil_abi.h, "contract" in result.schema.json. */
export const CONTRACT_VERSION = 1;

export const MAX_SIZE = 1 << 20;
export const PAGE_SIZE = 4096;
export const EDU_MAX_OP = 4095;
export const EDU_DMA_BITS = 28;

/** What the guest driver is asked to do. */
export interface Scenario {
  direction: Direction;
  method: Method;
  sync: SyncMode;
  fault: Fault;
  size: number;
  offset: number;
  seed: number;
}

export const DEFAULT_SCENARIO: Scenario = {
  direction: 'round-trip',
  method: 'streaming',
  sync: 'full',
  fault: 'none',
  size: 4096,
  offset: 0,
  seed: 1,
};

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`scenario ${field} ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
}

function intIn(field: string, value: unknown, min: number, max: number): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  throw new UsageError(`scenario ${field} ${JSON.stringify(value)} must be an integer from ${min} to ${max}`);
}

/** Fill defaults and reject anything out of range before it reaches a guest. */
export function makeScenario(partial: Partial<Scenario>): Scenario {
  const s = { ...DEFAULT_SCENARIO, ...partial };
  return {
    direction: oneOf('direction', s.direction, DIRECTIONS),
    method: oneOf('method', s.method, METHODS),
    sync: oneOf('sync', s.sync, SYNC_MODES),
    fault: oneOf('fault', s.fault, FAULTS),
    size: intIn('size', s.size, 1, MAX_SIZE),
    offset: intIn('offset', s.offset, 0, PAGE_SIZE - 1),
    seed: intIn('seed', s.seed, 0, 0xffffffff),
  };
}

/** dmactl run arguments; every value is an enum or an integer, so no quoting is needed. */
export function dmactlRunArgs(s: Scenario, hold: boolean): string[] {
  const args = [
    'run',
    '--direction', s.direction,
    '--method', s.method,
    '--sync', s.sync,
    '--fault', s.fault,
    '--size', String(s.size),
    '--offset', String(s.offset),
    '--seed', String(s.seed),
  ];
  if (hold) args.push('--hold');
  return args;
}

/** Number of edu operations one leg of a scenario takes at least. */
export function eduOpsPerLeg(s: Scenario): number {
  return Math.ceil(s.size / EDU_MAX_OP);
}
