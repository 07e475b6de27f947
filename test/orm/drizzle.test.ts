import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { and, eq, sql } from 'drizzle-orm';
import { type BetterSQLite3Database, drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import { drizzle as drizzlePg, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { doublePrecision, integer as pgInteger, pgTable, text as pgText, timestamp } from 'drizzle-orm/pg-core';
import { integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HistoryTracked, MemoryHistoryStore, TransactionStateError, Versioned } from '../../src/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { type DrizzleLike, drizzleAdapter } from '../../src/transactions/drizzle.js';
import { Order, orderId, runBehaviourSuite } from '../integration/behaviour.js';
import type { SuiteStore } from '../integration/fixture.js';
import { countHistory, postgresTamper } from '../postgres/shared.js';
import { suiteNeeding } from '../support/skip.js';
import { type OrmCase, runOrmSuite, uniqueName } from './orm-suite.js';
import { type OrmDriver, RootSessionFixture } from './root-session-fixture.js';
import { holdTransaction } from './switchable.js';

const DATABASE_URL = process.env.DATABASE_URL;

/** Drizzle on PostgreSQL (node-postgres): `db.transaction(async (tx) => …)` is the ORM's transaction. */
class DrizzlePgCase implements OrmCase<NodePgDatabase> {
  readonly name = 'Drizzle on PostgreSQL (node-postgres)';
  readonly adapter = 'drizzle';
  readonly replacesRoot = true;
  readonly sharesCallerTxId = true;
  readonly unavailable = DATABASE_URL ? undefined : 'DATABASE_URL is not set';
  readonly tableName = uniqueName('orders');
  readonly historyTable = uniqueName('history');
  readonly orders = pgTable(this.tableName, {
    id: pgText('id').primaryKey(),
    total: doublePrecision('total').notNull(),
    version: pgInteger('version').notNull(),
    timestamp: timestamp('timestamp', { withTimezone: true }).notNull(),
  });
  #pool: pg.Pool | undefined;
  #db: NodePgDatabase | undefined;
  #store: SuiteStore<unknown> | undefined;

  get root(): NodePgDatabase {
    if (!this.#db) throw new Error(`${this.name} is not open`);
    return this.#db;
  }

  get store(): SuiteStore<unknown> {
    if (!this.#store) throw new Error(`${this.name} is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    this.#pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
    this.#db = drizzlePg(this.#pool);
    await this.#pool.query(
      `CREATE TABLE ${this.tableName} (id text PRIMARY KEY, total double precision NOT NULL, version integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
    );
    this.#store = new PostgresHistoryStore(this.#pool, { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    try {
      await this.#pool?.query(`DROP TABLE IF EXISTS ${this.tableName}, ${this.historyTable}`);
    } finally {
      await this.#pool?.end();
    }
  }

  transaction<R>(work: (tx: NodePgDatabase) => Promise<R>): Promise<R> {
    return this.root.transaction((tx) => work(tx as unknown as NodePgDatabase));
  }

  insert(db: NodePgDatabase, order: Order): Promise<unknown> {
    return db.insert(this.orders).values({
      id: order.id,
      total: order.total,
      version: order.version ?? 0,
      timestamp: order.timestamp ?? new Date(),
    });
  }

  update(db: NodePgDatabase, order: Order, expected: number | undefined): Promise<unknown> {
    return db
      .update(this.orders)
      .set({ total: order.total, version: order.version, timestamp: order.timestamp })
      .where(and(eq(this.orders.id, order.id), eq(this.orders.version, expected ?? -1)));
  }

  async read(id: string): Promise<{ total: number; version: number } | undefined> {
    const [row] = await this.root.select().from(this.orders).where(eq(this.orders.id, id));
    return row === undefined ? undefined : { total: row.total, version: row.version };
  }
}

/**
 * Drizzle on SQLite (better-sqlite3): its transactions are synchronous, so the database itself is
 * the session, also for the caller's own transaction (BEGIN / COMMIT through it).
 */
class DrizzleSqliteCase implements OrmCase<BetterSQLite3Database> {
  readonly name = 'Drizzle on SQLite (better-sqlite3)';
  readonly adapter = 'drizzle';
  readonly replacesRoot = false;
  readonly sharesCallerTxId = false;
  readonly unavailable = undefined;
  readonly tableName = uniqueName('orders');
  readonly historyTable = uniqueName('history');
  readonly path = `/tmp/${uniqueName('drizzle')}.db`;
  readonly orders = sqliteTable(this.tableName, {
    id: text('id').primaryKey(),
    total: real('total').notNull(),
    version: integer('version').notNull(),
    timestamp: integer('timestamp', { mode: 'timestamp_ms' }).notNull(),
  });
  #sqlite: Database.Database | undefined;
  #reader: Database.Database | undefined;
  #db: BetterSQLite3Database | undefined;
  #store: SuiteStore<unknown> | undefined;

  get root(): BetterSQLite3Database {
    if (!this.#db) throw new Error(`${this.name} is not open`);
    return this.#db;
  }

  get store(): SuiteStore<unknown> {
    if (!this.#store) throw new Error(`${this.name} is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    this.#sqlite = new Database(this.path);
    this.#db = drizzleSqlite(this.#sqlite);
    this.#sqlite.exec(
      `CREATE TABLE ${this.tableName} (id TEXT PRIMARY KEY, total REAL NOT NULL, version INTEGER NOT NULL, "timestamp" INTEGER NOT NULL)`,
    );
    this.#sqlite.pragma('journal_mode = WAL');
    // The store reads through a connection of its own, so reads see only committed history.
    this.#reader = new Database(this.path, { timeout: 1000 });
    this.#store = new SqliteHistoryStore(this.#reader, { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    this.#reader?.close();
    this.#sqlite?.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${this.path}${suffix}`, { force: true });
  }

  async transaction<R>(work: (tx: BetterSQLite3Database) => Promise<R>): Promise<R> {
    const sqlite = this.#sqlite as Database.Database;
    sqlite.exec('BEGIN');
    try {
      const result = await work(this.root);
      sqlite.exec('COMMIT');
      return result;
    } catch (error) {
      sqlite.exec('ROLLBACK');
      throw error;
    }
  }

  async insert(db: BetterSQLite3Database, order: Order): Promise<unknown> {
    return db
      .insert(this.orders)
      .values({
        id: order.id,
        total: order.total,
        version: order.version ?? 0,
        timestamp: order.timestamp ?? new Date(),
      })
      .run();
  }

  async update(db: BetterSQLite3Database, order: Order, expected: number | undefined): Promise<unknown> {
    return db
      .update(this.orders)
      .set({ total: order.total, version: order.version, timestamp: order.timestamp })
      .where(and(eq(this.orders.id, order.id), eq(this.orders.version, expected ?? -1)))
      .run();
  }

  async read(id: string): Promise<{ total: number; version: number } | undefined> {
    const [row] = this.root.select().from(this.orders).where(eq(this.orders.id, id)).all();
    return row === undefined ? undefined : { total: row.total, version: row.version };
  }
}

runOrmSuite(new DrizzlePgCase());
runOrmSuite(new DrizzleSqliteCase());

/** The shared behaviour suite through Drizzle on PostgreSQL: a held-open `db.transaction()` is the caller's own. */
function drizzleDriver(): OrmDriver<NodePgDatabase> {
  const tableName = uniqueName('orders');
  const historyTable = uniqueName('history');
  const orders = pgTable(tableName, {
    id: pgText('id').primaryKey(),
    total: doublePrecision('total').notNull(),
    version: pgInteger('version').notNull(),
    timestamp: timestamp('timestamp', { withTimezone: true }).notNull(),
  });
  let pool: pg.Pool | undefined;
  let db: NodePgDatabase | undefined;
  const opened = () => {
    if (!db || !pool) throw new Error('Drizzle fixture is not open');
    return { db, pool };
  };
  const guard = (id: string, expected: number | undefined) =>
    expected === undefined ? eq(orders.id, id) : and(eq(orders.id, id), eq(orders.version, expected));
  return {
    name: 'Drizzle on PostgreSQL (node-postgres)',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    concurrentSessions: true,
    async open() {
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
      db = drizzlePg(pool);
      await pool.query(
        `CREATE TABLE ${tableName} (id text PRIMARY KEY, total double precision NOT NULL, version integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
      );
      const store = new PostgresHistoryStore(pool, { table: historyTable });
      await store.ensureSchema();
      const live = pool;
      return { root: db, store, tamper: postgresTamper(() => live, historyTable) };
    },
    async close() {
      try {
        await pool?.query(`DROP TABLE IF EXISTS ${tableName}, ${historyTable}`);
      } finally {
        await pool?.end();
        db = pool = undefined;
      }
    },
    begin: (root) =>
      holdTransaction<NodePgDatabase>((work) => root.transaction((tx) => work(tx as unknown as NodePgDatabase))),
    insert: (s, { id, total, version, timestamp: at }) =>
      s.insert(orders).values({ id, total, version: version ?? 0, timestamp: at ?? new Date() }),
    update: (s, { id, total, version, timestamp: at }, expected) =>
      s.update(orders).set({ total, version, timestamp: at }).where(guard(id, expected)),
    remove: (s, { id }, expected) => s.delete(orders).where(guard(id, expected)),
    async read(id) {
      const [row] = await opened().db.select().from(orders).where(eq(orders.id, id));
      return row && { id: row.id, total: row.total, version: row.version, timestamp: row.timestamp };
    },
    countHistory: (type, id) => countHistory(opened().pool, historyTable, type, id),
    ping: async (root) => (await root.execute(sql`SELECT 1 AS ok`)).rows[0]?.ok === 1,
  };
}

runBehaviourSuite(new RootSessionFixture(drizzleDriver()));

suiteNeeding(DATABASE_URL ? undefined : 'DATABASE_URL is not set')(
  'Drizzle on one pg Client, and a tx after its transaction',
  () => {
    const tableName = uniqueName('orders');
    const orders = pgTable(tableName, {
      id: pgText('id').primaryKey(),
      total: doublePrecision('total').notNull(),
      version: pgInteger('version').notNull(),
      timestamp: timestamp('timestamp', { withTimezone: true }).notNull(),
    });
    let pool: pg.Pool;
    const history = new MemoryHistoryStore();
    @Versioned()
    @HistoryTracked(history)
    class Orders {
      async save(order: Order, db: NodePgDatabase) {
        await db
          .insert(orders)
          .values({ id: order.id, total: order.total, version: order.version ?? 0, timestamp: new Date() });
      }
    }
    const service = new Orders();
    const exists = async (id: string) =>
      (await pool.query(`SELECT 1 FROM ${tableName} WHERE id = $1`, [id])).rowCount === 1;

    beforeAll(async () => {
      if (!DATABASE_URL) throw new Error('REQUIRE_DATABASES=1, but DATABASE_URL is not set.');
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3 });
      await pool.query(
        `CREATE TABLE ${tableName} (id text PRIMARY KEY, total double precision NOT NULL, version integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
      );
    });
    afterAll(async () => {
      try {
        await pool?.query(`DROP TABLE IF EXISTS ${tableName}`);
      } finally {
        await pool?.end();
      }
    });

    it('a call through drizzle(client) joins the transaction the caller began on the client, never commits it', async () => {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      try {
        const db = drizzlePg(client);
        const mine = new Order(orderId(), 1);
        const theirs = new Order(orderId(), 2);
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${tableName} VALUES ($1, 1, 0, now())`, [mine.id]);
        await service.save(theirs, db);
        // Still the caller's transaction: nothing is visible outside it, and ROLLBACK takes both rows.
        expect(client.getTransactionStatus()).toBe('T');
        expect(await exists(theirs.id)).toBe(false);
        await client.query('ROLLBACK');
        expect([await exists(mine.id), await exists(theirs.id)]).toEqual([false, false]);
        // Without a transaction of the caller's, the library begins and commits its own.
        const own = new Order(orderId(), 3);
        await service.save(own, db);
        expect(client.getTransactionStatus()).toBe('I');
        expect(await exists(own.id)).toBe(true);
      } finally {
        await client.end();
      }
    });

    it('join on drizzle(client) in the caller’s transaction rolls back only the failed work', async () => {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      try {
        const db = drizzlePg(client);
        const [kept, dropped] = [orderId(), orderId()];
        await client.query('BEGIN');
        await client.query(`INSERT INTO ${tableName} VALUES ($1, 1, 0, now())`, [kept]);
        // Drizzle's `session` is internal to its types; the adapter reads it structurally.
        const session = db as unknown as DrizzleLike;
        expect(drizzleAdapter.isActive(session)).toBe(true);
        await expect(
          drizzleAdapter.join?.(session, async () => {
            await db.insert(orders).values({ id: dropped, total: 2, version: 0, timestamp: new Date() });
            throw new Error('failed');
          }),
        ).rejects.toThrow('failed');
        await client.query('COMMIT');
        expect([await exists(kept), await exists(dropped)]).toEqual([true, false]);
      } finally {
        await client.end();
      }
    });

    it('a tx used after its transaction ended is a TransactionStateError and writes nothing', async () => {
      const db = drizzlePg(pool);
      let leaked: NodePgDatabase | undefined;
      await db.transaction(async (tx) => {
        leaked = tx as unknown as NodePgDatabase;
        await service.save(new Order(orderId(), 1), leaked);
      });
      if (leaked === undefined) throw new Error('no tx');
      const late = new Order(orderId(), 5);
      const error = await service.save(late, leaked).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionStateError);
      expect((error as TransactionStateError).code).toBe('TRANSACTION_CLOSED');
      expect(await exists(late.id)).toBe(false);
      expect(late.version).toBeUndefined();
      // Even when its pool client is back in someone else's transaction.
      const other = await pool.connect();
      try {
        // pg-pool hands out the client released last: the one the leaked tx ran on.
        expect((leaked as unknown as { session: { client: unknown } }).session.client).toBe(other);
        await other.query('BEGIN');
        const again = new Order(orderId(), 6);
        const before = pool.totalCount;
        await expect(service.save(again, leaked)).rejects.toBeInstanceOf(TransactionStateError);
        await other.query('ROLLBACK');
        expect(pool.totalCount).toBe(before);
        expect(await exists(again.id)).toBe(false);
      } finally {
        other.release();
      }
    });
  },
);
