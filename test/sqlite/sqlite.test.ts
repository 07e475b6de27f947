import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryTracked, registerTransactionAdapter, TransactionStateError, Versioned } from '../../src/index.js';
import { type SqliteConnectionLike, SqliteHistoryStore, sqliteAdapter } from '../../src/sqlite/index.js';
import { Order, orderId, runBehaviourSuite } from '../integration/behaviour.js';
import type { DatabaseFixture, HistoryTamper, OrderRow } from '../integration/fixture.js';

type Db = Database.Database;

function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** The user's own repository code for the orders table, with better-sqlite3. */
function orderSql(table: string) {
  return {
    create: `CREATE TABLE ${table} (id TEXT PRIMARY KEY, total REAL NOT NULL, version INTEGER NOT NULL, "timestamp" INTEGER NOT NULL)`,
    insert: (db: Db, order: OrderRow) =>
      db
        .prepare(`INSERT INTO ${table} (id, total, version, "timestamp") VALUES (?, ?, ?, ?)`)
        .run(order.id, order.total, order.version, order.timestamp?.getTime()),
    update: (db: Db, order: OrderRow, expected: number | undefined) =>
      expected === undefined
        ? db
            .prepare(`UPDATE ${table} SET total = ?, version = ?, "timestamp" = ? WHERE id = ?`)
            .run(order.total, order.version, order.timestamp?.getTime(), order.id)
        : db
            .prepare(`UPDATE ${table} SET total = ?, version = ?, "timestamp" = ? WHERE id = ? AND version = ?`)
            .run(order.total, order.version, order.timestamp?.getTime(), order.id, expected),
    remove: (db: Db, order: OrderRow, expected: number | undefined) =>
      expected === undefined
        ? db.prepare(`DELETE FROM ${table} WHERE id = ?`).run(order.id)
        : db.prepare(`DELETE FROM ${table} WHERE id = ? AND version = ?`).run(order.id, expected),
    read: (db: Db, id: string): OrderRow | undefined => {
      const row = db.prepare(`SELECT id, total, version, "timestamp" FROM ${table} WHERE id = ?`).get(id) as
        | { id: string; total: number; version: number; timestamp: number }
        | undefined;
      return row && { id: row.id, total: row.total, version: row.version, timestamp: new Date(row.timestamp) };
    },
  };
}

/**
 * SQLite through better-sqlite3. In memory there is one connection, so the session is the
 * store's own Database; on a file (WAL mode) each session is its own connection with a short
 * busy timeout, and reads go through the store's connection.
 */
class SqliteFixture implements DatabaseFixture<Db> {
  readonly name: string;
  readonly unavailable = undefined;
  readonly concurrentSessions: boolean;
  readonly ordersTable = uniqueName('orders');
  readonly historyTable = uniqueName('history');
  readonly orders = orderSql(this.ordersTable);
  readonly path: string | undefined;
  readonly tamper: HistoryTamper = {
    setTotal: async (type, id, version, total) => {
      this.db
        .prepare(
          `UPDATE ${this.historyTable} SET snapshot = json_set(snapshot, '$.total', ?) WHERE entity_type = ? AND entity_id = ? AND version = ?`,
        )
        .run(total, type, id, version);
    },
    remove: async (type, id, version) => {
      this.db
        .prepare(`DELETE FROM ${this.historyTable} WHERE entity_type = ? AND entity_id = ? AND version = ?`)
        .run(type, id, version);
    },
    insert: async (type, id, version, total) => {
      this.db
        .prepare(
          `INSERT INTO ${this.historyTable} (entity_type, entity_id, version, op, "timestamp", snapshot) ` +
            `VALUES (?, ?, ?, 'update', ?, json_object('id', ?, 'total', ?))`,
        )
        .run(type, id, version, Date.now(), id, total);
    },
  };
  readonly #sessions = new Set<Db>();
  #db: Db | undefined;
  #store: SqliteHistoryStore | undefined;

