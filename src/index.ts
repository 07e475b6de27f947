export type { CallInfo, HistoryContext } from './context.js';
export { currentCall, currentSession, runInSession, withHistoryContext } from './context.js';
export { HistoryTracked } from './decorators/history-tracked.js';
export type {
  CallOptions,
  HistorySource,
  HistoryTrackedOptions,
  HistoryWriterClass,
  VersionedOptions,
} from './decorators/options.js';
export { EntityArg, SessionArg } from './decorators/params.js';
export type { AsyncMethodLike, ClassOrMethodDecorator, DefaultServiceShape, ServiceShape } from './decorators/types.js';
export { Versioned } from './decorators/versioned.js';
export type { EventHistoryErrorCode, TransactionStateErrorCode } from './errors.js';
export {
  DecoratorError,
  EventHistoryError,
  HistoryWriteError,
  InvalidEntityError,
  MissingSessionError,
  SessionEndedError,
  TransactionStateError,
  UnsupportedSessionError,
  VersionConflictError,
} from './errors.js';
export type { HistoryEntry, HistoryOp, HistoryReader, HistoryWriter, ListOptions } from './history/entry.js';
export { MemoryHistoryStore } from './history/memory-store.js';
export { REDACTED, takeSnapshot } from './history/snapshot.js';
export { defaultConflict } from './pipeline/conflict.js';
export { expectedVersion } from './pipeline/stamp.js';
export type { HistoryWriterResolver } from './pipeline/writer.js';
export { setHistoryWriterResolver } from './pipeline/writer.js';
export type { TransactionAdapter } from './transactions/adapter.js';
export { registerTransactionAdapter } from './transactions/registry.js';
