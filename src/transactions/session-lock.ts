import { AsyncLocalStorage } from 'node:async_hooks';

/** Sessions whose transaction this library began and has not yet ended. */
const running = new WeakSet<object>();
/** The tail of each session's queue of calls waiting to run a transaction on it. */
const queues = new WeakMap<object, Promise<void>>();
/** The sessions whose transaction the running async context (or one it descends from) holds. */
const held = new AsyncLocalStorage<ReadonlySet<object>>();

/**
 * Runs `fn` once no other library-owned transaction runs on `session`: one call after the other.
 * A pg client, a PGlite instance and a better-sqlite3 Database are each one connection, so a
 * concurrent call would otherwise see the other's open transaction, join it and interleave its
 * statements with it.
 */
export async function exclusively<R>(session: object, fn: () => Promise<R>): Promise<R> {
  const previous = queues.get(session);
  let release = (): void => {};
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = previous === undefined ? mine : previous.then(() => mine);
  queues.set(session, tail);
  try {
    if (previous !== undefined) await previous;
    running.add(session);
    return await held.run(new Set([...(held.getStore() ?? []), session]), fn);
  } finally {
    running.delete(session);
    release();
    if (queues.get(session) === tail) queues.delete(session);
  }
}

/**
 * Whether the transaction open on `session` is one this library runs for a call outside the
 * current async context. Such a transaction must be waited for, not joined; one the caller began
 * (or that an enclosing call of this context holds) is joined.
 */
export function heldByAnotherCall(session: object): boolean {
  return running.has(session) && held.getStore()?.has(session) !== true;
}