  constructor(mode: 'memory' | 'file') {
    this.name = mode === 'memory' ? 'SQLite (better-sqlite3, in memory)' : 'SQLite (better-sqlite3, file in WAL mode)';
    this.concurrentSessions = mode === 'file';
    this.path = mode === 'file' ? join(tmpdir(), `${uniqueName('event-history')}.db`) : undefined;
  }

  get db(): Db {
    if (!this.#db) throw new Error(`the ${this.name} fixture is not open`);
    return this.#db;
  }

  get store(): SqliteHistoryStore {
    if (!this.#store) throw new Error(`the ${this.name} fixture is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    this.#db = new Database(this.path ?? ':memory:');
    if (this.path) this.#db.pragma('journal_mode = WAL');
    this.#db.exec(this.orders.create);
    this.#store = new SqliteHistoryStore(this.#db, { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    for (const session of this.#sessions) session.close();
    this.#sessions.clear();
    this.#db?.close();
    this.#db = this.#store = undefined;
    if (this.path) for (const suffix of ['', '-wal', '-shm']) rmSync(`${this.path}${suffix}`, { force: true });
  }

  async session(): Promise<Db> {
    if (!this.path) return this.db;
    // better-sqlite3 waits synchronously for a lock, blocking the event loop: keep the wait short and let the retry wait instead.
    const session = new Database(this.path, { timeout: 20 });
    this.#sessions.add(session);
    return session;
  }

  async release(session: Db): Promise<void> {
    if (session === this.#db) return;
    this.#sessions.delete(session);
    session.close();
  }

  insertOrder = async (session: Db, order: OrderRow) => this.orders.insert(session, order);
  updateOrder = async (session: Db, order: OrderRow, expected: number | undefined) =>
    this.orders.update(session, order, expected);
  deleteOrder = async (session: Db, order: OrderRow, expected: number | undefined) =>
    this.orders.remove(session, order, expected);
  readOrder = async (id: string) => this.orders.read(this.db, id);

  async countHistory(entityType: string, entityId: string): Promise<number> {
    const row = this.db
      .prepare(`SELECT count(*) AS n FROM ${this.historyTable} WHERE entity_type = ? AND entity_id = ?`)
      .get(entityType, entityId) as { n: number };
    return row.n;
  }

  async begin(session: Db): Promise<void> {
    session.exec('BEGIN');
  }

  async commit(session: Db): Promise<void> {
    session.exec('COMMIT');
  }

  async rollback(session: Db): Promise<void> {
    session.exec('ROLLBACK');
  }

  async isIdle(session: Db): Promise<boolean> {
    return session.open && !session.inTransaction && session.prepare('SELECT 1 AS ok').get() !== undefined;
  }
}

runBehaviourSuite(new SqliteFixture('memory'));
runBehaviourSuite(new SqliteFixture('file'));

describe('SQLite specifics', () => {
  const fixture = new SqliteFixture('file');
  let db: Db;

  beforeAll(async () => {
    await fixture.open();
    db = fixture.db;
  });

  afterAll(() => fixture.close());

  /** Writes the order, pauses (letting concurrent calls run), and fails for a negative total. */
  function service(store = fixture.store) {
    const { orders } = fixture;
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, session: Db): Promise<void> {
        orders.insert(session, order);
        await new Promise((resolve) => setTimeout(resolve, 2));
        if (order.total < 0) throw new Error(`order ${order.id} has a negative total`);
      }
    }
    return new OrderService();
  }

  it('classifies unique and primary-key violations as conflicts, other constraint failures not', () => {
    const probe = new Database(':memory:');
    probe.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT UNIQUE, name TEXT NOT NULL)');
    probe.exec("INSERT INTO t VALUES (1, 'a', 'x')");
    const failure = (sql: string) => {
      try {
        probe.exec(sql);
      } catch (error) {
        return error;
      }
      throw new Error(`${sql} did not fail`);
    };

    expect(sqliteAdapter.isConflict?.(failure("INSERT INTO t VALUES (1, 'b', 'x')"))).toBe(true);
    expect(sqliteAdapter.isConflict?.(failure("INSERT INTO t VALUES (2, 'a', 'x')"))).toBe(true);
    expect(sqliteAdapter.isConflict?.(failure("INSERT INTO t VALUES (3, 'c', NULL)"))).toBe(false);
    expect(sqliteAdapter.isTransient?.(failure("INSERT INTO t VALUES (3, 'c', NULL)"))).toBe(false);
    expect(sqliteAdapter.isConflict?.(new Error('SQLITE_CONSTRAINT_UNIQUE'))).toBe(false);
    probe.close();
  });

  it('classifies SQLITE_BUSY from a second writer as transient', () => {
    const [first, second] = [
      new Database(fixture.path as string),
      new Database(fixture.path as string, { timeout: 0 }),
    ];
    first.exec('BEGIN IMMEDIATE');
    let busy: unknown;
    try {
      second.exec('BEGIN IMMEDIATE');
    } catch (error) {
      busy = error;
    } finally {
      first.exec('ROLLBACK');
      first.close();
      second.close();
    }
    expect(busy).toMatchObject({ code: 'SQLITE_BUSY' });
    expect(sqliteAdapter.isTransient?.(busy)).toBe(true);
    expect(sqliteAdapter.isTransient?.({ code: 'SQLITE_LOCKED_SHAREDCACHE' })).toBe(true);
    expect(sqliteAdapter.isTransient?.({ code: 'SQLITE_BUSYNESS' })).toBe(false);
    expect(sqliteAdapter.isConflict?.(busy)).toBe(false);
  });

  it('retries a call that found the database locked by another connection, and then succeeds', async () => {
    const holder = new Database(fixture.path as string);
    const session = new Database(fixture.path as string, { timeout: 0 });
    const busy: string[] = [];
    const unregister = registerTransactionAdapter({
      ...sqliteAdapter,
      isTransient: (error: unknown) => {
        const transient = sqliteAdapter.isTransient?.(error) ?? false;
        if (transient) {
          busy.push((error as { code: string }).code);
          if (holder.inTransaction) holder.exec('ROLLBACK');
        }
        return transient;
      },
    });
    const order = new Order(orderId(), 1);
    holder.exec('BEGIN IMMEDIATE');
    try {
      await service().save(order, session);
    } finally {
      unregister();
      if (holder.inTransaction) holder.exec('ROLLBACK');
      holder.close();
      session.close();
    }

    expect(busy).toEqual(['SQLITE_BUSY']);
    expect(await fixture.readOrder(order.id)).toMatchObject({ version: 1 });
    expect((await fixture.store.latest('Order', order.id))?.version).toBe(1);
  });

  it('runs concurrent decorated calls on one Database one after the other: one failing takes no other down', async () => {
    const batch = [new Order(orderId(), -1), new Order(orderId(), 1), new Order(orderId(), 2)];
    const orders = service();

    const results = await Promise.allSettled(batch.map((order) => orders.save(order, db)));

    expect(results.map((result) => result.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(await fixture.readOrder(batch[0]?.id as string)).toBeUndefined();
    for (const order of batch.slice(1)) {
      expect(await fixture.readOrder(order.id)).toMatchObject({ version: 1 });
      expect(await fixture.countHistory('Order', order.id)).toBe(1);
    }
    expect(db.inTransaction).toBe(false);
  });

  it('joins the transaction an enclosing call holds on a Database, even through a call on another Database', async () => {
    const other = new Database(':memory:');
    other.exec('CREATE TABLE audit (id TEXT PRIMARY KEY, version INTEGER)');
    const orders = service();
    const inner = new Order(orderId(), 2);
    class AuditService {
      @Versioned({ requireSession: false })
      async saveAudit(audit: { id: string; version?: number }, session: Db): Promise<void> {
        session.prepare('INSERT INTO audit VALUES (?, ?)').run(audit.id, audit.version);
        await orders.save(inner, db);
      }
    }
    class CheckoutService {
      @Versioned()
      @HistoryTracked(fixture.store)
      async saveCheckout(order: Order, session: Db): Promise<void> {
        fixture.orders.insert(session, order);
        await new AuditService().saveAudit({ id: order.id }, other);
      }
    }
    const outer = new Order(orderId(), 1);
    let timer: NodeJS.Timeout | undefined;
    const deadlock = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the nested call waited for the transaction it runs in')), 2000);
    });

    try {
      await Promise.race([new CheckoutService().saveCheckout(outer, db), deadlock]);
    } finally {
      clearTimeout(timer);
      other.close();
    }

    const [first, second] = [
      await fixture.store.latest('Order', outer.id),
      await fixture.store.latest('Order', inner.id),
    ];
    expect(first?.txId).toBeDefined();
    expect(second?.txId).toBe(first?.txId);
  });

  it('reports a transaction the method ended itself as TransactionStateError, keeping nothing', async () => {
    const { orders } = fixture;
    class OrderService {
      @Versioned()
      async save(order: Order, session: Db): Promise<void> {
        orders.insert(session, order);
        session.exec('ROLLBACK');
      }
    }
    const order = new Order(orderId(), 1);

    const error = await new OrderService().save(order, db).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransactionStateError);
    expect(error).toMatchObject({ code: 'TRANSACTION_ABORTED', adapter: 'better-sqlite3' });
    expect(order.version).toBeUndefined();
    expect(await fixture.readOrder(order.id)).toBeUndefined();
  });

