import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as mariadb from 'mariadb';
import pg from 'pg';
import { decodeJson } from '../../../src/history/codec.js';
import type { HistoryEntry, HistoryReader, HistoryWriter } from '../../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable } from '../../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../../src/sqlite/index.js';

import { REQUIRE_DATABASES } from '../../integration/fixture.js';

export const POSTGRES_URL = process.env.DATABASE_URL;
export const MARIADB_URL = process.env.MYSQL_URL;

/** The entity every reliability test writes: an account with a balance, a note and a secret. */
export interface Account {
  id: string;
  balance: number;
  note: string;
  secret?: string;
  version?: number;
  timestamp?: Date;
}

/** An entity row as the user's table holds it, read back through another connection. */
export interface AccountRow {
  id: string;
  balance: number;
  note: string;
  version: number;
  timestampMs: number;
}

/** A history row as the store's table holds it, read with plain SQL (not through the store). */
export interface RawHistoryRow {
  version: number;
  op: string;
  snapshot: Record<string, unknown>;
  actor: string | null;
}

export type TargetName = 'postgres' | 'mariadb' | 'sqlite';

/**
 * One database as the reliability suite drives it: the user's repository code for an accounts
 * table written with the raw driver, the built-in history store, sessions (pooled connections,
 * or one Database per session for SQLite), and reads through a separate connection.
 */
