import { type HistoryRow, QUOTED_COLUMNS, rowToEntry } from '../history/codec.js';
import type { HistoryEntry } from '../history/entry.js';
import { assertIdentifier } from '../history/identifier.js';
import { type MysqlCallbackQueryable, type MysqlQueryable, queryableOf, runQuery, selectRows } from '../mysql/query.js';
import type { PostgresQueryable } from '../postgres/postgres-store.js';
import type { SqliteConnectionLike } from '../sqlite/sqlite-store.js';

/** One committed history entry with the relay sequence the relay gave it once it saw it committed. */
export interface RelayedEntry {
  /** Increases in the order the relay saw entries commit; per entity it increases with the version. */
  readonly sequence: number;
  readonly entry: HistoryEntry;
}

/**
 * Where the relay reads committed entries and keeps its position: a history table of one of the
 * SQL stores. Built with `postgresRelaySource`, `mysqlRelaySource` or `sqliteRelaySource`.
 *
 * How it never skips an entry that commits late: the history table gets a nullable `relay_seq`
 * column. A row written by a transaction has none; the relay, in a transaction of its own,
 * numbers the rows that have COMMITTED and have no number yet (rows of transactions still open
 * are invisible, or locked and skipped, so they get their number in a later pass, after every
 * number given before). Publishing goes by `relay_seq`, so a position "published up to
 * relay_seq n" is exact: an entry committed late gets a number above n.
 */
export interface RelaySource {
  readonly dialect: 'postgres' | 'mysql' | 'sqlite';
  /** Adds the `relay_seq` column and its index to the history table and creates the position table; idempotent. */
  ensureSchema(): Promise<void>;
  /** Numbers up to `limit` committed rows that have no relay sequence yet; resolves to how many it numbered. */
  assign(limit: number): Promise<number>;
  /** Numbered entries after `sequence`, in sequence order. */
  read(after: number, limit: number): Promise<RelayedEntry[]>;
  /** The last sequence the relay `name` published (0 before the first). */
  position(name: string): Promise<number>;
  savePosition(name: string, sequence: number): Promise<void>;
  /** The highest sequence given so far, and how many committed rows wait for one. */
  backlog(): Promise<{ readonly assigned: number; readonly unassigned: number }>;
}

/** Options every relay source takes. */
export interface RelaySourceOptions {
  /** The history table (the store's `table`). Default `entity_history`. */
  readonly table?: string;
}

type Row = HistoryRow & { relay_seq: number | string | bigint };

function relayed(rows: readonly Row[]): RelayedEntry[] {
  return rows.map((row) => ({ sequence: Number(row.relay_seq), entry: rowToEntry(row) }));
}

/** A history row's key. */
interface Key {
  readonly entity_type: string;
  readonly entity_id: string;
  readonly version: number;
}

/**
 * @internal The picked rows that may be numbered now: per entity, those before the first committed
 * unnumbered version that was not picked (`SKIP LOCKED` passes over a row someone holds a lock
 * on, and numbering a later version before it would publish the entity out of order).
 * `unnumbered` holds every committed unnumbered row of the picked entities.
 */
export function numberable(picked: readonly Key[], unnumbered: readonly Key[]): Key[] {
  const entity = (k: Key) => `${k.entity_type}\u0000${k.entity_id}`;
  const chosen = new Set(picked.map((k) => `${entity(k)}\u0000${Number(k.version)}`));
  const limit = new Map<string, number>();
  const sorted = [...unnumbered].sort((a, b) => Number(a.version) - Number(b.version));
  for (const k of sorted) {
    const e = entity(k);
    if (!limit.has(e) && !chosen.has(`${e}\u0000${Number(k.version)}`)) limit.set(e, Number(k.version));
  }
  return picked
    .filter((k) => {
      const stop = limit.get(entity(k));
      return stop === undefined || Number(k.version) < stop;
    })
    .sort((a, b) =>
      a.entity_type === b.entity_type
        ? a.entity_id === b.entity_id
          ? Number(a.version) - Number(b.version)
          : a.entity_id < b.entity_id
            ? -1
            : 1
        : a.entity_type < b.entity_type
          ? -1
          : 1,
    );
}

