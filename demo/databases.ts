import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { HistoryReader, HistoryWriter } from '../src/index.js';
import { PostgresHistoryStore } from '../src/postgres/index.js';
import { SqliteHistoryStore } from '../src/sqlite/index.js';

export interface Order {
  id: string;
  customer: string;
  items: string[];
  address: string;
  version?: number;
  timestamp?: Date;
}

/** The few things the demo's repository needs from a database, written with its own driver. */
export interface DemoDatabase<S = unknown> {
  readonly label: string;
  readonly history: HistoryWriter<S> & HistoryReader;
  session(): Promise<S>;
  release(session: S): Promise<void>;
  insert(session: S, order: Order): Promise<unknown>;
  /** Guarded: only the row still at `expectedVersion` is changed. */
  update(session: S, order: Order, expectedVersion: number | undefined): Promise<unknown>;
  read(id: string): Promise<Order | undefined>;
  close(): Promise<void>;
}

interface OrderRecord {
  id: string;
  customer: string;
  items: string;
  address: string;
  version: number;
  timestamp: string | Date;
}

function fromRecord(row: OrderRecord | undefined): Order | undefined {
  if (!row) return undefined;
  return { ...row, items: JSON.parse(row.items) as string[], timestamp: new Date(row.timestamp) };
}

/** SQLite in a file through better-sqlite3, made afresh: one connection, which is the session. */
export async function sqliteDemo(path: string): Promise<DemoDatabase<Database.Database>> {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${path}${suffix}`, { force: true });
  const db = new Database(path);
  db.exec(`CREATE TABLE orders (
    id TEXT PRIMARY KEY, customer TEXT NOT NULL, items TEXT NOT NULL, address TEXT NOT NULL,
    version INTEGER NOT NULL, timestamp TEXT NOT NULL)`);
  const history = new SqliteHistoryStore(db);
  await history.ensureSchema();
  return {
    label: `SQLite in ${path} (better-sqlite3)`,
    history,
    session: async () => db,
    release: async () => {},
    insert: async (s, o) =>
      s
        .prepare('INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)')
        .run(o.id, o.customer, JSON.stringify(o.items), o.address, o.version, o.timestamp?.toISOString()),
    update: async (s, o, expected) =>
      s
        .prepare('UPDATE orders SET items = ?, address = ?, version = ?, timestamp = ? WHERE id = ? AND version = ?')
        .run(JSON.stringify(o.items), o.address, o.version, o.timestamp?.toISOString(), o.id, expected),
    read: async (id) => fromRecord(db.prepare('SELECT * FROM orders WHERE id = ?').get(id) as OrderRecord | undefined),
    close: async () => {
      db.close();
    },
  };
}

/** PostgreSQL through a node-postgres pool: each session is a client checked out of it. */
export async function postgresDemo(url: string): Promise<DemoDatabase<pg.PoolClient>> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const suffix = `${process.pid}`;
  const orders = `demo_orders_${suffix}`;
  await pool.query(`CREATE TABLE ${orders} (
    id TEXT PRIMARY KEY, customer TEXT NOT NULL, items JSONB NOT NULL, address TEXT NOT NULL,
    version INTEGER NOT NULL, timestamp TIMESTAMPTZ NOT NULL)`);
  const history = new PostgresHistoryStore(pool, { table: `demo_history_${suffix}` });
  await history.ensureSchema();
  return {
    label: 'PostgreSQL (node-postgres)',
    history,
    session: () => pool.connect(),
    release: async (client) => client.release(),
    insert: (s, o) =>
      s.query(`INSERT INTO ${orders} VALUES ($1, $2, $3, $4, $5, $6)`, [
        o.id,
        o.customer,
        JSON.stringify(o.items),
        o.address,
        o.version,
        o.timestamp,
      ]),
    update: (s, o, expected) =>
      s.query(
        `UPDATE ${orders} SET items = $1, address = $2, version = $3, timestamp = $4 WHERE id = $5 AND version = $6`,
        [JSON.stringify(o.items), o.address, o.version, o.timestamp, o.id, expected],
      ),
    read: async (id) => {
      const { rows } = await pool.query(`SELECT * FROM ${orders} WHERE id = $1`, [id]);
      const row = rows[0] as (Omit<OrderRecord, 'items'> & { items: string[] }) | undefined;
      return row && { ...row, timestamp: new Date(row.timestamp) };
    },
    close: async () => {
      await pool.query(`DROP TABLE IF EXISTS ${orders}, demo_history_${suffix}`);
      await pool.end();
    },
  };
}
