import { isDuplicateEntry, isLockFailure } from './mysql-common.js';
import { isRetryableSqlState, isUniqueViolation } from './sql-state.js';
import { isSqliteConflict, isSqliteTransient } from './sqlite.js';

/**
 * The driver's own error inside an ORM's wrapper: TypeORM's `QueryFailedError.driverError`,
 * Drizzle's `DrizzleQueryError.cause`; Knex, Kysely and Prisma driver adapters pass it through.
 */
function* driverErrors(error: unknown): Generator<unknown> {
  let current = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    yield current;
    const { driverError, cause } = current as { driverError?: unknown; cause?: unknown };
    current = driverError ?? cause;
  }
}

/**
 * @internal A unique-key violation of whichever SQL database an ORM runs on: PostgreSQL 23505,
 * MySQL/MariaDB ER_DUP_ENTRY, SQLite SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY. The codes do not
 * overlap, so the ORM's database need not be known.
 */
export function isSqlConflict(error: unknown): boolean {
  for (const e of driverErrors(error))
    if (isUniqueViolation(e) || isDuplicateEntry(e) || isSqliteConflict(e)) return true;
  return false;
}

/** @internal A failure worth retrying the transaction for, on whichever SQL database an ORM runs on. */
export function isSqlTransient(error: unknown): boolean {
  for (const e of driverErrors(error))
    if (isRetryableSqlState(e) || isLockFailure(e) || isSqliteTransient(e)) return true;
  return false;
}
