import { ambient, type TransactionFrame } from '../context.js';
import { TransactionStateError } from '../errors.js';
import type { HistoryEntry } from '../history/entry.js';
import { shared } from '../shared-state.js';

/** What a hook failure report says about the hook that failed. */
export interface HookFailure {
  /** `afterCommit` for a hook given to `afterCommit()`, `entryCommitted` for an `onEntryCommitted` listener. */
  readonly kind: 'afterCommit' | 'entryCommitted';
  /** The committed entry, for an `entryCommitted` listener. */
  readonly entry?: HistoryEntry;
}

/**
 * Receives the errors of after-commit hooks and committed-entry listeners. The transaction has
 * committed by then, so a failing hook never undoes it; it is only reported.
 */
export type HookErrorHandler = (error: unknown, failure: HookFailure) => void;

/** A listener of `onEntryCommitted`: called once per history entry, after its transaction committed. */
export type EntryCommittedListener = (entry: HistoryEntry) => unknown;

type Hook = () => unknown;

interface HookState {
  handler: HookErrorHandler;
  readonly listeners: EntryCommittedListener[];
  /**
   * Hooks of joined calls, waiting for the caller's COMMIT (`runCommittedHooks`) or ROLLBACK
   * (`discardHooks`), with the id of the transaction they belong to when the adapter knows it.
   */
  readonly bySession: WeakMap<object, { readonly txId: string | undefined; readonly hooks: Hook[] }>;
}

const defaultHandler: HookErrorHandler = (error, failure) => {
  console.error(`event-history: an ${failure.kind} hook failed after the commit (the commit is kept):`, error);
};

const state = shared<HookState>('after-commit-hooks', () => ({
  handler: defaultHandler,
  listeners: [],
  bySession: new WeakMap(),
}));

/**
 * Runs `fn` once the transaction of the running unit of work has committed: after the outermost
 * transaction the library began (hooks of nested calls wait for it), in registration order.
 * Discarded if the unit rolls back, and with each failed attempt of a retried call. Call it
 * inside a decorated method (or code it awaits).
 *
 * In a transaction the caller began (a joined call) the library does not see the COMMIT: the
 * hooks wait on the session until you call `runCommittedHooks(session)` after your COMMIT, or
 * `discardHooks(session)` after your ROLLBACK.
 *
 * A hook that throws or rejects does not undo anything: the error goes to the handler set with
 * `setHookErrorHandler` (default `console.error`). The decorated call resolves after its hooks ran.
 *
 * ```ts
 * async save(order: Order, client: PoolClient) {
 *   await client.query('INSERT …');
 *   afterCommit(() => mailer.send(order.customer, 'Thank you'));
 * }
 * ```
 */
export function afterCommit(fn: () => unknown): void {
  if (typeof fn !== 'function') throw new TypeError('afterCommit needs a function to run after the commit.');
  const frame = ambient()?.tx;
  if (frame === undefined || frame.closed) {
    throw new TransactionStateError(
      'none',
      'TRANSACTION_CLOSED',
      frame === undefined
        ? 'afterCommit() was called outside a transaction the library runs: there is no commit to wait for. ' +
            'Call it inside a decorated method that runs in a transaction (give it a session).'
        : 'afterCommit() was called after its unit of work ended (from a timer or callback the method left behind). ' +
            'Register hooks while the decorated method runs.',
    );
  }
  queue(frame, [fn]);
}

/**
 * Calls `listener` with each history entry once its transaction has committed (for joined calls:
 * when you call `runCommittedHooks`). Returns a function that removes the listener.
 *
 * ```ts
 * const stop = onEntryCommitted((entry) => bus.emit('history', entry));
 * ```
 */
export function onEntryCommitted(listener: EntryCommittedListener): () => void {
  if (typeof listener !== 'function') throw new TypeError('onEntryCommitted needs a listener function.');
  state.listeners.push(listener);
  return () => {
    const index = state.listeners.indexOf(listener);
    if (index >= 0) state.listeners.splice(index, 1);
  };
}

/**
 * Where failures of after-commit hooks and committed-entry listeners are reported; `undefined`
 * restores the default (`console.error`). Returns the handler it replaced.
 *
 * ```ts
 * setHookErrorHandler((error, { kind }) => logger.error({ error, kind }, 'after-commit hook failed'));
 * ```
 */
