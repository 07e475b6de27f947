import { type CommitInFlight, EventHistoryError, HistoryWriteError } from '../errors.js';
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
import {
  type CommitOutcome,
  type CommitOutcomeOptions,
  type CommitOutcomeReader,
  outcomeFromEntry,
  pause,
} from '../history/commit-outcome.js';
import type {
  AnyHistoryEntry,
  ChainHead,
  EntityIdOptions,
  EntityTypeOf,
  EntityTypes,
  HistoryEntry,
  HistoryReader,
  HistoryWriter,
  ListOptions,
  ReadOptions,
  SnapshotOf,
} from '../history/entry.js';
import { HEAD_COLUMNS, type HeadRow, headParams, headsTableOf, rowToHead } from '../history/heads.js';
import { assertIdentifier } from '../history/identifier.js';
import { idBounds, typedAs } from '../history/reader.js';
import { HistoryStoreBase, versionTaken } from '../history/store-base.js';
import { type FinalStatement, finalStatementSink } from '../transactions/final-statement.js';
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
  /**
   * Whether `save`, called for a decorated call whose transaction (or savepoint) the pg adapter
   * ends, hands its INSERT to the adapter to send with the COMMIT (or RELEASE SAVEPOINT) in one
   * round trip. Default `true`. Turn it off when a subclass's `save` reads the history table
   * after `super.save` inside the transaction: a deferred row is not there yet.
   */
  readonly sendWithCommit?: boolean;
  /**
   * Where reads go (`list`, `page`, `changes`, `at`, `asOf`, `latest` without a session,
   * `byTransaction`): a pool on a streaming standby, say, to keep history reads off the
   * primary. Default: `connection`. Writes, `ensureSchema`, reads through a session and
   * `commitOutcome` always use `connection`. A standby replays the primary's WAL a moment behind
   * (asynchronous replication: usually milliseconds, unbounded under load or when replay is
   * paused), so reads there can miss the newest commits: `latest` may return the version before the
   * one just written, `at` undefined for it, `asOf(now)` an older entry. Read through the primary (or
   * with the session) whatever must see your own last write.
   */
  readonly readConnection?: PostgresQueryable;
}

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
const JSON_COLUMNS: ReadonlySet<string> = new Set(['snapshot', 'metadata']);
/** How the INSERT reads each parameter: strings arrive as UTF-8 bytes, numbers and the timestamp as text. */
const NOT_TEXT: Readonly<Record<string, string>> = {
  version: 'integer',
  timestamp: 'timestamptz',
  schema_version: 'integer',
};

