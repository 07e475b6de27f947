import { headOf } from '../history/chain.js';
import {
  ADDED_COLUMNS,
  entryToParams,
  HISTORY_COLUMNS,
  type HistoryRow,
  QUOTED_COLUMNS,
  rowToEntry,
  sqlReads,
} from '../history/codec.js';
import type {
  ChainHead,
  HistoryEntry,
  HistoryReader,
  HistoryWriter,
  ListOptions,
  ReadOptions,
} from '../history/entry.js';
import { HEAD_COLUMNS, type HeadRow, headParams, headsTableOf, rowToHead } from '../history/heads.js';
import { assertIdentifier } from '../history/identifier.js';
import { HistoryStoreBase, versionTaken } from '../history/store-base.js';
import { connectionOf } from '../transactions/registry.js';
import { isUniqueViolation } from '../transactions/sql-state.js';

/**
 * What the store queries through: a node-postgres `Pool`, `Client` or `PoolClient`, a PGlite
 * instance, or the `tx` of PGlite's `transaction()`. Only `query(text, params)` is used.
 *
 * ```ts
 * const connection: PostgresQueryable = new Pool({ connectionString });
 * ```
 */
export interface PostgresQueryable {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/**
 * Options of {@link PostgresHistoryStore}.
 *
 * ```ts
 * new PostgresHistoryStore(pool, { table: 'audit.order_history' });
 * ```
 */
export interface PostgresHistoryStoreOptions {
  /** The history table, optionally schema-qualified. Default `entity_history`. */
  readonly table?: string;
}

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
const JSON_COLUMNS: ReadonlySet<string> = new Set(['snapshot', 'metadata']);

/** The SQL a store runs, built once from its table name. */
interface Statements {
  readonly createTable: string;
  readonly createIndex: string;
  readonly createTxIndex: string;
  readonly columnsPresent: string;
  readonly addColumns: (missing: readonly string[]) => string;
  readonly insert: string;
  /** `INSERT INTO t (columns)`, the start of `statementFor`'s statement. */
  readonly insertInto: string;
  readonly list: string;
  readonly listDesc: string;
  readonly byTransaction: string;
  readonly at: string;
  readonly asOf: string;
  readonly latest: string;
  /** The chain heads table (`<table>_heads`): create, upsert one, read one. */
  readonly createHeads: string;
  readonly upsertHead: string;
  readonly head: string;
}

/**
 * History in a PostgreSQL table, through node-postgres or PGlite. Entries are written through
 * the session the decorated call runs in (so they commit or roll back with the entity write),
 * else through the store's own connection; reads use the store's connection.
 *
 * The table (see `ensureSchema`) has the primary key (entity_type, entity_id, version), which
 * rejects a second writer of one version and serves `list`, `at` and `latest`, and an index on
 * (entity_type, entity_id, timestamp) for `asOf` and one on tx_id for `byTransaction`. Snapshots and metadata are JSONB (Dates kept
 * as `{ "$date": … }`), timestamps `timestamptz`. Needs PostgreSQL 13 or later.
 *
 * Give it a `Pool` where you have one. A single `Client` or a PGlite instance is one connection:
 * reads made while a transaction is open on it run inside that transaction; inside PGlite's
 * `transaction()` callback, read through a store built on its `tx`.
 *
 * ```ts
 * import { PostgresHistoryStore } from 'event-history/postgres';
 * const history = new PostgresHistoryStore(pool, { table: 'order_history' });
 * await history.ensureSchema();
 * @Versioned() @HistoryTracked(history) class OrderService { ... }
 * await history.list('Order', '42');
 * ```
 */
export class PostgresHistoryStore extends HistoryStoreBase implements HistoryWriter<PostgresQueryable>, HistoryReader {
  /** The connection reads (and writes without a session) go through. */
  readonly connection: PostgresQueryable;
  /** The history table's name as given (validated). */
  readonly table: string;
  readonly #sql: Statements;

  constructor(connection: PostgresQueryable, options: PostgresHistoryStoreOptions = {}) {
    super();
    if (connection === null || typeof connection !== 'object' || typeof connection.query !== 'function') {
      throw new TypeError(
        'PostgresHistoryStore needs a connection with query(text, params): a pg Pool, Client or PoolClient, or a PGlite instance.',
      );
    }
    this.connection = connection;
    this.table = assertIdentifier(options.table ?? 'entity_history', 'PostgresHistoryStore table');
    this.#sql = statements(this.table);
  }

