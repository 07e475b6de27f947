import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import knex, { type Knex } from 'knex';
import pg from 'pg';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import type { Order } from '../integration/behaviour.js';
import { runBehaviourSuite } from '../integration/behaviour.js';
import type { SuiteStore } from '../integration/fixture.js';
import { countHistory, postgresTamper } from '../postgres/shared.js';
import { type OrmCase, runOrmSuite, uniqueName } from './orm-suite.js';
import { type OrmDriver, RootSessionFixture } from './root-session-fixture.js';

const DATABASE_URL = process.env.DATABASE_URL;

/** Knex on PostgreSQL (pg) or SQLite (better-sqlite3), the history store on the same database. */
class KnexCase implements OrmCase<Knex> {
  readonly name: string;
  readonly adapter = 'knex';
  readonly replacesRoot = true;
  readonly sharesCallerTxId = true;
  readonly unavailable: string | undefined;
  readonly table = uniqueName('orders');
  readonly historyTable = uniqueName('history');
  readonly path = `/tmp/${uniqueName('knex')}.db`;
  #knex: Knex | undefined;
  #store: SuiteStore<unknown> | undefined;
  #pool: pg.Pool | undefined;
  #sqlite: Database.Database | undefined;

  constructor(readonly kind: 'postgres' | 'sqlite') {
    this.name = `Knex on ${kind === 'postgres' ? 'PostgreSQL (pg)' : 'SQLite (better-sqlite3)'}`;
    this.unavailable = kind === 'postgres' && !DATABASE_URL ? 'DATABASE_URL is not set' : undefined;
  }

  get root(): Knex {
    if (!this.#knex) throw new Error(`${this.name} is not open`);
    return this.#knex;
  }

  get store(): SuiteStore<unknown> {
    if (!this.#store) throw new Error(`${this.name} is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    if (this.kind === 'postgres') {
      this.#knex = knex({ client: 'pg', connection: DATABASE_URL, pool: { min: 0, max: 4 } });
      this.#pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
      this.#store = new PostgresHistoryStore(this.#pool, { table: this.historyTable });
    } else {
      // Knex's better-sqlite3 client keeps one connection; the store reads through one of its own on the same file.
      this.#knex = knex({ client: 'better-sqlite3', connection: { filename: this.path }, useNullAsDefault: true });
      this.#sqlite = new Database(this.path, { timeout: 1000 });
      this.#sqlite.pragma('journal_mode = WAL');
      this.#store = new SqliteHistoryStore(this.#sqlite, { table: this.historyTable });
    }
    await this.#knex.schema.createTable(this.table, (t) => {
      t.text('id').primary();
      t.double('total').notNullable();
      t.integer('version').notNullable();
      t.bigInteger('timestamp').notNullable();
    });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    try {
      await this.#knex?.schema.dropTableIfExists(this.table);
      if (this.kind === 'postgres') await this.#pool?.query(`DROP TABLE IF EXISTS ${this.historyTable}`);
    } finally {
      await this.#knex?.destroy();
      await this.#pool?.end();
      this.#sqlite?.close();
      if (this.kind === 'sqlite')
        for (const suffix of ['', '-wal', '-shm']) rmSync(`${this.path}${suffix}`, { force: true });
    }
  }

  transaction<R>(work: (tx: Knex) => Promise<R>): Promise<R> {
    return this.root.transaction((trx) => work(trx));
  }

  insert(trx: Knex, order: Order): Promise<unknown> {
    return trx(this.table).insert({
      id: order.id,
      total: order.total,
      version: order.version,
      timestamp: order.timestamp?.getTime(),
    });
  }

  async update(trx: Knex, order: Order, expected: number | undefined): Promise<unknown> {
    const updated = await trx(this.table)
      .where({ id: order.id, version: expected })
      .update({ total: order.total, version: order.version, timestamp: order.timestamp?.getTime() });
    return updated > 0;
  }

  async read(id: string): Promise<{ total: number; version: number } | undefined> {
    const row = await this.root(this.table).where({ id }).first();
    return row === undefined ? undefined : { total: Number(row.total), version: Number(row.version) };
  }
}

runOrmSuite(new KnexCase('postgres'));
runOrmSuite(new KnexCase('sqlite'));

/** The shared behaviour suite through Knex on PostgreSQL: `await knex.transaction()` is the caller's own transaction. */
function knexDriver(): OrmDriver<Knex> {
  const table = uniqueName('orders');
  const historyTable = uniqueName('history');
  let pool: pg.Pool | undefined;
  let db: Knex | undefined;
  const opened = () => {
    if (!db || !pool) throw new Error('Knex fixture is not open');
    return { db, pool };
  };
  const guard = (id: string, expected: number | undefined) =>
    expected === undefined ? { id } : { id, version: expected };
  return {
    name: 'Knex on PostgreSQL (pg)',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    concurrentSessions: true,
    async open() {
      db = knex({ client: 'pg', connection: DATABASE_URL, pool: { min: 0, max: 6 } });
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3 });
      await pool.query(
        `CREATE TABLE ${table} (id text PRIMARY KEY, total double precision NOT NULL, version integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
      );
      const store = new PostgresHistoryStore(pool, { table: historyTable });
      await store.ensureSchema();
      const live = pool;
      return { root: db, store, tamper: postgresTamper(() => live, historyTable) };
    },
    async close() {
      try {
        await pool?.query(`DROP TABLE IF EXISTS ${table}, ${historyTable}`);
      } finally {
        await db?.destroy();
        await pool?.end();
        db = pool = undefined;
      }
    },
    async begin(root) {
      const trx = await root.transaction();
      return {
        tx: trx,
        commit: async () => void (await trx.commit()),
        rollback: async () => void (await trx.rollback()),
      };
    },
    insert: (s, { id, total, version, timestamp }) => s(table).insert({ id, total, version, timestamp }),
    update: async (s, { id, total, version, timestamp }, expected) =>
      (await s(table).where(guard(id, expected)).update({ total, version, timestamp })) > 0,
    remove: async (s, { id }, expected) => (await s(table).where(guard(id, expected)).del()) > 0,
    async read(id) {
      const row = await opened().db(table).where({ id }).first();
      return row && { id: row.id, total: Number(row.total), version: Number(row.version), timestamp: row.timestamp };
    },
    countHistory: (type, id) => countHistory(opened().pool, historyTable, type, id),
    ping: async (root) => ((await root.raw('SELECT 1 AS ok')) as { rows: { ok: number }[] }).rows[0]?.ok === 1,
  };
}

runBehaviourSuite(new RootSessionFixture(knexDriver()));
