import { randomUUID } from 'node:crypto';
import { TransactionStateError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import { isSqlConflict, isSqlTransient } from './orm-errors.js';
import { transactionObjectId } from './orm-ids.js';
import { joinWithSavepoint } from './savepoint.js';

/**
 * A compiled query as Kysely executes it (`CompiledQuery.raw(sql, parameters)`).
 *
 * ```ts
 * const query: KyselyCompiledQuery = CompiledQuery.raw('SELECT 1', []);
 * ```
 */
export interface KyselyCompiledQuery {
  readonly sql: string;
  readonly parameters: readonly unknown[];
  readonly query: {
    readonly kind: 'RawNode';
    readonly sqlFragments: readonly string[];
    readonly parameters: readonly unknown[];
  };
  readonly queryId: { readonly queryId: string };
}

/**
 * The part of a `Kysely` instance or `Transaction` the adapter uses.
 *
 * ```ts
 * const session: KyselyLike = new Kysely<DB>({ dialect });
 * ```
 */
export interface KyselyLike {
  readonly isTransaction: boolean;
  readonly isCommitted?: boolean;
  readonly isRolledBack?: boolean;
  transaction(): { execute<R>(work: (trx: KyselyLike) => Promise<R>): Promise<R> };
  executeQuery(query: KyselyCompiledQuery): Promise<{ rows: unknown[]; numAffectedRows?: bigint }>;
}

function isKysely(session: unknown): session is KyselyLike {
  if (session === null || typeof session !== 'object') return false;
  const candidate = session as Partial<KyselyLike> & { selectFrom?: unknown; getExecutor?: unknown };
  return (
    typeof candidate.isTransaction === 'boolean' &&
    typeof candidate.transaction === 'function' &&
    typeof candidate.executeQuery === 'function' &&
    typeof candidate.selectFrom === 'function' &&
    typeof candidate.getExecutor === 'function'
  );
}

const ended = (session: KyselyLike): boolean => session.isCommitted === true || session.isRolledBack === true;

/**
 * Kysely keeps its driver connection private, so the history stores write through the
 * transaction itself. `query(sql, params)` runs a raw compiled query on it and resolves
 * `{ rows }`, as a pg client does (PostgreSQL store, `$1` placeholders); `query({ sql }, values)`
 * resolves `[rows, fields]`, as a mysql2 connection does (MySQL store, `?` placeholders).
 */
function runRaw(session: KyselyLike, sql: string, params: unknown[]) {
  return session.executeQuery({
    sql,
    parameters: params,
    query: { kind: 'RawNode', sqlFragments: [sql], parameters: [] },
    queryId: { queryId: randomUUID() },
  });
}

function queryableOf(session: KyselyLike): {
  query(text: string | { sql: string }, params?: unknown[]): Promise<unknown>;
} {
  const run = (sql: string, params: unknown[]) => runRaw(session, sql, params);
  return {
    query: async (text, params = []) => {
      if (typeof text === 'string') return run(text, params);
      const { rows } = await run(text.sql, params);
      return [rows, undefined];
    },
  };
}

/**
 * The built-in adapter for Kysely: a `Transaction` (inside `db.transaction().execute(…)`, or a
 * `ControlledTransaction` from `db.startTransaction().execute()`) is joined; given the `Kysely`
 * instance, the library opens `db.transaction().execute()` and runs the call with the
 * transaction in place of the instance. History goes through the transaction (see the built-in
 * PostgreSQL and MySQL stores; Kysely's SQLite dialect is asynchronous over better-sqlite3 and is
 * not supported by the SQLite store, which writes synchronously).
 *
 * ```ts
 * await db.transaction().execute((trx) => orders.update(order, trx)); // joins
 * await orders.update(order, db);                                     // the library's transaction
 * ```
 */
export const kyselyAdapter: TransactionAdapter<KyselyLike> = Object.freeze({
  name: 'kysely',
  matches: isKysely,
  isActive: (session: KyselyLike) => session.isTransaction && !ended(session),
  run: <R>(session: KyselyLike, work: (transaction?: unknown) => Promise<R>): Promise<R> => {
    if (session.isTransaction) {
      return Promise.reject(
        new TransactionStateError(
          'kysely',
          'TRANSACTION_CLOSED',
          'The Kysely transaction passed as the session has already been committed or rolled back. Call the ' +
            'decorated method inside the transaction, or pass the Kysely instance so that the library opens one.',
        ),
      );
    }
    return session.transaction().execute((trx) => work(trx));
  },
  isConflict: isSqlConflict,
  isTransient: isSqlTransient,
  transactionId: (session: KyselyLike) => (session.isTransaction ? transactionObjectId(session) : undefined),
  connection: (session: KyselyLike) => (session.isTransaction ? queryableOf(session) : undefined),
  join: <R>(session: KyselyLike, work: () => Promise<R>): Promise<R> =>
    joinWithSavepoint('kysely', session, (sql) => runRaw(session, sql, []), work),
});