function tableName(options: RelaySourceOptions, what: string): string {
  return assertIdentifier(options.table ?? 'entity_history', what);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** A pg `Pool`: the relay checks a client out for each numbering transaction. */
export interface PostgresPoolLike extends PostgresQueryable {
  connect(): Promise<PostgresQueryable & { release(error?: unknown): void }>;
  readonly totalCount: number;
}

function pgQuote(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

/**
 * The relay source for a PostgreSQL history table, through a pg `Pool` (preferred) or a `Client`
 * of the relay's own (the numbering transaction runs BEGIN/COMMIT on it).
 *
 * ```ts
 * const source = postgresRelaySource(new Pool({ connectionString }), { table: 'entity_history' });
 * ```
 */
export function postgresRelaySource(
  connection: PostgresQueryable | PostgresPoolLike,
  options: RelaySourceOptions = {},
): RelaySource {
  if (connection === null || typeof connection !== 'object' || typeof connection.query !== 'function') {
    throw new TypeError('postgresRelaySource needs a pg Pool or Client (an object with query(text, params)).');
  }
  const table = tableName(options, 'postgresRelaySource table');
  const t = pgQuote(table);
  const positions = pgQuote(`${table}_relay`);
  const base = table.split('.').at(-1) ?? table;
  const lockKey = `event-history-relay:${table}`;
  const isPool = (c: unknown): c is PostgresPoolLike =>
    typeof (c as PostgresPoolLike).connect === 'function' && typeof (c as PostgresPoolLike).totalCount === 'number';
  const transaction = async <T>(work: (client: PostgresQueryable) => Promise<T>): Promise<T> => {
    const client = isPool(connection) ? await connection.connect() : connection;
    let failed: unknown;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      failed = error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      if (client !== connection) (client as unknown as { release(error?: unknown): void }).release(failed);
    }
  };
  return {
    dialect: 'postgres',
    async ensureSchema() {
      // DDL only for what is missing: ALTER TABLE and CREATE INDEX wait for every open writer's
      // lock on the table, even when they change nothing, and a relay restarts while writers run.
      const seqIndex = `${base.slice(0, 50)}_relay_seq_idx`;
      const pendingIndex = `${base.slice(0, 46)}_relay_pending_idx`;
      const { rows } = await connection.query(
        'SELECT ' +
          `EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'relay_seq' AND NOT attisdropped) AS col, ` +
          'EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass AND c.relname = $2) AS seq, ' +
          'EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass AND c.relname = $3) AS pending, ' +
          'to_regclass($4) IS NOT NULL AS positions',
        [t, seqIndex, pendingIndex, positions],
      );
      const present = rows[0] as { col: boolean; seq: boolean; pending: boolean; positions: boolean };
      if (!present.col) await connection.query(`ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS "relay_seq" bigint`);
      if (!present.seq) {
        await connection.query(`CREATE UNIQUE INDEX IF NOT EXISTS "${seqIndex}" ON ${t} ("relay_seq")`);
      }
      // The rows still to number, in key order, without scanning the numbered ones.
      if (!present.pending) {
        await connection.query(
          `CREATE INDEX IF NOT EXISTS "${pendingIndex}" ON ${t} ("entity_type", "entity_id", "version") WHERE "relay_seq" IS NULL`,
        );
      }
      if (!present.positions) {
        await connection.query(
          `CREATE TABLE IF NOT EXISTS ${positions} ("name" text PRIMARY KEY, "position" bigint NOT NULL)`,
        );
      }
    },
    assign(limit) {
      return transaction(async (client) => {
        // One numbering transaction at a time: two relays numbering at once could commit out of order.
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockKey]);
        const { rows } = await client.query(
          `SELECT "entity_type", "entity_id", "version" FROM ${t} WHERE "relay_seq" IS NULL ` +
            'ORDER BY "entity_type", "entity_id", "version" LIMIT $1 FOR UPDATE SKIP LOCKED',
          [limit],
        );
        const picked = rows as Key[];
        if (picked.length === 0) return 0;
        // Every committed unnumbered row of those entities, locked or not (a plain read does not lock).
        const types = picked.map((k) => k.entity_type);
        const ids = picked.map((k) => k.entity_id);
        const all = await client.query(
          `SELECT "entity_type", "entity_id", "version" FROM ${t} WHERE "relay_seq" IS NULL AND ("entity_type", "entity_id") IN ` +
            '(SELECT * FROM unnest($1::text[], $2::text[]))',
          [types, ids],
        );
        const kept = numberable(picked, all.rows as Key[]);
        if (kept.length === 0) return 0;
        const top = await client.query(`SELECT COALESCE(MAX("relay_seq"), 0)::text AS top FROM ${t}`);
        const first = Number((top.rows[0] as { top: string }).top) + 1;
        await client.query(
          `UPDATE ${t} h SET "relay_seq" = v.seq FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) AS v(et, eid, ver, seq) ` +
            'WHERE h."entity_type" = v.et AND h."entity_id" = v.eid AND h."version" = v.ver',
          [
            kept.map((k) => k.entity_type),
            kept.map((k) => k.entity_id),
            kept.map((k) => Number(k.version)),
            kept.map((_, i) => first + i),
          ],
        );
        return kept.length;
      });
    },
    async read(after, limit) {
      const { rows } = await connection.query(
        `SELECT ${QUOTED_COLUMNS}, "relay_seq" FROM ${t} WHERE "relay_seq" > $1 ORDER BY "relay_seq" LIMIT $2`,
        [after, limit],
      );
      return relayed(rows as Row[]);
    },
    async position(name) {
      const { rows } = await connection.query(`SELECT "position" FROM ${positions} WHERE "name" = $1`, [name]);
      return Number((rows[0] as { position?: unknown } | undefined)?.position ?? 0);
    },
    async savePosition(name, sequence) {
      await connection.query(
        `INSERT INTO ${positions} ("name", "position") VALUES ($1, $2) ON CONFLICT ("name") DO UPDATE SET "position" = GREATEST(${positions}."position", EXCLUDED."position")`,
        [name, sequence],
      );
    },
    async backlog() {
      const { rows } = await connection.query(
        `SELECT COALESCE(MAX("relay_seq"), 0) AS assigned, COUNT(*) FILTER (WHERE "relay_seq" IS NULL) AS unassigned FROM ${t}`,
      );
      const row = rows[0] as { assigned: unknown; unassigned: unknown };
      return { assigned: Number(row.assigned), unassigned: Number(row.unassigned) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// MySQL / MariaDB

/** A mysql2/promise or mariadb pool: the relay takes a connection for each numbering transaction. */
export interface MysqlPoolLike extends MysqlQueryable {
  getConnection(): Promise<MysqlQueryable & { release(): unknown }>;
}

function myQuote(name: string): string {
  return name
    .split('.')
    .map((part) => `\`${part}\``)
    .join('.');
}

/**
 * The relay source for a MySQL or MariaDB history table, through a mysql2/promise or mariadb pool
 * (preferred) or a connection of the relay's own. Needs InnoDB and `SKIP LOCKED` (MySQL 8,
 * MariaDB 10.6 or later): rows of transactions still open are skipped and numbered later.
 *
 * ```ts
 * const source = mysqlRelaySource(mysql.createPool(url), { table: 'entity_history' });
 * ```
 */
export function mysqlRelaySource(
  connection: MysqlQueryable | MysqlCallbackQueryable | MysqlPoolLike,
  options: RelaySourceOptions = {},
): RelaySource {
  const db = queryableOf(connection);
  if (db === undefined) {
    throw new TypeError('mysqlRelaySource needs a mysql2/promise or mariadb pool or connection.');
  }
  const table = tableName(options, 'mysqlRelaySource table');
  const t = myQuote(table);
  const positions = myQuote(`${table}_relay`);
  const bare = table.split('.').at(-1) ?? table;
  const transaction = async <T>(work: (conn: MysqlQueryable) => Promise<T>): Promise<T> => {
    const pool = db as Partial<MysqlPoolLike>;
    const conn = typeof pool.getConnection === 'function' ? await pool.getConnection() : db;
    try {
      // READ COMMITTED: no gap locks, so numbering never blocks writers inserting new rows.
      await runQuery(conn, 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      await runQuery(conn, 'START TRANSACTION');
      try {
        const result = await work(conn);
        await runQuery(conn, 'COMMIT');
        return result;
      } catch (error) {
        await runQuery(conn, 'ROLLBACK').catch(() => undefined);
        throw error;
      }
    } finally {
      if (conn !== db) (conn as unknown as { release(): unknown }).release();
    }
  };
  return {
    dialect: 'mysql',
    async ensureSchema() {
      const present = await selectRows<{ n: number | string }>(
        db,
        'SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND column_name = ?',
        [table.includes('.') ? table.split('.')[0] : null, bare, 'relay_seq'],
      );
      if (Number(present[0]?.n ?? 0) === 0) {
        await runQuery(
          db,
          `ALTER TABLE ${t} ADD COLUMN \`relay_seq\` BIGINT NULL, ADD UNIQUE INDEX \`relay_seq_idx\` (\`relay_seq\`)`,
        );
      }
      await runQuery(
        db,
        `CREATE TABLE IF NOT EXISTS ${positions} (\`name\` VARCHAR(191) NOT NULL PRIMARY KEY, \`position\` BIGINT NOT NULL) ENGINE=InnoDB`,
      );
    },
    assign(limit) {
      return transaction(async (conn) => {
        // One numbering transaction at a time (see the PostgreSQL source), through the position table.
        await runQuery(conn, `INSERT IGNORE INTO ${positions} (\`name\`, \`position\`) VALUES ('#numbering', 0)`);
        await selectRows(conn, `SELECT \`position\` FROM ${positions} WHERE \`name\` = '#numbering' FOR UPDATE`, []);
        const picked = await selectRows<{ entity_type: string; entity_id: string; version: number }>(
          conn,
          `SELECT \`entity_type\`, \`entity_id\`, \`version\` FROM ${t} WHERE \`relay_seq\` IS NULL ` +
            `ORDER BY \`entity_type\`, \`entity_id\`, \`version\` LIMIT ${Math.max(1, Math.trunc(limit))} FOR UPDATE SKIP LOCKED`,
          [],
        );
        if (picked.length === 0) return 0;
        // Every committed unnumbered row of those entities, locked or not (a consistent read does not lock).
        const all = await selectRows<Key>(
          conn,
          `SELECT \`entity_type\`, \`entity_id\`, \`version\` FROM ${t} WHERE \`relay_seq\` IS NULL AND (\`entity_type\`, \`entity_id\`) IN (${picked.map(() => '(?, ?)').join(', ')})`,
          picked.flatMap((k) => [k.entity_type, k.entity_id]),
        );
        const kept = numberable(picked, all);
        const [top] = await selectRows<{ top: number | string | null }>(
          conn,
          `SELECT MAX(\`relay_seq\`) AS top FROM ${t}`,
          [],
        );
        let next = Number(top?.top ?? 0);
        for (const row of kept) {
          next += 1;
          await runQuery(
            conn,
            `UPDATE ${t} SET \`relay_seq\` = ? WHERE \`entity_type\` = ? AND \`entity_id\` = ? AND \`version\` = ?`,
            [next, row.entity_type, row.entity_id, row.version],
          );
        }
        return kept.length;
      });
    },
    async read(after, limit) {
      const rows = await selectRows<Row>(
        db,
        `SELECT ${MYSQL_COLUMNS}, \`relay_seq\` FROM ${t} WHERE \`relay_seq\` > ? ORDER BY \`relay_seq\` LIMIT ${Math.max(1, Math.trunc(limit))}`,
        [after],
      );
      return relayed(rows);
    },
    async position(name) {
      const rows = await selectRows<{ position: unknown }>(
        db,
        `SELECT \`position\` FROM ${positions} WHERE \`name\` = ?`,
        [name],
      );
      return Number(rows[0]?.position ?? 0);
    },
    async savePosition(name, sequence) {
      await runQuery(
        db,
        `INSERT INTO ${positions} (\`name\`, \`position\`) VALUES (?, ?) ON DUPLICATE KEY UPDATE \`position\` = GREATEST(\`position\`, VALUES(\`position\`))`,
        [name, sequence],
      );
    },
    async backlog() {
      const rows = await selectRows<{ assigned: unknown; unassigned: unknown }>(
        db,
        `SELECT COALESCE(MAX(\`relay_seq\`), 0) AS assigned, SUM(\`relay_seq\` IS NULL) AS unassigned FROM ${t}`,
        [],
      );
      return { assigned: Number(rows[0]?.assigned ?? 0), unassigned: Number(rows[0]?.unassigned ?? 0) };
    },
  };
}

const MYSQL_COLUMNS = QUOTED_COLUMNS.replaceAll('"', '`');

// ---------------------------------------------------------------------------------------------
// SQLite

/**
 * The relay source for a SQLite history table through a better-sqlite3 `Database`. SQLite has one
 * writer at a time, so a numbering transaction (`BEGIN IMMEDIATE`) sees every committed row; on a
 * file, give the relay a connection of its own. A pass finding the connection inside another
 * transaction, or the database busy, numbers nothing and leaves it to the next pass.
 *
 * ```ts
 * const source = sqliteRelaySource(new Database('app.db'), { table: 'entity_history' });
 * ```
 */
export function sqliteRelaySource(database: SqliteConnectionLike, options: RelaySourceOptions = {}): RelaySource {
  if (database === null || typeof database !== 'object' || typeof database.prepare !== 'function') {
    throw new TypeError('sqliteRelaySource needs a better-sqlite3 Database.');
  }
  const table = tableName(options, 'sqliteRelaySource table');
  const t = pgQuote(table);
  const positions = pgQuote(`${table}_relay`);
  const [schema, bare] = table.includes('.') ? (table.split('.') as [string, string]) : [undefined, table];
  const inTransaction = (): boolean => (database as { inTransaction?: boolean }).inTransaction === true;
  return {
    dialect: 'sqlite',
    async ensureSchema() {
      const info = database
        .prepare(`PRAGMA ${schema === undefined ? '' : `"${schema}".`}table_info("${bare}")`)
        .all() as { name: string }[];
      if (!info.some((column) => column.name === 'relay_seq')) {
        database.exec(`ALTER TABLE ${t} ADD COLUMN "relay_seq" INTEGER`);
      }
      // DDL only for what is missing: it needs the write lock, which a writer may hold.
      const prefix = schema === undefined ? '' : `"${schema}".`;
      const known = new Set(
        (database.prepare(`SELECT name FROM ${prefix}sqlite_master`).all() as { name: string }[]).map((r) => r.name),
      );
      if (!known.has(`${bare}_relay_seq_idx`)) {
        database.exec(`CREATE UNIQUE INDEX IF NOT EXISTS ${prefix}"${bare}_relay_seq_idx" ON "${bare}" ("relay_seq")`);
      }
      if (!known.has(`${bare}_relay`)) {
        database.exec(`CREATE TABLE IF NOT EXISTS ${positions} ("name" TEXT PRIMARY KEY, "position" INTEGER NOT NULL)`);
      }
    },
    async assign(limit) {
      if (inTransaction()) return 0;
      try {
        database.exec('BEGIN IMMEDIATE');
      } catch (error) {
        if (isBusy(error)) return 0;
        throw error;
      }
      try {
        const picked = database
          .prepare(
            `SELECT "entity_type", "entity_id", "version" FROM ${t} WHERE "relay_seq" IS NULL ORDER BY "entity_type", "entity_id", "version" LIMIT ?`,
          )
          .all(limit) as { entity_type: string; entity_id: string; version: number }[];
        const top = database.prepare(`SELECT COALESCE(MAX("relay_seq"), 0) AS top FROM ${t}`).all() as {
          top: number;
        }[];
        let next = Number(top[0]?.top ?? 0);
        const update = database.prepare(
          `UPDATE ${t} SET "relay_seq" = ? WHERE "entity_type" = ? AND "entity_id" = ? AND "version" = ?`,
        );
        for (const row of picked) update.run(++next, row.entity_type, row.entity_id, row.version);
        database.exec('COMMIT');
        return picked.length;
      } catch (error) {
        if (inTransaction()) database.exec('ROLLBACK');
        throw error;
      }
    },
    async read(after, limit) {
      const rows = database
        .prepare(`SELECT ${QUOTED_COLUMNS}, "relay_seq" FROM ${t} WHERE "relay_seq" > ? ORDER BY "relay_seq" LIMIT ?`)
        .all(after, limit) as Row[];
      return relayed(rows);
    },
    async position(name) {
      const rows = database.prepare(`SELECT "position" FROM ${positions} WHERE "name" = ?`).all(name) as {
        position: number;
      }[];
      return Number(rows[0]?.position ?? 0);
    },
    async savePosition(name, sequence) {
      database
        .prepare(
          `INSERT INTO ${positions} ("name", "position") VALUES (?, ?) ON CONFLICT ("name") DO UPDATE SET "position" = MAX("position", excluded."position")`,
        )
        .run(name, sequence);
    },
    async backlog() {
      const rows = database
        .prepare(`SELECT COALESCE(MAX("relay_seq"), 0) AS assigned, SUM("relay_seq" IS NULL) AS unassigned FROM ${t}`)
        .all() as { assigned: number; unassigned: number | null }[];
      return { assigned: Number(rows[0]?.assigned ?? 0), unassigned: Number(rows[0]?.unassigned ?? 0) };
    },
  };
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}