  /**
   * Creates the table and its indexes when they do not exist, and brings a table created by an
   * earlier version up to date (adds the `schema_version`, `hash` and `prev_hash` columns and the
   * `tx_id` index), and creates the chain heads table `<table>_heads`; safe to call at every start.
   *
   * ```ts
   * await new PostgresHistoryStore(pool).ensureSchema();
   * ```
   */
  async ensureSchema(): Promise<void> {
    await this.#create(this.#sql.createTable);
    const { rows } = await this.connection.query(this.#sql.columnsPresent, [quote(this.table)]);
    const present = new Set((rows as { name: string }[]).map((row) => row.name));
    const missing = ADDED_COLUMNS.map((column) => column.name).filter((name) => !present.has(name));
    // Only ALTER when a column is missing: ALTER TABLE locks the table even when it changes nothing.
    if (missing.length > 0) await this.#create(this.#sql.addColumns(missing));
    await this.#create(this.#sql.createIndex);
    await this.#create(this.#sql.createTxIndex);
    await this.#create(this.#sql.createHeads);
  }

  async #create(sql: string): Promise<void> {
    try {
      await this.connection.query(sql);
    } catch (error) {
      // Two processes creating the same table at once: one loses on the catalog's unique key.
      if (!isCreateRace(error)) throw error;
      await this.connection.query(sql);
    }
  }

  /**
   * Inserts one entry through `session` when given (joining its transaction), else through the
   * store's connection. With a session, a duplicate version is the driver's unique-violation
   * error (the call maps it to `VersionConflictError`); without one, it is a `VersionConflictError`.
   * A chained entry's head (see `ChainHead`) is upserted right after, through the same session
   * and so in the same transaction.
   *
   * ```ts
   * await history.save(entry, client);
   * ```
   */
  async save(entry: HistoryEntry, session?: PostgresQueryable): Promise<void> {
    const through = session == null ? this.connection : ((await connectionOf(session)) as PostgresQueryable);
    if (typeof through?.query !== 'function') {
      throw new TypeError(
        'PostgresHistoryStore.save was given a session without query(text, params). Pass a pg client or PGlite ' +
          '(or its transaction), the session of the decorated call.',
      );
    }
    try {
      await through.query(this.#sql.insert, entryToParams(entry));
    } catch (error) {
      if (session == null && isUniqueViolation(error)) {
        throw versionTaken(entry, error);
      }
      throw error;
    }
    if (entry.hash !== undefined) await this.#saveHead(entry, through);
  }

  /** Upserts the chain head a chained entry carries, through the same session (and transaction) as its INSERT. */
  async #saveHead(entry: HistoryEntry, through: PostgresQueryable): Promise<void> {
    const { text, values } = this.#headStatement(entry);
    await through.query(text, values);
  }

  /** The head upsert of a chained entry, as a parameterized statement. */
  #headStatement(entry: HistoryEntry): { text: string; values: unknown[] } {
    return { text: this.#sql.upsertHead, values: headParams(headOf(entry) as ChainHead) };
  }

  /**
   * The entity's chain head (see `ChainHead`), or `undefined` when it has none or the heads
   * table does not exist (created by `ensureSchema`).
   *
   * ```ts
   * const head = await history.head('Order', '42'); // { version: 3, hash: '…' }
   * ```
   */
  async head(entityType: string, entityId: string): Promise<ChainHead | undefined> {
    try {
      const { rows } = await this.connection.query(this.#sql.head, [entityType, entityId]);
      const row = (rows as HeadRow[])[0];
      return row === undefined ? undefined : rowToHead(row);
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code === '42P01') return undefined;
      throw error;
    }
  }

