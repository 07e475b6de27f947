import { TransactionStateError } from '../errors.js';
import type { DeferredStatement, TransactionAdapter } from './adapter.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';
import {
  beginSql,
  commitRolledBack,
  isRetryableSqlState,
  isUniqueViolation,
  type PostgresIsolationLevel,
  type PostgresTransactionIdSource,
  transactionIdOf,
} from './sql-state.js';

/**
 * The part of a node-postgres `Client` or `PoolClient` the adapter uses. `getTransactionStatus()`
 * (pg 8.21 and later) tells whether the caller already began a transaction, which the call then
 * joins; a pg client without it is recognised but rejected with a `TransactionStateError`.
 *
 * ```ts
 * const client: PgClientLike = await pool.connect();
 * ```
 */
export interface PgClientLike {
  query(text: string): Promise<unknown>;
  /** `'I'` idle, `'T'` in a transaction, `'E'` in a failed transaction, `null` before connecting. */
  getTransactionStatus?(): string | null;
}

/**
 * Options of {@link createPgAdapter} and {@link createPgliteAdapter}.
 *
 * ```ts
 * registerTransactionAdapter(createPgAdapter({ isolation: 'serializable' }));
 * registerTransactionAdapter(createPgAdapter({ transactionId: 'random' })); // plain BEGIN
 * ```
 */
export interface PgAdapterOptions {
  /**
   * The isolation level of the transactions the library begins (`BEGIN ISOLATION LEVEL …`).
   * Default: the session's own default (`default_transaction_isolation`, normally read committed,
   * or what `SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL …` chose for the
   * connection). Serialization failures (40001) and deadlocks (40P01) are retried by the call
   * that owns the transaction.
   */
  readonly isolation?: PostgresIsolationLevel;
  /**
   * Where the txId of a transaction the library begins comes from. `'database'` (default): the
   * transaction's own `pg_current_xact_id()`, sent with `BEGIN` in one query
   * (`BEGIN; SELECT pg_current_xact_id()::text`), so entries can be matched with the database's
   * transaction ids (logs, `pg_stat_activity`, logical replication). `'random'`: a plain `BEGIN`
   * (or `BEGIN ISOLATION LEVEL …`) and a random UUID as txId, which saves the server that
   * `SELECT` on every call (see BENCHMARKS.md). Either way one transaction's entries share one
   * txId, and `byTransaction` finds them.
   */
  readonly transactionId?: PostgresTransactionIdSource;
}

type Status = 'I' | 'T' | 'E';

function isPgClient(session: unknown): session is PgClientLike {
  if (session === null || typeof session !== 'object') return false;
  const candidate = session as Partial<PgClientLike> & { connect?: unknown; connection?: unknown; processID?: unknown };
  if (typeof candidate.query !== 'function') return false;
  if (typeof candidate.getTransactionStatus === 'function') return true;
  // A client of pg before 8.21: recognised, so that the user learns to upgrade rather than to register an adapter.
  return (
    typeof candidate.connect === 'function' &&
    typeof candidate.connection === 'object' &&
    candidate.connection !== null &&
    'processID' in candidate
  );
}

function statusOf(client: PgClientLike, adapter: string): Status {
  const status = typeof client.getTransactionStatus === 'function' ? client.getTransactionStatus() : undefined;
  if (status === 'I' || status === 'T' || status === 'E') return status;
  throw new TransactionStateError(
    adapter,
    'TRANSACTION_STATUS_UNKNOWN',
    status === undefined
      ? 'This pg client cannot report whether it is inside a transaction: getTransactionStatus() arrived in pg 8.21. ' +
          'Upgrade pg to 8.21 or later, so that the library can tell a transaction of yours (which it joins) from none.'
      : 'This pg client does not report its transaction status (getTransactionStatus() returned null): it is not ' +
          'connected yet, or it is the pg-native client, which never reports it. Pass a connected JavaScript client ' +
          '(await client.connect(), or a client from pool.connect()).',
  );
}

/**
 * Builds the transaction adapter for node-postgres clients. The built-in one uses the session's
 * default isolation; register one made here to choose another (user adapters win over built-ins).
 * A client is one connection: concurrent decorated calls on one client run one after the other,
 * and a transaction the caller began with `BEGIN` is joined. The txId of a transaction the
 * library begins is PostgreSQL's `pg_current_xact_id()` (PostgreSQL 13 or later), read in the
 * same round trip as `BEGIN`; with `{ transactionId: 'random' }`, the library sends a plain
 * `BEGIN` and the txId is a random UUID. In a transaction the caller began, each call gets its
 * own random txId, since reading the database's would cost a round trip. The history INSERT of a
 * call that owns its transaction is sent with COMMIT in one query (`INSERT …; COMMIT`, see
 * `commitWith`): one round trip fewer than sending them apart.
 *
 * ```ts
 * import { registerTransactionAdapter } from 'event-history';
 * import { createPgAdapter } from 'event-history/postgres';
 * registerTransactionAdapter(createPgAdapter({ isolation: 'serializable' }));
 * // or, for the cheapest BEGIN, with random UUIDs as txIds:
 * registerTransactionAdapter(createPgAdapter({ transactionId: 'random' }));
 * ```
 */
