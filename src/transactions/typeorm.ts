import { randomUUID } from 'node:crypto';
import { TransactionStateError } from '../errors.js';
import type { TransactionAdapter } from './adapter.js';
import { isSqlConflict, isSqlTransient } from './orm-errors.js';
import { transactionObjectId } from './orm-ids.js';
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
  connect(): Promise<unknown>;
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

// TypeORM has no transaction id of its own: a UUID per transaction the library starts on a
// QueryRunner, and one per transaction EntityManager for transactions the caller opened.
const ownedIds = new WeakMap<object, string>();

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

async function runOnQueryRunner<R>(runner: TypeOrmQueryRunnerLike, work: () => Promise<R>): Promise<R> {
  await runner.startTransaction();
  let result: R;
  try {
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
 * write into the same transaction. Unique violations are conflicts, serialization failures and
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
        ownedIds.set(runner, randomUUID());
        try {
          return await runOnQueryRunner(runner, work);
        } finally {
          ownedIds.delete(runner);
        }
      });
    }
    return (session as TypeOrmManagerLike).transaction((manager) => work(manager));
  },
  isConflict: isSqlConflict,
  isTransient: isSqlTransient,
  transactionId: (session: TypeOrmSession) => {
    const runner = runnerOf(session);
    if (runner === undefined || !runner.isTransactionActive) return undefined;
    const owned = ownedIds.get(runner);
    if (owned !== undefined || isQueryRunner(session)) return owned;
    // dataSource.transaction() makes one EntityManager per transaction: its calls share one id.
    return transactionObjectId(session);
  },
  connection: (session: TypeOrmSession) => runnerOf(session)?.connect(),
});
