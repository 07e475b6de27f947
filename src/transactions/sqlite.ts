import { randomUUID } from 'node:crypto';
import { TransactionStateError } from '../errors.js';
import { shared } from '../shared-state.js';
import type { TransactionAdapter } from './adapter.js';
import { joinWithSavepoint } from './savepoint.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';

/**
 * The part of a better-sqlite3 `Database` the adapter uses.
 *
 * ```ts
 * const db: SqliteDatabaseLike = new Database('app.db', { timeout: 5000 });
 * ```
 */
export interface SqliteDatabaseLike {
  exec(sql: string): unknown;
  prepare(sql: string): unknown;
  transaction(fn: (...args: never[]) => unknown): unknown;
  readonly inTransaction: boolean;
}

function sqliteCode(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** @internal A unique or primary-key violation: another writer holds this key. */
export function isSqliteConflict(error: unknown): boolean {
  const code = sqliteCode(error);
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** @internal The database was busy or locked: retrying the transaction can succeed. */
export function isSqliteTransient(error: unknown): boolean {
  const code = sqliteCode(error);
  return code !== undefined && /^SQLITE_(BUSY|LOCKED)(_|$)/.test(code);
}

function rollbackQuietly(db: SqliteDatabaseLike): void {
  try {
    if (db.inTransaction) db.exec('ROLLBACK');
  } catch {
    // The error that made us roll back is the one to report.
  }
}

interface Runnable {
  run(): unknown;
}

/** BEGIN IMMEDIATE and COMMIT prepared once per database: `exec` would compile them on every call. */
const control = shared('sqlite-control-statements', () => new WeakMap<SqliteDatabaseLike, Record<string, Runnable>>());

function runControl(db: SqliteDatabaseLike, sql: 'BEGIN IMMEDIATE' | 'COMMIT'): void {
  let statements = control.get(db);
  if (statements === undefined) {
    statements = {};
    control.set(db, statements);
  }
  let statement = statements[sql];
  if (statement === undefined) {
    const prepared = db.prepare(sql) as Partial<Runnable> | undefined;
    if (typeof prepared?.run !== 'function') {
      db.exec(sql);
      return;
    }
    statement = prepared as Runnable;
    statements[sql] = statement;
  }
  statement.run();
}

// SQLite has no transaction id of its own: each transaction the library begins gets a UUID.
const transactionIds = shared('sqlite-transaction-ids', () => new WeakMap<SqliteDatabaseLike, string>());

/**
 * The built-in adapter for better-sqlite3 `Database` sessions. Its `db.transaction()` cannot
 * hold async work, so the library runs `BEGIN IMMEDIATE` (taking the write lock up front, so a
 * busy database fails at the start, where the busy timeout applies and a retry is safe) /
 * `COMMIT`, and `ROLLBACK` on error. A Database is one connection, i.e. one session: concurrent
 * decorated calls on it run one after the other; for concurrent writers open one Database per
 * writer on the same file, in WAL mode, with a busy timeout (better-sqlite3's `timeout` option,
 * 5 s by default; it blocks the event loop while it waits, so keep it short where other
 * connections of the same process write). Unique and primary-key violations are conflicts;
 * SQLITE_BUSY and SQLITE_LOCKED are retried. SQLite has no transaction id: each transaction the
 * library begins gets a UUID as txId.
 *
 * ```ts
 * const db = new Database('app.db', { timeout: 5000 });
 * db.pragma('journal_mode = WAL');
 * await orders.save(order, db);
 * ```
 */
export const sqliteAdapter: TransactionAdapter<SqliteDatabaseLike> = Object.freeze({
  name: 'better-sqlite3',
  matches: (session: unknown): session is SqliteDatabaseLike =>
    session !== null &&
    typeof session === 'object' &&
    typeof (session as Partial<SqliteDatabaseLike>).exec === 'function' &&
    typeof (session as Partial<SqliteDatabaseLike>).prepare === 'function' &&
    typeof (session as Partial<SqliteDatabaseLike>).transaction === 'function' &&
    typeof (session as Partial<SqliteDatabaseLike>).inTransaction === 'boolean',
  isActive: (db: SqliteDatabaseLike) => db.inTransaction && !heldByAnotherCall(db),
  run: <R>(db: SqliteDatabaseLike, work: () => Promise<R>): Promise<R> =>
    exclusively(db, async () => {
      runControl(db, 'BEGIN IMMEDIATE');
      transactionIds.set(db, randomUUID());
      try {
        return await commitAfter(db, work);
      } finally {
        transactionIds.delete(db);
      }
    }),
  isConflict: isSqliteConflict,
  isTransient: isSqliteTransient,
  transactionId: (db: SqliteDatabaseLike) => transactionIds.get(db),
  join: <R>(db: SqliteDatabaseLike, work: () => Promise<R>): Promise<R> =>
    joinWithSavepoint(
      'better-sqlite3',
      db,
      async (sql) => {
        db.exec(sql);
      },
      work,
    ),
});

async function commitAfter<R>(db: SqliteDatabaseLike, work: () => Promise<R>): Promise<R> {
  let result: R;
  try {
    result = await work();
  } catch (error) {
    rollbackQuietly(db);
    throw error;
  }
  if (!db.inTransaction) {
    throw new TransactionStateError(
      'better-sqlite3',
      'TRANSACTION_ABORTED',
      'The transaction ended before the library could commit it: SQLite rolls back by itself after some errors ' +
        '(SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY, SQLITE_NOMEM), or the decorated method ran COMMIT or ROLLBACK. ' +
        'The entity write and the history write did not commit together; let such errors propagate, and do not ' +
        'end the transaction inside a decorated method.',
    );
  }
  try {
    runControl(db, 'COMMIT');
  } catch (error) {
    rollbackQuietly(db);
    throw error;
  }
  return result;
}
