import { PGlite, type Transaction } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  currentCall,
  HistoryTracked,
  registerTransactionAdapter,
  TransactionStateError,
  Versioned,
} from '../../src/index.js';
import { createPgliteAdapter, type PGliteSession, PostgresHistoryStore } from '../../src/postgres/index.js';
import { Order, orderId, orderServices, runBehaviourSuite } from '../integration/behaviour.js';
import type { DatabaseFixture, OrderRow } from '../integration/fixture.js';
import { countHistory, expectIndexedReads, orderSql, postgresTamper, recording, uniqueTable } from './shared.js';

// PGlite takes seconds to start: one instance serves every test of this file.
let started: Promise<PGlite> | undefined;
function pglite(): Promise<PGlite> {
  started ??= PGlite.create();
  return started;
}

afterAll(async () => {
  if (started) await (await started).close();
});

/**
 * PGlite: one in-process connection, so every session is the instance itself (or the `tx` of
 * its `transaction()`), and reads go through the same instance.
 */
class PGliteFixture implements DatabaseFixture<PGliteSession> {
  readonly name = 'PGlite';
  readonly unavailable = undefined;
  readonly concurrentSessions = false;
  readonly ordersTable = uniqueTable('orders');
  readonly historyTable = uniqueTable('history');
  readonly orders = orderSql(this.ordersTable);
  readonly tamper = postgresTamper(() => this.db, this.historyTable);
  #db: PGlite | undefined;
  #store: PostgresHistoryStore | undefined;

  get db(): PGlite {
    if (!this.#db) throw new Error('the PGlite fixture is not open');
    return this.#db;
  }

  get store(): PostgresHistoryStore {
    if (!this.#store) throw new Error('the PGlite fixture is not open');
    return this.#store;
  }

  async open(): Promise<void> {
    this.#db = await pglite();
    await this.#db.query(this.orders.create);
    this.#store = new PostgresHistoryStore(this.#db, { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    const db = this.#db;
    this.#db = this.#store = undefined;
    if (db && !db.closed) await db.query(`DROP TABLE IF EXISTS ${this.ordersTable}, ${this.historyTable}`);
  }

  async session(): Promise<PGliteSession> {
    return this.db;
  }

  async release(): Promise<void> {}

  insertOrder = (session: PGliteSession, order: OrderRow) => this.orders.insert(session, order);
  updateOrder = (session: PGliteSession, order: OrderRow, expected: number | undefined) =>
    this.orders.update(session, order, expected);
  deleteOrder = (session: PGliteSession, order: OrderRow, expected: number | undefined) =>
    this.orders.remove(session, order, expected);
  readOrder = (id: string) => this.orders.read(this.db, id);
  countHistory = (entityType: string, entityId: string) =>
    countHistory(this.db, this.historyTable, entityType, entityId);

  async begin(session: PGliteSession): Promise<void> {
    await session.exec('BEGIN');
  }

  async commit(session: PGliteSession): Promise<void> {
    await session.exec('COMMIT');
  }

  async rollback(session: PGliteSession): Promise<void> {
    await session.exec('ROLLBACK');
  }

  async isIdle(session: PGliteSession): Promise<boolean> {
    return session === this.db && !this.db.isInTransaction();
  }
}

const fixture = new PGliteFixture();
runBehaviourSuite(fixture);

describe('PGlite specifics', () => {
  let db: PGlite;
  let services: ReturnType<typeof orderServices<PGliteSession>>;

  beforeAll(async () => {
    db = await pglite();
    // The shared suite drops its tables when it ends; these tests open the fixture again for themselves.
    await fixture.open();
    services = orderServices(fixture);
  });

  afterAll(() => fixture.close());

  it('joins the transaction of PGlite’s transaction() when given its tx, and commits with it', async () => {
    const order = new Order(orderId(), 1);

    await db.transaction(async (tx) => {
      await services.orders.save(order, tx);
      order.total = 2;
      await services.orders.update(order, tx);
    });

    expect(await fixture.readOrder(order.id)).toMatchObject({ total: 2, version: 2 });
    const entries = await fixture.store.list('Order', order.id);
    expect(entries.map((entry) => entry.version)).toEqual([1, 2]);
  });

  it('discards both writes when the caller rolls PGlite’s transaction back with tx.rollback()', async () => {
    const order = new Order(orderId(), 1);

    await db.transaction(async (tx) => {
      await services.orders.save(order, tx);
      await tx.rollback();
    });

    expect(await fixture.readOrder(order.id)).toBeUndefined();
    expect(await fixture.countHistory('Order', order.id)).toBe(0);
  });

  it('rejects a tx whose transaction already ended with TransactionStateError, calling nothing', async () => {
    let ended: Transaction | undefined;
    await db.transaction(async (tx) => {
      ended = tx;
    });
    const order = new Order(orderId(), 1);

    const error = await services.orders.save(order, ended as Transaction).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransactionStateError);
    expect(error).toMatchObject({ code: 'TRANSACTION_CLOSED', adapter: 'pglite' });
    expect((error as Error).message).toMatch(/db\.transaction/);
    expect(order.version).toBeUndefined();
    expect(await fixture.readOrder(order.id)).toBeUndefined();
  });

  it('runs concurrent decorated calls on the one instance one after the other: one failing takes no other down', async () => {
    const { orders, store } = fixture;
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, session: PGlite): Promise<void> {
        await orders.insert(session, order);
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (order.total < 0) throw new Error(`order ${order.id} has a negative total`);
      }
    }
    const service = new OrderService();
    const batch = [new Order(orderId(), -1), new Order(orderId(), 1), new Order(orderId(), 2)];

    const results = await Promise.allSettled(batch.map((order) => service.save(order, db)));

    expect(results.map((result) => result.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(await fixture.readOrder(batch[0]?.id as string)).toBeUndefined();
    const entries = await Promise.all(batch.slice(1).map((order) => store.latest('Order', order.id)));
    expect(entries.map((entry) => entry?.version)).toEqual([1, 1]);
    expect(new Set(entries.map((entry) => entry?.txId)).size).toBe(2);
    expect(db.isInTransaction()).toBe(false);
  });

  it('gives every entry of a transaction the transaction’s own pg_current_xact_id as txId', async () => {
    const seen: { xact: string; txId: string | undefined }[] = [];
    const { orders, store } = fixture;
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, session: PGlite): Promise<void> {
        await orders.insert(session, order);
        const { rows } = await session.query<{ id: string }>('SELECT pg_current_xact_id()::text AS id');
        seen.push({ xact: rows[0]?.id as string, txId: currentCall()?.txId });
      }
    }
    const order = new Order(orderId(), 1);

    await new OrderService().save(order, db);

    expect(seen[0]?.xact).toMatch(/^\d+$/);
    expect(seen[0]?.txId).toBe(seen[0]?.xact);
    expect((await store.latest('Order', order.id))?.txId).toBe(seen[0]?.xact);
  });

