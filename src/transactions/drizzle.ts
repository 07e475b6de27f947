import type { TransactionAdapter } from './adapter.js';
import { isSqlConflict, isSqlTransient } from './orm-errors.js';
import { transactionObjectId } from './orm-ids.js';
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
 * The built-in adapter for Drizzle, PostgreSQL (node-postgres) and SQLite (better-sqlite3):
 * - PostgreSQL: a transaction (`db.transaction(async (tx) => …)`) is joined; given the database,
 *   the library opens `db.transaction()` and runs the call with its `tx` in place of the database
 *   (argument and `currentSession()`);
 * - SQLite: better-sqlite3 transactions cannot hold async work, so pass the database itself: the
 *   library runs `BEGIN IMMEDIATE` / `COMMIT` on its connection as for a better-sqlite3 session,
 *   and the method writes through the database (one connection, inside the transaction).
 *
 * History goes through the same connection; errors are classified as for the database underneath.
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
    return sqlite !== undefined ? sqliteAdapter.isActive(sqlite) : isTransaction(session);
  },
  run: <R>(session: DrizzleLike, work: (transaction?: unknown) => Promise<R>): Promise<R> => {
    const sqlite = sqliteClientOf(session);
    if (sqlite !== undefined) return sqliteAdapter.run(sqlite, () => work());
    return session.transaction((tx) => work(tx));
  },
  isConflict: isSqlConflict,
  isTransient: isSqlTransient,
  transactionId: (session: DrizzleLike) => {
    const sqlite = sqliteClientOf(session);
    if (sqlite !== undefined) return sqliteAdapter.transactionId?.(sqlite);
    return isTransaction(session) ? transactionObjectId(session) : undefined;
  },
  connection: (session: DrizzleLike) =>
    sqliteClientOf(session) ?? (isTransaction(session) ? session.session.client : undefined),
});