  it('ensureSchema is idempotent, also for a schema-qualified table', async () => {
    const table = uniqueName('history');
    const store = new SqliteHistoryStore(db, { table: `main.${table}` });
    await store.ensureSchema();
    await store.save({
      entityType: 'Order',
      entityId: 'o1',
      version: 1,
      op: 'create',
      timestamp: new Date(),
      snapshot: {},
    });
    await store.ensureSchema();

    expect((await store.list('Order', 'o1')).map((entry) => entry.version)).toEqual([1]);
    const indexes = db.prepare(`SELECT name FROM pragma_index_list(?) ORDER BY name`).all(table) as { name: string }[];
    expect(indexes.map((index) => index.name)).toContain(`${table}_entity_time_idx`);
    db.exec(`DROP TABLE ${table}`);
  });

  it('stores timestamps as integer milliseconds and snapshots as JSON text', async () => {
    const table = uniqueName('history');
    const store = new SqliteHistoryStore(db, { table });
    await store.ensureSchema();
    const timestamp = new Date(Date.UTC(2026, 2, 3, 4, 5, 6, 789));
    await store.save({
      entityType: 'Order',
      entityId: 'o1',
      version: 1,
      op: 'create',
      timestamp,
      snapshot: { at: timestamp },
    });

    const row = db.prepare(`SELECT "timestamp", typeof("timestamp") AS type, snapshot FROM ${table}`).get() as {
      timestamp: number;
      type: string;
      snapshot: string;
    };
    expect(row).toEqual({
      timestamp: timestamp.getTime(),
      type: 'integer',
      snapshot: JSON.stringify({ at: { $date: timestamp.toISOString() } }),
    });
    expect((await store.at('Order', 'o1', 1))?.snapshot).toEqual({ at: timestamp });
    db.exec(`DROP TABLE ${table}`);
  });

