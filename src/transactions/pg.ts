import { ambient, runWithAmbient } from '../context.js';
import { TransactionStateError } from '../errors.js';
import { shared } from '../shared-state.js';
import type { TransactionAdapter } from './adapter.js';
import { closeLevel, type FinalStatement, openLevel, type PendingStatement } from './final-statement.js';
import { beginPrefix, canDeferBegin, type DeferredBegin, deferBegin } from './pg-begin.js';
import { exclusively, heldByAnotherCall, type SessionHold } from './session-lock.js';
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
 * and a transaction the caller began with `BEGIN` is joined inside a savepoint
 * (`SAVEPOINT event_history_<depth>`), so that a failed call leaves nothing of its own writes in
 * it and the caller's transaction stays usable. The txId of a transaction the library begins is
 * PostgreSQL's `pg_current_xact_id()` (PostgreSQL 13 or later), read in the same round trip as
 * `BEGIN`; with `{ transactionId: 'random' }`, the library sends a plain `BEGIN` and the txId is a
 * random UUID. In a transaction the caller began, each call gets its own random txId, since
 * reading the database's would cost a round trip.
 *
 * The history INSERT of a call travels with the statement that ends it (`COMMIT` when the call
 * owns the transaction, `RELEASE SAVEPOINT` when it joined one): Parse/Bind/Execute for each,
 * then one Sync, so one round trip, with the values as bind parameters. PostgreSQL skips every
 * message after a failing one until the Sync, so a failed INSERT never commits.
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
  const prefix = beginPrefix(begin.replace(/;.*$/s, ''), readsId);
  const ids = new WeakMap<PgClientLike, string>();
  const deferredBegins = new WeakMap<PgClientLike, DeferredBegin>();
  const name = options.isolation === undefined ? 'pg' : `pg (${options.isolation})`;
  const rollbackQuietly = async (client: PgClientLike): Promise<void> => {
    try {
      if (client.getTransactionStatus?.() !== 'I') await client.query('ROLLBACK');
    } catch {
      // The error that made us roll back is the one to report; a broken connection fails ROLLBACK too.
    }
  };
  const rollbackToQuietly = async (client: PgClientLike, savepoint: string): Promise<void> => {
    try {
      await client.query(`ROLLBACK TO SAVEPOINT ${savepoint}; RELEASE SAVEPOINT ${savepoint}`);
    } catch {
      // As above: the error that made us roll back is the one to report.
    }
  };
  return Object.freeze({
    name,
    matches: isPgClient,
    isActive: (client: PgClientLike) => statusOf(client, name) !== 'I' && !heldByAnotherCall(client),
    run: <R>(client: PgClientLike, work: () => Promise<R>): Promise<R> =>
      exclusively(client, async () => {
        // BEGIN travels with the first statement sent on the client (see pg-begin), where it can.
        const deferred = submitsExtended(client) && canDeferBegin(client) ? deferBegin(client, prefix) : undefined;
        if (deferred === undefined) {
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
        } else if (readsId) {
          deferredBegins.set(client, deferred);
        }
        const level = submitsExtended(client) ? openLevel(client) : undefined;
        try {
          let result: R;
          try {
            result = await work();
          } catch (error) {
            // A statement the method did not wait for may still carry BEGIN: roll back after its reply.
            await deferred?.settled();
            await rollbackQuietly(client);
            throw error;
          }
          await deferred?.settled();
          const begunLater = deferred?.sent === true;
          if (deferred !== undefined && deferred.failure !== undefined) {
            // The method caught the error BEGIN failed with: nothing ran in a transaction.
            await rollbackQuietly(client);
            throw deferred.failure;
          }
          const status = statusOf(client, name);
          if (status === 'E') {
            await rollbackQuietly(client);
            throw abortedError(name);
          }
          // Not begun yet: the method sent nothing on the client, and BEGIN goes with the history write, if any.
          if (status === 'I' && (deferred === undefined || begunLater)) throw endedError(name);
          const pending = level === undefined ? [] : closeLevel(client, level);
          if (pending.length === 0) {
            if (deferred !== undefined && !begunLater) return result;
            let committed: unknown;
            try {
              committed = await client.query('COMMIT');
            } catch (error) {
              await rollbackQuietly(client);
              throw error;
            }
            if (commitRolledBack(committed)) throw abortedError(name);
            return result;
          }
          const outcome = await sendFinal(client, pending, 'COMMIT');
          if (outcome.error === undefined && deferred?.failure !== undefined) {
            await rollbackQuietly(client);
            throw deferred.failure;
          }
          if (outcome.error !== undefined) {
            // A failed deferred statement left the transaction aborted; a failed COMMIT ended it.
            await rollbackQuietly(client);
            throw deferred?.failure ?? failure(outcome, pending);
          }
          if (outcome.lastCommand === 'ROLLBACK') throw abortedError(name);
          return result;
        } finally {
          deferred?.disarm();
          deferredBegins.delete(client);
          if (level !== undefined) closeLevel(client, level);
          ids.delete(client);
        }
      }),
    join: <R>(client: PgClientLike, work: () => Promise<R>): Promise<R> =>
      inSavepoint(client, async (savepoint) => {
        await client.query(`SAVEPOINT ${savepoint}`);
        const level = submitsExtended(client) ? openLevel(client) : undefined;
        try {
          let result: R;
          try {
            result = await work();
          } catch (error) {
            if (client.getTransactionStatus?.() !== 'I') await rollbackToQuietly(client, savepoint);
            throw error;
          }
          const status = statusOf(client, name);
          if (status === 'I') throw joinEndedError(name);
          if (status === 'E') {
            await rollbackToQuietly(client, savepoint);
            throw joinAbortedError(name);
          }
          const pending = level === undefined ? [] : closeLevel(client, level);
          if (pending.length === 0) {
            try {
              await client.query(`RELEASE SAVEPOINT ${savepoint}`);
            } catch (error) {
              await rollbackToQuietly(client, savepoint);
              throw error;
            }
            return result;
          }
          const outcome = await sendFinal(client, pending, `RELEASE SAVEPOINT ${savepoint}`);
          if (outcome.error !== undefined) {
            await rollbackToQuietly(client, savepoint);
            throw failure(outcome, pending);
          }
          return result;
        } finally {
          if (level !== undefined) closeLevel(client, level);
        }
      }),
    isConflict: isUniqueViolation,
    isTransient: isRetryableSqlState,
    transactionId: (client: PgClientLike) => ids.get(client) ?? deferredBegins.get(client)?.transactionId,
    transactionIdArrivesLate: readsId,
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

/** The part of node-postgres's `Connection` a {@link FinalQuery} writes its messages with. */
interface PgConnectionLike {
  parse(message: { text: string }): void;
  bind(message: { values: readonly (string | Uint8Array | null)[] }): void;
  execute(message: Record<string, never>): void;
  sync(): void;
  stream?: { cork?: () => void; uncork?: () => void };
}

/**
 * Whether `client` runs a custom query object (one with `submit(connection)`) on a connection it
 * exposes: a node-postgres `Client` or `PoolClient`, not in pipeline mode (which refuses them).
 */
function submitsExtended(client: PgClientLike): boolean {
  const candidate = client as PgClientLike & { connection?: Partial<PgConnectionLike>; pipeline?: unknown };
  const connection = candidate.connection;
  return (
    typeof connection === 'object' &&
    connection !== null &&
    typeof connection.parse === 'function' &&
    typeof connection.bind === 'function' &&
    typeof connection.execute === 'function' &&
    typeof connection.sync === 'function' &&
    !candidate.pipeline
  );
}

/** How a {@link FinalQuery} ended. `failedAt`: the index of the statement the server rejected. */
interface FinalOutcome {
  readonly error?: unknown;
  readonly failedAt: number;
  readonly serverError: boolean;
  readonly lastCommand: string | undefined;
}

/**
 * The deferred statements and the statement that ends the transaction (or savepoint) as one
 * node-postgres query object: Parse/Bind/Execute per statement, then one Sync, in one write.
 * Each statement completed before a failure sent its CommandComplete, so the number seen tells
 * which one the server rejected (PostgreSQL skips the rest until the Sync). node-postgres calls
 * `handleError` instead of `handleReadyForQuery` when the server rejected one.
 */
class FinalQuery {
  /** What the query looks like in logs and query recorders. */
  readonly text: string;
  readonly done: Promise<FinalOutcome>;
  readonly #statements: readonly FinalStatement[];
  #completed = 0;
  #lastCommand: string | undefined;
  #settle: (outcome: FinalOutcome) => void = () => {};

  constructor(statements: readonly FinalStatement[]) {
    this.#statements = statements;
    this.text = statements.map((statement) => statement.text).join(';\n');
    this.done = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  submit(connection: PgConnectionLike): null {
    connection.stream?.cork?.();
    try {
      for (const statement of this.#statements) {
        connection.parse({ text: statement.text });
        // node-postgres sends a Buffer in binary format, anything else as text.
        connection.bind({ values: statement.values.map(asBuffer) });
        connection.execute({});
      }
      connection.sync();
    } finally {
      connection.stream?.uncork?.();
    }
    return null;
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}

  handleCopyInResponse(connection: { sendCopyFail?: (message: string) => void }): void {
    connection.sendCopyFail?.('COPY FROM STDIN cannot be a statement sent with COMMIT');
  }

  handleCommandComplete(message: { text?: string }): void {
    this.#completed++;
    this.#lastCommand = message.text;
  }

  handleError(error: unknown): void {
    const serverError = typeof (error as { severity?: unknown } | null)?.severity === 'string';
    this.#settle({ error, failedAt: this.#completed, serverError, lastCommand: this.#lastCommand });
  }

  handleReadyForQuery(): void {
    this.#settle({ failedAt: -1, serverError: false, lastCommand: this.#lastCommand });
  }
}

function asBuffer(value: string | Uint8Array | null): string | Uint8Array | null {
  return value instanceof Uint8Array && !Buffer.isBuffer(value)
    ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    : value;
}

/** Sends `pending` and then `last` (COMMIT or RELEASE SAVEPOINT) in one round trip. */
function sendFinal(client: PgClientLike, pending: readonly PendingStatement[], last: string): Promise<FinalOutcome> {
  const query = new FinalQuery([...pending.map((item) => item.statement), { text: last, values: [] }]);
  let returned: unknown;
  try {
    returned = (client.query as unknown as (this: PgClientLike, query: FinalQuery) => unknown).call(client, query);
  } catch (error) {
    query.handleError(error);
  }
  // node-postgres returns the query object itself; a wrapper of the client (instrumentation, a
  // proxy) may instead return a promise that rejects without ever calling handleError.
  if (returned !== query && typeof (returned as PromiseLike<unknown> | undefined)?.then === 'function') {
    (returned as PromiseLike<unknown>).then(undefined, (error: unknown) => query.handleError(error));
  }
  return query.done;
}

/** The error a failed {@link FinalQuery} becomes: a rejected deferred statement's own mapping, else the error as it came. */
function failure(outcome: FinalOutcome, pending: readonly PendingStatement[]): unknown {
  const rejected = outcome.serverError ? pending[outcome.failedAt] : undefined;
  return rejected === undefined ? outcome.error : rejected.fail(outcome.error);
}

/**
 * @internal Runs `fn` with a savepoint name unique along the chain of joins on `session`
 * (`event_history_1`, `event_history_2` inside it, …). Joins on one session that are not nested
 * in each other run one after the other, so that their savepoints do not interleave.
 */
export function inSavepoint<R>(session: object, fn: (savepoint: string) => Promise<R>): Promise<R> {
  const held = ambient()?.held;
  let parent: SessionHold | undefined;
  let depth = 0;
  for (const token of joinTokens.get(session) ?? []) {
    if (!token.released && held?.includes(token) === true) {
      parent = token;
      depth++;
    }
  }
  const key = parent ?? rootToken(session);
  return exclusively(key, async () => {
    const mine: SessionHold = { session, released: false };
    let tokens = joinTokens.get(session);
    if (tokens === undefined) {
      tokens = [];
      joinTokens.set(session, tokens);
    }
    tokens.push(mine);
    try {
      const outer = ambient()?.held;
      return await runWithAmbient({ held: [...(outer ?? []), mine] }, () => fn(`event_history_${depth + 1}`));
    } finally {
      mine.released = true;
      tokens.splice(tokens.indexOf(mine), 1);
      if (tokens.length === 0) joinTokens.delete(session);
    }
  });
}

const joinTokens = shared('pg-join-tokens', () => new WeakMap<object, SessionHold[]>());
const rootTokens = shared('pg-join-roots', () => new WeakMap<object, object>());

function rootToken(session: object): object {
  let token = rootTokens.get(session);
  if (token === undefined) {
    token = {};
    rootTokens.set(session, token);
  }
  return token;
}

/** @internal */
export function joinAbortedError(adapter: string): TransactionStateError {
  return new TransactionStateError(
    adapter,
    'TRANSACTION_ABORTED',
    'A statement inside the decorated call failed and the error was caught, which aborts a PostgreSQL transaction. ' +
      'The library rolled back to the savepoint it took before the call, so nothing of the call was kept and your ' +
      'transaction can go on. Let errors inside the decorated method propagate, or wrap a statement that may fail in ' +
      'a SAVEPOINT of your own.',
  );
}

/** @internal */
export function joinEndedError(adapter: string): TransactionStateError {
  return new TransactionStateError(
    adapter,
    'TRANSACTION_CLOSED',
    'The transaction the decorated call joined was ended inside the call (COMMIT or ROLLBACK ran on the session), ' +
      'so the entity write and the history write did not stay together in it. Do not end your transaction inside a ' +
      'decorated method; end it after the call returns.',
  );
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
