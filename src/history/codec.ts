import { InvalidEntityError } from '../errors.js';
import type { HistoryEntry, HistoryOp } from './entry.js';

/*
 * The JSON form of snapshots and metadata. JSON alone cannot hold every value a snapshot holds,
 * so a few values are written as tagged objects, each an object with exactly one `$`-key:
 *
 * - `{ "$date": "<ISO 8601>" }`: a Date (`"Invalid Date"` for an invalid one).
 * - `{ "$num": "NaN" | "Infinity" | "-Infinity" | "-0" }`: a number JSON has no text for.
 * - `{ "$str": ["abc", 55296, "def"] }`: a string holding a lone UTF-16 surrogate or a NUL
 *   character (which PostgreSQL's jsonb rejects and UTF-8 cannot carry): its well-formed runs as
 *   strings, each such code unit as a number.
 * - `{ "$entries": [[key, value], …] }`: an object that would otherwise read as a tag (its only
 *   key starts with `$`), or whose keys hold such characters; keys are strings or `$str` tags.
 *
 * Every other object is written as itself, so rows stay plain JSON. Reading turns each tag back
 * into its value and builds objects with own properties only (`__proto__` is an ordinary key);
 * an object with one `$`-key that is not a well-formed tag is read as written. Rows written before
 * this form hold `{ "$date": … }` for Dates and read the same.
 */
const DATE_TAG = '$date';
const NUMBER_TAG = '$num';
const STRING_TAG = '$str';
const ENTRIES_TAG = '$entries';
const INVALID_DATE = 'Invalid Date';

/** A lone surrogate: a high one not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Turns a snapshot (or metadata) into JSON text that reads back exactly: Dates, non-finite
 * numbers and `-0`, strings with lone surrogates or NUL, and objects that look like tags are
 * written as the tags described above. `decodeJson` reverses it. Used by the SQL stores; MongoDB
 * keeps snapshots as BSON and uses this text only for those BSON cannot hold.
 *
 * ```ts
 * encodeJson({ at: new Date(0), n: Number.NaN }); // '{"at":{"$date":"1970-01-01T00:00:00.000Z"},"n":{"$num":"NaN"}}'
 * ```
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(encodeValue(value));
}

/**
 * Parses what `encodeJson` wrote (text, or a value a driver already parsed), restoring what the
 * tags stand for.
 *
 * ```ts
 * decodeJson('{"at":{"$date":"1970-01-01T00:00:00.000Z"}}'); // { at: new Date(0) }
 * ```
 */
export function decodeJson(value: unknown): unknown {
  return decodeValue(typeof value === 'string' ? JSON.parse(value) : value);
}

/** Whether a string needs the `$str` tag: it holds a lone surrogate or a NUL. */
function unsafeString(text: string): boolean {
  return text.includes('\u0000') || LONE_SURROGATE.test(text);
}

function encodeString(text: string): unknown {
  if (!unsafeString(text)) return text;
  const pieces: (string | number)[] = [];
  let run = '';
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const high = unit >= 0xd800 && unit <= 0xdbff;
    const low = unit >= 0xdc00 && unit <= 0xdfff;
    const next = i + 1 < text.length ? text.charCodeAt(i + 1) : -1;
    if (high && next >= 0xdc00 && next <= 0xdfff) {
      run += text.slice(i, i + 2);
      i += 1;
    } else if (high || low || unit === 0) {
      if (run !== '') pieces.push(run);
      run = '';
      pieces.push(unit);
    } else {
      run += text.charAt(i);
    }
  }
  if (run !== '') pieces.push(run);
  return { [STRING_TAG]: pieces };
}

function encodeNumber(value: number): unknown {
  if (Number.isNaN(value)) return { [NUMBER_TAG]: 'NaN' };
  if (value === Number.POSITIVE_INFINITY) return { [NUMBER_TAG]: 'Infinity' };
  if (value === Number.NEGATIVE_INFINITY) return { [NUMBER_TAG]: '-Infinity' };
  if (Object.is(value, -0)) return { [NUMBER_TAG]: '-0' };
  return value;
}

/** The ISO text of a Date, or `Invalid Date`; `new Date(text)` gives the same Date back. */
export function dateText(date: Date): string {
  return Number.isNaN(date.getTime()) ? INVALID_DATE : date.toISOString();
}

function encodeValue(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      return encodeNumber(value);
    case 'object':
      break;
    default:
      return value;
  }
  if (value === null) return null;
  if (value instanceof Date) return { [DATE_TAG]: dateText(value) };
  if (Array.isArray(value)) return value.map(encodeValue);
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return encodeValue(toJSON.call(value));
  const fields: [string, unknown][] = [];
  let plain = true;
  for (const key of Object.keys(value)) {
    const item = encodeValue((value as Record<string, unknown>)[key]);
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    fields.push([key, item]);
    if (unsafeString(key)) plain = false;
  }
  if (fields.length === 1 && (fields[0] as [string, unknown])[0].startsWith('$')) plain = false;
  if (!plain) return { [ENTRIES_TAG]: fields.map(([key, item]) => [encodeString(key), item]) };
  const out: Record<string, unknown> = {};
  for (const [key, item] of fields) defineField(out, key, item);
  return out;
}

/**
 * Sets an own, enumerable field of a plain object, `__proto__` included. An assignment is the fast
 * path; it would set the prototype for `__proto__` and call a setter that something defined on
 * `Object.prototype`, so a key found there is defined instead.
 */
