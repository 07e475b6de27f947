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
export type {
  AsyncMethodLike,
  CheckedService,
  ClassOrMethodDecorator,
  DefaultServiceShape,
  ServiceProblems,
  ServiceShape,
} from './decorators/types.js';
export { Versioned } from './decorators/versioned.js';
export type { CommitInFlight, EventHistoryErrorCode, TransactionStateErrorCode } from './errors.js';
export {
  ConnectionLostError,
  DecoratorError,
  EventHistoryError,
  HistoryWriteError,
  InvalidEntityError,
  MissingSessionError,
  RetryExhaustedError,
  RevertError,
  SessionEndedError,
  TransactionRetriesExhaustedError,
  TransactionStateError,
  UnsupportedSessionError,
  VersionConflictError,
} from './errors.js';
export type {
  ChainKey,
  ChainKeys,
  ChainOptions,
  ChainSecret,
  TamperKind,
  VerifyFinding,
  VerifyOptions,
  VerifyReport,
  VerifyResult,
} from './history/chain.js';
export { canonicalJson, hashEntry, verifyHistory } from './history/chain.js';
export type { CommitOutcome, CommitOutcomeOptions, CommitOutcomeReader } from './history/commit-outcome.js';
export { commitOutcome } from './history/commit-outcome.js';
export { diff } from './history/diff.js';
export type {
  AnyHistoryEntry,
  ChainHead,
  Difference,
  EntityIdOptions,
  EntityTypeOf,
  EntityTypes,
  HistoryEntry,
  HistoryOp,
  HistoryPage,
  HistoryReader,
  HistoryWriter,
  ListOptions,
  PageOptions,
  ReadOptions,
  SnapshotOf,
  VersionChanges,
} from './history/entry.js';
export { MemoryHistoryStore } from './history/memory-store.js';
export type { RevertOptions } from './history/revert.js';
export { revert } from './history/revert.js';
export { REDACTED, takeSnapshot } from './history/snapshot.js';
export type { Upcaster, Upcasters } from './history/upcast.js';
export { UpcastReader, upcastReader } from './history/upcast.js';
export { defaultConflict } from './pipeline/conflict.js';
export type { EntryCommittedListener, HookErrorHandler, HookFailure } from './pipeline/hooks.js';
export {
  afterCommit,
  discardHooks,
  onEntryCommitted,
  runCommittedHooks,
  setHookErrorHandler,
} from './pipeline/hooks.js';
export { expectedVersion } from './pipeline/stamp.js';
export type { HistoryWriterResolver } from './pipeline/writer.js';
export { setDefaultHistoryWriter, setHistoryWriterResolver } from './pipeline/writer.js';
export type { RetryOnConflictOptions } from './retry.js';
export { retryOnConflict } from './retry.js';
export type { TransactionAdapter } from './transactions/adapter.js';
export { registerTransactionAdapter } from './transactions/registry.js';
export type { SessionProvider } from './transactions/session-provider.js';
export { registerSessionProvider } from './transactions/session-provider.js';
export type {
  EntityClass,
  TrackedEntity,
  TrackedType,
  TrackedWrite,
  UnitOfWork,
  UnitOfWorkSource,
} from './unit-of-work/contract.js';
export { registerUnitOfWork } from './unit-of-work/contract.js';
export type { TypeOrmDataSourceLike, TypeOrmUnitOfWorkOptions } from './unit-of-work/typeorm.js';
export { typeormUnitOfWork } from './unit-of-work/typeorm.js';
export { typeormHistoryStore } from './unit-of-work/typeorm-store.js';
