import { ambient, runWithAmbient } from '../context.js';

/** Sessions whose transaction this library began and has not yet ended. */
const running = new WeakSet<object>();
/** The calls waiting for each session, in arrival order; each is handed the session by the one before it. */
const waiting = new WeakMap<object, (() => void)[]>();

/**
 * Runs `fn` once no other library-owned transaction runs on `session`: one call after the other,
 * in arrival order. A pg client, a PGlite instance and a better-sqlite3 Database are each one
 * connection, so a concurrent call would otherwise see the other's open transaction, join it and
 * interleave its statements with it. Which sessions a call holds travels in the library's one
 * AsyncLocalStorage (a second one would make every promise in the process pay a second hook).
 */
export async function exclusively<R>(session: object, fn: () => Promise<R>): Promise<R> {
  if (running.has(session)) {
    // Woken by the call before, which leaves the session marked running while it hands it over.
    await new Promise<void>((resolve) => {
      const queue = waiting.get(session);
      if (queue === undefined) waiting.set(session, [resolve]);
      else queue.push(resolve);
    });
  }
  running.add(session);
  try {
    const outer = ambient()?.held;
    return await runWithAmbient({ held: outer === undefined ? new Set([session]) : new Set([...outer, session]) }, fn);
  } finally {
    const queue = waiting.get(session);
    const next = queue?.shift();
    if (queue !== undefined && queue.length === 0) waiting.delete(session);
    if (next === undefined) running.delete(session);
    else next();
  }
}

/**
 * Whether the transaction open on `session` is one this library runs for a call outside the
 * current async context. Such a transaction must be waited for, not joined; one the caller began
 * (or that an enclosing call of this context holds) is joined.
 */
export function heldByAnotherCall(session: object): boolean {
  return running.has(session) && ambient()?.held?.has(session) !== true;
}
