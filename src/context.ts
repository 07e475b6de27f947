import { AsyncLocalStorage } from 'node:async_hooks';
import type { HistoryOp } from './history/entry.js';
import type { EntityState } from './pipeline/entity-state.js';
import type { TransactionAdapter } from './transactions/adapter.js';
import type { SessionHold } from './transactions/session-lock.js';
import type { UnitOfWork } from './unit-of-work/contract.js';

/** Who and why, attached to every history entry written inside `withHistoryContext`. */
export interface HistoryContext {
  actor?: string;
  reason?: string;
  metadata?: Record<string, unknown>;
}

/**
 * What the running decorated call is doing, from `currentCall()`.
 *
 * ```ts
 * const { expectedVersion, txId } = currentCall() ?? {};
 * ```
 */
export interface CallInfo {
  readonly service: object;
  readonly method: string;
  readonly op: HistoryOp;
  readonly entity: object;
  readonly entityType: string;
  /** The version the entity had when the call began (update and delete). */
  readonly expectedVersion: number | undefined;
  /** The version stamped on the entity by `@Versioned`, if any. */
  readonly version: number | undefined;
  readonly session: unknown;
  readonly txId: string | undefined;
  readonly args: readonly unknown[];
}

/**
 * One unit of work as the pipeline sees it: the transaction a call owns, the caller's transaction
 * a call joined, or the savepoint a nested call runs in. Nested decorated calls get a child frame
 * on the same session and txId.
 */
export interface TransactionFrame {
  readonly session: unknown;
  readonly adapter: TransactionAdapter<unknown>;
  readonly txId: string;
  /** Undo actions run, newest first, when the unit rolls back. */
  readonly onRollback: (() => void)[];
  /**
   * Set once the unit has ended. A decorated call that starts later with this frame still in its
   * async context (a timer, an event handler the method registered) is not nested in it.
   */
  closed: boolean;
  /**
   * The nested calls started in this unit, chained one after the other (a settled promise, never
   * rejected); the unit waits for the chain before it ends, so no nested call outlives it.
   */
  children?: Promise<void>;
  /**
   * The session holds the adapter took to run this unit (see `session-lock`). Released when the
   * unit ends, before COMMIT: a call the unit started that runs later must wait for the
   * session, never join what is open on it through a hold it inherited.
   */
  holds?: readonly SessionHold[];
  /**
   * Hooks to run once the unit's transaction commits (see `afterCommit` in `pipeline/hooks`): a
   * nested unit hands its hooks to its parent on success, a rolled-back unit drops them.
   */
  afterCommit?: (() => unknown)[];
  /**
   * Set on the frame of a unit that may run again after a transient failure (and shared by the
   * frames nested in it): the entity of every nested call, recorded as the call got its turn, so
   * that a retry of the whole unit starts each of them from where it was (see `ownFailed`).
   */
  captures?: { readonly entityType: string; readonly state: EntityState }[];
}

interface AmbientState {
  readonly session?: unknown;
  readonly history?: HistoryContext;
  readonly call?: CallInfo;
  readonly tx?: TransactionFrame;
  /** The holds on library-owned transactions taken by this async context or one it descends from. */
  readonly held?: readonly SessionHold[];
  /** The unit of work of a decorated call given no session, whose ORM writes its hooks record. */
  readonly unit?: UnitOfWork;
}

// One storage for every copy of the library loaded in the process (ESM and CJS).
const STORAGE_KEY = Symbol.for('event-history:context');
const holder = globalThis as { [STORAGE_KEY]?: AsyncLocalStorage<AmbientState> };
const storage: AsyncLocalStorage<AmbientState> = holder[STORAGE_KEY] ?? new AsyncLocalStorage<AmbientState>();
holder[STORAGE_KEY] = storage;

/** @internal */
export function ambient(): AmbientState | undefined {
  return storage.getStore();
}

/** @internal Runs `fn` with `patch` layered over the ambient state. */
export function runWithAmbient<R>(patch: AmbientState, fn: () => R): R {
  return storage.run({ ...storage.getStore(), ...patch }, fn);
}

/**
 * Makes `session` the session of every decorated call inside `fn` that is not given one.
 *
 * ```ts
 * await runInSession(session, () => orders.save(order)); // save(order) uses `session`
 * ```
 */
export function runInSession<R>(session: unknown, fn: () => R): R {
  return runWithAmbient({ session }, fn);
}

/**
 * Fills `actor`, `reason` and `metadata` of every history entry written inside `fn`. Nested
 * contexts override `actor` and `reason` and merge `metadata`.
 *
 * ```ts
 * await withHistoryContext({ actor: user.id, reason: 'refund' }, () => orders.update(order, session));
 * ```
 */
export function withHistoryContext<R>(context: HistoryContext, fn: () => R): R {
  const outer = storage.getStore()?.history;
  const merged: HistoryContext = { ...outer, ...context };
  if (outer?.metadata !== undefined || context.metadata !== undefined) {
    merged.metadata = { ...outer?.metadata, ...context.metadata };
  }
  return runWithAmbient({ history: merged }, fn);
}

/**
 * The session in effect for the running call: the one it was given, else the ambient one.
 *
 * ```ts
 * async save(order: Order) { await this.db.collection('orders').insertOne(order, { session: currentSession() }); }
 * ```
 */
export function currentSession<S = unknown>(): S | undefined {
  return storage.getStore()?.session as S | undefined;
}

/**
 * The decorated call running now, or `undefined` outside one.
 *
 * ```ts
 * const call = currentCall(); // { method: 'update', expectedVersion: 3, txId: '…', … }
 * ```
 */
export function currentCall(): CallInfo | undefined {
  return storage.getStore()?.call;
}
