/** The SQLSTATE of a PostgreSQL error (node-postgres and PGlite both set `code`), if any. */
function sqlState(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** 23505 unique_violation: another writer holds this key (the history key, or the entity's). */
export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505';
}

/** 40001 serialization_failure and 40P01 deadlock_detected: retrying the transaction can succeed. */
export function isRetryableSqlState(error: unknown): boolean {
  const state = sqlState(error);
  return state === '40001' || state === '40P01';
}

/**
 * Transaction isolation levels PostgreSQL accepts in `BEGIN ISOLATION LEVEL …`.
 *
 * ```ts
 * const isolation: PostgresIsolationLevel = 'serializable';
 * ```
 */
export type PostgresIsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

const ISOLATION_SQL: Readonly<Record<PostgresIsolationLevel, string>> = Object.freeze({
  'read committed': ' ISOLATION LEVEL READ COMMITTED',
  'repeatable read': ' ISOLATION LEVEL REPEATABLE READ',
  serializable: ' ISOLATION LEVEL SERIALIZABLE',
});

/**
 * One simple-protocol query that opens the transaction and returns its id, so the id costs no
 * extra round trip. `pg_current_xact_id()` needs PostgreSQL 13 or later.
 */
export function beginSql(isolation: PostgresIsolationLevel | undefined): string {
  if (isolation !== undefined && !Object.hasOwn(ISOLATION_SQL, isolation)) {
    throw new TypeError(
      `Unknown isolation level ${JSON.stringify(isolation)}: use 'read committed', 'repeatable read' or 'serializable'.`,
    );
  }
  return `BEGIN${isolation === undefined ? '' : ISOLATION_SQL[isolation]}; SELECT pg_current_xact_id()::text AS id`;
}

/** The `id` the last statement of `beginSql` returned (a multi-statement query yields one result per statement). */
export function transactionIdOf(results: unknown): string | undefined {
  const last = Array.isArray(results) ? results.at(-1) : results;
  const rows = (last as { rows?: unknown } | undefined)?.rows;
  const id = Array.isArray(rows) ? (rows[0] as { id?: unknown } | undefined)?.id : undefined;
  return typeof id === 'string' ? id : undefined;
}

/** Whether a COMMIT's result says PostgreSQL rolled back instead (the transaction had failed). */
export function commitRolledBack(results: unknown): boolean {
  const last = Array.isArray(results) ? results.at(-1) : results;
  return (last as { command?: unknown } | undefined)?.command === 'ROLLBACK';
}