/** The SQL a store runs, built once from its table name. */
interface Statements {
  readonly createTable: string;
  readonly createIndex: string;
  readonly createTxIndex: string;
  readonly columnsPresent: string;
  readonly addColumns: (missing: readonly string[]) => string;
  readonly insert: string;
  readonly list: string;
  readonly listDesc: string;
  readonly byTransaction: string;
  readonly at: string;
  readonly asOf: string;
  readonly latest: string;
  readonly entityTypes: string;
  readonly entityIds: string;
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
export class PostgresHistoryStore<M extends EntityTypes = Record<string, unknown>>
  extends HistoryStoreBase<M>
  implements HistoryWriter<PostgresQueryable>, HistoryReader<M>, CommitOutcomeReader
{
  /** The connection writes without a session go through (and reads, unless `readConnection` is given). */
  readonly connection: PostgresQueryable;
  /** The connection reads without a session go through: `options.readConnection`, else `connection`. */
  readonly readConnection: PostgresQueryable;
  /** The history table's name as given (validated). */
  readonly table: string;
  readonly #sql: Statements;
  readonly #sendWithCommit: boolean;

  constructor(connection: PostgresQueryable, options: PostgresHistoryStoreOptions = {}) {
    super();
    if (connection === null || typeof connection !== 'object' || typeof connection.query !== 'function') {
      throw new TypeError(
        'PostgresHistoryStore needs a connection with query(text, params): a pg Pool, Client or PoolClient, or a PGlite instance.',
      );
    }
    this.connection = connection;
    const read = options.readConnection ?? connection;
    if (read === null || typeof read !== 'object' || typeof read.query !== 'function') {
      throw new TypeError(
        'PostgresHistoryStore readConnection needs query(text, params): a pg Pool on the standby, say.',
      );
    }
    this.readConnection = read;
    this.table = assertIdentifier(options.table ?? 'entity_history', 'PostgresHistoryStore table');
    this.#sql = statements(this.table);
    this.#sendWithCommit = options.sendWithCommit !== false;
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
   * An entry that cannot be encoded (metadata or a snapshot holding a BigInt, a cycle or an
   * invalid Date; an invalid timestamp) is a `HistoryWriteError`, whichever way it is written.
   * Every value is a bind parameter (text), never part of the SQL.
   *
   * When a decorated call on a pg client is writing its history and the pg adapter ends that
   * call's transaction or savepoint, the INSERT is handed to the adapter instead of being sent,
   * and travels with the COMMIT (or RELEASE SAVEPOINT) in one round trip; its failure then fails
   * the call as it would have here. A subclass that overrides `save` and calls `super.save` keeps
   * this; reads of the history table made inside `save` after `super.save` do not see the
   * deferred row (turn it off with `{ sendWithCommit: false }`).
   *
   * A chained entry's head (see `ChainHead`) is upserted right after, through the same session
   * and so in the same transaction.
   *
   * ```ts
   * await history.save(entry, client);
   * ```
   */
  async save(entry: HistoryEntry, session?: PostgresQueryable): Promise<void> {
    const values = insertValues(entry);
    const through = session == null ? this.connection : ((await connectionOf(session)) as PostgresQueryable);
    if (typeof through?.query !== 'function') {
      throw new TypeError(
        'PostgresHistoryStore.save was given a session without query(text, params). Pass a pg client or PGlite ' +
          '(or its transaction), the session of the decorated call.',
      );
    }
    const sink = session == null || !this.#sendWithCommit ? undefined : finalStatementSink(through);
    if (sink !== undefined) {
      sink({ text: this.#sql.insert, values });
      // A chained entry's head travels with it, in the same round trip and transaction.
      if (entry.hash !== undefined) sink(this.#headStatement(entry));
      return;
    }
    try {
      await through.query(this.#sql.insert, values);
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
    await through.query(text, [...values]);
  }

  /** The head upsert of a chained entry, as a parameterized statement (text as UTF-8 bytes, as the INSERT's). */
  #headStatement(entry: HistoryEntry): FinalStatement {
    return { text: this.#sql.upsertHead, values: headParams(headOf(entry) as ChainHead).map(toParam) };
  }

  /**
   * The entity's chain head (see `ChainHead`), or `undefined` when it has none or the heads
   * table does not exist (created by `ensureSchema`).
   *
   * ```ts
   * const head = await history.head('Order', '42'); // { version: 3, hash: '…' }
   * ```
   */
  async head(entityType: EntityTypeOf<M>, entityId: string): Promise<ChainHead | undefined> {
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
   * The entity's entries in ascending version order, within the inclusive bounds of `opts`.
   *
   * ```ts
   * const lastTwo = await history.list('Order', '42', { fromVersion: 3, limit: 2 });
   * ```
   */
  async list<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ListOptions = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>>[]> {
    const from = clamp(Math.ceil(opts.fromVersion ?? INT_MIN));
    const to = clamp(Math.floor(opts.toVersion ?? INT_MAX));
    const limit = opts.limit === undefined ? null : Math.max(0, Math.trunc(opts.limit));
    const sql = opts.order === 'desc' ? this.#sql.listDesc : this.#sql.list;
    return typedAs(await this.#rows(sql, [entityType, entityId, from, to, limit]));
  }

  /**
   * Every entry one transaction wrote, across entity types, ordered by entity type, id and
   * version. Served by the `tx_id` index.
   *
   * ```ts
   * const together = await history.byTransaction(entry.txId);
   * ```
   */
  async byTransaction(txId: string): Promise<AnyHistoryEntry<M>[]> {
    return typedAs(await this.#rows(this.#sql.byTransaction, [txId]));
  }

  /**
   * The entity types with history, each once, in code point order (the "C" collation, whatever
   * the database's).
   *
   * ```ts
   * const types = await history.entityTypes(); // ['Invoice', 'Order']
   * ```
   */
  async entityTypes(): Promise<string[]> {
    return this.#values(this.#sql.entityTypes, []);
  }

  /**
   * The ids of `entityType` with history, each once, in code point order (the "C" collation),
   * filtered by prefix and paged by `after` and `limit` (see `EntityIdOptions`).
   *
   * ```ts
   * const ids = await history.entityIds('Order', { prefix: 'A-', limit: 20 });
   * ```
   */
  async entityIds(entityType: string, opts: EntityIdOptions = {}): Promise<string[]> {
    const { after, prefix, limit } = idBounds(opts);
    return this.#values(this.#sql.entityIds, [entityType, after, prefix, limit ?? null]);
  }

  async #values(sql: string, params: unknown[]): Promise<string[]> {
    const { rows } = await this.connection.query(sql, params);
    return (rows as { value: string }[]).map((row) => row.value);
  }

  /**
   * The entry of one version, or `undefined`.
   *
   * ```ts
   * const third = await history.at('Order', '42', 3);
   * ```
   */
  async at<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    version: number,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    if (!Number.isInteger(version) || version < INT_MIN || version > INT_MAX) return undefined;
    return typedAs((await this.#rows(this.#sql.at, [entityType, entityId, version]))[0]);
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
  async asOf<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    time: Date,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    if (!(time instanceof Date) || Number.isNaN(time.getTime())) {
      throw new TypeError(`PostgresHistoryStore.asOf needs a valid Date, got ${String(time)}.`);
    }
    return typedAs((await this.#rows(this.#sql.asOf, [entityType, entityId, time]))[0]);
  }

  /**
   * The entity's highest version, or `undefined`. With `{ session }`, read through that session,
   * inside its open transaction (what `onUnchanged: 'skip'` and `chain: true` use).
   *
   * ```ts
   * const current = await history.latest('Order', '42');
   * ```
   */
  async latest<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ReadOptions<PostgresQueryable> = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const session = opts.session == null ? undefined : ((await connectionOf(opts.session)) as PostgresQueryable);
    return typedAs((await this.#rows(this.#sql.latest, [entityType, entityId], session))[0]);
  }

  /**
   * Whether a call whose COMMIT was in flight when its connection broke committed (see
   * `commitOutcome`): asks `pg_xact_status` about the call's txId (a PostgreSQL transaction id,
   * the pg adapter's default), waiting while the transaction is still in progress, and checks the
   * entry at the call's key. With random txIds (`transactionId: 'random'`) only a commit can be
   * proven. Runs on the store's connection, which must reach the primary.
   *
   * ```ts
   * const { status } = await history.commitOutcome(error.inFlight);
   * ```
   */
  async commitOutcome(inFlight: CommitInFlight, options: CommitOutcomeOptions = {}): Promise<CommitOutcome> {
    // On the primary: a standby may not have replayed the commit yet.
    const entryAt = async () =>
      (await this.#rows(this.#sql.at, [inFlight.entityType, inFlight.entityId, inFlight.version], this.connection))[0];
    if (!/^[0-9]{1,20}$/.test(inFlight.txId)) return outcomeFromEntry(inFlight, await entryAt(), undefined);
    const deadline = Date.now() + (options.waitMs ?? 30_000);
    for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
      let status: string | null;
      try {
        const { rows } = await this.connection.query('SELECT pg_xact_status($1::xid8) AS status', [inFlight.txId]);
        status = (rows[0] as { status: string | null }).status;
      } catch (error) {
        // 22023: the id is ahead of this server's counter, so it never ran here (a promoted standby
        // the transaction never reached).
        if ((error as { code?: unknown }).code !== '22023') throw error;
        return outcomeFromEntry(inFlight, await entryAt(), `transaction ${inFlight.txId} never ran on this server`);
      }
      if (status === 'in progress') {
        if (Date.now() >= deadline) {
          return { status: 'unknown', reason: `transaction ${inFlight.txId} is still in progress: ask again later` };
        }
        await pause(wait);
        continue;
      }
      const entry = await entryAt();
      if (status === 'committed' && entry?.txId !== inFlight.txId) {
        // The id was taken again by another transaction after a failover (or the entry is not the
        // call's): the entry at the key decides.
        return outcomeFromEntry(inFlight, entry, `transaction ${inFlight.txId} did not write it`);
      }
      return outcomeFromEntry(
        inFlight,
        entry,
        status === 'aborted'
          ? `transaction ${inFlight.txId} was rolled back`
          : `transaction ${inFlight.txId} ended long ago (its status is no longer kept)`,
      );
    }
  }

  async #rows(sql: string, params: unknown[], session?: PostgresQueryable): Promise<HistoryEntry[]> {
    const { rows } = await (session ?? this.readConnection).query(sql, params);
    return (rows as HistoryRow[]).map(rowToEntry);
  }
}

/**
 * The INSERT's parameters. Strings travel as their UTF-8 bytes in binary format (a `bytea` the
 * SQL turns back into text with `convert_from(…, 'UTF8')`), which no session setting reinterprets:
 * node-postgres always writes UTF-8, and a text parameter would be read in the session's
 * `client_encoding` (SJIS, BIG5, GBK, LATIN1 … after a `SET client_encoding`). Numbers and the
 * timestamp travel as ASCII text, read alike in every encoding.
 */
function insertValues(entry: HistoryEntry): (string | Uint8Array | null)[] {
  let params: unknown[];
  try {
    // An entry no store keeps (a NUL or lone surrogate in a key or context field, a timestamp out
    // of range) is the codec's InvalidEntityError, as on every store.
    params = entryToParams(entry);
  } catch (error) {
    if (error instanceof EventHistoryError) throw error;
    throw new HistoryWriteError(
      entry.entityType,
      entry.entityId,
      entry.version,
      new TypeError(
        `its snapshot or metadata cannot be encoded as JSON (${(error as Error)?.message ?? String(error)}); ` +
          'keep them plain data: no BigInt, no cycles',
        { cause: error },
      ),
    );
  }
  return params.map(toParam);
}

function toParam(value: unknown): string | Uint8Array | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return timestampText(value);
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : String(value);
}

/**
 * A Date as PostgreSQL reads a timestamptz: ISO 8601 in UTC, years before 1 as `… BC` (year 0 is
 * 1 BC), as node-postgres's `dateToStringUTC`.
 */
function timestampText(date: Date): string {
  let year = date.getUTCFullYear();
  const bc = year < 1;
  if (bc) year = 1 - year;
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return (
    `${pad(year, 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}T` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.` +
    `${pad(date.getUTCMilliseconds(), 3)}+00:00${bc ? ' BC' : ''}`
  );
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
  const values = HISTORY_COLUMNS.map((column, i) => {
    const type = NOT_TEXT[column];
    if (type !== undefined) return `$${i + 1}::${type}`;
    const text = `convert_from($${i + 1}::bytea, 'UTF8')`;
    return JSON_COLUMNS.has(column) ? `${text}::jsonb` : text;
  });
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
    entityTypes: `SELECT DISTINCT "entity_type" COLLATE "C" AS "value" FROM ${t} ORDER BY 1`,
    entityIds:
      `SELECT DISTINCT "entity_id" COLLATE "C" AS "value" FROM ${t} WHERE "entity_type" = $1 ` +
      'AND ($2::text IS NULL OR "entity_id" COLLATE "C" > $2::text) AND starts_with("entity_id", $3::text) ' +
      'ORDER BY 1 LIMIT $4::bigint',
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
      `INSERT INTO ${h} (${columns}) VALUES (convert_from($1::bytea, 'UTF8'), convert_from($2::bytea, 'UTF8'), ` +
      "$3::integer, convert_from($4::bytea, 'UTF8'), convert_from($5::bytea, 'UTF8')) " +
      'ON CONFLICT ("entity_type", "entity_id") ' +
      'DO UPDATE SET "version" = EXCLUDED."version", "hash" = EXCLUDED."hash", "mac" = EXCLUDED."mac"',
    head: `SELECT ${columns} FROM ${h} WHERE "entity_type" = $1 AND "entity_id" = $2`,
  };
}
