import { ambient, runWithAmbient } from '../context.js';
import { TransactionStateError } from '../errors.js';
import { shared } from '../shared-state.js';
import type { SessionHold } from './session-lock.js';

/** The tail of the joined calls queued on each connection (or transaction object), in arrival order. */
const queues = shared('join-queues', () => new WeakMap<object, Promise<void>>());
/** Savepoint names are unique in the process, so nested and sibling joins never reuse one. */
const counter = shared('savepoint-counter', () => ({ next: 0 }));

/**
 * @internal Runs `fn` once no other joined call runs on `key` (one connection, or the transaction
 * object standing for it), in arrival order. Two joined calls interleaving their savepoints on one
 * connection would undo each other: `ROLLBACK TO` the first call's savepoint also discards the
 * writes of the second, made after it. A call nested in one that holds `key` (or in the call that
 * owns the transaction, through `exclusively`) runs at once: it is that call's turn.
 */
export async function joinSerially<R>(key: object, fn: () => Promise<R>): Promise<R> {
  const outer = ambient()?.held;
  if (outer?.some((hold) => hold.session === key && !hold.released) === true) return fn();
  const previous = queues.get(key);
  let release = (): void => {};
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = previous === undefined ? mine : previous.then(() => mine);
  queues.set(key, tail);
  const hold: SessionHold = { session: key, released: false };
  try {
    if (previous !== undefined) await previous;
    return await runWithAmbient({ held: outer === undefined ? [hold] : [...outer, hold] }, fn);
  } finally {
    hold.released = true;
    release();
    if (queues.get(key) === tail) queues.delete(key);
  }
}

/**
 * @internal The savepoint protocol of `TransactionAdapter.join` for SQL sessions (PostgreSQL,
 * MySQL/MariaDB, SQLite all speak it): `SAVEPOINT`, then `RELEASE SAVEPOINT` when `work`
 * resolves, or `ROLLBACK TO SAVEPOINT` and `RELEASE SAVEPOINT` when it rejects, so the caller's
 * transaction keeps nothing of the call and stays usable (PostgreSQL leaves its failed state).
 * `execute` sends one statement on the session's connection; concurrent joins on `key` run one
 * after the other.
 */
export function joinWithSavepoint<R>(
  adapter: string,
  key: object,
  execute: (sql: string) => Promise<unknown>,
  work: () => Promise<R>,
): Promise<R> {
  return joinSerially(key, async () => {
    const name = `event_history_${++counter.next}`;
    await execute(`SAVEPOINT ${name}`);
    let result: R;
    try {
      result = await work();
    } catch (error) {
      try {
        await execute(`ROLLBACK TO SAVEPOINT ${name}`);
      } catch (rollbackError) {
        throw notRolledBack(adapter, error, rollbackError);
      }
      try {
        await execute(`RELEASE SAVEPOINT ${name}`);
      } catch {
        // Rolled back to the savepoint already: the call's writes are gone, which is what matters.
      }
      throw error;
    }
    await execute(`RELEASE SAVEPOINT ${name}`);
    return result;
  });
}

function notRolledBack(adapter: string, error: unknown, rollbackError: unknown): TransactionStateError {
  const reason = error instanceof Error ? error.message : String(error);
  const rollback = rollbackError instanceof Error ? rollbackError.message : String(rollbackError);
  return new TransactionStateError(
    adapter,
    'TRANSACTION_ABORTED',
    `A call joined to your transaction failed (${reason}), and its writes could not be rolled back to the savepoint ` +
      `taken before it (${rollback}): the transaction may hold part of the call. Roll your transaction back; do not ` +
      "commit it. The call's own error is the cause.",
    { cause: error },
  );
}
