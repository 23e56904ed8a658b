export { QmpClient } from './client.js';
export type { QmpEvent, QmpGreeting, QmpTranscriptEntry, QmpConnectOptions, QmpWaitOptions } from './client.js';
export { QmpError, QmpTimeoutError, QmpClosedError, QmpProtocolError } from './errors.js';
export { QmpTransport } from './transport.js';
export type { QmpMessage } from './transport.js';