  /**
   * The INSERT of `entry` with its values inlined as escaped literals, for the pg adapter to send
   * in the same round trip as COMMIT (see `TransactionAdapter.commitWith`). `undefined` for another
   * dialect, or for a value a literal cannot carry safely (a NUL character, a number that is not a
   * safe integer, an invalid Date): the pipeline then calls `save`, whose error reports it.
   *
   * ```ts
   * history.statementFor(entry, 'postgres'); // INSERT INTO "entity_history" (…) VALUES ('Order', '42', 3, …)
   * ```
   */
  statementFor(entry: HistoryEntry, dialect: string): string | undefined {
    if (dialect !== 'postgres') return undefined;
    const values: string[] = [];
    const params = entryToParams(entry);
    for (let i = 0; i < params.length; i++) {
      const literal = sqlLiteral(params[i]);
      if (literal === undefined) return undefined;
      values.push(JSON_COLUMNS.has(HISTORY_COLUMNS[i] as string) && literal !== 'NULL' ? `${literal}::jsonb` : literal);
    }
    const insert = `${this.#sql.insertInto} VALUES (${values.join(', ')})`;
    if (entry.hash === undefined) return insert;
    // A chained entry's head travels in the same query, inside the same transaction.
    const head = this.#headStatement(entry);
    const literals = head.values.map(sqlLiteral);
    if (literals.includes(undefined)) return undefined;
    return `${insert};\n${head.text.replace(/\$(\d+)/g, (_, n: string) => literals[Number(n) - 1] as string)}`;
  }

  /**
   * The entity's entries in ascending version order, within the inclusive bounds of `opts`.
   *
   * ```ts
   * const lastTwo = await history.list('Order', '42', { fromVersion: 3, limit: 2 });
   * ```
   */
  async list(entityType: string, entityId: string, opts: ListOptions = {}): Promise<HistoryEntry[]> {
    const from = clamp(Math.ceil(opts.fromVersion ?? INT_MIN));
    const to = clamp(Math.floor(opts.toVersion ?? INT_MAX));
    const limit = opts.limit === undefined ? null : Math.max(0, Math.trunc(opts.limit));
    const sql = opts.order === 'desc' ? this.#sql.listDesc : this.#sql.list;
    return this.#rows(sql, [entityType, entityId, from, to, limit]);
  }

  /**
   * Every entry one transaction wrote, across entity types, ordered by entity type, id and
   * version. Served by the `tx_id` index.
   *
   * ```ts
   * const together = await history.byTransaction(entry.txId);
   * ```
   */
  byTransaction(txId: string): Promise<HistoryEntry[]> {
    return this.#rows(this.#sql.byTransaction, [txId]);
  }

