// What QEMU said about device accesses an IOMMU refused during one scenario. intel-iommu prints its vtd_*
// lines once per QEMU process, then (under -d guest_errors) one "Invalid write ... region '(null)', reason:
// rejected" per access of up to 4 bytes, as amd-iommu does; -trace vtd_dmar_fault adds one line per access
// (iommu-notes.md). The per-access lines give the count; the first line of all is the one quoted.
import { isUnassignedAccess, messageCount, type DeviceModelMessage } from '../machine/device-messages.js';

export interface IommuFaults {
  /** Device accesses refused (at least 1: the vtd_* lines alone do not count them). */
  accesses: number;
  writes: number;
  reads: number;
  /** The device address of the first refused access: an IOVA. */
  firstIova: number;
  /** QEMU's first line about it. */
  line: string;
  /** Why, when QEMU said ('not mapped', 'no write permission', ...). */
  reason?: string;
}

/**
 * The scenario's refused accesses, or undefined when there were none. An access that nothing answered
 * ('(null)', rejected) counts only behind an IOMMU (the caller knows, or QEMU's own IOMMU lines show it):
 * without one it is a DMA into a hole, which other findings explain.
 */
export function gatherIommuFaults(messages: readonly DeviceModelMessage[], behindIommu: boolean): IommuFaults | undefined {
  const faults = messages.filter((m): m is Extract<DeviceModelMessage, { kind: 'iommu-fault' }> => m.kind === 'iommu-fault');
  const refused = behindIommu || faults.length > 0 ? messages.filter(isUnassignedAccess) : [];
  if (faults.length === 0 && refused.length === 0) return undefined;
  const traced = faults.filter((m) => m.source === 'vtd-dmar-fault' || m.source === 'amdvi-page-fault');
  // Both kinds of per-access line may be there (guest_errors and the trace): count one of them.
  const perAccess: readonly DeviceModelMessage[] = messageCount(refused) >= messageCount(traced) ? refused : traced;
  const count = (access: 'read' | 'write'): number => messageCount(perAccess.filter((m) => 'access' in m && m.access === access));
  const first = [...faults, ...refused].reduce((a, b) => (b.at < a.at ? b : a));
  const iova = first.kind === 'iommu-fault' ? first.iova : first.kind === 'invalid-access' ? first.addr : 0n;
  const reason = faults.find((m) => m.source === 'vtd-slpte')?.reason ?? faults[0]?.reason;
  return {
    accesses: Math.max(1, messageCount(perAccess)),
    writes: count('write'),
    reads: count('read'),
    firstIova: Number(iova),
    line: first.line.trim(),
    ...(reason ? { reason } : {}),
  };
}