export function defineField(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key in Object.prototype) {
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

function decodeValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decodeValue);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length === 1) {
    const tagged = decodeTag(keys[0] as string, record[keys[0] as string]);
    if (tagged !== NOT_A_TAG) return tagged;
  }
  const out: Record<string, unknown> = {};
  for (const key of keys) defineField(out, key, decodeValue(record[key]));
  return out;
}

const NOT_A_TAG = Symbol('not a tag');

function decodeTag(tag: string, body: unknown): unknown {
  switch (tag) {
    case DATE_TAG:
      return typeof body === 'string' ? new Date(body) : NOT_A_TAG;
    case NUMBER_TAG:
      switch (body) {
        case 'NaN':
          return Number.NaN;
        case 'Infinity':
          return Number.POSITIVE_INFINITY;
        case '-Infinity':
          return Number.NEGATIVE_INFINITY;
        case '-0':
          return -0;
        default:
          return NOT_A_TAG;
      }
    case STRING_TAG: {
      const text = decodeString(body);
      return text === undefined ? NOT_A_TAG : text;
    }
    case ENTRIES_TAG: {
      if (!Array.isArray(body)) return NOT_A_TAG;
      const fields: [string, unknown][] = [];
      for (const pair of body) {
        if (!Array.isArray(pair) || pair.length !== 2) return NOT_A_TAG;
        const key = typeof pair[0] === 'string' ? pair[0] : decodeTaggedString(pair[0]);
        if (key === undefined) return NOT_A_TAG;
        fields.push([key, pair[1]]);
      }
      const out: Record<string, unknown> = {};
      for (const [key, item] of fields) defineField(out, key, decodeValue(item));
      return out;
    }
    default:
      return NOT_A_TAG;
  }
}

function decodeTaggedString(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== STRING_TAG) return undefined;
  return decodeString((value as Record<string, unknown>)[STRING_TAG]);
}

function decodeString(pieces: unknown): string | undefined {
  if (!Array.isArray(pieces)) return undefined;
  let text = '';
  for (const piece of pieces) {
    if (typeof piece === 'string') text += piece;
    else if (typeof piece === 'number' && Number.isInteger(piece) && piece >= 0 && piece <= 0xffff) {
      text += String.fromCharCode(piece);
    } else return undefined;
  }
  return text;
}

/** The earliest and latest entry timestamps every store holds (MySQL's DATETIME sets the bounds). */
export const MIN_TIMESTAMP = Date.UTC(1000, 0, 1);
export const MAX_TIMESTAMP = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * Rejects, before anything is written, an entry some store could not keep exactly, with the same
 * error on every store: a timestamp that is not a valid Date between the years 1000 and 9999, or
 * an entity type, id, actor, reason or transaction id holding a lone UTF-16 surrogate or a NUL
 * (text columns and BSON strings are UTF-8, which has no code for either; PostgreSQL's text has
 * no NUL). Snapshots and metadata need no check: they are encoded losslessly.
 *
 * ```ts
 * assertStorable(entry); // InvalidEntityError for { …, actor: 'bad\ud800' }
 * ```
 */
export function assertStorable(entry: HistoryEntry): void {
  const time = entry.timestamp;
  if (!(time instanceof Date) || !(time.getTime() >= MIN_TIMESTAMP && time.getTime() <= MAX_TIMESTAMP)) {
    throw new InvalidEntityError(
      `The history entry of ${entry.entityType} ${entry.entityId} v${entry.version} has the timestamp ` +
        `${time instanceof Date ? dateText(time) : String(time)}; history stores keep valid Dates between ` +
        "1000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. Fix the clock (or the entity's timestamp field).",
      entry.entityType,
    );
  }
  for (const field of ['entityType', 'entityId', 'actor', 'reason', 'txId'] as const) {
    const text = entry[field];
    if (typeof text === 'string' && unsafeString(text)) {
      const what = LONE_SURROGATE.test(text) ? 'a lone UTF-16 surrogate' : 'a NUL character (U+0000)';
      throw new InvalidEntityError(
        `The history entry's ${field} ${JSON.stringify(text)} holds ${what}, which history stores cannot keep ` +
          '(their text is UTF-8). Use well-formed text without NUL characters.',
        entry.entityType,
      );
    }
  }
}

/**
 * Whether BSON holds `value` exactly as it is: no string or key with a lone surrogate, no key with
 * a NUL, a leading `$` or a `.` (which MongoDB servers restrict), no invalid Date. MongoDB
 * stores what fails this as `encodeJson` text instead.
 */
export function bsonExact(value: unknown): boolean {
  if (typeof value === 'string') return !LONE_SURROGATE.test(value);
  if (value === null || typeof value !== 'object') return true;
  if (value instanceof Date) return !Number.isNaN(value.getTime());
  if (Array.isArray(value)) return value.every(bsonExact);
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return true; // a BSON type (ObjectId, …)
  for (const key of Object.keys(value)) {
    if (unsafeString(key) || key.startsWith('$') || key.includes('.')) return false;
    if (!bsonExact((value as Record<string, unknown>)[key])) return false;
  }
  return true;
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

/**
 * Insert parameters for an entry; JSON columns as `encodeJson` text, the timestamp as a Date.
 * Throws `InvalidEntityError` for an entry no store can keep exactly (see `assertStorable`).
 */
export function entryToParams(entry: HistoryEntry): unknown[] {
  assertStorable(entry);
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