  /**
   * The entry of one version, or `undefined`.
   *
   * ```ts
   * const third = await history.at('Order', '42', 3);
   * ```
   */
  async at(entityType: string, entityId: string, version: number): Promise<HistoryEntry | undefined> {
    if (!Number.isInteger(version) || version < INT_MIN || version > INT_MAX) return undefined;
    return (await this.#rows(this.#sql.at, [entityType, entityId, version]))[0];
  }

  /**
   * The entry in force at `time`: the one with the latest timestamp not after `time` (ties: the
   * highest version), read from the (entity type, id, timestamp) index in constant time however
   * long the history. The highest version not after `time` whenever timestamps rise with
   * versions, as they do for entries the library writes.
   *
   * ```ts
   * const atNewYear = await history.asOf('Order', '42', new Date('2026-01-01'));
   * ```
   */
  async asOf(entityType: string, entityId: string, time: Date): Promise<HistoryEntry | undefined> {
    if (!(time instanceof Date) || Number.isNaN(time.getTime())) {
      throw new TypeError(`PostgresHistoryStore.asOf needs a valid Date, got ${String(time)}.`);
    }
    return (await this.#rows(this.#sql.asOf, [entityType, entityId, time]))[0];
  }

  /**
   * The entity's highest version, or `undefined`. With `{ session }`, read through that session,
   * inside its open transaction (what `onUnchanged: 'skip'` and `chain: true` use).
   *
   * ```ts
   * const current = await history.latest('Order', '42');
   * ```
   */
  async latest(
    entityType: string,
    entityId: string,
    opts: ReadOptions<PostgresQueryable> = {},
  ): Promise<HistoryEntry | undefined> {
    const session = opts.session == null ? undefined : ((await connectionOf(opts.session)) as PostgresQueryable);
    return (await this.#rows(this.#sql.latest, [entityType, entityId], session))[0];
  }

  async #rows(sql: string, params: unknown[], session?: PostgresQueryable): Promise<HistoryEntry[]> {
    const { rows } = await (session ?? this.connection).query(sql, params);
    return (rows as HistoryRow[]).map(rowToEntry);
  }
}

/**
 * A value as a PostgreSQL literal: quotes doubled and, when there is a backslash, the escape-string
 * form with backslashes doubled (as node-postgres's `escapeLiteral`), which reads the same whatever
 * `standard_conforming_strings` says. `undefined` for what a literal cannot carry.
 */
const NEEDS_ESCAPE = /['\\\0]/;

function sqlLiteral(value: unknown): string | undefined {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
  // A Date as ISO 8601 in UTC; years outside 0–9999 (a sign, six digits) are left to the driver.
  const text = value instanceof Date ? (Number.isNaN(value.getTime()) ? undefined : value.toISOString()) : value;
  if (typeof text !== 'string') return undefined;
  if (value instanceof Date && text.length !== 24) return undefined;
  // One scan for the common case: nothing to escape.
  if (!NEEDS_ESCAPE.test(text)) return `'${text}'`;
  if (text.includes('\0')) return undefined;
  const quoted = `'${text.replaceAll("'", "''")}'`;
  return text.includes('\\') ? `E${quoted.replaceAll('\\', '\\\\')}` : quoted;
}

function clamp(version: number): number {
  return Math.min(INT_MAX, Math.max(INT_MIN, version));
}

function isCreateRace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === '42P07' || code === '42710';
}

function quote(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

/** An index name derived from the table's, kept within PostgreSQL's 63-byte limit. */
function indexName(table: string, suffix: string): string {
  const base = table.split('.').at(-1) ?? table;
  const name = `${base}_${suffix}`;
  if (name.length <= 63) return name;
  let hash = 0x811c9dc5;
  for (const char of table) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return `${base.slice(0, 63 - suffix.length - 10)}_${hash.toString(16).padStart(8, '0')}_${suffix}`;
}

function statements(table: string): Statements {
  const t = quote(table);
  const values = HISTORY_COLUMNS.map((column, i) => (JSON_COLUMNS.has(column) ? `$${i + 1}::jsonb` : `$${i + 1}`));
  return {
    ...sqlReads(t, (n) => `$${n}`),
    createTable:
      `CREATE TABLE IF NOT EXISTS ${t} (` +
      '"entity_type" text NOT NULL, "entity_id" text NOT NULL, "version" integer NOT NULL, ' +
      `"op" text NOT NULL CHECK ("op" IN ('create', 'update', 'delete')), "timestamp" timestamptz NOT NULL, ` +
      '"snapshot" jsonb NOT NULL, "actor" text, "reason" text, "metadata" jsonb, "tx_id" text, ' +
      '"schema_version" integer, "hash" text, "prev_hash" text, ' +
      'PRIMARY KEY ("entity_type", "entity_id", "version"))',
    createIndex: `CREATE INDEX IF NOT EXISTS "${indexName(table, 'entity_time_idx')}" ON ${t} ("entity_type", "entity_id", "timestamp")`,
    createTxIndex: `CREATE INDEX IF NOT EXISTS "${indexName(table, 'tx_idx')}" ON ${t} ("tx_id")`,
    columnsPresent:
      'SELECT attname::text AS name FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped',
    addColumns: (missing) =>
      `ALTER TABLE ${t} ${ADDED_COLUMNS.filter((column) => missing.includes(column.name))
        .map((column) => `ADD COLUMN IF NOT EXISTS "${column.name}" ${column.type}`)
        .join(', ')}`,
    insert: `INSERT INTO ${t} (${QUOTED_COLUMNS}) VALUES (${values.join(', ')})`,
    insertInto: `INSERT INTO ${t} (${QUOTED_COLUMNS})`,
    ...headStatements(table),
  };
}

/** The chain heads table's statements: one row per chained entity, upserted with each chained entry. */
function headStatements(table: string): Pick<Statements, 'createHeads' | 'upsertHead' | 'head'> {
  const { schema, name } = headsTableOf(table, 63);
  const h = schema === undefined ? `"${name}"` : `"${schema}"."${name}"`;
  const columns = HEAD_COLUMNS.map((column) => `"${column}"`).join(', ');
  return {
    createHeads:
      `CREATE TABLE IF NOT EXISTS ${h} (` +
      '"entity_type" text NOT NULL, "entity_id" text NOT NULL, "version" integer NOT NULL, ' +
      '"hash" text NOT NULL, "mac" text, PRIMARY KEY ("entity_type", "entity_id"))',
    upsertHead:
      `INSERT INTO ${h} (${columns}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT ("entity_type", "entity_id") ` +
      'DO UPDATE SET "version" = EXCLUDED."version", "hash" = EXCLUDED."hash", "mac" = EXCLUDED."mac"',
    head: `SELECT ${columns} FROM ${h} WHERE "entity_type" = $1 AND "entity_id" = $2`,
  };
}