export function setHookErrorHandler(handler: HookErrorHandler | undefined): HookErrorHandler {
  const previous = state.handler;
  state.handler = handler ?? defaultHandler;
  return previous;
}

/**
 * Runs the hooks that decorated calls joined to `session`'s transaction registered, in order;
 * call it after YOUR commit of a transaction you began yourself. Resolves when they have run.
 *
 * ```ts
 * await client.query('BEGIN'); await orders.save(order, client); await client.query('COMMIT');
 * await runCommittedHooks(client);
 * ```
 */
export async function runCommittedHooks(session: object): Promise<void> {
  const queued = state.bySession.get(session);
  if (queued === undefined) return;
  state.bySession.delete(session);
  await runHooks(queued.hooks);
}

/**
 * Drops the hooks that decorated calls joined to `session`'s transaction registered; call it
 * after YOUR rollback of a transaction you began yourself.
 *
 * ```ts
 * await client.query('ROLLBACK'); discardHooks(client);
 * ```
 */
export function discardHooks(session: object): void {
  state.bySession.delete(session);
}

/** @internal How many hooks wait on `session` for the caller's COMMIT. */
export function pendingHooks(session: object): number {
  return state.bySession.get(session)?.hooks.length ?? 0;
}

/** @internal Queues the committed-entry notification of `entry` on `frame`, or runs it now without a transaction. */
export function entryWritten(frame: TransactionFrame | undefined, entry: HistoryEntry): Promise<void> | undefined {
  if (state.listeners.length === 0) return undefined;
  const notify = (): Promise<void> => notifyEntry(entry);
  if (frame === undefined) return notify();
  queue(frame, [notify]);
  return undefined;
}

/** @internal A nested call succeeded: its hooks wait for the parent unit's commit. */
export function mergeHooks(parent: TransactionFrame, child: TransactionFrame): void {
  if (child.afterCommit !== undefined && child.afterCommit.length > 0) {
    queue(parent, child.afterCommit.splice(0));
  }
}

/** @internal A joined call succeeded: its hooks wait on the session for the caller's COMMIT. */
export function parkHooks(frame: TransactionFrame): void {
  const hooks = frame.afterCommit?.splice(0);
  const session = frame.session;
  if (hooks === undefined || hooks.length === 0 || session === null || typeof session !== 'object') return;
  // The adapter's id of the caller's transaction, when it has one: hooks still queued from an
  // earlier transaction on this session (neither run nor discarded by the caller) are dropped
  // rather than run with this one's.
  const txId = frame.adapter.transactionId?.call(frame.adapter, session);
  const queued = state.bySession.get(session);
  if (queued === undefined || (txId !== undefined && queued.txId !== txId))
    state.bySession.set(session, { txId, hooks });
  else queued.hooks.push(...hooks);
}

/** @internal The unit rolled back (or an attempt failed): its hooks never run. */
export function dropHooks(frame: TransactionFrame): void {
  if (frame.afterCommit !== undefined) frame.afterCommit.length = 0;
}

/** @internal The owned transaction committed: runs the frame's hooks, then resolves with `result`. */
export function committed<T>(frame: TransactionFrame | undefined, result: T): T | Promise<T> {
  const hooks = frame?.afterCommit;
  if (hooks === undefined || hooks.length === 0) return result;
  return runHooks(hooks.splice(0)).then(() => result);
}

function queue(frame: TransactionFrame, hooks: Hook[]): void {
  if (frame.afterCommit === undefined) frame.afterCommit = hooks;
  else frame.afterCommit.push(...hooks);
}

async function runHooks(hooks: readonly Hook[]): Promise<void> {
  for (const hook of hooks) {
    try {
      await hook();
    } catch (error) {
      report(error, { kind: 'afterCommit' });
    }
  }
}

async function notifyEntry(entry: HistoryEntry): Promise<void> {
  for (const listener of [...state.listeners]) {
    try {
      await listener(entry);
    } catch (error) {
      report(error, { kind: 'entryCommitted', entry });
    }
  }
}

function report(error: unknown, failure: HookFailure): void {
  try {
    state.handler(error, failure);
  } catch {
    // A failing error handler must not turn a committed call into a rejected one.
  }
}