export interface Target<S = unknown> {
  readonly name: TargetName;
  readonly accountsTable: string;
  readonly historyTable: string;
  readonly store: HistoryWriter<S> & HistoryReader;
  session(): Promise<S>;
  /** Gives a session back; `broken` destroys it instead of pooling it. */
  release(session: S, broken?: boolean): Promise<void>;
  insert(session: S, account: Account): Promise<unknown>;
  update(session: S, account: Account, expected: number | undefined): Promise<unknown>;
  remove(session: S, account: Account, expected: number | undefined): Promise<unknown>;
  readRow(id: string): Promise<AccountRow | undefined>;
  readHistory(entityType: string, id: string): Promise<RawHistoryRow[]>;
  /** The row and the history of one entity, read in one transaction (one consistent snapshot). */
  readEntity(entityType: string, id: string): Promise<{ row: AccountRow | undefined; history: RawHistoryRow[] }>;
  /** The server's id of the session's connection (backend pid, thread id), if it has one. */
  connectionId(session: S): number | undefined;
  /** Waits until the server has finished with a connection that was cut or killed (its transaction settled). */
  awaitClosed(connectionId: number | undefined): Promise<void>;
  /** Every row of the history table, as the driver returns it, for scanning the raw stored text. */
  rawHistoryRows(): Promise<unknown[]>;
  countAll(): Promise<number>;
  /** The server's (or library's) version, for the report. */
  serverVersion(): Promise<string>;
  /** Kills the session's connection from outside (pg_terminate_backend, KILL CONNECTION, close). */
  kill(session: S): Promise<void>;
  /**
   * Whether sessions from the same pool work and are outside any transaction: one, or with `every`
   * as many as the pool holds at once, so that a broken connection the pool kept would be among them.
   */
  poolHealthy(every?: boolean): Promise<boolean>;
  /** Whether this session works and is outside any transaction (nothing left open by a failed call). */
  sessionIdle(session: S): Promise<boolean>;
  /** Runs a statement of the caller's own on the session (BEGIN, COMMIT, ROLLBACK). */
  exec(session: S, sql: string): Promise<void>;
  /** Runs a statement that fails (a table that does not exist), as a method that catches the error does. */
  failingStatement(session: S): Promise<void>;
  /** An error shaped as this database's driver reports a failure worth retrying (serialization, deadlock, busy). */
  transientError(): Error;
  close(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

function toRow(raw: Record<string, unknown> | undefined): AccountRow | undefined {
  if (raw === undefined) return undefined;
  return {
    id: String(raw.id),
    balance: Number(raw.balance),
    note: String(raw.note),
    version: Number(raw.version),
    timestampMs: Number(raw.ts_ms),
  };
}

function toHistory(raw: Record<string, unknown>): RawHistoryRow {
  return {
    version: Number(raw.version),
    op: String(raw.op),
    snapshot: decodeJson(raw.snapshot) as Record<string, unknown>,
    actor: raw.actor === null || raw.actor === undefined ? null : String(raw.actor),
  };
}

export interface PostgresOptions {
  /** Connect through this port of 127.0.0.1 (a cutting proxy) instead of the URL's. */
  readonly port?: number;
  readonly max?: number;
  /** Use these existing tables (another process's) instead of creating new ones; `close` leaves them. */
  readonly tables?: { readonly accounts: string; readonly history: string };
}

export type PgSession = pg.PoolClient;

/** PostgreSQL through node-postgres: a pool for sessions, another pool for reads and kills. */
export async function openPostgres(options: PostgresOptions = {}): Promise<Target<PgSession>> {
  const url = new URL(POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
  if (options.port !== undefined) {
    url.hostname = '127.0.0.1';
    url.port = String(options.port);
  }
  const pool = new pg.Pool({ connectionString: url.toString(), max: options.max ?? 8 });
  const reader = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
  pool.on('error', () => {});
  reader.on('error', () => {});
  const accounts = options.tables?.accounts ?? uniqueName('rel_accounts');
  const history = options.tables?.history ?? uniqueName('rel_history');
  const owned = options.tables === undefined;
  if (owned)
    await reader.query(
      `CREATE TABLE ${accounts} (id text PRIMARY KEY, balance integer NOT NULL, note text NOT NULL, secret text, version integer NOT NULL, ts_ms bigint NOT NULL)`,
    );
  const store = new PostgresHistoryStore(reader, { table: history });
  if (owned) await store.ensureSchema();
  return {
    name: 'postgres',
    accountsTable: accounts,
    historyTable: history,
    store: store as HistoryWriter<PgSession> & HistoryReader,
    async session() {
      const client = await pool.connect();
      // A connection killed between two queries reports it as an 'error' event; the next query fails too.
      if (client.listenerCount('error') === 0) client.on('error', () => {});
      return client;
    },
    async release(client, broken) {
      client.release(broken === true ? true : undefined);
    },
    insert: (client, a) =>
      client.query(
        `INSERT INTO ${accounts} (id, balance, note, secret, version, ts_ms) VALUES ($1, $2, $3, $4, $5, $6)`,
        [a.id, a.balance, a.note, a.secret ?? null, a.version, a.timestamp?.getTime()],
      ),
    update: (client, a, expected) =>
      client.query(
        `UPDATE ${accounts} SET balance = $2, note = $3, secret = $4, version = $5, ts_ms = $6 WHERE id = $1${expected === undefined ? '' : ' AND version = $7'}`,
        [
          a.id,
          a.balance,
          a.note,
          a.secret ?? null,
          a.version,
          a.timestamp?.getTime(),
          ...(expected === undefined ? [] : [expected]),
        ],
      ),
    remove: (client, a, expected) =>
      expected === undefined
        ? client.query(`DELETE FROM ${accounts} WHERE id = $1`, [a.id])
        : client.query(`DELETE FROM ${accounts} WHERE id = $1 AND version = $2`, [a.id, expected]),
    async readRow(id) {
      const { rows } = await reader.query(`SELECT * FROM ${accounts} WHERE id = $1`, [id]);
      return toRow(rows[0]);
    },
    async readHistory(entityType, id) {
      const { rows } = await reader.query(
        `SELECT version, op, snapshot, actor FROM ${history} WHERE entity_type = $1 AND entity_id = $2 ORDER BY version`,
        [entityType, id],
      );
      return rows.map(toHistory);
    },
    async readEntity(entityType, id) {
      const client = await reader.connect();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const row = await client.query(`SELECT * FROM ${accounts} WHERE id = $1`, [id]);
        const entries = await client.query(
          `SELECT version, op, snapshot, actor FROM ${history} WHERE entity_type = $1 AND entity_id = $2 ORDER BY version`,
          [entityType, id],
        );
        await client.query('COMMIT');
        return { row: toRow(row.rows[0]), history: entries.rows.map(toHistory) };
      } finally {
        client.release();
      }
    },
    connectionId: (client) => (client as unknown as { processID?: number }).processID,
    async awaitClosed(pid) {
      if (pid === undefined) return;
      for (let i = 0; i < 500; i++) {
        const { rows } = await reader.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid]);
        if (rows[0].n === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`PostgreSQL backend ${pid} did not go away`);
    },
    async rawHistoryRows() {
      return (await reader.query(`SELECT * FROM ${history}`)).rows;
    },
    async serverVersion() {
      const { rows } = await reader.query('SHOW server_version');
      return `PostgreSQL ${rows[0].server_version}`;
    },
    async countAll() {
      const { rows } = await reader.query(
        `SELECT (SELECT count(*) FROM ${accounts}) + (SELECT count(*) FROM ${history}) AS n`,
      );
      return Number(rows[0].n);
    },
    async kill(client) {
      const pid = (client as unknown as { processID: number }).processID;
      await reader.query('SELECT pg_terminate_backend($1)', [pid]);
    },
    async exec(client, sql) {
      await client.query(sql);
    },
    async failingStatement(client) {
      await client.query('SELECT * FROM event_history_no_such_table');
    },
    transientError: () =>
      Object.assign(new Error('could not serialize access due to concurrent update'), { code: '40001' }),
    async sessionIdle(client) {
      const { rows } = await client.query('SELECT 1 AS one');
      return rows[0].one === 1 && client.getTransactionStatus() === 'I';
    },
    async poolHealthy(every) {
      const clients = await Promise.all(Array.from({ length: every ? (options.max ?? 8) : 1 }, () => pool.connect()));
      try {
        const results = await Promise.all(clients.map((client) => client.query('SELECT 1 AS one')));
        return results.every(({ rows }) => rows[0].one === 1) && clients.every((c) => c.getTransactionStatus() === 'I');
      } finally {
        for (const client of clients) client.release();
      }
    },
    async close() {
      try {
        if (owned) await reader.query(`DROP TABLE IF EXISTS ${accounts}, ${history}`);
      } finally {
        await pool.end();
        await reader.end();
      }
    },
  };
}

export type MariadbSession = mariadb.PoolConnection;

function mariadbSettings(port?: number) {
  const url = new URL(MARIADB_URL ?? 'mysql://root@127.0.0.1:3306/test');
  return {
    host: port === undefined ? url.hostname : '127.0.0.1',
    port: port ?? Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.replace(/^\//, '')) || 'test',
  };
}

/** MariaDB through the mariadb driver: a pool for sessions, another for reads and kills. */
export async function openMariadb(options: PostgresOptions = {}): Promise<Target<MariadbSession>> {
  const pool = mariadb.createPool({ ...mariadbSettings(options.port), connectionLimit: options.max ?? 8 });
  const reader = mariadb.createPool({ ...mariadbSettings(), connectionLimit: 2 });
  const accounts = uniqueName('rel_accounts');
  const history = uniqueName('rel_history');
  await reader.query(
    `CREATE TABLE ${accounts} (id VARCHAR(64) PRIMARY KEY, balance INT NOT NULL, note TEXT NOT NULL, secret TEXT NULL, version INT NOT NULL, ts_ms BIGINT NOT NULL) ENGINE=InnoDB`,
  );
  const store = new MysqlHistoryStore(reader as unknown as MysqlQueryable, { table: history });
  await store.ensureSchema();
  return {
    name: 'mariadb',
    accountsTable: accounts,
    historyTable: history,
    store: store as unknown as HistoryWriter<MariadbSession> & HistoryReader,
    session: () => pool.getConnection(),
    async release(connection, broken) {
      if (broken === true) await connection.destroy();
      else await connection.release();
    },
    insert: (c, a) =>
      c.query(`INSERT INTO ${accounts} (id, balance, note, secret, version, ts_ms) VALUES (?, ?, ?, ?, ?, ?)`, [
        a.id,
        a.balance,
        a.note,
        a.secret ?? null,
        a.version,
        a.timestamp?.getTime(),
      ]),
    update: (c, a, expected) =>
      c.query(
        `UPDATE ${accounts} SET balance = ?, note = ?, secret = ?, version = ?, ts_ms = ? WHERE id = ?${expected === undefined ? '' : ' AND version = ?'}`,
        [
          a.balance,
          a.note,
          a.secret ?? null,
          a.version,
          a.timestamp?.getTime(),
          a.id,
          ...(expected === undefined ? [] : [expected]),
        ],
      ),
    remove: (c, a, expected) =>
      expected === undefined
        ? c.query(`DELETE FROM ${accounts} WHERE id = ?`, [a.id])
        : c.query(`DELETE FROM ${accounts} WHERE id = ? AND version = ?`, [a.id, expected]),
    async readRow(id) {
      const rows = (await reader.query(`SELECT * FROM ${accounts} WHERE id = ?`, [id])) as Record<string, unknown>[];
      return toRow(rows[0]);
    },
    async readHistory(entityType, id) {
      const rows = (await reader.query(
        `SELECT version, op, snapshot, actor FROM ${history} WHERE entity_type = ? AND entity_id = ? ORDER BY version`,
        [entityType, id],
      )) as Record<string, unknown>[];
      return rows.map(toHistory);
    },
    async readEntity(entityType, id) {
      const connection = await reader.getConnection();
      try {
        await connection.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
        const rows = (await connection.query(`SELECT * FROM ${accounts} WHERE id = ?`, [id])) as Record<
          string,
          unknown
        >[];
        const entries = (await connection.query(
          `SELECT version, op, snapshot, actor FROM ${history} WHERE entity_type = ? AND entity_id = ? ORDER BY version`,
          [entityType, id],
        )) as Record<string, unknown>[];
        await connection.query('COMMIT');
        return { row: toRow(rows[0]), history: entries.map(toHistory) };
      } finally {
        await connection.release();
      }
    },
    connectionId: (connection) => Number(connection.threadId),
    async awaitClosed(threadId) {
      if (threadId === undefined) return;
      for (let i = 0; i < 500; i++) {
        const rows = (await reader.query('SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?', [
          threadId,
        ])) as { n: unknown }[];
        if (Number(rows[0]?.n) === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`MariaDB connection ${threadId} did not go away`);
    },
    async rawHistoryRows() {
      return (await reader.query(`SELECT * FROM ${history}`)) as unknown[];
    },
    async serverVersion() {
      const rows = (await reader.query('SELECT VERSION() AS v')) as { v: string }[];
      return `MariaDB ${rows[0]?.v}`;
    },
    async countAll() {
      const rows = (await reader.query(
        `SELECT (SELECT count(*) FROM ${accounts}) + (SELECT count(*) FROM ${history}) AS n`,
      )) as { n: unknown }[];
      return Number(rows[0]?.n);
    },
    async kill(connection) {
      await reader.query(`KILL CONNECTION ${Number(connection.threadId)}`);
    },
    async exec(connection, sql) {
      await connection.query(sql);
    },
    async failingStatement(connection) {
      await connection.query('SELECT * FROM event_history_no_such_table');
    },
    transientError: () =>
      Object.assign(new Error('Deadlock found when trying to get lock; try restarting transaction'), {
        errno: 1213,
        sqlState: '40001',
        code: 'ER_LOCK_DEADLOCK',
      }),
    async sessionIdle(connection) {
      const rows = (await connection.query('SELECT @@in_transaction AS t')) as { t: unknown }[];
      return Number(rows[0]?.t) === 0 && ((connection.info?.status ?? 0) & 1) === 0;
    },
    async poolHealthy(every) {
      const connections = await Promise.all(
        Array.from({ length: every ? (options.max ?? 8) : 1 }, () => pool.getConnection()),
      );
      try {
        const results = await Promise.all(
          connections.map((c) => c.query('SELECT 1 AS one') as Promise<{ one: unknown }[]>),
        );
        return (
          results.every((rows) => Number(rows[0]?.one) === 1) &&
          connections.every((c) => ((c.info?.status ?? 0) & 1) === 0)
        );
      } finally {
        await Promise.all(connections.map((c) => c.release()));
      }
    },
    async close() {
      try {
        await reader.query(`DROP TABLE IF EXISTS ${accounts}, ${history}`);
      } finally {
        await pool.end();
        await reader.end();
      }
    },
  };
}

export type SqliteSession = Database.Database;

/**
 * SQLite on a file in WAL mode through better-sqlite3: each session is its own Database
 * (connection) on the file; reads go through another.
 */
export async function openSqlite(
  path = join(tmpdir(), `${uniqueName('rel')}.db`),
  tables?: { readonly accounts: string; readonly history: string },
): Promise<Target<SqliteSession> & { path: string }> {
  const reader = new Database(path, { timeout: 5000 });
  reader.pragma('journal_mode = WAL');
  const accounts = tables?.accounts ?? uniqueName('rel_accounts');
  const history = tables?.history ?? uniqueName('rel_history');
  const owned = tables === undefined;
  if (owned)
    reader.exec(
      `CREATE TABLE ${accounts} (id TEXT PRIMARY KEY, balance INTEGER NOT NULL, note TEXT NOT NULL, secret TEXT, version INTEGER NOT NULL, ts_ms INTEGER NOT NULL)`,
    );
  const store = new SqliteHistoryStore(reader, { table: history });
  if (owned) await store.ensureSchema();
  const open = new Set<SqliteSession>();
  return {
    name: 'sqlite',
    path,
    accountsTable: accounts,
    historyTable: history,
    store: store as unknown as HistoryWriter<SqliteSession> & HistoryReader,
    async session() {
      const db = new Database(path, { timeout: 5000 });
      open.add(db);
      return db;
    },
    async release(db) {
      open.delete(db);
      if (db.open) db.close();
    },
    insert: async (db, a) =>
      db
        .prepare(`INSERT INTO ${accounts} (id, balance, note, secret, version, ts_ms) VALUES (?, ?, ?, ?, ?, ?)`)
        .run(a.id, a.balance, a.note, a.secret ?? null, a.version, a.timestamp?.getTime()),
    update: async (db, a, expected) =>
      db
        .prepare(
          `UPDATE ${accounts} SET balance = ?, note = ?, secret = ?, version = ?, ts_ms = ? WHERE id = ?${expected === undefined ? '' : ' AND version = ?'}`,
        )
        .run(
          a.balance,
          a.note,
          a.secret ?? null,
          a.version,
          a.timestamp?.getTime(),
          a.id,
          ...(expected === undefined ? [] : [expected]),
        ),
    remove: async (db, a, expected) =>
      expected === undefined
        ? db.prepare(`DELETE FROM ${accounts} WHERE id = ?`).run(a.id)
        : db.prepare(`DELETE FROM ${accounts} WHERE id = ? AND version = ?`).run(a.id, expected),
    async readRow(id) {
      return toRow(
        reader.prepare(`SELECT * FROM ${accounts} WHERE id = ?`).get(id) as Record<string, unknown> | undefined,
      );
    },
    async readHistory(entityType, id) {
      const rows = reader
        .prepare(
          `SELECT version, op, snapshot, actor FROM ${history} WHERE entity_type = ? AND entity_id = ? ORDER BY version`,
        )
        .all(entityType, id) as Record<string, unknown>[];
      return rows.map(toHistory);
    },
    async readEntity(entityType, id) {
      return reader.transaction(() => ({
        row: toRow(
          reader.prepare(`SELECT * FROM ${accounts} WHERE id = ?`).get(id) as Record<string, unknown> | undefined,
        ),
        history: (
          reader
            .prepare(
              `SELECT version, op, snapshot, actor FROM ${history} WHERE entity_type = ? AND entity_id = ? ORDER BY version`,
            )
            .all(entityType, id) as Record<string, unknown>[]
        ).map(toHistory),
      }))();
    },
    connectionId: () => undefined,
    async awaitClosed() {},
    async rawHistoryRows() {
      return reader.prepare(`SELECT * FROM ${history}`).all();
    },
    async serverVersion() {
      return `SQLite ${(reader.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v} (file, WAL)`;
    },
    async countAll() {
      const row = reader
        .prepare(`SELECT (SELECT count(*) FROM ${accounts}) + (SELECT count(*) FROM ${history}) AS n`)
        .get() as { n: number };
      return row.n;
    },
    async kill(db) {
      // SQLite has no server to cut the connection: closing the Database mid-transaction is the
      // nearest thing, and SQLite rolls the open transaction back when it closes.
      db.close();
    },
    async sessionIdle(db) {
      return (db.prepare('SELECT 1 AS one').get() as { one: number }).one === 1 && !db.inTransaction;
    },
    async exec(db, sql) {
      db.exec(sql);
    },
    async failingStatement(db) {
      db.prepare('SELECT * FROM event_history_no_such_table').all();
    },
    transientError: () => Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }),
    async poolHealthy() {
      const db = new Database(path, { timeout: 5000 });
      try {
        return (db.prepare('SELECT 1 AS one').get() as { one: number }).one === 1 && !db.inTransaction;
      } finally {
        db.close();
      }
    },
    async close() {
      for (const db of open) if (db.open) db.close();
      if (!owned) {
        reader.close();
        return;
      }
      reader.exec(`DROP TABLE IF EXISTS ${accounts}; DROP TABLE IF EXISTS ${history}`);
      reader.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    },
  };
}

/** The targets the environment provides, by name; absent URLs leave a database out. */
export const TARGETS: readonly {
  readonly name: TargetName;
  readonly unavailable: string | undefined;
  open(): Promise<Target>;
}[] = [
  {
    name: 'postgres',
    unavailable: POSTGRES_URL ? undefined : 'DATABASE_URL is not set',
    open: () => openPostgres() as Promise<Target>,
  },
  {
    name: 'mariadb',
    unavailable: MARIADB_URL ? undefined : 'MYSQL_URL is not set',
    open: () => openMariadb() as Promise<Target>,
  },
  { name: 'sqlite', unavailable: undefined, open: () => openSqlite() as Promise<Target> },
];

export type { HistoryEntry };

/**
 * Whether a suite needing a server runs: `false` (skipped) when the server is not configured,
 * unless `REQUIRE_DATABASES=1` (as CI sets), which makes the missing server a failure.
 */
export function runsHere(unavailable: string | undefined): boolean {
  if (unavailable === undefined) return true;
  if (REQUIRE_DATABASES)
    throw new Error(`REQUIRE_DATABASES=1, but the reliability suite cannot run here: ${unavailable}.`);
  return false;
}