  it('serves list, at, asOf, latest, page and byTransaction from the history key and its indexes, not a table scan', async () => {
    const table = uniqueName('history');
    const sent: { sql: string; params: unknown[] }[] = [];
    const recording: SqliteConnectionLike = {
      exec: (sql) => db.exec(sql),
      prepare: (sql) => {
        const statement = db.prepare(sql);
        return {
          run: (...params: unknown[]) => statement.run(...params),
          all: (...params: unknown[]) => {
            sent.push({ sql, params });
            return statement.all(...params);
          },
        };
      },
    };
    const store = new SqliteHistoryStore(recording, { table });
    await store.ensureSchema();
    sent.length = 0;
    db.exec(`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3999)
      INSERT INTO ${table} (entity_type, entity_id, version, op, "timestamp", snapshot)
      SELECT 'Order', 'o' || (i % 400), i / 400 + 1, 'update', 1767225600000 + i * 1000, '{}' FROM n`);
    db.exec(`ANALYZE ${table}`);

    await store.list('Order', 'o7', { fromVersion: 2, toVersion: 5 });
    await store.at('Order', 'o7', 3);
    await store.asOf('Order', 'o7', new Date(1767225600000 + 1_200_000));
    await store.latest('Order', 'o7');
    await store.page('Order', 'o7', { after: 2, limit: 2 });
    await store.page('Order', 'o7', { direction: 'backward', limit: 2 });
    await store.byTransaction('tx-1');

    expect(sent).toHaveLength(7);
    for (const { sql, params } of sent) {
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
      const details = plan.map((step) => step.detail);
      expect(
        details.some((detail) => /^SEARCH .*USING (PRIMARY KEY|INDEX|COVERING INDEX)/.test(detail)),
        sql,
      ).toBe(true);
      expect(
        details.filter((detail) => detail.startsWith('SCAN')),
        sql,
      ).toEqual([]);
    }
    const asOf = sent[2];
    if (asOf === undefined) throw new Error('asOf sent no query');
    const asOfPlan = (db.prepare(`EXPLAIN QUERY PLAN ${asOf.sql}`).all(...asOf.params) as { detail: string }[]).map(
      (step) => step.detail,
    );
    // The timestamp index carries the key's version, so the tie-break needs no sort.
    expect(asOfPlan.join('\n')).toMatch(/USING INDEX .*entity_time_idx/);
    expect(asOfPlan.join('\n')).not.toMatch(/TEMP B-TREE/);
    db.exec(`DROP TABLE ${table}`);
  });

