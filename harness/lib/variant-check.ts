// startGuest's `variant` object of the user's own: the same rules as a config's "variants" entry
// (config.schema.json, the one place its ranges are written), so a machine QEMU cannot run, or one the
// config would refuse, is a one-line UsageError before anything boots, not a failed boot.
import AjvModule from 'ajv';
import configSchema from '../cli/config.schema.json' with { type: 'json' };
import type { GuestVariant } from '../dma/catalog.js';
import { UsageError } from '../errors.js';

// ajv is CommonJS; under NodeNext its class is the default export's `default`.
const Ajv = AjvModule.default;
const machineSchema = configSchema.properties.variants.additionalProperties;
const validateMachine = new Ajv({ allErrors: false, strict: false }).compile(machineSchema);
const FIX = 'a variant of your own is { id, forceBounce, description, machine: { memoryMiB, cpus, swiotlb, eduDmaMask, iommu, iommuMode } } (docs/config.md#guest-variants)';

/** Throws a UsageError naming the variant, the setting and its range when the object is not one. */
export function checkVariant(variant: GuestVariant): void {
  const name = `variant ${JSON.stringify(variant.id)}`;
  if (typeof variant.id !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(variant.id)) {
    throw new UsageError(`${name}: the id is not a variant name (lower-case letters, digits and dashes, starting with a letter)`, { hint: `rename it; it names the guest's artifacts folder; ${FIX}` });
  }
  if (typeof variant.forceBounce !== 'boolean') throw new UsageError(`${name}: forceBounce must be true or false`, { hint: FIX });
  if (variant.machine === undefined || validateMachine(variant.machine)) return;
  const e = validateMachine.errors?.[0];
  const key = e?.instancePath.replace(/^\//, '') || (e?.params as { additionalProperty?: string } | undefined)?.additionalProperty || '';
  if (e?.keyword === 'additionalProperties') {
    throw new UsageError(`${name}: machine.${key} is not a setting of the guest's machine`, { hint: `the settings are ${Object.keys(machineSchema.properties).filter((k) => k !== 'description').join(', ')}; ${FIX}` });
  }
  const described = (machineSchema.properties as Record<string, { description?: string }>)[key]?.description;
  throw new UsageError(`${name}: machine${key ? `.${key}` : ''} ${e?.message ?? 'is not valid'}`, { hint: described ? `${key}: ${described}` : FIX });
}
