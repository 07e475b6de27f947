import { TransactionStateError } from '../errors.js';
import { shared } from '../shared-state.js';
import type { TransactionAdapter } from './adapter.js';
import { isSqlConflict, isSqlTransient } from './orm-errors.js';
import { transactionObjectId } from './orm-ids.js';
import { joinWithSavepoint } from './savepoint.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';
import { type SqliteDatabaseLike, sqliteAdapter } from './sqlite.js';

/**
 * The part of a Drizzle database or transaction the adapter uses: `transaction()` and the
 * session's driver `client` (a pg `Pool` or, inside a transaction, its `PoolClient`; a
 * better-sqlite3 `Database`). A transaction has `nestedIndex`.
 *
 * ```ts
 * const session: DrizzleLike = drizzle(pool);
 * ```
 */
export interface DrizzleLike {
  readonly session: { readonly client: unknown };
  readonly nestedIndex?: number;
  transaction<R>(work: (tx: DrizzleLike) => Promise<R>): Promise<R>;
}

function isDrizzle(session: unknown): session is DrizzleLike {
  if (session === null || typeof session !== 'object') return false;
  const candidate = session as Partial<DrizzleLike> & { select?: unknown; dialect?: unknown };
  return (
    typeof candidate.transaction === 'function' &&
    typeof candidate.select === 'function' &&
    typeof candidate.dialect === 'object' &&
    typeof candidate.session === 'object' &&
    candidate.session !== null &&
    'client' in candidate.session
  );
}

/** Drizzle over better-sqlite3 runs transactions synchronously: the library drives the Database itself. */
function sqliteClientOf(session: DrizzleLike): SqliteDatabaseLike | undefined {
  const client = session.session.client;
  return sqliteAdapter.matches(client) ? client : undefined;
}

const isTransaction = (session: DrizzleLike): boolean => typeof session.nestedIndex === 'number';

/**
 * The node-postgres connection under a Drizzle session, when it is one (a `Client`, or the
 * `PoolClient` of a transaction), whose transaction status pg reports; `undefined` for a `Pool`.
 */
interface PgConnection {
  query(sql: string): Promise<unknown>;
  getTransactionStatus(): string | null;
  readonly release?: unknown;
}

function pgConnectionOf(session: DrizzleLike): PgConnection | undefined {
  const client = session.session.client as Partial<PgConnection> | null;
  return client !== null &&
    typeof client === 'object' &&
    typeof client.query === 'function' &&
    typeof client.getTransactionStatus === 'function'
    ? (client as PgConnection)
    : undefined;
}

/**
 * Which checkout of its pool client each Drizzle `tx` was first seen on (pg-pool gives the client
 * a new `release` function at each checkout). A `tx` whose client went back to the pool and out
 * again belongs to a transaction that has ended, even if the client's new holder is in one.
 */
const checkouts = shared('drizzle-checkouts', () => new WeakMap<object, unknown>());

/** Whether a Drizzle `tx` still stands for an open transaction; always true where the driver cannot say. */
function transactionOpen(tx: DrizzleLike): boolean {
  const pg = pgConnectionOf(tx);
  if (pg === undefined) return true;
  if (pg.getTransactionStatus() === 'I') return false;
  if (!checkouts.has(tx)) checkouts.set(tx, pg.release);
  return checkouts.get(tx) === pg.release;
}

function endedError(): TransactionStateError {
  return new TransactionStateError(
    'drizzle',
    'TRANSACTION_CLOSED',
    'The Drizzle transaction (tx) passed as the session has already been committed or rolled back: writing through ' +
      "it now would run outside any transaction (or inside another caller's). Call the decorated method inside " +
      'db.transaction(async (tx) => …), or pass the database so that the library opens a transaction.',
  );
}

/**
 * The built-in adapter for Drizzle, PostgreSQL (node-postgres) and SQLite (better-sqlite3):
 * - PostgreSQL: a transaction (`db.transaction(async (tx) => …)`) is joined; given the database,
 *   the library opens `db.transaction()` and runs the call with its `tx` in place of the database
 *   (argument and `currentSession()`);
 * - SQLite: better-sqlite3 transactions cannot hold async work, so pass the database itself: the
 *   library runs `BEGIN IMMEDIATE` / `COMMIT` on its connection as for a better-sqlite3 session,
 *   and the method writes through the database (one connection, inside the transaction).
 *
 * - over one pg `Client` (`drizzle(client)`), a transaction the caller began with `BEGIN` on the
 *   client is joined, never committed, and calls on the client run one after the other;
 * - a `tx` used after its transaction ended is a `TransactionStateError` (`TRANSACTION_CLOSED`).
 *
 * A joined call runs inside a SAVEPOINT. History goes through the same connection; errors are
 * classified as for the database underneath.
 *
 * ```ts
 * await db.transaction((tx) => orders.update(order, tx)); // PostgreSQL: joins
 * await orders.update(order, db);                          // the library's transaction
 * ```
 */
export const drizzleAdapter: TransactionAdapter<DrizzleLike> = Object.freeze({
  name: 'drizzle',
  matches: isDrizzle,
  isActive: (session: DrizzleLike) => {
    const sqlite = sqliteClientOf(session);
    if (sqlite !== undefined) return sqliteAdapter.isActive(sqlite);
    if (isTransaction(session)) return transactionOpen(session);
    // drizzle(client) over one pg Client on which the caller ran BEGIN: join it, never commit it.
    const pg = pgConnectionOf(session);
    return pg !== undefined && pg.getTransactionStatus() !== 'I' && !heldByAnotherCall(pg);
  },
  run: <R>(session: DrizzleLike, work: (transaction?: unknown) => Promise<R>): Promise<R> => {
    const sqlite = sqliteClientOf(session);
    if (sqlite !== undefined) return sqliteAdapter.run(sqlite, () => work());
    if (isTransaction(session)) return Promise.reject(endedError());
    const pg = pgConnectionOf(session);
    // One pg Client is one connection: calls on it run one after the other, as on the pg adapter.
    if (pg !== undefined) return exclusively(pg, () => session.transaction((tx) => work(tx)));
    return session.transaction((tx) => work(tx));
  },
  isConflict: isSqlConflict,
  isTransient: isSqlTransient,
  transactionId: (session: DrizzleLike) => {
    const sqlite = sqliteClientOf(session);
    if (sqlite !== undefined) return sqliteAdapter.transactionId?.(sqlite);
    // Drizzle makes one tx per transaction; a database over a Client the caller began a
    // transaction on is reused across transactions, so its calls each get their own UUID.
    return isTransaction(session) ? transactionObjectId(session) : undefined;
  },
  connection: (session: DrizzleLike) =>
    sqliteClientOf(session) ?? (isTransaction(session) || pgConnectionOf(session) ? session.session.client : undefined),
  join: <R>(session: DrizzleLike, work: () => Promise<R>): Promise<R> => {
    const sqlite = sqliteClientOf(session);
    if (sqlite !== undefined) return sqliteAdapter.join?.(sqlite, work) ?? work();
    const pg = pgConnectionOf(session);
    if (pg !== undefined) {
      if (isTransaction(session) && !transactionOpen(session)) return Promise.reject(endedError());
      return joinWithSavepoint('drizzle', pg, (sql) => pg.query(sql), work);
    }
    // Another driver: Drizzle's own nested transaction, a savepoint on the tx's connection.
    return session.transaction(() => work());
  },
});