  it('ensureSchema upgrades a table made by the previous schema: adds schema_version, hash, prev_hash and the tx_id index', async () => {
    const table = uniqueName('legacy');
    db.exec(
      `CREATE TABLE ${table} (entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, version INTEGER NOT NULL, op TEXT NOT NULL, ` +
        '"timestamp" INTEGER NOT NULL, snapshot TEXT NOT NULL, actor TEXT, reason TEXT, metadata TEXT, tx_id TEXT, ' +
        'PRIMARY KEY (entity_type, entity_id, version)) WITHOUT ROWID',
    );
    const store = new SqliteHistoryStore(db, { table });

    await store.ensureSchema();
    await store.ensureSchema();

    const columns = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
    expect(columns.map((column) => column.name).slice(-3)).toEqual(['schema_version', 'hash', 'prev_hash']);
    const indexes = db.prepare(`PRAGMA index_list(${table})`).all() as { name: string }[];
    expect(indexes.map((index) => index.name)).toContain(`${table}_tx_idx`);
    const entry = {
      entityType: 'Probe',
      entityId: 'p1',
      version: 1,
      op: 'create' as const,
      timestamp: new Date(Date.UTC(2026, 0, 1)),
      snapshot: { ok: true },
      schemaVersion: 2,
      hash: 'a'.repeat(64),
      txId: 't1',
    };
    await store.save(entry);
    expect(await store.byTransaction('t1')).toEqual([entry]);
    db.exec(`DROP TABLE ${table}`);
  });

  it('rejects a table name that is not a plain identifier', () => {
    for (const table of ['history; DROP TABLE orders', 'a.b.c', '1history', 'his-tory', '']) {
      expect(() => new SqliteHistoryStore(db, { table }), table).toThrow(TypeError);
    }
    expect(new SqliteHistoryStore(db).table).toBe('entity_history');
  });
});
