import { randomUUID } from 'node:crypto';
import { TransactionStateError } from '../errors.js';
import { shared } from '../shared-state.js';
import type { TransactionAdapter } from './adapter.js';
import { isSqlConflict, isSqlTransient } from './orm-errors.js';
import { joinWithSavepoint } from './savepoint.js';
import { exclusively, heldByAnotherCall } from './session-lock.js';

/**
 * The part of a TypeORM `QueryRunner` the adapter uses (one connection taken from the pool).
 *
 * ```ts
 * const runner: TypeOrmQueryRunnerLike = dataSource.createQueryRunner();
 * ```
 */
export interface TypeOrmQueryRunnerLike {
  readonly isTransactionActive: boolean;
  /** The DataSource, whose `options.type` names the database (`'postgres'`: the txId is PostgreSQL's own). */
  readonly connection?: { readonly options?: { readonly type?: unknown } };
  connect(): Promise<unknown>;
  /** Runs raw SQL on the runner's connection: the savepoints of joined calls, the transaction id. */
  query(sql: string): Promise<unknown>;
  startTransaction(): Promise<void>;
  commitTransaction(): Promise<void>;
  rollbackTransaction(): Promise<void>;
}

/**
 * The part of a TypeORM `EntityManager` or `DataSource` the adapter uses: `transaction()`, and the
 * query runner an `EntityManager` of a transaction (or of a query runner) is bound to.
 *
 * ```ts
 * const manager: TypeOrmManagerLike = dataSource.manager;
 * ```
 */
export interface TypeOrmManagerLike {
  readonly queryRunner?: TypeOrmQueryRunnerLike;
  transaction<R>(work: (manager: TypeOrmManagerLike) => Promise<R>): Promise<R>;
}

/**
 * A TypeORM session: a `QueryRunner`, an `EntityManager` or a `DataSource`.
 *
 * ```ts
 * const session: TypeOrmSession = dataSource.createQueryRunner();
 * ```
 */
export type TypeOrmSession = TypeOrmQueryRunnerLike | TypeOrmManagerLike;

// The txId of each transaction the library runs, keyed by its QueryRunner while it runs: on
// PostgreSQL its pg_current_xact_id(), elsewhere a UUID. Deleted when the transaction ends, so no
// later transaction on the runner (or on its one `manager`) can be given it.
const ownedIds = shared('typeorm-transaction-ids', () => new WeakMap<object, string>());

/**
 * One query after START TRANSACTION on PostgreSQL: TypeORM sends START TRANSACTION alone, so the
 * id cannot travel with it as it does on the pg adapter (about one round trip per call, see README).
 */
