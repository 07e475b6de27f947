import { TransactionStateError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import { isSqlConflict, isSqlTransient } from './orm-errors.js';
import { transactionObjectId } from './orm-ids.js';
import { joinWithSavepoint } from './savepoint.js';

/**
 * The part of a Knex instance or transaction the adapter uses. Both are functions (query
 * builders) with `client` and `transaction()`; a transaction has `isTransaction` and
 * `isCompleted()`, and its client hands out the transaction's connection.
 *
 * ```ts
 * const session: KnexLike = knex({ client: 'pg', connection: process.env.DATABASE_URL });
 * ```
 */
export interface KnexLike {
  readonly isTransaction?: boolean;
  isCompleted?(): boolean;
  readonly client: { acquireConnection(): Promise<unknown> };
  /** Raw SQL on the instance or transaction: the savepoints of joined calls. */
  raw(sql: string): PromiseLike<unknown>;
  transaction<R>(work: (trx: KnexLike) => Promise<R>): Promise<R>;
}

function isKnex(session: unknown): session is KnexLike {
  if (typeof session !== 'function') return false;
  const candidate = session as unknown as Partial<KnexLike> & { schema?: unknown };
  return (
    typeof candidate.transaction === 'function' &&
    typeof candidate.raw === 'function' &&
    typeof candidate.client === 'object' &&
    candidate.client !== null &&
    typeof candidate.client.acquireConnection === 'function'
  );
}

const isTransaction = (session: KnexLike): boolean => session.isTransaction === true;

/**
 * The built-in adapter for Knex: a transaction (`knex.transaction(async (trx) => …)` or
 * `await knex.transaction()`) is joined; given the root instance, the library opens
 * `knex.transaction()` and runs the call with the transaction in place of the instance (argument
 * and `currentSession()`). History goes through the transaction's own connection, so the
 * built-in SQL stores write into the same transaction; errors are classified as for the database
 * underneath (PostgreSQL, MySQL/MariaDB, SQLite).
 *
 * ```ts
 * await knex.transaction((trx) => orders.update(order, trx)); // joins
 * await orders.update(order, knex);                           // the library's transaction
 * ```
 */
export const knexAdapter: TransactionAdapter<KnexLike> = Object.freeze({
  name: 'knex',
  matches: isKnex,
  isActive: (session: KnexLike) => isTransaction(session) && session.isCompleted?.() !== true,
  run: <R>(session: KnexLike, work: (transaction?: unknown) => Promise<R>): Promise<R> => {
    if (isTransaction(session)) {
      return Promise.reject(
        new TransactionStateError(
          'knex',
          'TRANSACTION_CLOSED',
          'The Knex transaction passed as the session has already been committed or rolled back. Call the decorated ' +
            'method inside the transaction, or pass the knex instance so that the library opens one.',
        ),
      );
    }
    return session.transaction((trx) => work(trx));
  },
  isConflict: isSqlConflict,
  isTransient: isSqlTransient,
  transactionId: (session: KnexLike) => (isTransaction(session) ? transactionObjectId(session) : undefined),
  connection: (session: KnexLike) => (isTransaction(session) ? session.client.acquireConnection() : undefined),
  join: <R>(session: KnexLike, work: () => Promise<R>): Promise<R> =>
    joinWithSavepoint('knex', session, async (sql) => session.raw(sql), work),
});
