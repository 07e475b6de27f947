import type { CommitInFlight } from '../errors.js';
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
import { type CommitOutcome, type CommitOutcomeReader, outcomeFromEntry } from '../history/commit-outcome.js';
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
import { connectionOf } from '../transactions/registry.js';
import { isSqliteConflict } from '../transactions/sqlite.js';

/**
 * A prepared statement as the store uses it (better-sqlite3's `Statement`).
 *
 * ```ts
 * const statement: SqliteStatementLike = db.prepare('SELECT 1');
 * ```
 */
export interface SqliteStatementLike {
  run(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/**
 * What the store reads and writes through: a better-sqlite3 `Database`.
 *
 * ```ts
 * const connection: SqliteConnectionLike = new Database('app.db');
 * ```
 */
export interface SqliteConnectionLike {
  prepare(sql: string): SqliteStatementLike;
  exec(sql: string): unknown;
}

/**
 * Options of {@link SqliteHistoryStore}.
 *
 * ```ts
 * new SqliteHistoryStore(db, { table: 'order_history' });
 * ```
 */
export interface SqliteHistoryStoreOptions {
  /** The history table, optionally prefixed with an attached schema (`main.history`). Default `entity_history`. */
  readonly table?: string;
}

const NO_LOWER = Number.MIN_SAFE_INTEGER;
const NO_UPPER = Number.MAX_SAFE_INTEGER;

interface Statements {
  readonly createTable: string;
  readonly createIndex: string;
  readonly createTxIndex: string;
  readonly tableInfo: string;
  readonly addColumn: (name: string, type: string) => string;
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
 * History in a SQLite table, through better-sqlite3. Entries are written through the session
 * the decorated call runs in (the Database it was given, inside the library's transaction), else
 * through the store's own Database; reads use the store's Database.
 *
 * The table (see `ensureSchema`) is keyed by (entity_type, entity_id, version) (`WITHOUT ROWID`,
 * so the key also orders `list`, `at` and `latest`) with an index on (entity_type, entity_id,
 * timestamp) for `asOf` and one on tx_id for `byTransaction`. Snapshots and metadata are JSON text (Dates kept as `{ "$date": … }`),
 * timestamps integer milliseconds since the epoch.
 *
 * ```ts
 * import { SqliteHistoryStore } from 'event-history/sqlite';
 * const db = new Database('app.db', { timeout: 5000 });
 * const history = new SqliteHistoryStore(db);
 * await history.ensureSchema();
 * @Versioned() @HistoryTracked(history) class OrderService { ... }
 * ```
 */
export class SqliteHistoryStore<M extends EntityTypes = Record<string, unknown>>
  extends HistoryStoreBase<M>
  implements HistoryWriter<SqliteConnectionLike>, HistoryReader<M>, CommitOutcomeReader
{
  /** The Database reads (and writes without a session) go through. */
  readonly database: SqliteConnectionLike;
  /** The history table's name as given (validated). */
  readonly table: string;
  readonly #sql: Statements;
  readonly #prepared = new WeakMap<SqliteConnectionLike, Map<string, SqliteStatementLike>>();

  constructor(database: SqliteConnectionLike, options: SqliteHistoryStoreOptions = {}) {
    super();
    if (
      database === null ||
      typeof database !== 'object' ||
      typeof database.prepare !== 'function' ||
      typeof database.exec !== 'function'
    ) {
      throw new TypeError('SqliteHistoryStore needs a better-sqlite3 Database (with prepare and exec).');
    }
    this.database = database;
    this.table = assertIdentifier(options.table ?? 'entity_history', 'SqliteHistoryStore table');
    this.#sql = statements(this.table);
  }

  /**
   * Creates the table and its indexes when they do not exist, and brings a table created by an
   * earlier version up to date (adds the `schema_version`, `hash` and `prev_hash` columns and the
   * `tx_id` index), and creates the chain heads table `<table>_heads`; safe to call at every start.
   *
   * ```ts
   * await new SqliteHistoryStore(db).ensureSchema();
   * ```
   */
  async ensureSchema(): Promise<void> {
    this.database.exec(this.#sql.createTable);
    const present = new Set(
      (this.database.prepare(this.#sql.tableInfo).all() as { name: string }[]).map((column) => column.name),
    );
    for (const column of ADDED_COLUMNS) {
      if (present.has(column.name)) continue;
      try {
        this.database.exec(this.#sql.addColumn(column.name, column.type.toUpperCase()));
      } catch (error) {
        // Another connection added it in the meantime.
        if (!/duplicate column name/i.test((error as Error).message)) throw error;
      }
    }
    this.database.exec(this.#sql.createIndex);
    this.database.exec(this.#sql.createTxIndex);
    this.database.exec(this.#sql.createHeads);
  }

  /**
   * Inserts one entry through `session` when given (inside its transaction), else through the
   * store's Database. With a session, a duplicate version is the driver's constraint error (the
   * call maps it to `VersionConflictError`); without one, it is a `VersionConflictError`.
   * A chained entry's head (see `ChainHead`) is upserted right after, through the same session
   * and so in the same transaction.
   *
   * ```ts
   * await history.save(entry, db);
   * ```
   */
  async save(entry: HistoryEntry, session?: SqliteConnectionLike): Promise<void> {
    const through = session == null ? this.database : ((await connectionOf(session)) as SqliteConnectionLike);
    if (typeof through?.prepare !== 'function') {
      throw new TypeError(
        'SqliteHistoryStore.save was given a session without prepare(sql). Pass the better-sqlite3 Database the ' +
          'decorated call runs on.',
      );
    }
    const params = entryToParams(entry).map((value) => (value instanceof Date ? value.getTime() : value));
    try {
      this.#statement(through, this.#sql.insert).run(...params);
    } catch (error) {
      if (session == null && isSqliteConflict(error)) {
        throw versionTaken(entry, error);
      }
      throw error;
    }
    if (entry.hash !== undefined) this.#saveHead(entry, through);
  }

  /** Upserts the chain head a chained entry carries, through the same Database (and transaction) as its INSERT. */
  #saveHead(entry: HistoryEntry, through: SqliteConnectionLike): void {
    this.#statement(through, this.#sql.upsertHead).run(...headParams(headOf(entry) as ChainHead));
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
    let rows: HeadRow[];
    try {
      rows = this.#statement(this.database, this.#sql.head).all(entityType, entityId) as HeadRow[];
    } catch (error) {
      if (/no such table/i.test((error as Error).message)) return undefined;
      throw error;
    }
    return rows[0] === undefined ? undefined : rowToHead(rows[0]);
  }

  /**
   * The entity's entries in ascending version order, within the inclusive bounds of `opts`.
   *
   * ```ts
   * const firstThree = await history.list('Order', '42', { toVersion: 3 });
   * ```
   */
  async list<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ListOptions = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>>[]> {
    const from = Math.ceil(opts.fromVersion ?? NO_LOWER);
    const to = Math.floor(opts.toVersion ?? NO_UPPER);
    const limit = opts.limit === undefined ? -1 : Math.max(0, Math.trunc(opts.limit));
    const sql = opts.order === 'desc' ? this.#sql.listDesc : this.#sql.list;
    return typedAs(this.#rows(sql, [entityType, entityId, from, to, limit]));
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
    return typedAs(this.#rows(this.#sql.byTransaction, [txId]));
  }

  /**
   * The entity types with history, each once, in code point order (the table's BINARY collation),
   * read from the primary key's index.
   *
   * ```ts
   * const types = await history.entityTypes(); // ['Invoice', 'Order']
   * ```
   */
  async entityTypes(): Promise<string[]> {
    return this.#values(this.#sql.entityTypes, []);
  }

  /**
   * The ids of `entityType` with history, each once, in code point order, filtered by prefix and
   * paged by `after` and `limit` (see `EntityIdOptions`); read from the primary key's index.
   *
   * ```ts
   * const ids = await history.entityIds('Order', { prefix: 'A-', limit: 20 });
   * ```
   */
  async entityIds(entityType: string, opts: EntityIdOptions = {}): Promise<string[]> {
    const { after, prefix, limit } = idBounds(opts);
    return this.#values(this.#sql.entityIds, [entityType, after, after, prefix, prefix, limit ?? -1]);
  }

  #values(sql: string, params: unknown[]): string[] {
    return (this.#statement(this.database, sql).all(...params) as { value: string }[]).map((row) => row.value);
  }

  /**
   * The entry of one version, or `undefined`.
   *
   * ```ts
   * const second = await history.at('Order', '42', 2);
   * ```
   */
  /**
   * Whether a call whose COMMIT was in flight when its database was closed committed (see
   * `commitOutcome`): a plain read of the call's key, final because a SQLite transaction ends
   * with its connection (closing rolls it back; a crashed process's journal is rolled back by
   * the next reader).
   *
   * ```ts
   * const { status } = await history.commitOutcome(error.inFlight);
   * ```
   */
  async commitOutcome(inFlight: CommitInFlight): Promise<CommitOutcome> {
    const entry = await this.at(inFlight.entityType as EntityTypeOf<M>, inFlight.entityId, inFlight.version);
    return outcomeFromEntry(inFlight, entry, 'a SQLite transaction ends with its connection');
  }

  async at<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    version: number,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    if (!Number.isInteger(version)) return undefined;
    return typedAs(this.#rows(this.#sql.at, [entityType, entityId, version])[0]);
  }

  /**
   * The entry in force at `time`: the one with the latest timestamp not after `time` (ties: the
   * highest version), read from the (entity type, id, timestamp) index in constant time however
   * long the history. The highest version not after `time` whenever timestamps rise with
   * versions, as they do for entries the library writes.
   *
   * ```ts
   * const lastWeek = await history.asOf('Order', '42', new Date(Date.now() - 7 * 86_400_000));
   * ```
   */
  async asOf<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    time: Date,
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    if (!(time instanceof Date) || Number.isNaN(time.getTime())) {
      throw new TypeError(`SqliteHistoryStore.asOf needs a valid Date, got ${String(time)}.`);
    }
    return typedAs(this.#rows(this.#sql.asOf, [entityType, entityId, time.getTime()])[0]);
  }

  /**
   * The entity's highest version, or `undefined`. With `{ session }`, read through that Database,
   * inside its open transaction (what `onUnchanged: 'skip'` and `chain: true` use).
   *
   * ```ts
   * const current = await history.latest('Order', '42');
   * ```
   */
  async latest<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ReadOptions<SqliteConnectionLike> = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const session = opts.session == null ? undefined : ((await connectionOf(opts.session)) as SqliteConnectionLike);
    return typedAs(this.#rows(this.#sql.latest, [entityType, entityId], session)[0]);
  }

  #rows(sql: string, params: unknown[], session?: SqliteConnectionLike): HistoryEntry[] {
    return (this.#statement(session ?? this.database, sql).all(...params) as HistoryRow[]).map(rowToEntry);
  }

  #statement(database: SqliteConnectionLike, sql: string): SqliteStatementLike {
    let cache = this.#prepared.get(database);
    if (cache === undefined) {
      cache = new Map();
      this.#prepared.set(database, cache);
    }
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = database.prepare(sql);
      cache.set(sql, statement);
    }
    return statement;
  }
}

function quote(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

function statements(table: string): Statements {
  const t = quote(table);
  const parts = table.split('.');
  const base = parts.at(-1) ?? table;
  const indexOf = (suffix: string) =>
    parts.length === 2 ? `"${parts[0]}"."${base}_${suffix}"` : `"${base}_${suffix}"`;
  const index = indexOf('entity_time_idx');
  return {
    ...sqlReads(t, () => '?'),
    createTable:
      `CREATE TABLE IF NOT EXISTS ${t} (` +
      '"entity_type" TEXT NOT NULL, "entity_id" TEXT NOT NULL, "version" INTEGER NOT NULL, ' +
      `"op" TEXT NOT NULL CHECK ("op" IN ('create', 'update', 'delete')), "timestamp" INTEGER NOT NULL, ` +
      '"snapshot" TEXT NOT NULL, "actor" TEXT, "reason" TEXT, "metadata" TEXT, "tx_id" TEXT, ' +
      '"schema_version" INTEGER, "hash" TEXT, "prev_hash" TEXT, ' +
      'PRIMARY KEY ("entity_type", "entity_id", "version")) WITHOUT ROWID',
    createIndex: `CREATE INDEX IF NOT EXISTS ${index} ON "${base}" ("entity_type", "entity_id", "timestamp")`,
    createTxIndex: `CREATE INDEX IF NOT EXISTS ${indexOf('tx_idx')} ON "${base}" ("tx_id")`,
    tableInfo: parts.length === 2 ? `PRAGMA "${parts[0]}".table_info("${base}")` : `PRAGMA table_info("${base}")`,
    addColumn: (name, type) => `ALTER TABLE ${t} ADD COLUMN "${name}" ${type}`,
    entityTypes: `SELECT DISTINCT "entity_type" AS "value" FROM ${t} ORDER BY "entity_type"`,
    entityIds:
      `SELECT DISTINCT "entity_id" AS "value" FROM ${t} WHERE "entity_type" = ? AND (? IS NULL OR "entity_id" > ?) ` +
      'AND substr("entity_id", 1, length(?)) = ? ORDER BY "entity_id" LIMIT ?',
    insert: `INSERT INTO ${t} (${QUOTED_COLUMNS}) VALUES (${HISTORY_COLUMNS.map(() => '?').join(', ')})`,
    ...headStatements(table),
  };
}

/** The chain heads table's statements: one row per chained entity, upserted with each chained entry. */
function headStatements(table: string): Pick<Statements, 'createHeads' | 'upsertHead' | 'head'> {
  const { schema, name } = headsTableOf(table, Number.POSITIVE_INFINITY);
  const h = schema === undefined ? `"${name}"` : `"${schema}"."${name}"`;
  const columns = HEAD_COLUMNS.map((column) => `"${column}"`).join(', ');
  return {
    createHeads:
      `CREATE TABLE IF NOT EXISTS ${h} (` +
      '"entity_type" TEXT NOT NULL, "entity_id" TEXT NOT NULL, "version" INTEGER NOT NULL, ' +
      '"hash" TEXT NOT NULL, "mac" TEXT, PRIMARY KEY ("entity_type", "entity_id")) WITHOUT ROWID',
    upsertHead:
      `INSERT INTO ${h} (${columns}) VALUES (?, ?, ?, ?, ?) ON CONFLICT ("entity_type", "entity_id") ` +
      'DO UPDATE SET "version" = excluded."version", "hash" = excluded."hash", "mac" = excluded."mac"',
    head: `SELECT ${columns} FROM ${h} WHERE "entity_type" = ? AND "entity_id" = ?`,
  };
}
