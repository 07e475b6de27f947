import type { CommitInFlight } from '../errors.js';
import { headOf } from '../history/chain.js';
import { ADDED_COLUMNS, entryToParams, HISTORY_COLUMNS, type HistoryRow, rowToEntry } from '../history/codec.js';
import {
  type CommitOutcome,
  type CommitOutcomeOptions,
  type CommitOutcomeReader,
  outcomeFromEntry,
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
import { afterHistoryWrite, beforeHistoryWrite, isDuplicateEntry } from '../transactions/mysql-common.js';
import { connectionOf } from '../transactions/registry.js';
import {
  callbackDriverError,
  callbackDriverOf,
  type MysqlCallbackQueryable,
  type MysqlQueryable,
  queryableOf,
  runQuery,
  selectRows,
} from './query.js';

/**
 * Options of {@link MysqlHistoryStore}.
 *
 * ```ts
 * new MysqlHistoryStore(pool, { table: 'audit.order_history' });
 * ```
 */
export interface MysqlHistoryStoreOptions {
  /** The history table, optionally database-qualified. Default `entity_history`. */
  readonly table?: string;
}

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
/** The width of the key columns; longer ids would be truncated (or rejected) by the server. */
const MAX_KEY_LENGTH = 255;
const TIMESTAMP_INDEX = HISTORY_COLUMNS.indexOf('timestamp');
const TX_INDEX = 'entity_history_tx';

/** The SQL a store runs, built once from its table name. */
interface Statements {
  readonly createTable: string;
  readonly columnsPresent: string;
  readonly addColumn: (name: string, type: string) => string;
  readonly indexPresent: string;
  readonly createTxIndex: string;
  readonly insert: string;
  readonly list: string;
  readonly listLimited: string;
  readonly listDesc: string;
  readonly listDescLimited: string;
  readonly byTransaction: string;
  readonly at: string;
  /** `at` as a locking read: it waits for a transaction that inserted the key and has not ended. */
  readonly atLocked: string;
  readonly asOf: string;
  readonly latest: string;
  readonly entityTypes: string;
  readonly entityIds: string;
  readonly entityIdsLimited: string;
  /** The chain heads table (`<table>_heads`): create, upsert one, read one. */
  readonly createHeads: string;
  readonly upsertHead: string;
  readonly head: string;
}

/**
 * History in a MySQL 8 or MariaDB table, through `mysql2/promise` or `mariadb`.
 * Entries are written through the session the decorated call runs in (so they commit or roll back
 * with the entity write), else through the store's own pool or connection; reads use the store's.
 *
 * The InnoDB table (see `ensureSchema`) has the primary key (entity_type, entity_id, version),
 * which rejects a second writer of one version and serves `list`, `at` and `latest`, and an index
 * on (entity_type, entity_id, timestamp) for `asOf` and one on tx_id for `byTransaction`. Snapshots and metadata are JSON (Dates kept
 * as `{ "$date": … }`; MariaDB's JSON is LONGTEXT, read back the same). Timestamps are
 * `DATETIME(3)` holding UTC: the store sends and reads them as UTC text, never as driver Dates, so
 * entries keep their exact instant whatever the connection's or the server's time zone.
 * Entity types and ids are limited to 255 characters.
 *
 * ```ts
 * import { MysqlHistoryStore } from 'event-history/mysql';
 * const history = new MysqlHistoryStore(pool, { table: 'order_history' });
 * await history.ensureSchema();
 * @Versioned() @HistoryTracked(history) class OrderService { ... }
 * await history.list('Order', '42');
 * ```
 */
export class MysqlHistoryStore<M extends EntityTypes = Record<string, unknown>>
  extends HistoryStoreBase<M>
  implements HistoryWriter<MysqlQueryable>, HistoryReader<M>, CommitOutcomeReader
{
  /** The pool or connection reads (and writes without a session) go through, as given. */
  readonly connection: MysqlQueryable | MysqlCallbackQueryable;
  /** The history table's name as given (validated). */
  readonly table: string;
  readonly #db: MysqlQueryable;
  readonly #sql: Statements;

  constructor(connection: MysqlQueryable | MysqlCallbackQueryable, options: MysqlHistoryStoreOptions = {}) {
    super();
    const callbackDriver = callbackDriverOf(connection);
    if (callbackDriver !== undefined) throw callbackDriverError('MysqlHistoryStore', callbackDriver);
    const db = queryableOf(connection);
    if (db === undefined) {
      throw new TypeError(
        'MysqlHistoryStore needs a pool or connection with query(sql, values): from mysql2/promise ' +
          '(createPool, createConnection) or from mariadb (createPool, createConnection).',
      );
    }
    this.connection = connection;
    this.table = assertIdentifier(options.table ?? 'entity_history', 'MysqlHistoryStore table');
    this.#db = db;
    this.#sql = statements(this.table);
  }

  /**
   * Creates the table with its key and indexes when it does not exist, and brings a table
   * created by an earlier version up to date (adds the `schema_version`, `hash` and `prev_hash`
   * columns and the `tx_id` index), and creates the chain heads table `<table>_heads`; safe to call at every start. Works on MySQL 8 and MariaDB
   * (it looks in information_schema rather than relying on `ADD COLUMN IF NOT EXISTS`).
   *
   * ```ts
   * await new MysqlHistoryStore(pool).ensureSchema();
   * ```
   */
  async ensureSchema(): Promise<void> {
    await runQuery(this.#db, this.#sql.createTable);
    const [schema, name] = this.#schemaAndName();
    const columns = await selectRows<{ name: string }>(this.#db, this.#sql.columnsPresent, [schema, name]);
    const present = new Set(columns.map((column) => column.name.toLowerCase()));
    for (const column of ADDED_COLUMNS) {
      if (present.has(column.name)) continue;
      const type = column.type === 'integer' ? 'INT NULL' : 'VARCHAR(64) NULL';
      await ignoring(ER_DUP_FIELDNAME, runQuery(this.#db, this.#sql.addColumn(column.name, type)));
    }
    const indexes = await selectRows<{ name: string }>(this.#db, this.#sql.indexPresent, [schema, name]);
    if (indexes.length === 0) await ignoring(ER_DUP_KEYNAME, runQuery(this.#db, this.#sql.createTxIndex));
    await runQuery(this.#db, this.#sql.createHeads);
  }

  #schemaAndName(): [string | null, string] {
    const parts = this.table.split('.');
    return parts.length === 2 ? [parts[0] as string, parts[1] as string] : [null, this.table];
  }

  /**
   * Inserts one entry through `session` when given (joining its transaction), else through the
   * store's pool or connection. With a session, a duplicate version is the driver's ER_DUP_ENTRY
   * error (the call maps it to `VersionConflictError`); without one, it is a `VersionConflictError`.
   * A chained entry's head (see `ChainHead`) is upserted right after, through the same session
   * and so in the same transaction.
   *
   * ```ts
   * await history.save(entry, connection);
   * ```
   */
  async save(entry: HistoryEntry, session?: MysqlQueryable): Promise<void> {
    const target = session == null ? undefined : await connectionOf(session);
    const callbackDriver = callbackDriverOf(target);
    if (callbackDriver !== undefined) throw callbackDriverError('MysqlHistoryStore.save', callbackDriver);
    const through = session == null ? this.#db : queryableOf(target);
    if (through === undefined) {
      throw new TypeError(
        'MysqlHistoryStore.save was given a session without query(sql, values). Pass the mysql2/promise or mariadb ' +
          'connection the decorated call runs in.',
      );
    }
    for (const [what, value] of [
      ['entity type', entry.entityType],
      ['entity id', entry.entityId],
    ] as const) {
      if (value.length > MAX_KEY_LENGTH) {
        throw new TypeError(
          `The ${what} ${JSON.stringify(`${value.slice(0, 40)}…`)} is ${value.length} characters long; ` +
            `MysqlHistoryStore keys hold at most ${MAX_KEY_LENGTH}. Use a shorter id or entityType.`,
        );
      }
    }
    const params = entryToParams(entry);
    params[TIMESTAMP_INDEX] = utcText(entry.timestamp, 'MysqlHistoryStore.save needs an entry with a valid timestamp');
    // Never in autocommit when the call's transaction ended inside the method (a caught deadlock, DDL).
    if (session != null) await beforeHistoryWrite(session);
    try {
      const result = await runQuery(through, this.#sql.insert, params);
      if (session != null) afterHistoryWrite(session, result);
    } catch (error) {
      if (session == null && isDuplicateEntry(error)) {
        throw versionTaken(entry, error);
      }
      throw error;
    }
    if (entry.hash !== undefined) await this.#saveHead(entry, through);
  }

  /** Upserts the chain head a chained entry carries, through the same connection (and transaction) as its INSERT. */
  async #saveHead(entry: HistoryEntry, through: MysqlQueryable): Promise<void> {
    const params = headParams(headOf(entry) as ChainHead);
    const [, , version, hash, mac] = params;
    await runQuery(through, this.#sql.upsertHead, [...params, version, hash, mac]);
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
      const [row] = await selectRows<HeadRow>(this.#db, this.#sql.head, [entityType, entityId]);
      return row === undefined ? undefined : rowToHead(row);
    } catch (error) {
      if ((error as { errno?: unknown }).errno === ER_NO_SUCH_TABLE) return undefined;
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
    const desc = opts.order === 'desc';
    if (opts.limit === undefined || opts.limit === Number.POSITIVE_INFINITY) {
      return typedAs(await this.#entries(desc ? this.#sql.listDesc : this.#sql.list, [entityType, entityId, from, to]));
    }
    const count = Math.max(0, Math.trunc(opts.limit)) || 0;
    // As text to a prepared statement: MySQL 8.0.22+ refuses a DOUBLE (how mysql2 may send a
    // number) as its LIMIT; interpolated by a wrapper's query(), a number.
    const limit = typeof this.#db.execute === 'function' ? String(count) : count;
    const sql = desc ? this.#sql.listDescLimited : this.#sql.listLimited;
    return typedAs(await this.#entries(sql, [entityType, entityId, from, to, limit]));
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
    return typedAs(await this.#entries(this.#sql.byTransaction, [txId]));
  }

  /**
   * The entity types with history, each once, in code point order (the table's `utf8mb4_bin`
   * collation), read from the primary key's index.
   *
   * ```ts
   * const types = await history.entityTypes(); // ['Invoice', 'Order']
   * ```
   */
  async entityTypes(): Promise<string[]> {
    return this.#values(this.#sql.entityTypes, []);
  }

  /**
   * The ids of `entityType` with history, each once, in code point order (`utf8mb4_bin`),
   * filtered by prefix and paged by `after` and `limit` (see `EntityIdOptions`).
   *
   * ```ts
   * const ids = await history.entityIds('Order', { prefix: 'A-', limit: 20 });
   * ```
   */
  async entityIds(entityType: string, opts: EntityIdOptions = {}): Promise<string[]> {
    const { after, prefix, limit } = idBounds(opts);
    const values: unknown[] = [entityType, after, after, prefix, prefix];
    if (limit === undefined) return this.#values(this.#sql.entityIds, values);
    // As text to a prepared statement, as in list().
    return this.#values(this.#sql.entityIdsLimited, [
      ...values,
      typeof this.#db.execute === 'function' ? String(limit) : limit,
    ]);
  }

  async #values(sql: string, values: unknown[]): Promise<string[]> {
    return (await selectRows<{ value: string }>(this.#db, sql, values)).map((row) => row.value);
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
    return typedAs((await this.#entries(this.#sql.at, [entityType, entityId, version]))[0]);
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
    const bound = utcText(time, 'MysqlHistoryStore.asOf needs a valid Date');
    return typedAs((await this.#entries(this.#sql.asOf, [entityType, entityId, bound]))[0]);
  }

  /**
   * The entity's highest version, or `undefined`. With `{ session }`, read through that
   * connection, inside its open transaction (what `onUnchanged: 'skip'` and `chain: true` use).
   *
   * ```ts
   * const current = await history.latest('Order', '42');
   * ```
   */
  async latest<K extends EntityTypeOf<M>>(
    entityType: K,
    entityId: string,
    opts: ReadOptions<MysqlQueryable> = {},
  ): Promise<HistoryEntry<SnapshotOf<M, K>> | undefined> {
    const through = opts.session == null ? undefined : queryableOf(await connectionOf(opts.session));
    return typedAs((await this.#entries(this.#sql.latest, [entityType, entityId], through))[0]);
  }

  /**
   * Whether a call whose COMMIT was in flight when its connection broke committed (see
   * `commitOutcome`): a locking read of the call's key, which InnoDB makes wait while a
   * transaction that inserted the key is still open (the broken session, until the server drops
   * it), up to the server's `innodb_lock_wait_timeout`; what it then reads is final. On Galera,
   * run it on the node the call wrote through: another node does not see that node's locks.
   *
   * ```ts
   * const { status } = await history.commitOutcome(error.inFlight);
   * ```
   */
  async commitOutcome(inFlight: CommitInFlight, _options: CommitOutcomeOptions = {}): Promise<CommitOutcome> {
    const { entityType, entityId, version } = inFlight;
    if (!Number.isInteger(version) || version < INT_MIN || version > INT_MAX) {
      return outcomeFromEntry(inFlight, undefined, 'no such version can be stored');
    }
    let entries: HistoryEntry[];
    try {
      entries = await this.#entries(this.#sql.atLocked, [entityType, entityId, version]);
    } catch (error) {
      if ((error as { errno?: unknown }).errno !== ER_LOCK_WAIT_TIMEOUT) throw error;
      return {
        status: 'unknown',
        reason: `the transaction that wrote ${entityType} ${entityId} version ${version} is still open: ask again later`,
      };
    }
    return outcomeFromEntry(inFlight, entries[0], 'no transaction holds the key any more');
  }

  async #entries(sql: string, values: unknown[], through: MysqlQueryable = this.#db): Promise<HistoryEntry[]> {
    return (await selectRows<HistoryRow>(through, sql, values)).map(rowToEntry);
  }
}

const ER_DUP_FIELDNAME = 1060;
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_DUP_KEYNAME = 1061;
const ER_NO_SUCH_TABLE = 1146;

/** Awaits a DDL statement, ignoring the error another process racing on the same DDL causes. */
async function ignoring(errno: number, statement: Promise<unknown>): Promise<void> {
  try {
    await statement;
  } catch (error) {
    if ((error as { errno?: unknown }).errno !== errno) throw error;
  }
}

function clamp(version: number): number {
  return Math.min(INT_MAX, Math.max(INT_MIN, version));
}

/**
 * An instant as `DATETIME(3)` text in UTC. DATETIME has no time zone and the server never
 * converts it, so text in and text out (see `statements`) keeps the instant exact whatever
 * the driver's `timezone` option, the session's `time_zone` or the process's TZ.
 */
function utcText(time: unknown, problem: string): string {
  if (!(time instanceof Date) || Number.isNaN(time.getTime())) {
    throw new TypeError(`${problem}, got ${String(time)}.`);
  }
  const year = time.getUTCFullYear();
  if (year < 1000 || year > 9999) {
    throw new TypeError(`${problem} between the years 1000 and 9999 (what DATETIME holds), got ${time.toISOString()}.`);
  }
  return time.toISOString().slice(0, 23).replace('T', ' ');
}

function quote(name: string): string {
  return name
    .split('.')
    .map((part) => `\`${part}\``)
    .join('.');
}

function statements(table: string): Statements {
  const t = quote(table);
  // JSON comes back as text from both servers (MySQL's JSON type would otherwise be parsed by the
  // driver, MariaDB's LONGTEXT not), and the timestamp as ISO text in UTC.
  const read = HISTORY_COLUMNS.map((column) => {
    switch (column) {
      case 'timestamp':
        return "CONCAT(LEFT(DATE_FORMAT(`timestamp`, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z') AS `timestamp`";
      case 'snapshot':
      case 'metadata':
        return `CAST(\`${column}\` AS CHAR) AS \`${column}\``;
      default:
        return `\`${column}\``;
    }
  }).join(', ');
  const select = `SELECT ${read} FROM ${t} WHERE \`entity_type\` = ? AND \`entity_id\` = ?`;
  const list = `${select} AND \`version\` BETWEEN ? AND ? ORDER BY \`version\``;
  const listDesc = `${list} DESC`;
  const ids =
    `SELECT DISTINCT \`entity_id\` AS \`value\` FROM ${t} WHERE \`entity_type\` = ? AND (? IS NULL OR \`entity_id\` > ?) ` +
    'AND LEFT(`entity_id`, CHAR_LENGTH(?)) = ? ORDER BY `entity_id`';
  return {
    createTable:
      `CREATE TABLE IF NOT EXISTS ${t} (` +
      `\`entity_type\` VARCHAR(${MAX_KEY_LENGTH}) NOT NULL, \`entity_id\` VARCHAR(${MAX_KEY_LENGTH}) NOT NULL, ` +
      "`version` INT NOT NULL, `op` ENUM('create', 'update', 'delete') NOT NULL, " +
      '`timestamp` DATETIME(3) NOT NULL, `snapshot` JSON NOT NULL, `actor` TEXT NULL, `reason` TEXT NULL, ' +
      '`metadata` JSON NULL, `tx_id` VARCHAR(255) NULL, ' +
      '`schema_version` INT NULL, `hash` VARCHAR(64) NULL, `prev_hash` VARCHAR(64) NULL, ' +
      'PRIMARY KEY (`entity_type`, `entity_id`, `version`), ' +
      'KEY `entity_history_as_of` (`entity_type`, `entity_id`, `timestamp`), ' +
      `KEY \`${TX_INDEX}\` (\`tx_id\`)` +
      ') ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
    columnsPresent:
      'SELECT COLUMN_NAME AS `name` FROM information_schema.COLUMNS ' +
      'WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?',
    addColumn: (name, type) => `ALTER TABLE ${t} ADD COLUMN \`${name}\` ${type}`,
    indexPresent:
      'SELECT INDEX_NAME AS `name` FROM information_schema.STATISTICS ' +
      `WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND INDEX_NAME = '${TX_INDEX}'`,
    createTxIndex: `CREATE INDEX \`${TX_INDEX}\` ON ${t} (\`tx_id\`)`,
    insert: `INSERT INTO ${t} (${HISTORY_COLUMNS.map((column) => `\`${column}\``).join(', ')}) VALUES (${HISTORY_COLUMNS.map(() => '?').join(', ')})`,
    list,
    listLimited: `${list} LIMIT ?`,
    listDesc,
    listDescLimited: `${listDesc} LIMIT ?`,
    byTransaction: `SELECT ${read} FROM ${t} WHERE \`tx_id\` = ? ORDER BY \`entity_type\`, \`entity_id\`, \`version\``,
    at: `${select} AND \`version\` = ?`,
    atLocked: `${select} AND \`version\` = ? FOR UPDATE`,
    // The column, qualified: a bare `timestamp` in ORDER BY would name the formatted text the SELECT returns,
    // which no index serves. InnoDB's index carries the primary key's version, so the tie-break needs no filesort.
    asOf: `${select} AND \`timestamp\` <= ? ORDER BY ${t}.\`timestamp\` DESC, \`version\` DESC LIMIT 1`,
    latest: `${select} ORDER BY \`version\` DESC LIMIT 1`,
    entityTypes: `SELECT DISTINCT \`entity_type\` AS \`value\` FROM ${t} ORDER BY \`entity_type\``,
    entityIds: ids,
    entityIdsLimited: `${ids} LIMIT ?`,
    ...headStatements(table),
  };
}

/** The chain heads table's statements: one row per chained entity, upserted with each chained entry. */
function headStatements(table: string): Pick<Statements, 'createHeads' | 'upsertHead' | 'head'> {
  const { schema, name } = headsTableOf(table, 64);
  const h = schema === undefined ? `\`${name}\`` : `\`${schema}\`.\`${name}\``;
  const columns = HEAD_COLUMNS.map((column) => `\`${column}\``).join(', ');
  return {
    createHeads:
      `CREATE TABLE IF NOT EXISTS ${h} (` +
      `\`entity_type\` VARCHAR(${MAX_KEY_LENGTH}) NOT NULL, \`entity_id\` VARCHAR(${MAX_KEY_LENGTH}) NOT NULL, ` +
      '`version` INT NOT NULL, `hash` VARCHAR(64) NOT NULL, `mac` VARCHAR(64) NULL, ' +
      'PRIMARY KEY (`entity_type`, `entity_id`)' +
      ') ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
    // The new values as parameters again rather than VALUES(), which MySQL 8.0.20 deprecates and MariaDB lacks an alias for.
    upsertHead:
      `INSERT INTO ${h} (${columns}) VALUES (?, ?, ?, ?, ?) ` +
      'ON DUPLICATE KEY UPDATE `version` = ?, `hash` = ?, `mac` = ?',
    head: `SELECT ${columns} FROM ${h} WHERE \`entity_type\` = ? AND \`entity_id\` = ?`,
  };
}
