import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  currentCall,
  type HistoryEntry,
  HistoryTracked,
  type HistoryWriter,
  InvalidEntityError,
  TransactionRetriesExhaustedError,
  TransactionStateError,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable, mariadbAdapter, mysql2Adapter } from '../../src/mysql/index.js';
import { runQuery } from '../../src/mysql/query.js';
import { findAdapter } from '../../src/transactions/registry.js';
import { orderId } from '../integration/behaviour.js';
import { countRows, describeMysql, type MysqlDriverKit, uniqueTable } from './support.js';

/** What the suite's service stores: an order row, stamped by `@Versioned`. */
interface Order {
  id: string;
  total: number;
  version?: number;
  timestamp?: Date;
}

/** The server error of a failed statement, for the classification tests. */
async function failure(statement: Promise<unknown>): Promise<unknown> {
  try {
    await statement;
  } catch (error) {
    return error;
  }
  throw new Error('the statement was expected to fail');
}

/**
 * The MySQL-specific tests, run once per driver: adapter detection, error classification, a
 * real deadlock, the store's schema, names, time zones and index use.
 */
export function runMysqlSuite<C extends MysqlQueryable, P>(kit: MysqlDriverKit<C, P>): void {
  describeMysql(`MySQL (${kit.name}): adapter and store`, () => {
    const ordersTable = uniqueTable('eh_orders');
    const historyTable = uniqueTable('eh_history');
    const locksTable = uniqueTable('eh_locks');
    const weightTable = uniqueTable('eh_weight');
    const extraTables: string[] = [];
    let pool: P;
    let store: MysqlHistoryStore;

    const exec = (target: P | C, sql: string, values?: unknown[]) => kit.exec(target, sql, values);

    /** A fresh table name that `afterAll` drops. */
    function tableName(prefix: string): string {
      const name = uniqueTable(prefix);
      extraTables.push(name);
      return name;
    }

    async function withConnection<R>(work: (connection: C) => Promise<R>): Promise<R> {
      const connection = await kit.getConnection(pool);
      try {
        return await work(connection);
      } finally {
        await kit.release(connection);
      }
    }

    /**
     * The decorated service of these tests. `during` runs inside `save`, after the order row is
     * written and before the history entry is.
     */
    function orderService(history: HistoryWriter = store) {
      @Versioned()
      @HistoryTracked('history')
      class OrderService {
        attempts = 0;
        during: ((session: C) => Promise<void>) | undefined;
        readonly seen: { active: boolean; txId: string | undefined }[] = [];

        constructor(readonly history: HistoryWriter) {}

        async save(order: Order, session: C): Promise<void> {
          this.attempts += 1;
          this.seen.push({ active: kit.adapter.isActive(session), txId: currentCall()?.txId });
          await exec(session, `INSERT INTO ${ordersTable} (id, total, version) VALUES (?, ?, ?)`, [
            order.id,
            order.total,
            order.version,
          ]);
          await this.during?.(session);
        }
      }
      return new OrderService(history);
    }

    const orderExists = async (id: string) =>
      ((await exec(pool, `SELECT id FROM ${ordersTable} WHERE id = ?`, [id])) as unknown[]).length === 1;

    beforeAll(async () => {
      pool = kit.createPool();
      await exec(
        pool,
        `CREATE TABLE ${ordersTable} (id VARCHAR(64) PRIMARY KEY, total DOUBLE NOT NULL, version INT NULL) ENGINE=InnoDB`,
      );
      await exec(pool, `CREATE TABLE ${locksTable} (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB`);
      await exec(pool, `INSERT INTO ${locksTable} (id, n) VALUES (1, 0), (2, 0), (3, 0)`);
      await exec(pool, `CREATE TABLE ${weightTable} (id INT PRIMARY KEY) ENGINE=InnoDB`);
      store = new MysqlHistoryStore(kit.queryable(pool), { table: historyTable });
      await store.ensureSchema();
    });

    afterAll(async () => {
      if (pool === undefined) return;
      try {
        const tables = [ordersTable, historyTable, locksTable, weightTable, ...extraTables];
        await exec(pool, `DROP TABLE IF EXISTS ${tables.flatMap((t) => [t, `${t}_heads`]).join(', ')}`);
      } finally {
        await kit.endPool(pool);
      }
    });

    it('the built-in adapter for this driver matches its connections, and neither its pool (the pool adapter’s) nor the other driver’s adapter does', async () => {
      await withConnection(async (connection) => {
        expect(findAdapter(connection)).toBe(kit.adapter);
        expect(kit.adapter.matches(connection)).toBe(true);
        const other = kit.adapter === (mysql2Adapter as unknown) ? mariadbAdapter : mysql2Adapter;
        expect(other.matches(connection)).toBe(false);
      });
      expect(mysql2Adapter.matches(pool)).toBe(false);
      expect(mariadbAdapter.matches(pool)).toBe(false);
      expect(findAdapter(pool)?.name).toBe(`${kit.name}-pool`);
    });

    it('isActive is false on an idle connection and true inside the transaction the library began', async () => {
      const service = orderService();
      await withConnection(async (connection) => {
        expect(kit.adapter.isActive(connection)).toBe(false);
        let serverSaw: boolean | undefined;
        service.during = async (session) => {
          serverSaw = await kit.serverInTransaction(session);
        };

        await service.save({ id: orderId(), total: 1 }, connection);

        expect(service.seen[0]?.active).toBe(true);
        expect(serverSaw).toBe(true);
        expect(kit.adapter.isActive(connection)).toBe(false);
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
    });

    it('a call inside a transaction the caller began joins it: nothing is visible to others until the caller commits', async () => {
      const service = orderService();
      const id = orderId();
      await withConnection(async (connection) => {
        await kit.beginTransaction(connection);
        try {
          await service.save({ id, total: 1 }, connection);
          expect(service.seen[0]?.active).toBe(true);
          expect(await kit.serverInTransaction(connection)).toBe(true);
          expect(await orderExists(id)).toBe(false);
          expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(0);
          await kit.commit(connection);
        } catch (error) {
          await kit.rollback(connection);
          throw error;
        }
      });
      expect(await orderExists(id)).toBe(true);
      expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(1);
    });

    it(`calls joining one transaction of the caller get ${kit.sharesCallerTxId ? 'one shared txId' : 'a txId each'}`, async () => {
      const service = orderService();
      const [a, b] = [orderId(), orderId()];
      await withConnection(async (connection) => {
        await kit.beginTransaction(connection);
        await service.save({ id: a, total: 1 }, connection);
        await service.save({ id: b, total: 2 }, connection);
        await kit.commit(connection);
      });
      const [entryA, entryB] = [await store.latest('Order', a), await store.latest('Order', b)];
      expect(entryA?.txId).toBeDefined();
      if (kit.sharesCallerTxId) expect(entryB?.txId).toBe(entryA?.txId);
      else expect(entryB?.txId).not.toBe(entryA?.txId);
    });

    it('calls joining two transactions of the caller, one after the other, get two txIds', async () => {
      const service = orderService();
      const [a, b] = [orderId(), orderId()];
      await withConnection(async (connection) => {
        for (const id of [a, b]) {
          await kit.beginTransaction(connection);
          await service.save({ id, total: 1 }, connection);
          await kit.commit(connection);
        }
      });
      const [entryA, entryB] = [await store.latest('Order', a), await store.latest('Order', b)];
      expect(entryA?.txId).toBeDefined();
      expect(entryB?.txId).toBeDefined();
      expect(entryA?.txId).not.toBe(entryB?.txId);
    });

    it('after a statement fails outside a transaction, a call still runs in a transaction of its own', async () => {
      const service = orderService();
      const id = orderId();
      await withConnection(async (connection) => {
        const duplicate = await failure(exec(connection, `INSERT INTO ${locksTable} (id, n) VALUES (1, 0)`));
        expect(kit.adapter.isConflict?.(duplicate)).toBe(true);
        service.during = async () => {
          throw new Error('fails after the order row was written');
        };

        await expect(service.save({ id, total: 1 }, connection)).rejects.toThrow('fails after the order row');

        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      expect(await orderExists(id)).toBe(false);
      expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(0);
    });

    it('concurrent calls on one connection run one after the other, each in its own transaction', async () => {
      const service = orderService();
      const ids = [orderId(), orderId(), orderId()];
      await withConnection(async (connection) => {
        await Promise.all(ids.map((id) => service.save({ id, total: 1 }, connection)));
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      const txIds = await Promise.all(ids.map(async (id) => (await store.latest('Order', id))?.txId));
      expect(new Set(txIds).size).toBe(3);
      expect(service.seen.every((call) => call.active)).toBe(true);
    });

    it('classifies duplicate keys as conflicts and lock wait timeouts as transient, other errors as neither', async () => {
      const { adapter } = kit;
      const duplicate = await failure(exec(pool, `INSERT INTO ${locksTable} (id, n) VALUES (1, 0)`));
      const syntax = await failure(exec(pool, 'SELEC 1'));
      const holder = await kit.getConnection(pool);
      const waiter = await kit.getConnection(pool);
      let timeout: unknown;
      try {
        await kit.beginTransaction(holder);
        await exec(holder, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 3`);
        await exec(waiter, 'SET SESSION innodb_lock_wait_timeout = 1');
        await kit.beginTransaction(waiter);
        timeout = await failure(exec(waiter, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 3`));
      } finally {
        await kit.rollback(waiter);
        await kit.rollback(holder);
        await exec(waiter, 'SET SESSION innodb_lock_wait_timeout = DEFAULT');
        await kit.release(waiter);
        await kit.release(holder);
      }

      expect(duplicate).toMatchObject({ errno: 1062 });
      expect(timeout).toMatchObject({ errno: 1205 });
      expect([adapter.isConflict?.(duplicate), adapter.isTransient?.(duplicate)]).toEqual([true, false]);
      expect([adapter.isConflict?.(timeout), adapter.isTransient?.(timeout)]).toEqual([false, true]);
      expect([adapter.isConflict?.(syntax), adapter.isTransient?.(syntax)]).toEqual([false, false]);
      expect([adapter.isConflict?.(new Error('x')), adapter.isTransient?.(null)]).toEqual([false, false]);
    });

    /**
     * Builds a real deadlock: `other` writes many rows (so InnoDB picks the lighter call as the
     * victim) and locks row 2; the call locks row 1 and waits for row 2; then `other` asks for row 1.
     * Only the first attempt of the call takes part; a retry simply waits for `other` to commit.
     */
    async function deadlockFirstAttempt(
      connection: C,
      call: (service: ReturnType<typeof orderService>) => Promise<void>,
    ): Promise<{ service: ReturnType<typeof orderService>; outcome: PromiseSettledResult<void> }> {
      const service = orderService();
      service.during = async (session) => {
        await exec(session, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 1`);
        await exec(session, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 2`);
      };
      const other = await kit.getConnection(pool);
      try {
        await kit.beginTransaction(other);
        const rows = Array.from({ length: 200 }, (_, i) => `(${i})`).join(', ');
        await exec(other, `INSERT INTO ${weightTable} (id) VALUES ${rows}`);
        await exec(other, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 2`);
        // Settled from the start: the call may fail while the test is still closing the cycle.
        const running = Promise.allSettled([call(service)]);
        await waitForLockWait(kit.threadId(connection));
        // Closes the cycle; it returns once the victim's transaction is gone.
        await exec(other, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 1`);
        await kit.rollback(other);
        const [outcome] = await running;
        return { service, outcome: outcome as PromiseSettledResult<void> };
      } finally {
        await kit.rollback(other).catch(() => {});
        await kit.release(other);
      }
    }

    async function waitForLockWait(threadId: number): Promise<void> {
      // InnoDB refreshes INNODB_TRX only after it went unread for 100 ms, so poll slower than that.
      for (let tries = 0; tries < 50; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 120));
        const rows = (await exec(
          pool,
          "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'",
          [threadId],
        )) as { n: number | bigint }[];
        if (Number(rows[0]?.n) > 0) return;
      }
      throw new Error(`connection ${threadId} never waited for the lock`);
    }

    it('a real deadlock (1213) in a transaction the library owns is rolled back and retried, and the retry commits', async () => {
      const id = orderId();
      await withConnection(async (connection) => {
        const { service, outcome } = await deadlockFirstAttempt(connection, (service) =>
          service.save({ id, total: 1 }, connection),
        );

        expect(outcome.status).toBe('fulfilled');
        expect(service.attempts).toBe(2);
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      expect(await orderExists(id)).toBe(true);
      expect((await store.list('Order', id)).map((entry) => entry.version)).toEqual([1]);
    });

    /** Makes the connection's next `times` COMMITs fail as Galera's certification does: rolled back, ER_LOCK_DEADLOCK. */
    function certificationFailures(connection: C, times: number): () => void {
      const session = connection as unknown as { commit(): Promise<unknown>; rollback(): Promise<unknown> };
      const real = session.commit;
      let left = times;
      session.commit = async function (this: typeof session) {
        if (left-- <= 0) return real.call(this);
        await this.rollback();
        throw Object.assign(new Error('Deadlock found when trying to get lock; try restarting transaction'), {
          errno: 1213,
          sqlState: '40001',
          code: 'ER_LOCK_DEADLOCK',
        });
      };
      return () => {
        session.commit = real;
      };
    }

    it('a certification failure at COMMIT (1213 from COMMIT, as Galera reports a write another node committed first) is run again, and the retry commits once', async () => {
      const id = orderId();
      await withConnection(async (connection) => {
        const restore = certificationFailures(connection, 1);
        const service = orderService();
        try {
          await service.save({ id, total: 1 }, connection);
        } finally {
          restore();
        }
        expect(service.attempts).toBe(2);
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      expect((await store.list('Order', id)).map((entry) => entry.version)).toEqual([1]);
    });

    it('certification failures at COMMIT that outlast the retries are TransactionRetriesExhaustedError with a COMMIT_CONFLICT cause, and nothing is kept', async () => {
      const id = orderId();
      const order = { id, total: 1 };
      await withConnection(async (connection) => {
        const restore = certificationFailures(connection, 10);
        const service = orderService();
        let error: unknown;
        try {
          await service.save(order, connection);
        } catch (caught) {
          error = caught;
        } finally {
          restore();
        }
        expect(error).toBeInstanceOf(TransactionRetriesExhaustedError);
        const cause = (error as Error).cause;
        expect(cause).toBeInstanceOf(TransactionStateError);
        expect(cause).toMatchObject({ code: 'COMMIT_CONFLICT', cause: { errno: 1213 } });
        expect((error as Error).message).toMatch(/another node committed first/);
        expect(service.attempts).toBe(4);
        expect(order).toEqual({ id, total: 1 });
      });
      expect(await orderExists(id)).toBe(false);
      expect(await store.list('Order', id)).toEqual([]);
    });

    it('a deadlock inside a transaction the caller began is not retried: the caller’s transaction is gone', async () => {
      const id = orderId();
      await withConnection(async (connection) => {
        await kit.beginTransaction(connection);
        const { service, outcome } = await deadlockFirstAttempt(connection, (service) =>
          service.save({ id, total: 1 }, connection),
        );
        await kit.rollback(connection);

        expect(outcome.status).toBe('rejected');
        expect((outcome as PromiseRejectedResult).reason).toMatchObject({ errno: 1213 });
        expect(service.attempts).toBe(1);
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      expect(await orderExists(id)).toBe(false);
    });

    it('the connection is idle after a successful call and after a failed one, and nothing of the failure is kept', async () => {
      const service = orderService();
      const [kept, failed] = [orderId(), orderId()];
      await withConnection(async (connection) => {
        await service.save({ id: kept, total: 1 }, connection);
        expect(await kit.serverInTransaction(connection)).toBe(false);

        service.during = async () => {
          throw new Error('boom');
        };
        await expect(service.save({ id: failed, total: 1 }, connection)).rejects.toThrow('boom');
        expect(await kit.serverInTransaction(connection)).toBe(false);

        await expect(service.save({ id: kept, total: 2 }, connection)).rejects.toBeInstanceOf(VersionConflictError);
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      expect(await orderExists(failed)).toBe(false);
      expect(await countRows(kit, pool, historyTable, 'Order', failed)).toBe(0);
      expect(await countRows(kit, pool, historyTable, 'Order', kept)).toBe(1);
    });

    it('ensureSchema creates the key and the asOf index once and can run again, also concurrently', async () => {
      const table = tableName('eh_schema');
      const fresh = new MysqlHistoryStore(kit.queryable(pool), { table });

      await Promise.all([fresh.ensureSchema(), fresh.ensureSchema()]);
      await fresh.ensureSchema();

      const indexes = (await exec(pool, `SHOW INDEX FROM ${table}`)) as {
        Key_name: string;
        Column_name: string;
        Non_unique: number | string;
      }[];
      const columnsOf = (key: string) => indexes.filter((row) => row.Key_name === key).map((row) => row.Column_name);
      expect(columnsOf('PRIMARY')).toEqual(['entity_type', 'entity_id', 'version']);
      expect(columnsOf('entity_history_as_of')).toEqual(['entity_type', 'entity_id', 'timestamp']);
      const [created] = (await exec(pool, `SHOW CREATE TABLE ${table}`)) as Record<string, string>[];
      expect(created?.['Create Table']).toMatch(/ENGINE=InnoDB/);
      expect(created?.['Create Table']).toMatch(/CHARSET=utf8mb4/);
      expect(created?.['Create Table']).toMatch(/`timestamp` datetime\(3\) NOT NULL/);
    });

    it('ensureSchema upgrades a table made by the previous schema: adds schema_version, hash, prev_hash and the tx_id index', async () => {
      const table = tableName('eh_legacy');
      await exec(
        pool,
        `CREATE TABLE ${table} (entity_type VARCHAR(255) NOT NULL, entity_id VARCHAR(255) NOT NULL, version INT NOT NULL, ` +
          "op ENUM('create', 'update', 'delete') NOT NULL, `timestamp` DATETIME(3) NOT NULL, snapshot JSON NOT NULL, " +
          'actor TEXT NULL, reason TEXT NULL, metadata JSON NULL, tx_id VARCHAR(255) NULL, ' +
          'PRIMARY KEY (entity_type, entity_id, version)) ENGINE=InnoDB',
      );
      const upgraded = new MysqlHistoryStore(kit.queryable(pool), { table });

      await upgraded.ensureSchema();
      await upgraded.ensureSchema();

      const columns = (await exec(pool, `SHOW COLUMNS FROM ${table}`)) as { Field: string }[];
      expect(columns.map((column) => column.Field)).toEqual(
        expect.arrayContaining(['schema_version', 'hash', 'prev_hash']),
      );
      const indexes = (await exec(pool, `SHOW INDEX FROM ${table}`)) as { Key_name: string; Column_name: string }[];
      expect(indexes.filter((row) => row.Key_name === 'entity_history_tx').map((row) => row.Column_name)).toEqual([
        'tx_id',
      ]);
      const entry: HistoryEntry = {
        entityType: 'Probe',
        entityId: 'p1',
        version: 1,
        op: 'create',
        timestamp: new Date(Date.UTC(2026, 0, 1)),
        snapshot: { ok: true },
        schemaVersion: 2,
        hash: 'a'.repeat(64),
        txId: 't1',
      };
      await upgraded.save(entry);
      expect(await upgraded.byTransaction('t1')).toEqual([entry]);
    });

    it('accepts a database-qualified table name and rejects names that are not plain identifiers before any query', async () => {
      const [{ database }] = (await exec(pool, 'SELECT DATABASE() AS `database`')) as [{ database: string }];
      const table = tableName('eh_qualified');
      const qualified = new MysqlHistoryStore(kit.queryable(pool), { table: `${database}.${table}` });
      await qualified.ensureSchema();
      const entry: HistoryEntry = {
        entityType: 'Probe',
        entityId: 'p1',
        version: 1,
        op: 'create',
        timestamp: new Date(Date.UTC(2026, 0, 1)),
        snapshot: { ok: true },
      };
      await qualified.save(entry);
      expect(await qualified.at('Probe', 'p1', 1)).toEqual(entry);

      const sent: string[] = [];
      const spy: MysqlQueryable = {
        query: async (options) => {
          sent.push(options.sql);
          return [[], []];
        },
      };
      for (const bad of ['orders; DROP TABLE x', '1orders', 'a.b.c', '', 'order-history', '`x`', 'x'.repeat(64)]) {
        expect(() => new MysqlHistoryStore(spy, { table: bad })).toThrow(TypeError);
      }
      expect(sent).toEqual([]);
      expect(() => new MysqlHistoryStore({} as MysqlQueryable)).toThrow(TypeError);
    });

    it('rejects a session that cannot query and keys longer than the columns hold', async () => {
      const entry: HistoryEntry = {
        entityType: 'Probe',
        entityId: orderId(),
        version: 1,
        op: 'create',
        timestamp: new Date(),
        snapshot: {},
      };
      await expect(store.save(entry, {} as MysqlQueryable)).rejects.toThrow(TypeError);
      await expect(store.save({ ...entry, entityId: 'x'.repeat(256) })).rejects.toThrow(/at most 255/);
      await expect(store.save({ ...entry, timestamp: new Date(Number.NaN) })).rejects.toThrow(InvalidEntityError);
      await expect(store.asOf('Probe', entry.entityId, new Date(Number.NaN))).rejects.toThrow(TypeError);
      expect(await countRows(kit, pool, historyTable, 'Probe', entry.entityId)).toBe(0);
    });

    it('keeps the exact instant whatever the time zones of the driver, the session and the process', async () => {
      const table = tableName('eh_tz');
      const east = await kit.connect({ timezone: '+05:30' });
      const west = await kit.connect({ timezone: '-08:00' });
      const processZone = process.env.TZ;
      try {
        await exec(east, "SET time_zone = '+05:30'");
        await exec(west, "SET time_zone = '-08:00'");
        process.env.TZ = 'Pacific/Chatham';
        const writer = new MysqlHistoryStore(kit.queryable(east), { table });
        const reader = new MysqlHistoryStore(kit.queryable(west), { table });
        await writer.ensureSchema();
        const instant = new Date(Date.UTC(2026, 2, 29, 1, 30, 0, 123));
        const since = new Date(Date.UTC(1999, 11, 31, 23, 59, 59, 999));
        const entry: HistoryEntry = {
          entityType: 'Clock',
          entityId: 'c1',
          version: 1,
          op: 'create',
          timestamp: instant,
          snapshot: { since },
        };
        await writer.save(entry);
        await writer.save({ ...entry, version: 2, timestamp: new Date(instant.getTime() + 1) }, east);

        const read = await reader.at('Clock', 'c1', 1);
        if (read === undefined) throw new Error('version 1 was not read back');
        expect(read.timestamp.getTime()).toBe(instant.getTime());
        expect((read.snapshot as { since: Date }).since.getTime()).toBe(since.getTime());
        expect((await reader.latest('Clock', 'c1'))?.timestamp.getTime()).toBe(instant.getTime() + 1);
        expect(await reader.asOf('Clock', 'c1', new Date(instant.getTime() - 1))).toBeUndefined();
        expect((await reader.asOf('Clock', 'c1', instant))?.version).toBe(1);
        expect((await writer.asOf('Clock', 'c1', new Date(instant.getTime() + 1)))?.version).toBe(2);
        const [raw] = (await exec(
          pool,
          `SELECT DATE_FORMAT(\`timestamp\`, '%Y-%m-%d %H:%i:%s.%f') AS utc FROM ${table} WHERE version = 1`,
        )) as { utc: string }[];
        expect(raw?.utc).toBe('2026-03-29 01:30:00.123000');
      } finally {
        if (processZone === undefined) delete process.env.TZ;
        else process.env.TZ = processZone;
        await kit.close(east);
        await kit.close(west);
      }
    });

    it('reads and writes the same through a pool whose options change the shape of results', async () => {
      const odd = kit.createPool({ driver: kit.shapeChangingOptions });
      try {
        const table = tableName('eh_shape');
        const shaped = new MysqlHistoryStore(kit.queryable(odd), { table });
        await shaped.ensureSchema();
        const entry: HistoryEntry = {
          entityType: 'Order',
          entityId: 'o1',
          version: 1,
          op: 'create',
          timestamp: new Date(Date.UTC(2026, 0, 1, 12, 0, 0, 5)),
          snapshot: { lines: [{ at: new Date(Date.UTC(2025, 5, 1)) }], note: null },
          actor: 'ada',
          metadata: { source: 'import' },
          txId: 'tx-1',
        };
        await shaped.save(entry);
        await shaped.save({ ...entry, version: 2, timestamp: new Date(entry.timestamp.getTime() + 1) });

        expect(await shaped.at('Order', 'o1', 1)).toEqual(entry);
        expect((await shaped.list('Order', 'o1')).map((e) => e.version)).toEqual([1, 2]);
        expect((await shaped.asOf('Order', 'o1', entry.timestamp))?.version).toBe(1);
        expect((await shaped.latest('Order', 'o1'))?.version).toBe(2);
      } finally {
        await kit.endPool(odd);
      }
    });

    it('at, asOf, list, latest, page and byTransaction read through the primary key or an index, never a full scan', async () => {
      const table = tableName('eh_explain');
      const sent: { sql: string; values: unknown[] }[] = [];
      const target = kit.queryable(pool) as MysqlQueryable & { batch?: unknown };
      const recording: MysqlQueryable & { batch?: unknown } = {
        query: (options, values) => {
          sent.push({ sql: options.sql, values: values ?? [] });
          return target.query(options, values);
        },
        execute: (options, values) => {
          sent.push({ sql: options.sql, values: values ?? [] });
          return target.execute?.(options, values) ?? Promise.reject(new Error('the driver has no execute'));
        },
      };
      // The store tells the drivers apart by `batch`, which only mariadb pools have.
      if (typeof target.batch === 'function') recording.batch = target.batch;
      const explained = new MysqlHistoryStore(recording, { table });
      await explained.ensureSchema();
      const start = Date.UTC(2026, 0, 1);
      for (let entity = 0; entity < 20; entity++) {
        for (let version = 1; version <= 5; version++) {
          await explained.save({
            entityType: 'Order',
            entityId: `e${entity}`,
            version,
            op: version === 1 ? 'create' : 'update',
            timestamp: new Date(start + version * 60_000),
            snapshot: { version },
            txId: `tx-${entity}-${version}`,
          });
        }
      }
      await exec(pool, `ANALYZE TABLE ${table}`);
      const reads = {
        at: () => explained.at('Order', 'e7', 3),
        asOf: () => explained.asOf('Order', 'e7', new Date(start + 3 * 60_000)),
        list: () => explained.list('Order', 'e7', { fromVersion: 2, limit: 2 }),
        latest: () => explained.latest('Order', 'e7'),
        pageForward: () => explained.page('Order', 'e7', { after: 2, limit: 2 }),
        pageBackward: () => explained.page('Order', 'e7', { direction: 'backward', limit: 2 }),
        byTransaction: () => explained.byTransaction('tx-7-3'),
      };
      for (const [name, read] of Object.entries(reads)) {
        sent.length = 0;
        const result = await read();
        expect(result, name).toBeDefined();
        const [query] = sent;
        if (query === undefined) throw new Error(`${name} sent no query`);
        const plan = (await runQuery(kit.queryable(pool), `EXPLAIN ${query.sql}`, query.values)) as {
          type: string;
          key: string | null;
          Extra: string | null;
        }[];
        expect(plan, name).toHaveLength(1);
        const key =
          { asOf: /^(PRIMARY|entity_history_as_of)$/, byTransaction: /^entity_history_tx$/ }[name] ?? /^PRIMARY$/;
        expect(plan[0]?.key, name).toMatch(key);
        expect(plan[0]?.type, name).not.toBe('ALL');
        // On the asOf index, InnoDB's implicit primary-key suffix (version) serves the tie-break: no sort.
        if (plan[0]?.key === 'entity_history_as_of') expect(plan[0]?.Extra ?? '', name).not.toMatch(/filesort/);
      }
      expect((await explained.list('Order', 'e7', { fromVersion: 2, limit: 2 })).map((e) => e.version)).toEqual([2, 3]);
      expect((await explained.asOf('Order', 'e7', new Date(start + 3 * 60_000)))?.version).toBe(3);

      // A long history: asOf reads the asOf index, whose implicit primary-key suffix (version) serves the tie-break.
      await exec(
        pool,
        `INSERT INTO ${table} (\`entity_type\`, \`entity_id\`, \`version\`, \`op\`, \`timestamp\`, \`snapshot\`) ` +
          'WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900) ' +
          "SELECT 'Order', 'long', i, 'update', TIMESTAMPADD(SECOND, i, '2026-01-01 00:00:00'), '{}' FROM n",
      );
      await exec(pool, `ANALYZE TABLE ${table}`);
      sent.length = 0;
      expect((await explained.asOf('Order', 'long', new Date(start + 450_500)))?.version).toBe(450);
      const [asOfQuery] = sent;
      if (asOfQuery === undefined) throw new Error('asOf sent no query');
      const [longPlan] = (await runQuery(kit.queryable(pool), `EXPLAIN ${asOfQuery.sql}`, asOfQuery.values)) as {
        key: string | null;
        Extra: string | null;
      }[];
      expect(longPlan?.key).toBe('entity_history_as_of');
      expect(longPlan?.Extra ?? '').not.toMatch(/filesort/);
    });
  });
}
