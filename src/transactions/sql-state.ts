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
 * Where the txId of a transaction the PostgreSQL adapters begin comes from: `'database'`, the
 * transaction's own `pg_current_xact_id()`, or `'random'`, a random UUID made in the process.
 *
 * ```ts
 * const source: PostgresTransactionIdSource = 'random';
 * ```
 */
export type PostgresTransactionIdSource = 'database' | 'random';

/**
 * The query that opens the transaction. With `'database'` (the default) it is one simple-protocol
 * query that also returns the transaction's id, so the id costs no extra round trip
 * (`pg_current_xact_id()` needs PostgreSQL 13 or later); with `'random'`, a plain `BEGIN`.
 */
export function beginSql(
  isolation: PostgresIsolationLevel | undefined,
  transactionId: PostgresTransactionIdSource = 'database',
): string {
  if (isolation !== undefined && !Object.hasOwn(ISOLATION_SQL, isolation)) {
    throw new TypeError(
      `Unknown isolation level ${JSON.stringify(isolation)}: use 'read committed', 'repeatable read' or 'serializable'.`,
    );
  }
  if (transactionId !== 'database' && transactionId !== 'random') {
    throw new TypeError(`Unknown transactionId ${JSON.stringify(transactionId)}: use 'database' or 'random'.`);
  }
  const begin = `BEGIN${isolation === undefined ? '' : ISOLATION_SQL[isolation]}`;
  return transactionId === 'random' ? begin : `${begin}; SELECT pg_current_xact_id()::text AS id`;
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
