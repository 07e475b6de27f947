const NOTHING_MATCHED_FIELDS = [
  'matchedCount',
  'rowCount',
  'affectedRows',
  'affected',
  'count',
  'deletedCount',
  'changes',
] as const;

/**
 * The default reading of a guarded write's result: did it match nothing? Covers MongoDB
 * (`matchedCount`, `deletedCount`), pg (`rowCount` of an UPDATE or DELETE), mysql2 and mariadb
 * (`affectedRows`, also inside mysql2's `[result, fields]` pair), better-sqlite3 (`changes`),
 * TypeORM (`affected`, or `raw.affectedRows` where TypeORM leaves `affected` undefined, as 0.2 does on MySQL), Prisma (`count`), Kysely (`numUpdatedRows`, `numDeletedRows` of `0n`) and a
 * plain `false` (return `updated > 0` from a Knex update). Only applied to update and delete calls.
 */
export function defaultConflict(result: unknown): boolean {
  if (result === false) return true;
  if (Array.isArray(result)) return result.length === 2 && isNothingMatched(result[0]);
  return isNothingMatched(result);
}

function isNothingMatched(result: unknown): boolean {
  if (result === null || typeof result !== 'object') return false;
  const record = result as Record<string, unknown>;
  // A pg result of a SELECT or INSERT has rowCount too; only UPDATE and DELETE say "matched".
  if (typeof record.command === 'string' && !/^(UPDATE|DELETE)$/i.test(record.command)) return false;
  if (NOTHING_MATCHED_FIELDS.some((field) => record[field] === 0)) return true;
  // TypeORM's UpdateResult / DeleteResult on MySQL and MariaDB leaves `affected` undefined (0.2 always):
  // the driver's own count is in `raw` (mysql2's ResultSetHeader, mariadb's OkPacket).
  if (record.affected === undefined && 'raw' in record) {
    const raw = record.raw as { affectedRows?: unknown } | null | undefined;
    return raw !== null && typeof raw === 'object' && raw.affectedRows === 0;
  }
  // Kysely's UpdateResult and DeleteResult count in bigint.
  return record.numUpdatedRows === 0n || record.numDeletedRows === 0n;
}
