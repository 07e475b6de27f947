import { VersionConflictError } from '../errors.js';
import { entryToParams, HISTORY_COLUMNS, type HistoryRow, rowToEntry } from '../history/codec.js';
import type { HistoryEntry, HistoryReader, HistoryWriter, ListOptions } from '../history/entry.js';
import { assertIdentifier } from '../history/identifier.js';
import { isDuplicateEntry } from '../transactions/mysql-common.js';
import { type MysqlCallbackQueryable, type MysqlQueryable, queryableOf, runQuery, selectRows } from './query.js';

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

/** The SQL a store runs, built once from its table name. */
interface Statements {
  readonly createTable: string;
  readonly insert: string;
  readonly list: string;
  readonly listLimited: string;
  readonly at: string;
  readonly asOf: string;
  readonly latest: string;
}

/**
 * History in a MySQL 8 or MariaDB table, through `mysql2/promise` or `mariadb`.
 * Entries are written through the session the decorated call runs in (so they commit or roll back
 * with the entity write), else through the store's own pool or connection; reads use the store's.
 *
 * The InnoDB table (see `ensureSchema`) has the primary key (entity_type, entity_id, version),
 * which rejects a second writer of one version and serves `list`, `at` and `latest`, and an index
 * on (entity_type, entity_id, timestamp) for `asOf`. Snapshots and metadata are JSON (Dates kept
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
export class MysqlHistoryStore implements HistoryWriter<MysqlQueryable>, HistoryReader {
  /** The pool or connection reads (and writes without a session) go through, as given. */
  readonly connection: MysqlQueryable | MysqlCallbackQueryable;
  /** The history table's name as given (validated). */
  readonly table: string;
  readonly #db: MysqlQueryable;
  readonly #sql: Statements;

  constructor(connection: MysqlQueryable | MysqlCallbackQueryable, options: MysqlHistoryStoreOptions = {}) {
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
   * Creates the table with its key and index when it does not exist; safe to call at every start.
   *
   * ```ts
   * await new MysqlHistoryStore(pool).ensureSchema();
   * ```
   */
  async ensureSchema(): Promise<void> {
    await runQuery(this.#db, this.#sql.createTable);
  }

  /**
   * Inserts one entry through `session` when given (joining its transaction), else through the
   * store's pool or connection. With a session, a duplicate version is the driver's ER_DUP_ENTRY
   * error (the call maps it to `VersionConflictError`); without one, it is a `VersionConflictError`.
   *
   * ```ts
   * await history.save(entry, connection);
   * ```
   */
  async save(entry: HistoryEntry, session?: MysqlQueryable): Promise<void> {
    const through = session == null ? this.#db : queryableOf(session);
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
    try {
      await runQuery(through, this.#sql.insert, params);
    } catch (error) {
      if (session == null && isDuplicateEntry(error)) {
        throw new VersionConflictError(entry.entityType, entry.entityId, entry.version - 1, {
          cause: error,
          detail: `history already holds version ${entry.version}`,
        });
      }
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
  async list(entityType: string, entityId: string, opts: ListOptions = {}): Promise<HistoryEntry[]> {
    const from = clamp(Math.ceil(opts.fromVersion ?? INT_MIN));
    const to = clamp(Math.floor(opts.toVersion ?? INT_MAX));
    if (opts.limit === undefined || opts.limit === Number.POSITIVE_INFINITY) {
      return this.#entries(this.#sql.list, [entityType, entityId, from, to]);
    }
    const limit = Math.max(0, Math.trunc(opts.limit)) || 0;
    return this.#entries(this.#sql.listLimited, [entityType, entityId, from, to, limit]);
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
    return (await this.#entries(this.#sql.at, [entityType, entityId, version]))[0];
  }

  /**
   * The entry in force at `time`: the highest version whose timestamp is not after it.
   *
   * ```ts
   * const atNewYear = await history.asOf('Order', '42', new Date('2026-01-01'));
   * ```
   */
  async asOf(entityType: string, entityId: string, time: Date): Promise<HistoryEntry | undefined> {
    const bound = utcText(time, 'MysqlHistoryStore.asOf needs a valid Date');
    return (await this.#entries(this.#sql.asOf, [entityType, entityId, bound]))[0];
  }

  /**
   * The entity's highest version, or `undefined`.
   *
   * ```ts
   * const current = await history.latest('Order', '42');
   * ```
   */
  async latest(entityType: string, entityId: string): Promise<HistoryEntry | undefined> {
    return (await this.#entries(this.#sql.latest, [entityType, entityId]))[0];
  }

  async #entries(sql: string, values: unknown[]): Promise<HistoryEntry[]> {
    return (await selectRows<HistoryRow>(this.#db, sql, values)).map(rowToEntry);
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
  return {
    createTable:
      `CREATE TABLE IF NOT EXISTS ${t} (` +
      `\`entity_type\` VARCHAR(${MAX_KEY_LENGTH}) NOT NULL, \`entity_id\` VARCHAR(${MAX_KEY_LENGTH}) NOT NULL, ` +
      "`version` INT NOT NULL, `op` ENUM('create', 'update', 'delete') NOT NULL, " +
      '`timestamp` DATETIME(3) NOT NULL, `snapshot` JSON NOT NULL, `actor` TEXT NULL, `reason` TEXT NULL, ' +
      '`metadata` JSON NULL, `tx_id` VARCHAR(255) NULL, ' +
      'PRIMARY KEY (`entity_type`, `entity_id`, `version`), ' +
      'KEY `entity_history_as_of` (`entity_type`, `entity_id`, `timestamp`)' +
      ') ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
    insert: `INSERT INTO ${t} (${HISTORY_COLUMNS.map((column) => `\`${column}\``).join(', ')}) VALUES (${HISTORY_COLUMNS.map(() => '?').join(', ')})`,
    list,
    listLimited: `${list} LIMIT ?`,
    at: `${select} AND \`version\` = ?`,
    asOf: `${select} AND \`timestamp\` <= ? ORDER BY \`version\` DESC LIMIT 1`,
    latest: `${select} ORDER BY \`version\` DESC LIMIT 1`,
  };
}