export function createPgAdapter(options: PgAdapterOptions = {}): TransactionAdapter<PgClientLike> {
  const begin = beginSql(options.isolation, options.transactionId);
  const readsId = options.transactionId !== 'random';
  const ids = new WeakMap<PgClientLike, string>();
  const deferred = new WeakMap<PgClientLike, DeferredStatement>();
  const name = options.isolation === undefined ? 'pg' : `pg (${options.isolation})`;
  const rollbackQuietly = async (client: PgClientLike): Promise<void> => {
    try {
      if (client.getTransactionStatus?.() !== 'I') await client.query('ROLLBACK');
    } catch {
      // The error that made us roll back is the one to report; a broken connection fails ROLLBACK too.
    }
  };
  return Object.freeze({
    name,
    matches: isPgClient,
    isActive: (client: PgClientLike) => statusOf(client, name) !== 'I' && !heldByAnotherCall(client),
    run: <R>(client: PgClientLike, work: () => Promise<R>): Promise<R> =>
      exclusively(client, async () => {
        let begun: unknown;
        try {
          begun = await client.query(begin);
        } catch (error) {
          await rollbackQuietly(client);
          throw error;
        }
        // With transactionId 'random' there is no id to read: the pipeline makes a random UUID.
        const id = readsId ? transactionIdOf(begun) : undefined;
        if (id !== undefined) ids.set(client, id);
        try {
          let result: R;
          try {
            result = await work();
          } catch (error) {
            await rollbackQuietly(client);
            throw error;
          }
          const status = statusOf(client, name);
          if (status === 'E') {
            await rollbackQuietly(client);
            throw abortedError(name);
          }
          if (status === 'I') throw endedError(name);
          // The history INSERT the call deferred travels with COMMIT: one simple-protocol query,
          // which PostgreSQL stops at the first failing statement, so a failed INSERT never commits.
          const last = deferred.get(client);
          let committed: unknown;
          try {
            committed = await client.query(last === undefined ? 'COMMIT' : `${last.sql};\nCOMMIT`);
          } catch (error) {
            // 'E': the INSERT failed and COMMIT never ran; otherwise COMMIT itself failed (or the connection).
            const insertFailed = last !== undefined && (await settledStatus(client)) === 'E';
            await rollbackQuietly(client);
            throw insertFailed ? last.fail(error) : error;
          }
          if (commitRolledBack(committed)) throw abortedError(name);
          return result;
        } finally {
          ids.delete(client);
          deferred.delete(client);
        }
      }),
    isConflict: isUniqueViolation,
    isTransient: isRetryableSqlState,
    transactionId: (client: PgClientLike) => ids.get(client),
    commitWith: Object.freeze({
      dialect: 'postgres',
      // Called once, by the call that owns the transaction, after its last write; run() clears it.
      defer: (client: PgClientLike, statement: DeferredStatement): void => {
        deferred.set(client, statement);
      },
    }),
  });
}

/**
 * The built-in adapter for node-postgres `Client` and `PoolClient` sessions: `BEGIN` / `COMMIT`,
 * `ROLLBACK` on error, the transaction's `pg_current_xact_id()` as txId (PostgreSQL ≥ 13).
 *
 * ```ts
 * const client = await pool.connect();
 * try { await orders.update(order, client); } finally { client.release(); }
 * ```
 */
export const pgAdapter: TransactionAdapter<PgClientLike> = createPgAdapter();

/**
 * The client's status once it has read the ReadyForQuery that ends a failed query. pg rejects the
 * query at the ErrorResponse, which the server flushes on its own, so the status may still say
 * 'T' then; an empty query (one round trip, on this failure path only) waits for it.
 */
async function settledStatus(client: PgClientLike): Promise<string | null | undefined> {
  if (client.getTransactionStatus?.() === 'T') {
    try {
      await client.query('');
    } catch {
      // A broken connection: its status stays 'T', and the caller reports the original error.
    }
  }
  return client.getTransactionStatus?.();
}

/** @internal */
export function abortedError(adapter: string): TransactionStateError {
  return new TransactionStateError(
    adapter,
    'TRANSACTION_ABORTED',
    'PostgreSQL rolled the transaction back instead of committing it: a statement inside it failed and the error was ' +
      'caught, which aborts a PostgreSQL transaction. Nothing of the call was kept. Let errors inside the decorated ' +
      'method propagate, or wrap a statement that may fail in a SAVEPOINT.',
  );
}

/** @internal */
export function endedError(adapter: string): TransactionStateError {
  return new TransactionStateError(
    adapter,
    'TRANSACTION_CLOSED',
    'The transaction the library began was ended inside the decorated call (COMMIT or ROLLBACK ran on the session), ' +
      'so the entity write and the history write did not commit together. Do not end the transaction inside a ' +
      'decorated method; begin your own around the call instead, which the call then joins.',
  );
}
