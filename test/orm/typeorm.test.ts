import type Database from 'better-sqlite3';
import type pg from 'pg';
import { DataSource, EntitySchema, type QueryRunner } from 'typeorm';
import { type MysqlCallbackQueryable, MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { runBehaviourSuite } from '../integration/behaviour.js';
import type { DatabaseFixture, HistoryTamper, OrderRow, SuiteStore } from '../integration/fixture.js';
import { connectionOptions, MYSQL_URL } from '../mysql/support.js';
import { countHistory, postgresTamper, uniqueTable } from '../postgres/shared.js';

const DATABASE_URL = process.env.DATABASE_URL;

class OrderEntity implements OrderRow {
  id!: string;
  total!: number;
  version?: number;
  timestamp?: Date;
}

/**
 * The suite through TypeORM: each session is a `QueryRunner` (one pooled connection), the user's
 * code writes with its `manager` (`insert`, and `update`/`delete` guarded by the version, whose
 * `{ affected: 0 }` the default conflict check reads), and the caller's own transactions are
 * `startTransaction()` / `commitTransaction()` / `rollbackTransaction()`.
 */
class TypeOrmFixture implements DatabaseFixture<QueryRunner> {
  readonly name: string;
  readonly unavailable: string | undefined;
  readonly concurrentSessions: boolean;
  readonly ordersTable = uniqueTable('orders');
  readonly historyTable = uniqueTable('history');
  readonly schema: EntitySchema<OrderEntity>;
  readonly tamper: HistoryTamper;
  #dataSource: DataSource | undefined;
  #store: SuiteStore<unknown> | undefined;

  constructor(readonly kind: 'postgres' | 'mariadb' | 'sqlite') {
    this.name = {
      postgres: 'TypeORM on PostgreSQL (pg)',
      mariadb: 'TypeORM on MariaDB (mysql2)',
      sqlite: 'TypeORM on SQLite (better-sqlite3, in memory)',
    }[kind];
    this.unavailable =
      kind === 'postgres' && !DATABASE_URL
        ? 'DATABASE_URL is not set'
        : kind === 'mariadb' && !MYSQL_URL
          ? 'MYSQL_URL is not set'
          : undefined;
    this.concurrentSessions = kind !== 'sqlite';
    this.schema = new EntitySchema<OrderEntity>({
      name: `Order_${this.ordersTable}`,
      target: OrderEntity,
      tableName: this.ordersTable,
      columns: {
        id: {
          type: kind === 'mariadb' ? 'varchar' : 'text',
          length: kind === 'mariadb' ? 64 : undefined,
          primary: true,
        },
        total: { type: kind === 'sqlite' ? 'real' : 'double precision' },
        version: { type: 'integer' },
        timestamp: {
          type: kind === 'postgres' ? 'timestamptz' : 'datetime',
          precision: kind === 'mariadb' ? 3 : undefined,
        },
      },
    });
    this.tamper =
      kind === 'postgres'
        ? postgresTamper(() => this.pool, this.historyTable)
        : kind === 'mariadb'
          ? mysqlTamper(() => this.dataSource, this.historyTable)
          : sqliteTamper(() => this.sqlite, this.historyTable);
  }

  get dataSource(): DataSource {
    if (!this.#dataSource) throw new Error(`the ${this.name} fixture is not open`);
    return this.#dataSource;
  }

  /** The pg Pool under TypeORM's PostgreSQL driver. */
  get pool(): pg.Pool {
    return (this.dataSource.driver as unknown as { master: pg.Pool }).master;
  }

  /** The better-sqlite3 Database under TypeORM's driver. */
  get sqlite(): Database.Database {
    return (this.dataSource.driver as unknown as { databaseConnection: Database.Database }).databaseConnection;
  }

  get store(): SuiteStore<unknown> {
    if (!this.#store) throw new Error(`the ${this.name} fixture is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    this.#dataSource =
      this.kind === 'postgres'
        ? new DataSource({ type: 'postgres', url: DATABASE_URL, entities: [this.schema], poolSize: 6 })
        : this.kind === 'mariadb'
          ? new DataSource({
              type: 'mariadb',
              ...typeormMysqlOptions(),
              entities: [this.schema],
              poolSize: 6,
              timezone: 'Z',
            })
          : new DataSource({ type: 'better-sqlite3', database: ':memory:', entities: [this.schema] });
    await this.#dataSource.initialize();
    await this.#dataSource.synchronize();
    this.#store =
      this.kind === 'postgres'
        ? new PostgresHistoryStore(this.pool, { table: this.historyTable })
        : this.kind === 'mariadb'
          ? new MysqlHistoryStore((this.dataSource.driver as unknown as { pool: MysqlCallbackQueryable }).pool, {
              table: this.historyTable,
            })
          : new SqliteHistoryStore(this.sqlite, { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    const dataSource = this.#dataSource;
    this.#dataSource = this.#store = undefined;
    if (!dataSource) return;
    try {
      if (this.kind === 'postgres')
        await dataSource.query(
          `DROP TABLE IF EXISTS ${this.ordersTable}, ${this.historyTable}, ${this.historyTable}_heads`,
        );
    } finally {
      await dataSource.destroy();
    }
  }

  async session(): Promise<QueryRunner> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    return runner;
  }

  async release(session: QueryRunner): Promise<void> {
    await session.release();
  }

  insertOrder = (session: QueryRunner, { id, total, version, timestamp }: OrderRow) =>
    session.manager.insert(OrderEntity, { id, total, version, timestamp });
  updateOrder = (session: QueryRunner, { id, total, version, timestamp }: OrderRow, expected: number | undefined) =>
    session.manager.update(OrderEntity, expected === undefined ? { id } : { id, version: expected }, {
      total,
      version,
      timestamp,
    });
  deleteOrder = (session: QueryRunner, order: OrderRow, expected: number | undefined) =>
    session.manager.delete(
      OrderEntity,
      expected === undefined ? { id: order.id } : { id: order.id, version: expected },
    );

  async readOrder(id: string): Promise<OrderRow | undefined> {
    const row = await this.dataSource.manager.findOneBy(OrderEntity, { id });
    return row === null
      ? undefined
      : { id: row.id, total: Number(row.total), version: row.version, timestamp: row.timestamp };
  }

  async countHistory(entityType: string, entityId: string): Promise<number> {
    if (this.kind === 'postgres') return countHistory(this.pool, this.historyTable, entityType, entityId);
    if (this.kind === 'mariadb') {
      const rows = (await this.dataSource.query(
        `SELECT count(*) AS n FROM ${this.historyTable} WHERE entity_type = ? AND entity_id = ?`,
        [entityType, entityId],
      )) as { n: number | string }[];
      return Number(rows[0]?.n);
    }
    const row = this.sqlite
      .prepare(`SELECT count(*) AS n FROM ${this.historyTable} WHERE entity_type = ? AND entity_id = ?`)
      .get(entityType, entityId) as { n: number };
    return row.n;
  }

  begin = (session: QueryRunner) => session.startTransaction();
  commit = (session: QueryRunner) => session.commitTransaction();
  rollback = (session: QueryRunner) => session.rollbackTransaction();

  async isIdle(session: QueryRunner): Promise<boolean> {
    if (session.isTransactionActive || session.isReleased) return false;
    const rows = (await session.query('SELECT 1 AS ok')) as { ok: number }[];
    return Number(rows[0]?.ok) === 1;
  }
}

function typeormMysqlOptions() {
  const { user, ...rest } = connectionOptions();
  return { ...rest, username: user };
}

function mysqlTamper(db: () => DataSource, table: string): HistoryTamper {
  const key = 'entity_type = ? AND entity_id = ? AND version = ?';
  return {
    setTotal: async (type, id, version, total) => {
      await db().query(`UPDATE ${table} SET snapshot = JSON_SET(snapshot, '$.total', ?) WHERE ${key}`, [
        total,
        type,
        id,
        version,
      ]);
    },
    remove: async (type, id, version) => {
      await db().query(`DELETE FROM ${table} WHERE ${key}`, [type, id, version]);
    },
    insert: async (type, id, version, total) => {
      await db().query(
        `INSERT INTO ${table} (entity_type, entity_id, version, op, \`timestamp\`, snapshot) ` +
          "VALUES (?, ?, ?, 'update', UTC_TIMESTAMP(3), JSON_OBJECT('id', ?, 'total', ?))",
        [type, id, version, id, total],
      );
    },
  };
}

function sqliteTamper(db: () => Database.Database, table: string): HistoryTamper {
  const key = 'entity_type = ? AND entity_id = ? AND version = ?';
  return {
    setTotal: async (type, id, version, total) => {
      db()
        .prepare(`UPDATE ${table} SET snapshot = json_set(snapshot, '$.total', ?) WHERE ${key}`)
        .run(total, type, id, version);
    },
    remove: async (type, id, version) => {
      db().prepare(`DELETE FROM ${table} WHERE ${key}`).run(type, id, version);
    },
    insert: async (type, id, version, total) => {
      db()
        .prepare(
          `INSERT INTO ${table} (entity_type, entity_id, version, op, "timestamp", snapshot) ` +
            `VALUES (?, ?, ?, 'update', ?, json_object('id', ?, 'total', ?))`,
        )
        .run(type, id, version, Date.now(), id, total);
    },
  };
}

runBehaviourSuite(new TypeOrmFixture('postgres'));
runBehaviourSuite(new TypeOrmFixture('mariadb'));
runBehaviourSuite(new TypeOrmFixture('sqlite'));
