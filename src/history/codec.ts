import type { HistoryEntry, HistoryOp } from './entry.js';

const DATE_TAG = '$date';

/**
 * Turns a snapshot into JSON text that keeps Dates: each Date becomes `{ "$date": "<ISO>" }`.
 * `decodeJson` reverses it. Used by the SQL stores; MongoDB keeps Dates natively.
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(tagDates(value));
}

/** Parses what `encodeJson` wrote (text, or a value a driver already parsed), restoring Dates. */
export function decodeJson(value: unknown): unknown {
  return untagDates(typeof value === 'string' ? JSON.parse(value) : value);
}

function tagDates(value: unknown): unknown {
  if (value instanceof Date) return { [DATE_TAG]: value.toISOString() };
  if (Array.isArray(value)) return value.map(tagDates);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = tagDates(item);
    return out;
  }
  return value;
}

function untagDates(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(untagDates);
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record);
    if (keys.length === 1 && keys[0] === DATE_TAG && typeof record[DATE_TAG] === 'string') {
      return new Date(record[DATE_TAG]);
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) out[key] = untagDates(record[key]);
    return out;
  }
  return value;
}

/** A history row as the SQL stores keep it, with snake_case columns. */
export interface HistoryRow {
  entity_type: string;
  entity_id: string;
  version: number | string | bigint;
  op: string;
  timestamp: Date | string | number;
  snapshot: unknown;
  actor: string | null;
  reason: string | null;
  metadata: unknown;
  tx_id: string | null;
  /** Added by the reading/tamper-evidence schema; absent on rows read from a table without them. */
  schema_version?: number | string | null;
  hash?: string | null;
  prev_hash?: string | null;
}

/** The column order the SQL stores insert in; `entryToParams` yields values in this order. */
export const HISTORY_COLUMNS = [
  'entity_type',
  'entity_id',
  'version',
  'op',
  'timestamp',
  'snapshot',
  'actor',
  'reason',
  'metadata',
  'tx_id',
  'schema_version',
  'hash',
  'prev_hash',
] as const;

/** The history columns, double-quoted and comma-separated, as PostgreSQL and SQLite write them. */
export const QUOTED_COLUMNS = HISTORY_COLUMNS.map((column) => `"${column}"`).join(', ');

/**
 * The reads PostgreSQL and SQLite share, for a quoted table name and the driver's placeholder
 * (`$n` or `?`): `list` and `listDesc` take (type, id, from, to, limit), `at` and `asOf` (type, id,
 * version or time), `latest` (type, id), `byTransaction` (txId).
 */
export function sqlReads(table: string, param: (n: number) => string) {
  const select = `SELECT ${QUOTED_COLUMNS} FROM ${table} WHERE "entity_type" = ${param(1)} AND "entity_id" = ${param(2)}`;
  const range = `${select} AND "version" BETWEEN ${param(3)} AND ${param(4)}`;
  return {
    list: `${range} ORDER BY "version" LIMIT ${param(5)}`,
    listDesc: `${range} ORDER BY "version" DESC LIMIT ${param(5)}`,
    byTransaction: `SELECT ${QUOTED_COLUMNS} FROM ${table} WHERE "tx_id" = ${param(1)} ORDER BY "entity_type", "entity_id", "version"`,
    at: `${select} AND "version" = ${param(3)}`,
    asOf: `${select} AND "timestamp" <= ${param(3)} ORDER BY "timestamp" DESC, "version" DESC LIMIT 1`,
    latest: `${select} ORDER BY "version" DESC LIMIT 1`,
  };
}

/**
 * The nullable columns later versions added; `ensureSchema` adds them to older tables.
 * Each store maps the type names to its database's.
 */
export const ADDED_COLUMNS = [
  { name: 'schema_version', type: 'integer' },
  { name: 'hash', type: 'text' },
  { name: 'prev_hash', type: 'text' },
] as const;

/** Insert parameters for an entry; JSON columns as text, the timestamp as a Date. */
export function entryToParams(entry: HistoryEntry): unknown[] {
  return [
    entry.entityType,
    entry.entityId,
    entry.version,
    entry.op,
    entry.timestamp,
    encodeJson(entry.snapshot),
    entry.actor ?? null,
    entry.reason ?? null,
    entry.metadata === undefined ? null : encodeJson(entry.metadata),
    entry.txId ?? null,
    entry.schemaVersion ?? null,
    entry.hash ?? null,
    entry.prevHash ?? null,
  ];
}

/** Reads a row back into an entry, with Dates restored and absent optional fields left out. */
export function rowToEntry(row: HistoryRow): HistoryEntry {
  const entry: HistoryEntry = {
    entityType: row.entity_type,
    entityId: row.entity_id,
    version: Number(row.version),
    op: row.op as HistoryOp,
    timestamp: row.timestamp instanceof Date ? row.timestamp : new Date(row.timestamp),
    snapshot: decodeJson(row.snapshot),
  };
  if (row.actor !== null) entry.actor = row.actor;
  if (row.reason !== null) entry.reason = row.reason;
  if (row.metadata !== null && row.metadata !== undefined) {
    entry.metadata = decodeJson(row.metadata) as Record<string, unknown>;
  }
  if (row.tx_id !== null) entry.txId = row.tx_id;
  if (row.schema_version !== null && row.schema_version !== undefined) entry.schemaVersion = Number(row.schema_version);
  if (row.hash !== null && row.hash !== undefined) entry.hash = row.hash;
  if (row.prev_hash !== null && row.prev_hash !== undefined) entry.prevHash = row.prev_hash;
  return entry;
}