async function readTransactionId(runner: TypeOrmQueryRunnerLike): Promise<string> {
  if (runner.connection?.options?.type !== 'postgres') return randomUUID();
  const rows = await runner.query('SELECT pg_current_xact_id()::text AS id');
  const id = Array.isArray(rows) ? (rows[0] as { id?: unknown } | undefined)?.id : undefined;
  return typeof id === 'string' ? id : randomUUID();
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object';

function isQueryRunner(session: unknown): session is TypeOrmQueryRunnerLike {
  return (
    isObject(session) &&
    typeof session.startTransaction === 'function' &&
    typeof session.commitTransaction === 'function' &&
    typeof session.rollbackTransaction === 'function' &&
    typeof session.isTransactionActive === 'boolean'
  );
}

/** An EntityManager has `connection` (its DataSource); a DataSource has `createQueryRunner` and `manager`. */
function isManagerOrDataSource(session: unknown): session is TypeOrmManagerLike {
  if (!isObject(session) || typeof session.transaction !== 'function' || typeof session.getRepository !== 'function') {
    return false;
  }
  const connection = session.connection;
  const isManager = isObject(connection) && typeof connection.createQueryRunner === 'function';
  const isDataSource = typeof session.createQueryRunner === 'function' && isObject(session.manager);
  return isManager || isDataSource;
}

function runnerOf(session: TypeOrmSession): TypeOrmQueryRunnerLike | undefined {
  return isQueryRunner(session) ? session : (session as TypeOrmManagerLike).queryRunner;
}

async function rollbackQuietly(runner: TypeOrmQueryRunnerLike): Promise<void> {
  try {
    if (runner.isTransactionActive) await runner.rollbackTransaction();
  } catch {
    // The error that made us roll back is the one to report.
  }
}

// The txId of a transaction the caller began on a runner (`startTransaction()`, or
// `dataSource.transaction()`), shared by the calls that join it: a UUID, since reading the
// database's id would cost a round trip. A runner outlives its transactions, so the id is
// forgotten when TypeORM ends the outermost one (commitTransaction / rollbackTransaction on the
// runner, which the library wraps once per runner), and the next transaction gets a new one.
const callerIds = shared('typeorm-caller-transaction-ids', () => new WeakMap<object, string>());
const watched = shared('typeorm-watched-runners', () => new WeakSet<object>());

function callerTransactionId(runner: TypeOrmQueryRunnerLike): string | undefined {
  const known = callerIds.get(runner);
  if (known !== undefined) return known;
  // A runner whose end cannot be watched (frozen, say) gets no shared id: each call its own UUID.
  if (!watchEnd(runner)) return undefined;
  const id = randomUUID();
  callerIds.set(runner, id);
  return id;
}

function watchEnd(runner: TypeOrmQueryRunnerLike): boolean {
  if (watched.has(runner)) return true;
  try {
    for (const name of ['commitTransaction', 'rollbackTransaction'] as const) {
      const original = runner[name];
      Object.defineProperty(runner, name, {
        configurable: true,
        writable: true,
        enumerable: false,
        value: async function ended(this: unknown): Promise<void> {
          try {
            await original.call(this);
          } finally {
            if (!runner.isTransactionActive) callerIds.delete(runner);
          }
        },
      });
    }
  } catch {
    return false;
  }
  watched.add(runner);
  return true;
}

function closedError(): TransactionStateError {
  return new TransactionStateError(
    'typeorm',
    'TRANSACTION_CLOSED',
    'The TypeORM transaction this call was to join has already ended (committed or rolled back), so the call ' +
      'cannot run inside it. Call the decorated method inside the transaction, or pass the DataSource or a ' +
      'QueryRunner without a transaction so that the library begins one.',
  );
}

async function runOnQueryRunner<R>(runner: TypeOrmQueryRunnerLike, work: () => Promise<R>): Promise<R> {
  await runner.startTransaction();
  let result: R;
  try {
    ownedIds.set(runner, await readTransactionId(runner));
    result = await work();
  } catch (error) {
    await rollbackQuietly(runner);
    throw error;
  }
  if (!runner.isTransactionActive) {
    throw new TransactionStateError(
      'typeorm',
      'TRANSACTION_CLOSED',
      'The transaction the library began on the QueryRunner was ended inside the decorated call (commitTransaction ' +
        'or rollbackTransaction ran), so the entity write and the history write did not commit together. Do not end ' +
        'the transaction inside a decorated method; start your own around the call instead, which the call then joins.',
    );
  }
  try {
    await runner.commitTransaction();
  } catch (error) {
    await rollbackQuietly(runner);
    throw error;
  }
  return result;
}

/**
 * The built-in adapter for TypeORM sessions, on any SQL database TypeORM drives:
 * - an `EntityManager` of a transaction (`dataSource.transaction(async (manager) => …)`), or a
 *   `QueryRunner` on which `startTransaction()` ran: the call joins that transaction;
 * - a `QueryRunner` without a transaction: the library starts and commits one on it;
 * - the `DataSource` or its root `manager`: the library opens `transaction()` and runs the call with
 *   the transaction's `EntityManager` in place of the session (argument and `currentSession()`), so
 *   the method must write through the manager it is given.
 *
 * History goes through the same connection (`queryRunner.connect()`), so the built-in SQL stores
 * write into the same transaction. A joined call runs inside a SAVEPOINT (see `join`). The txId of
 * a transaction the library begins is PostgreSQL's `pg_current_xact_id()` (one query after START
 * TRANSACTION), a UUID on other databases; the calls joining a transaction the caller began share
 * one UUID, forgotten when TypeORM ends that transaction. Unique violations are conflicts, serialization failures and
 * deadlocks are retried, as for the database underneath.
 *
 * ```ts
 * await dataSource.transaction((manager) => orders.update(order, manager)); // joins
 * await orders.update(order, dataSource.manager);                            // the library's transaction
 * ```
 */
export const typeormAdapter: TransactionAdapter<TypeOrmSession> = Object.freeze({
  name: 'typeorm',
  matches: (session: unknown): session is TypeOrmSession => isQueryRunner(session) || isManagerOrDataSource(session),
  isActive: (session: TypeOrmSession) => {
    const runner = runnerOf(session);
    return runner?.isTransactionActive === true && !heldByAnotherCall(runner);
  },
  run: <R>(session: TypeOrmSession, work: (transaction?: unknown) => Promise<R>): Promise<R> => {
    const runner = runnerOf(session);
    if (runner !== undefined) {
      return exclusively(runner, async () => {
        try {
          return await runOnQueryRunner(runner, work);
        } finally {
          ownedIds.delete(runner);
        }
      });
    }
    return (session as TypeOrmManagerLike).transaction(async (manager) => {
      const opened = manager.queryRunner;
      if (opened === undefined) return work(manager);
      try {
        ownedIds.set(opened, await readTransactionId(opened));
        return await work(manager);
      } finally {
        ownedIds.delete(opened);
      }
    });
  },
  isConflict: isSqlConflict,
  isTransient: isSqlTransient,
  transactionId: (session: TypeOrmSession) => {
    const runner = runnerOf(session);
    if (runner?.isTransactionActive !== true) return undefined;
    return ownedIds.get(runner) ?? callerTransactionId(runner);
  },
  connection: (session: TypeOrmSession) => runnerOf(session)?.connect(),
  join: <R>(session: TypeOrmSession, work: () => Promise<R>): Promise<R> => {
    const runner = runnerOf(session);
    if (runner?.isTransactionActive !== true) return Promise.reject(closedError());
    return joinWithSavepoint('typeorm', runner, (sql) => runner.query(sql), work);
  },
});
