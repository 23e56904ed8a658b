// QEMU's device-model messages as sessions report them: plain numbers, whatever the guest OS.
import type { DeviceModelMessage } from '../machine/index.js';
import type { DeviceModelEvent } from './session.js';

export function toDeviceModelEvents(messages: DeviceModelMessage[]): DeviceModelEvent[] {
  return messages.map((m) => ({
    atMs: m.at,
    kind: m.kind,
    line: m.line,
    ...(m.kind === 'edu-clamp' ? { from: Number(m.from), to: Number(m.to) } : {}),
  }));
}
