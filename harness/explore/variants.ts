// Which guest variants `dmahil explore --variants` searches: the built-in ones a guest of this image has,
// and the reference-guest variants declared in dmahil.config.json. Default: direct and bounce.
import { EXPLORED_VARIANTS, knownVariants, referenceOnly, VARIANTS, windowsOnly, type GuestVariant } from '../dma/catalog.js';
import { UsageError } from '../errors.js';

/** The variants named by --variants (comma-separated ids), in that order; the default when undefined. */
export function exploredVariants(list: string | undefined, image: string, declared: readonly GuestVariant[] = []): GuestVariant[] {
  const known = knownVariants(declared);
  const usable = known.filter((v) => (image === 'linux' ? !windowsOnly(v) : !referenceOnly(v) && !declared.includes(v)));
  const hint = `the variants for ${image === 'linux' ? 'the reference guest' : image} are: ${usable.map((v) => v.id).join(', ')}`;
  if (list === undefined) return EXPLORED_VARIANTS.map((id) => VARIANTS[id]);
  const ids = list.split(',').map((s) => s.trim());
  if (ids.some((id) => id === '')) throw new UsageError(`--variants "${list}" has an empty name`, { hint: `give ids separated by commas, e.g. --variants bounce,high-memory; ${hint}` });
  const out: GuestVariant[] = [];
  for (const id of ids) {
    const v = known.find((k) => k.id === id);
    if (!v) throw new UsageError(`--variants: "${id}" is not a guest variant`, { hint: `${hint}; a variant of your own is declared under "variants" in dmahil.config.json` });
    if (!usable.includes(v)) {
      const why = image === 'linux' ? 'a Windows golden image\'s' : 'a machine of the reference guest\'s, which a golden image does not have';
      throw new UsageError(`--variants: "${id}" is ${why}`, { hint });
    }
    if (!out.includes(v)) out.push(v);
  }
  return out;
}
