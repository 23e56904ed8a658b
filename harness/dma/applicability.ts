// Whether a catalog entry can mean anything on this QEMU. A negative control that the device model
// cannot produce is reported skipped with the reason, never run into a pass or a silent miss.
import type { EduBehaviour } from '../machine/edu-behaviour.js';
import { referenceOnly, VARIANTS, type CatalogEntry } from './catalog.js';

/** Does deciding this entry's applicability need the measured edu behaviour? */
export function needsEduBehaviour(c: CatalogEntry): boolean {
  return c.scenario.fault === 'addr-beyond-mask';
}

/** Why the entry does not apply on this QEMU, or undefined when it does. */
export function notApplicable(c: CatalogEntry, edu: EduBehaviour): string | undefined {
  if (c.scenario.fault === 'addr-beyond-mask' && !(edu.clamps && edu.clampMessage)) {
    const what = edu.clamps ? 'clamps out-of-mask DMA without a message' : 'does not clamp out-of-mask DMA';
    return `not applicable on QEMU ${edu.qemuVersion}: its edu ${what}, so there is no clamp for the harness to catch`;
  }
  return undefined;
}

/** Why the entry does not apply to a golden image: its variant is a machine of the reference guest's. */
export function notOnImage(c: CatalogEntry, image: string): string | undefined {
  const variant = Object.values(VARIANTS).find((v) => v.id === c.variant);
  if (image === 'linux' || !variant || !referenceOnly(variant)) return undefined;
  return `not applicable on ${image}: the ${variant.id} variant is a machine of the reference guest's (${variant.description}); a golden image brings its own (docs/windows.md)`;
}