  it("with createPgliteAdapter({ transactionId: 'random' }) registered, a call begins with a plain BEGIN and records a random UUID as txId", async () => {
    const seen: (string | undefined)[] = [];
    const { orders, store } = fixture;
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      async save(order: Order, session: PGlite): Promise<void> {
        await orders.insert(session, order);
        seen.push(currentCall()?.txId);
      }
    }
    const order = new Order(orderId(), 1);
    const executed: string[] = [];
    const exec = db.exec;
    // Records what the adapter sends through exec (BEGIN, COMMIT), then restores the method.
    db.exec = ((sql: string, ...rest: unknown[]) => {
      executed.push(sql);
      return (exec as (...args: unknown[]) => unknown).call(db, sql, ...rest);
    }) as typeof db.exec;
    const unregister = registerTransactionAdapter(createPgliteAdapter({ transactionId: 'random' }));
    try {
      await new OrderService().save(order, db);
    } finally {
      unregister();
      db.exec = exec;
    }

    expect(executed).toEqual(['BEGIN', 'COMMIT']);
    expect(seen[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((await store.latest('Order', order.id))?.txId).toBe(seen[0]);
  });

  it('reports a transaction the method aborted by catching a failed statement as TransactionStateError', async () => {
    const { orders } = fixture;
    class OrderService {
      @Versioned()
      async save(order: Order, session: PGlite): Promise<void> {
        await orders.insert(session, order);
        await session.query('SELECT 1 / 0').catch(() => undefined);
      }
    }
    const order = new Order(orderId(), 1);

    await expect(new OrderService().save(order, db)).rejects.toMatchObject({ code: 'TRANSACTION_ABORTED' });

    expect(db.isInTransaction()).toBe(false);
    expect(order.version).toBeUndefined();
    expect(await fixture.readOrder(order.id)).toBeUndefined();
  });

  it('serves list, at, asOf, latest, page and byTransaction from the history key and its indexes, not a sequential scan', async () => {
    const table = uniqueTable('history');
    const { connection, sent } = recording(db);
    try {
      await expectIndexedReads(db, new PostgresHistoryStore(connection, { table }), sent);
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${table}`);
    }
  });
});
