import { ambient, runWithAmbient } from '../context.js';
import { shared } from '../shared-state.js';

/**
 * One call's hold on a session's library-owned transaction. It travels in the async context of
 * the call that took it (and of everything that call starts); once the call ends it is
 * `released`, so code it started that runs later (a timer, an event handler, an un-awaited
 * promise) no longer counts as holding the session, even though it still carries the token.
 */
export interface SessionHold {
  readonly session: object;
  released: boolean;
}

interface Locks {
  /** The hold of the call whose transaction runs on each session now. */
  readonly holder: WeakMap<object, SessionHold>;
  /** The calls waiting for each session, in arrival order; each is handed the session by the one before it. */
  readonly waiting: WeakMap<object, (() => void)[]>;
}

// One set of locks per process: a call from another copy of the library (ESM next to CJS) must wait too.
const locks = shared<Locks>('session-locks', () => ({ holder: new WeakMap(), waiting: new WeakMap() }));

/**
 * Runs `fn` once no other library-owned transaction runs on `session`: one call after the other,
 * in arrival order. A pg client, a PGlite instance and a better-sqlite3 Database are each one
 * connection, so a concurrent call would otherwise see the other's open transaction, join it and
 * interleave its statements with it. Which sessions a call holds travels in the library's one
 * AsyncLocalStorage (a second one would make every promise in the process pay a second hook).
 */
export async function exclusively<R>(session: object, fn: () => Promise<R>): Promise<R> {
  const { holder, waiting } = locks;
  if (holder.has(session)) {
    // Woken by the call before, which leaves the session held while it hands it over.
    await new Promise<void>((resolve) => {
      const queue = waiting.get(session);
      if (queue === undefined) waiting.set(session, [resolve]);
      else queue.push(resolve);
    });
  }
  const hold: SessionHold = { session, released: false };
  holder.set(session, hold);
  try {
    const outer = ambient()?.held;
    return await runWithAmbient({ held: outer === undefined ? [hold] : [...outer, hold] }, fn);
  } finally {
    hold.released = true;
    const queue = waiting.get(session);
    const next = queue?.shift();
    if (queue !== undefined && queue.length === 0) waiting.delete(session);
    if (next === undefined) holder.delete(session);
    else next();
  }
}

/**
 * Whether the transaction open on `session` is one this library runs for a call outside the
 * current async context. Such a transaction must be waited for, not joined; one the caller began
 * (or that an enclosing call of this context still holds) is joined. Code that outlived the call
 * that held the session carries a released hold, which does not count.
 */
export function heldByAnotherCall(session: object): boolean {
  const current = locks.holder.get(session);
  if (current === undefined) return false;
  // A released hold still registered is being handed to the next waiter: that one holds it.
  return current.released || ambient()?.held?.includes(current) !== true;
}
