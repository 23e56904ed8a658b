// The machine layer: a QEMU q35 machine with shared guest RAM, QMP, logs and a clean exit. No guest knowledge.
export { Machine } from './machine.js';
export type { LaunchOptions, ShutdownOptions } from './machine.js';
export { validateMachineConfig } from './config.js';
export type { MachineConfig, Accel, DriveConfig, DriveFormat, DriveInterface, CdromConfig, EduConfig, NicConfig, NicModel } from './config.js';
export { buildQemuCommand, escapeQemuOptValue, shellQuote, qmpSocketPath, ramFilePath, DEFAULT_QEMU_BINARY, DEFAULT_TCG_CPU } from './cmdline.js';
export type { QemuCommand, QemuCommandInputs } from './cmdline.js';
export { probeKvm, resolveAccel } from './accel.js';
export type { KvmProbe, ResolvedAccel } from './accel.js';
export { classifyExit } from './exit.js';
export type { MachineExit, MachineExitCause, ExitEvidence } from './exit.js';
export { parseDeviceModelLine } from './device-messages.js';
export type { DeviceModelMessage, DeviceModelMessageKind } from './device-messages.js';
export { sweepStaleRunDirs, isProcessAlive, RUN_DIR_PREFIX } from './run-dir.js';
export { killAllMachines, liveMachineCount } from './registry.js';
export { MachineConfigError, QemuStartError } from './errors.js';
export type { ConfigProblem } from './errors.js';
export * from './qmp/index.js';
