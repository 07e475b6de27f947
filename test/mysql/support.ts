import { randomBytes } from 'node:crypto';
import { describe, it } from 'vitest';
import type { TransactionAdapter } from '../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable } from '../../src/mysql/index.js';
import { type DatabaseFixture, type HistoryTamper, type OrderRow, REQUIRE_DATABASES } from '../integration/fixture.js';

export const MYSQL_URL = process.env.MYSQL_URL;

/** Why the MySQL suites cannot run here, or `undefined` when they can. */
export const mysqlUnavailable: string | undefined = MYSQL_URL ? undefined : 'MYSQL_URL is not set';

/** Host, port, user, password and database of `MYSQL_URL`, in the shape both drivers take. */
export function connectionOptions(): { host: string; port: number; user: string; password: string; database: string } {
  const url = new URL(MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test');
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.replace(/^\//, '')) || 'test',
  };
}

/** A table name no other test file, vitest project or process uses. */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

let noticeShown = false;

/**
 * `describe` for suites that need the server: skipped with a one-line notice when `MYSQL_URL`
 * is not set, a failing test instead when `REQUIRE_DATABASES=1`.
 */
export function describeMysql(name: string, body: () => void): void {
  if (mysqlUnavailable === undefined) {
    describe(name, body);
  } else if (REQUIRE_DATABASES) {
    describe(name, () => {
      it('needs a MySQL or MariaDB server', () => {
        throw new Error(`REQUIRE_DATABASES=1, but ${name} cannot run: ${mysqlUnavailable}.`);
      });
    });
  } else {
    if (!noticeShown)
      console.info(`MySQL tests skipped: ${mysqlUnavailable} (e.g. MYSQL_URL=mysql://root@127.0.0.1:3306/test).`);
    noticeShown = true;
    describe.skip(`${name}: skipped because ${mysqlUnavailable}`, () => {
      it('needs a MySQL or MariaDB server', () => {});
    });
  }
}

/** Driver options the tests vary. */
export interface ConnectOptions {
  /** The driver's `timezone` option, e.g. `'+05:30'`. */
  readonly timezone?: string;
  /** Further driver options, passed as they are. */
  readonly driver?: Readonly<Record<string, unknown>>;
  /** Modes added to the session's `sql_mode` on every connection, e.g. `'NO_BACKSLASH_ESCAPES'`. */
  readonly sqlModes?: readonly string[];
}

/** The statement that adds `modes` to a session's sql_mode. */
export function addSqlModes(modes: readonly string[]): string {
  for (const mode of modes) if (!/^[A-Z_]+$/.test(mode)) throw new Error(`not a sql_mode: ${mode}`);
  return `SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), '${modes.join(',')}')`;
}

/**
 * What the tests need from one driver, so one suite runs against mysql2 and mariadb alike.
 * `exec` returns what a statement yielded, the same for both: rows, or the OK result.
 */
export interface MysqlDriverKit<C, P> {
  readonly name: 'mysql2' | 'mariadb';
  /** Whether consecutive calls joining one transaction of the caller get one txId (mysql2) or one each (mariadb). */
  readonly sharesCallerTxId: boolean;
  readonly adapter: TransactionAdapter<C>;
  /** Pool options of this driver that change the shape of query results. */
  readonly shapeChangingOptions: Readonly<Record<string, unknown>>;
  createPool(options?: ConnectOptions): P;
  connect(options?: ConnectOptions): Promise<C>;
  getConnection(pool: P): Promise<C>;
  release(connection: C): Promise<void>;
  close(connection: C): Promise<void>;
  endPool(pool: P): Promise<void>;
  /** The object to give `MysqlHistoryStore`. */
  queryable(target: P | C): MysqlQueryable;
  exec(target: P | C, sql: string, values?: unknown[]): Promise<unknown>;
  /** Asks the server, through the OK packet's status flags, whether a transaction is open. */
  serverInTransaction(connection: C): Promise<boolean>;
  threadId(connection: C): number;
  beginTransaction(connection: C): Promise<void>;
  commit(connection: C): Promise<void>;
  rollback(connection: C): Promise<void>;
}

interface OrderRecord {
  id: string;
  total: number;
  version: number | null;
  timestamp: Date | null;
}

/**
 * The shared behaviour suite's fixture for one MySQL driver: a pool, one pooled connection per
 * session, reads through the pool, an orders table and a history table of its own.
 */
export class MysqlFixture<C extends MysqlQueryable, P> implements DatabaseFixture<C> {
  readonly name: string;
  readonly unavailable = mysqlUnavailable;
  readonly concurrentSessions = true;
  readonly ordersTable = uniqueTable('eh_orders');
  readonly historyTable = uniqueTable('eh_history');
  readonly kit: MysqlDriverKit<C, P>;
  readonly tamper: HistoryTamper = {
    setTotal: async (type, id, version, total) => {
      await this.kit.exec(
        this.pool,
        `UPDATE ${this.historyTable} SET snapshot = JSON_SET(snapshot, '$.total', ?) WHERE entity_type = ? AND entity_id = ? AND version = ?`,
        [total, type, id, version],
      );
    },
    remove: async (type, id, version) => {
      await this.kit.exec(
        this.pool,
        `DELETE FROM ${this.historyTable} WHERE entity_type = ? AND entity_id = ? AND version = ?`,
        [type, id, version],
      );
    },
    insert: async (type, id, version, total) => {
      await this.kit.exec(
        this.pool,
        `INSERT INTO ${this.historyTable} (entity_type, entity_id, version, op, \`timestamp\`, snapshot) ` +
          "VALUES (?, ?, ?, 'update', UTC_TIMESTAMP(3), JSON_OBJECT('id', ?, 'total', ?))",
        [type, id, version, id, total],
      );
    },
  };
  #pool: P | undefined;
  #store: MysqlHistoryStore | undefined;

  constructor(kit: MysqlDriverKit<C, P>) {
    this.kit = kit;
    this.name = `MySQL (${kit.name})`;
  }

  get pool(): P {
    if (this.#pool === undefined) throw new Error(`the ${this.name} fixture is not open`);
    return this.#pool;
  }

  get store(): MysqlHistoryStore {
    if (this.#store === undefined) throw new Error(`the ${this.name} fixture is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    this.#pool = this.kit.createPool();
    await this.kit.exec(
      this.#pool,
      `CREATE TABLE ${this.ordersTable} (id VARCHAR(64) PRIMARY KEY, total DOUBLE NOT NULL, version INT NULL, ` +
        '`timestamp` DATETIME(3) NULL) ENGINE=InnoDB',
    );
    this.#store = new MysqlHistoryStore(this.kit.queryable(this.#pool), { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = this.#store = undefined;
    if (pool === undefined) return;
    try {
      await this.kit.exec(
        pool,
        `DROP TABLE IF EXISTS ${this.ordersTable}, ${this.historyTable}, ${this.historyTable}_heads`,
      );
    } finally {
      await this.kit.endPool(pool);
    }
  }

  session(): Promise<C> {
    return this.kit.getConnection(this.pool);
  }

  release(session: C): Promise<void> {
    return this.kit.release(session);
  }

  insertOrder(session: C, order: OrderRow): Promise<unknown> {
    return this.#raw(
      session,
      `INSERT INTO ${this.ordersTable} (id, total, version, \`timestamp\`) VALUES (?, ?, ?, ?)`,
      [order.id, order.total, order.version ?? null, order.timestamp ?? null],
    );
  }

  updateOrder(session: C, order: OrderRow, expectedVersion: number | undefined): Promise<unknown> {
    const set = `UPDATE ${this.ordersTable} SET total = ?, version = ?, \`timestamp\` = ? WHERE id = ?`;
    const values = [order.total, order.version ?? null, order.timestamp ?? null, order.id];
    return expectedVersion === undefined
      ? this.#raw(session, set, values)
      : this.#raw(session, `${set} AND version = ?`, [...values, expectedVersion]);
  }

  deleteOrder(session: C, order: OrderRow, expectedVersion: number | undefined): Promise<unknown> {
    return expectedVersion === undefined
      ? this.#raw(session, `DELETE FROM ${this.ordersTable} WHERE id = ?`, [order.id])
      : this.#raw(session, `DELETE FROM ${this.ordersTable} WHERE id = ? AND version = ?`, [order.id, expectedVersion]);
  }

  async readOrder(id: string): Promise<OrderRow | undefined> {
    const rows = (await this.kit.exec(
      this.pool,
      `SELECT id, total, version, \`timestamp\` FROM ${this.ordersTable} WHERE id = ?`,
      [id],
    )) as OrderRecord[];
    const row = rows[0];
    if (row === undefined) return undefined;
    const order: OrderRow = { id: row.id, total: Number(row.total) };
    if (row.version !== null) order.version = Number(row.version);
    if (row.timestamp !== null) order.timestamp = row.timestamp;
    return order;
  }

  async countHistory(entityType: string, entityId: string): Promise<number> {
    return countRows(this.kit, this.pool, this.historyTable, entityType, entityId);
  }

  begin(session: C): Promise<void> {
    return this.kit.beginTransaction(session);
  }

  commit(session: C): Promise<void> {
    return this.kit.commit(session);
  }

  rollback(session: C): Promise<void> {
    return this.kit.rollback(session);
  }

  async isIdle(session: C): Promise<boolean> {
    return !(await this.kit.serverInTransaction(session));
  }

  /** The driver's raw result, as the user's repository code would return it. */
  #raw(session: C, sql: string, values: unknown[]): Promise<unknown> {
    return (session as unknown as { query(sql: string, values: unknown[]): Promise<unknown> }).query(sql, values);
  }
}

/** Raw count of history rows of one entity. */
export async function countRows<C, P>(
  kit: MysqlDriverKit<C, P>,
  target: P | C,
  table: string,
  entityType: string,
  entityId: string,
): Promise<number> {
  const rows = (await kit.exec(target, `SELECT COUNT(*) AS n FROM ${table} WHERE entity_type = ? AND entity_id = ?`, [
    entityType,
    entityId,
  ])) as { n: number | bigint }[];
  return Number(rows[0]?.n ?? 0);
}
