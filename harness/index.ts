// dmahil as a library: `import { … } from 'dmahil'`. The public surface is this file; every other module
// is internal and may change. docs/library.md shows a spec written with it.

/** Boot a guest of a profile (reference Linux, Windows golden image) with the test driver loaded. */
export { startGuest, type StartGuestOptions } from './lib/guest.js';
/** Mocha fixtures: one boot per spec file, shared or restored pristine per test (`restore: 'per-test'`) and on demand (`guest.restore()`); logs attached to failures. */
export { useGuest, type UseGuestOptions, type GuestFixture } from './lib/mocha.js';
/** The package's root (its guest driver sources and image recipes) and the image cache it uses. */
export { packageRoot, cacheDir } from './lib/paths.js';

/** Run one scenario on a guest: the device DMAs, the host checks guest RAM byte for byte. */
export { runScenario, type ScenarioCase, type RunScenarioOptions } from './dma/run-scenario.js';
/** A scenario's verdict (status, summary, explanation, findings) and what it means: ok, not-ok, skipped. */
export { outcome, type Verdict, type Status } from './dma/verdict.js';
/** The scenario catalog `dmahil run` uses, its guest variants, and scenario construction with defaults. */
export { CATALOG, VARIANTS, selectCatalog, type BuiltinVariantId, type CatalogEntry, type GuestVariant } from './dma/catalog.js';
export type { VariantMachine } from './guest/linux/variant-machine.js';
export { makeScenario, type Scenario } from './contract/scenario.js';

/** A booted guest (runScenario's first argument) and its RAM as the host reads it (`session.memory.read(gpa, length)`). */
export type { GuestSession, SessionMemory } from './guest/session.js';
/** dmahil's errors: each a one-line cause with a hint naming the fix (`describe()`). */
export { DmahilError, UsageError, EnvironmentError, GuestContractError, DriverLoadError } from './errors.js';
