import { Kysely, MysqlDialect, PostgresDialect, sql } from 'kysely';
import mysql from 'mysql2';
import pg from 'pg';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import type { Order } from '../integration/behaviour.js';
import { runBehaviourSuite } from '../integration/behaviour.js';
import type { SuiteStore } from '../integration/fixture.js';
import { connectionOptions, MYSQL_URL } from '../mysql/support.js';
import { countHistory, postgresTamper } from '../postgres/shared.js';
import { type OrmCase, runOrmSuite, uniqueName } from './orm-suite.js';
import { type OrmDriver, RootSessionFixture } from './root-session-fixture.js';

const DATABASE_URL = process.env.DATABASE_URL;

interface OrdersTable {
  id: string;
  total: number;
  version: number;
  timestamp: Date;
}
type Db = Record<string, OrdersTable>;

/** Kysely on PostgreSQL (pg) or MariaDB (mysql2): the history store writes through the Kysely transaction itself. */
class KyselyCase implements OrmCase<Kysely<Db>> {
  readonly name: string;
  readonly adapter = 'kysely';
  readonly replacesRoot = true;
  readonly sharesCallerTxId = true;
  readonly unavailable: string | undefined;
  readonly table = uniqueName('orders');
  readonly historyTable = uniqueName('history');
  #db: Kysely<Db> | undefined;
  #store: SuiteStore<unknown> | undefined;

  constructor(readonly kind: 'postgres' | 'mariadb') {
    this.name = kind === 'postgres' ? 'Kysely on PostgreSQL (pg)' : 'Kysely on MariaDB (mysql2)';
    const url = kind === 'postgres' ? DATABASE_URL : MYSQL_URL;
    this.unavailable = url ? undefined : `${kind === 'postgres' ? 'DATABASE_URL' : 'MYSQL_URL'} is not set`;
  }

  get root(): Kysely<Db> {
    if (!this.#db) throw new Error(`${this.name} is not open`);
    return this.#db;
  }

  get store(): SuiteStore<unknown> {
    if (!this.#store) throw new Error(`${this.name} is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    const postgres = this.kind === 'postgres';
    if (postgres) {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
      this.#db = new Kysely<Db>({ dialect: new PostgresDialect({ pool }) });
      this.#store = new PostgresHistoryStore(pool, { table: this.historyTable });
    } else {
      const pool = mysql.createPool({ ...connectionOptions(), connectionLimit: 4 });
      this.#db = new Kysely<Db>({ dialect: new MysqlDialect({ pool }) });
      this.#store = new MysqlHistoryStore(pool, { table: this.historyTable });
    }
    await this.#db.schema
      .createTable(this.table)
      .addColumn('id', postgres ? 'text' : 'varchar(64)', (c) => c.primaryKey())
      .addColumn('total', postgres ? 'float8' : 'double precision', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('timestamp', postgres ? 'timestamptz' : 'datetime(3)', (c) => c.notNull())
      .execute();
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    try {
      await sql`DROP TABLE IF EXISTS ${sql.table(this.table)}, ${sql.table(this.historyTable)}`.execute(this.root);
    } finally {
      await this.#db?.destroy();
    }
  }

  transaction<R>(work: (tx: Kysely<Db>) => Promise<R>): Promise<R> {
    return this.root.transaction().execute((trx) => work(trx));
  }

  insert(db: Kysely<Db>, order: Order): Promise<unknown> {
    return db
      .insertInto(this.table)
      .values({
        id: order.id,
        total: order.total,
        version: order.version ?? 0,
        timestamp: order.timestamp ?? new Date(),
      })
      .execute();
  }

  update(db: Kysely<Db>, order: Order, expected: number | undefined): Promise<unknown> {
    return db
      .updateTable(this.table)
      .set({ total: order.total, version: order.version, timestamp: order.timestamp })
      .where('id', '=', order.id)
      .where('version', '=', expected ?? -1)
      .executeTakeFirst();
  }

  async read(id: string): Promise<{ total: number; version: number } | undefined> {
    const row = await this.root.selectFrom(this.table).selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : { total: Number(row.total), version: Number(row.version) };
  }
}

runOrmSuite(new KyselyCase('postgres'));
runOrmSuite(new KyselyCase('mariadb'));

/** The shared behaviour suite through Kysely on PostgreSQL: `startTransaction()` is the caller's own transaction. */
function kyselyDriver(): OrmDriver<Kysely<Db>> {
  const table = uniqueName('orders');
  const historyTable = uniqueName('history');
  let pool: pg.Pool | undefined;
  let db: Kysely<Db> | undefined;
  const opened = () => {
    if (!db || !pool) throw new Error('Kysely fixture is not open');
    return { db, pool };
  };
  return {
    name: 'Kysely on PostgreSQL (pg)',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    concurrentSessions: true,
    async open() {
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
      db = new Kysely<Db>({ dialect: new PostgresDialect({ pool }) });
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
        db = pool = undefined;
      }
    },
    async begin(root) {
      const trx = await root.startTransaction().execute();
      return { tx: trx, commit: () => trx.commit().execute(), rollback: () => trx.rollback().execute() };
    },
    insert: (s, { id, total, version, timestamp }) =>
      s
        .insertInto(table)
        .values({ id, total, version: version ?? 0, timestamp: timestamp ?? new Date() })
        .execute(),
    update: (s, { id, total, version, timestamp }, expected) => {
      const query = s.updateTable(table).set({ total, version, timestamp }).where('id', '=', id);
      return (expected === undefined ? query : query.where('version', '=', expected)).executeTakeFirst();
    },
    remove: (s, { id }, expected) => {
      const query = s.deleteFrom(table).where('id', '=', id);
      return (expected === undefined ? query : query.where('version', '=', expected)).executeTakeFirst();
    },
    async read(id) {
      const row = await opened().db.selectFrom(table).selectAll().where('id', '=', id).executeTakeFirst();
      return row && { id: row.id, total: Number(row.total), version: Number(row.version), timestamp: row.timestamp };
    },
    countHistory: (type, id) => countHistory(opened().pool, historyTable, type, id),
    ping: async (root) => (await sql<{ ok: number }>`SELECT 1 AS ok`.execute(root)).rows[0]?.ok === 1,
  };
}

runBehaviourSuite(new RootSessionFixture(kyselyDriver()));
