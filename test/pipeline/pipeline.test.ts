import { describe, expect, it } from 'vitest';
import {
  currentCall,
  currentSession,
  expectedVersion,
  HistoryTracked,
  HistoryWriteError,
  InvalidEntityError,
  MemoryHistoryStore,
  MissingSessionError,
  registerTransactionAdapter,
  runInSession,
  UnsupportedSessionError,
  VersionConflictError,
  Versioned,
  withHistoryContext,
} from '../../src/index.js';
import { FakeDbError, FakeHistoryWriter, type FakeSession, historyRows } from '../support/fake-db.js';
import { need, Order, setup, tickingClock, useFakeDb } from '../support/orders.js';

describe('save and update, as the original library did them, but in one transaction', () => {
  it('save stamps version 1 and a timestamp and writes the entity and a create entry together', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 10);

    await service.save(order, session);

    expect(order.version).toBe(1);
    expect(order.timestamp).toEqual(new Date(Date.UTC(2026, 0, 1, 0, 0, 1)));
    expect(db.row('orders', 'o1')).toMatchObject({ total: 10, version: 1 });
    const [entry] = historyRows(db);
    expect(entry).toMatchObject({ entityType: 'Order', entityId: 'o1', version: 1, op: 'create', txId: 'fake-1' });
    expect(entry?.snapshot).toEqual({ id: 'o1', total: 10, version: 1, timestamp: order.timestamp });
    expect(entry?.timestamp).toEqual(order.timestamp);
    expect(session).toMatchObject({ begins: 1, commits: 1, rollbacks: 0, inTransaction: false });
  });

  it('update increments the version, guards on the version it started from, and records an update entry', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 10);
    await service.save(order, session);
    order.total = 20;

    await service.update(order, session);
    order.total = 30;
    await service.update(order, session);

    expect(order.version).toBe(3);
    expect(db.row('orders', 'o1')).toMatchObject({ total: 30, version: 3 });
    expect(historyRows(db).map((e) => [e.version, e.op, (e.snapshot as Order).total])).toEqual([
      [1, 'create', 10],
      [2, 'update', 20],
      [3, 'update', 30],
    ]);
  });

  it('a failing entity write rolls back, leaves nothing and restores the caller’s object', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 10);
    service.failWith = new Error('disk full');

    await expect(service.save(order, session)).rejects.toThrow('disk full');

    expect(db.rows('orders')).toEqual([]);
    expect(historyRows(db)).toEqual([]);
    expect(order).toEqual(new Order('o1', 10));
    expect(session).toMatchObject({ commits: 0, rollbacks: 1, inTransaction: false });
  });

  it('a history write that fails after inserting rolls the entity write back and restores version and timestamp', async () => {
    const { db, session, service, history } = setup();
    const order = new Order('o1', 10);
    await service.save(order, session);
    const before = { ...order };
    const failure = new Error('history disk full');
    history.failAfterInsert = failure;
    order.total = 99;

    const error = await service.update(order, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(HistoryWriteError);
    expect(error).toMatchObject({ code: 'HISTORY_WRITE_FAILED', entityId: 'o1', version: 2 });
    expect((error as Error).cause).toBe(failure);
    expect(db.row('orders', 'o1')).toMatchObject({ total: 10, version: 1 });
    expect(historyRows(db).map((e) => e.version)).toEqual([1]);
    expect({ ...order, total: 10 }).toEqual(before);
  });

  it('a failed call deletes the version and timestamp fields it added to a plain object', async () => {
    const { session, service } = setup();
    const order = { id: 'o1', total: 1 };
    service.failWith = new Error('nope');
    await expect(service.save(order as Order, session)).rejects.toThrow('nope');
    expect(order).toStrictEqual({ id: 'o1', total: 1 });
  });

  it('a failing commit restores the entity too', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 10);
    session.commitFailures.push(new Error('connection lost at commit'));

    await expect(service.save(order, session)).rejects.toThrow('connection lost at commit');

    expect(db.rows('orders')).toEqual([]);
    expect(order.version).toBeUndefined();
    expect(order.timestamp).toBeUndefined();
  });

  it('delete is stamped like an update and recorded as a delete entry', async () => {
    useFakeDb();
    const history = new MemoryHistoryStore();
    class Shipments {
      @Versioned()
      @HistoryTracked(history)
      async remove(shipment: { id: string; version: number }, session?: FakeSession) {
        return need(session).update('shipments', shipment.id, undefined, {});
      }
    }
    const { session } = setup();
    await session.insert('shipments', 's1', { id: 's1', version: 4 });
    const shipment = { id: 's1', version: 4 };

    await new Shipments().remove(shipment, session);

    expect(shipment.version).toBe(5);
    expect(await history.latest('Shipments', 's1')).toMatchObject({ op: 'delete', version: 5 });
  });
});

describe('optimistic concurrency', () => {
  it('a guarded update that matches nothing is a VersionConflictError and changes nothing', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 10);
    await service.save(order, session);
    const stale = { ...order } as Order;
    order.total = 20;
    await service.update(order, session);
    stale.total = 30;

    const error = await service.update(stale, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ code: 'VERSION_CONFLICT', entityType: 'Order', entityId: 'o1', expectedVersion: 1 });
    expect(stale.version).toBe(1);
    expect(db.row('orders', 'o1')).toMatchObject({ total: 20, version: 2 });
    expect(historyRows(db).map((e) => e.version)).toEqual([1, 2]);
  });

  it('an unguarded update still conflicts on the history key, reported as VersionConflictError', async () => {
    useFakeDb();
    const history = new MemoryHistoryStore();
    @Versioned()
    @HistoryTracked(history)
    class CarelessService {
      async save(order: Order, session?: FakeSession) {
        await need(session).insert('orders', order.id, { ...order });
      }
      async update(order: Order, session?: FakeSession) {
        await need(session).update('orders', order.id, undefined, { ...order });
      }
    }
    const { session } = setup();
    const service = new CarelessService();
    const order = new Order('o1', 1);
    await service.save(order, session);
    const racer = Object.assign(new Order('o1', 1), order);
    await service.update(order, session);

    const error = await service.update(racer, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(VersionConflictError);
    expect(racer.version).toBe(1);
    expect((await history.list('Order', 'o1')).map((e) => e.version)).toEqual([1, 2]);
  });

  it('a driver conflict raised by the history write is mapped through the adapter', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 10);
    await service.save(order, session);
    await session.insert('history', 'Order/o1/2', { planted: true });

    const error = await service.update(order, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(VersionConflictError);
    expect((error as Error).cause).toBeInstanceOf(FakeDbError);
    expect(db.row('orders', 'o1')).toMatchObject({ version: 1 });
  });

  it('a conflict detected at commit (another session committed first) is a VersionConflictError', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 10);
    await service.save(order, session);
    const other = db.session();
    const mine = { ...order } as Order;
    await other.begin();
    await service.update(order, other);
    await other.commit();

    await expect(service.update(mine, session)).rejects.toBeInstanceOf(VersionConflictError);
    expect(mine.version).toBe(1);
  });

  it('expectedVersion and currentCall describe the running call', async () => {
    useFakeDb();
    const seen: unknown[] = [];
    class Service {
      @Versioned({ clock: tickingClock() })
      @HistoryTracked(new MemoryHistoryStore())
      async update(order: Order, _session?: FakeSession) {
        const call = currentCall();
        seen.push(expectedVersion(order), call?.op, call?.version, call?.entityType, call?.method, call?.txId);
        seen.push(currentSession() === _session);
      }
    }
    const { session } = setup();
    const order = Object.assign(new Order('o1', 1), { version: 7 });

    await new Service().update(order, session);

    expect(seen).toEqual([7, 'update', 8, 'Order', 'update', 'fake-1', true]);
    expect(expectedVersion(order)).toBeUndefined();
    expect(currentCall()).toBeUndefined();
  });

  it('a custom conflict check replaces the default', async () => {
    useFakeDb();
    class Service {
      @Versioned({ conflict: (result) => result === 'stale' })
      @HistoryTracked(new MemoryHistoryStore())
      async update(_order: Order, _session?: FakeSession) {
        return 'stale';
      }
    }
    const { session } = setup();
    await expect(
      new Service().update(Object.assign(new Order('o', 1), { version: 1 }), session),
    ).rejects.toBeInstanceOf(VersionConflictError);
  });
});

describe('transactions', () => {
  it('nested decorated calls join one transaction and share one txId', async () => {
    useFakeDb();
    const { db, session, service } = setup();
    class Checkout {
      constructor(readonly orders: typeof service) {}
      @Versioned()
      @HistoryTracked((self: Checkout) => self.orders.history)
      async createInvoice(invoice: { id: string }, session?: FakeSession) {
        await need(session).insert('invoices', invoice.id, { ...invoice });
        await this.orders.save(new Order('o1', 5), session);
        await this.orders.save(new Order('o2', 6));
      }
    }

    await new Checkout(service).createInvoice({ id: 'i1' }, session);

    expect(session).toMatchObject({ begins: 1, commits: 1 });
    const entries = historyRows(db);
    expect(entries.map((e) => e.entityId).sort()).toEqual(['i1', 'o1', 'o2']);
    expect(new Set(entries.map((e) => e.txId))).toEqual(new Set(['fake-1']));
  });

  it('a failure in a nested call rolls back the whole transaction and restores every entity it stamped', async () => {
    useFakeDb();
    const { db, session, service } = setup();
    const first = new Order('o1', 5);
    const second = new Order('o2', 6);
    class Batch {
      @Versioned({ op: 'create' })
      @HistoryTracked((_: Batch) => service.history, { op: 'create' })
      async importBatch(batch: { id: string }, session?: FakeSession) {
        await need(session).insert('batches', batch.id, { ...batch });
        await service.save(first, session);
        service.failWith = new Error('second write failed');
        await service.save(second, session);
      }
    }
    const batch = { id: 'b1' };

    await expect(new Batch().importBatch(batch, session)).rejects.toThrow('second write failed');

    expect(db.rows('orders')).toEqual([]);
    expect(db.rows('batches')).toEqual([]);
    expect(historyRows(db)).toEqual([]);
    expect(first.version).toBeUndefined();
    expect(second.version).toBeUndefined();
    expect(batch).toEqual({ id: 'b1' });
  });

  it('joins a transaction the caller began, and the caller’s rollback discards both writes', async () => {
    const { db, session, service } = setup();
    await session.begin();

    await service.save(new Order('o1', 1), session);
    expect(session.commits).toBe(0);
    expect(await session.find('orders', 'o1')).toMatchObject({ version: 1 });
    await session.rollback();

    expect(session.begins).toBe(1);
    expect(db.rows('orders')).toEqual([]);
    expect(historyRows(db)).toEqual([]);
  });

  it('joins a caller’s transaction that then commits both writes', async () => {
    const { db, session, service } = setup();
    await session.begin();
    await service.save(new Order('o1', 1), session);
    await service.save(new Order('o2', 1), session);
    await session.commit();

    expect(db.rows('orders')).toHaveLength(2);
    expect(new Set(historyRows(db).map((e) => e.txId)).size).toBe(1);
  });

  it('retries a transient failure when it owns the transaction, stamping again each attempt', async () => {
    const { db, session, service } = setup();
    session.commitFailures.push(new FakeDbError('TRANSIENT', 'serialization failure'));
    const order = new Order('o1', 1);

    await service.save(order, session);

    expect(session).toMatchObject({ begins: 2, commits: 1, rollbacks: 0 });
    expect(order.version).toBe(1);
    expect(order.timestamp).toEqual(new Date(Date.UTC(2026, 0, 1, 0, 0, 2)));
    expect(historyRows(db).map((e) => [e.version, e.txId])).toEqual([[1, 'fake-2']]);
  });

  it('gives up after `retries` transient failures and restores the entity', async () => {
    const { db, session, service } = setup({ versioned: { retries: 2 } });
    for (let i = 0; i < 3; i++) session.commitFailures.push(new FakeDbError('TRANSIENT', `attempt ${i}`));
    const order = new Order('o1', 1);

    await expect(service.save(order, session)).rejects.toThrow('attempt 2');

    expect(session.begins).toBe(3);
    expect(order.version).toBeUndefined();
    expect(db.rows('orders')).toEqual([]);
  });

  it('does not retry inside a transaction it joined: the caller owns the retry', async () => {
    const { session, service, history } = setup();
    await session.begin();
    history.failAfterInsert = new FakeDbError('TRANSIENT', 'deadlock');

    const error = await service.save(new Order('o1', 1), session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(HistoryWriteError);
    expect(service.calls).toEqual(['save']);
    await session.rollback();
  });
});

describe('finding the session', () => {
  it('takes the session from a { session } options object, the MongoDB driver’s convention', async () => {
    useFakeDb();
    const history = new FakeHistoryWriter();
    class Service {
      @Versioned()
      @HistoryTracked(history)
      async save(order: Order, options?: { session?: FakeSession }) {
        await need(options?.session).insert('orders', order.id, { ...order });
      }
    }
    const { db, session } = setup();
    await new Service().save(new Order('o1', 1), { session });
    expect(historyRows(db)).toHaveLength(1);
  });

  it('takes the session from sessionIndex and the entity from entityIndex', async () => {
    useFakeDb();
    class Service {
      @Versioned({ entityIndex: 1, sessionIndex: 2 })
      @HistoryTracked(new FakeHistoryWriter(), { entityIndex: 1, sessionIndex: 2 })
      async save(tenant: string, order: Order, session?: FakeSession) {
        await need(session).insert(`${tenant}_orders`, order.id, { ...order });
      }
    }
    const { db, session } = setup();
    await new Service().save('acme', new Order('o1', 1), session);
    expect(db.rows('acme_orders')).toHaveLength(1);
    expect(historyRows(db)).toHaveLength(1);
  });

  it('uses the ambient session of runInSession, and currentSession() inside the method', async () => {
    useFakeDb();
    class Service {
      @Versioned()
      @HistoryTracked(new FakeHistoryWriter())
      async save(order: Order) {
        await need(currentSession<FakeSession>()).insert('orders', order.id, { ...order });
      }
    }
    const { db, session } = setup();
    await runInSession(session, () => new Service().save(new Order('o1', 1)));
    expect(db.rows('orders')).toHaveLength(1);
    expect(session.commits).toBe(1);
  });

  it('without any session, throws MissingSessionError and calls nothing', async () => {
    const { service } = setup();
    const order = new Order('o1', 1);
    await expect(service.save(order)).rejects.toBeInstanceOf(MissingSessionError);
    expect(service.calls).toEqual([]);
    expect(order.version).toBeUndefined();
  });

  it('runs without a transaction when the writer is not transactional (the memory store)', async () => {
    const history = new MemoryHistoryStore();
    class Service {
      @Versioned()
      @HistoryTracked(history)
      async save(_order: Order) {}
    }
    await new Service().save(new Order('o1', 1));
    const entry = await history.latest('Order', 'o1');
    expect(entry?.version).toBe(1);
    expect(entry?.txId).toBeUndefined();
  });

  it('runs without a transaction when requireSession is false', async () => {
    class Service {
      @Versioned({ requireSession: false })
      async save(_order: Order) {}
    }
    const order = new Order('o1', 1);
    await new Service().save(order);
    expect(order.version).toBe(1);
  });

  it('rejects a session no adapter recognises with UnsupportedSessionError naming its type', async () => {
    const { service } = setup();
    class WeirdSession {}
    const error = await service.save(new Order('o1', 1), new WeirdSession() as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedSessionError);
    expect((error as Error).message).toMatch(/WeirdSession.*registerTransactionAdapter/s);
    expect(service.calls).toEqual([]);
  });

  it('treats an adapter whose run() throws instead of rejecting like one that rejects: classified, entity untouched', async () => {
    class ThrowingSession {}
    const unregister = registerTransactionAdapter({
      name: 'throwing',
      matches: (s): s is ThrowingSession => s instanceof ThrowingSession,
      isActive: () => false,
      run: () => {
        throw new FakeDbError('DUPLICATE_KEY', 'duplicate key');
      },
      isConflict: (e) => e instanceof FakeDbError && e.code === 'DUPLICATE_KEY',
    });
    try {
      const { service } = setup();
      const order = new Order('o1', 1);
      const called = service.save(order, new ThrowingSession() as never);
      expect(called).toBeInstanceOf(Promise);
      await expect(called).rejects.toBeInstanceOf(VersionConflictError);
      expect(order.version).toBeUndefined();
      expect(service.calls).toEqual([]);
    } finally {
      unregister();
    }
  });
});

describe('history context', () => {
  it('fills actor, reason and metadata from withHistoryContext, merging nested contexts and the metadata option', async () => {
    const history = new MemoryHistoryStore();
    class Service {
      @Versioned()
      @HistoryTracked(history, { metadata: (call) => ({ method: call.method }) })
      async save(_order: Order) {}
    }
    await withHistoryContext({ actor: 'ada', metadata: { requestId: 'r1' } }, () =>
      withHistoryContext({ reason: 'import', metadata: { batch: 7 } }, () => new Service().save(new Order('o1', 1))),
    );
    expect(await history.latest('Order', 'o1')).toMatchObject({
      actor: 'ada',
      reason: 'import',
      metadata: { requestId: 'r1', batch: 7, method: 'save' },
    });
  });

  it('keeps concurrent contexts apart', async () => {
    const history = new MemoryHistoryStore();
    class Service {
      @Versioned()
      @HistoryTracked(history)
      async save(_order: Order) {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
      }
    }
    const service = new Service();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        withHistoryContext({ actor: `u${i}` }, () => service.save(new Order(`o${i}`, i))),
      ),
    );
    for (let i = 0; i < 20; i++) expect((await history.latest('Order', `o${i}`))?.actor).toBe(`u${i}`);
  });

  it('feeds an existing history service the shape it expects through map', async () => {
    const received: unknown[] = [];
    class Service {
      @Versioned()
      @HistoryTracked(
        { transactional: false, save: (doc: unknown) => void received.push(doc) },
        { map: (entry) => ({ orderId: entry.entityId, rev: entry.version, data: entry.snapshot }) },
      )
      async save(_order: Order) {}
    }
    await new Service().save(new Order('o1', 3));
    expect(received).toEqual([{ orderId: 'o1', rev: 1, data: expect.objectContaining({ total: 3 }) }]);
  });
});

describe('snapshots', () => {
  it('are deep copies taken after the method ran, with ignore and redact applied to the copy only', async () => {
    const history = new MemoryHistoryStore();
    class Service {
      @Versioned()
      @HistoryTracked(history, { ignore: ['cache'], redact: ['card.number'] })
      async save(account: Record<string, unknown>) {
        account.id = 'a1';
      }
    }
    const account: Record<string, unknown> = {
      card: { number: '4111', expiry: '12/30' },
      cache: { hot: true },
      tags: new Set(['x']),
      openedAt: new Date(0),
    };
    await new Service().save(account);
    (account.card as { expiry: string }).expiry = 'changed';

    const entry = await history.latest('Service', 'a1');
    expect(entry?.snapshot).toEqual({
      id: 'a1',
      card: { number: '[redacted]', expiry: '12/30' },
      tags: ['x'],
      openedAt: new Date(0),
      version: 1,
      timestamp: account.timestamp,
    });
    expect(account.card).toEqual({ number: '4111', expiry: 'changed' });
    expect(account.cache).toEqual({ hot: true });
  });

  it('a cyclic entity is an InvalidEntityError and nothing is kept', async () => {
    const { db, session, service } = setup();
    const order = new Order('o1', 1) as Order & { self?: unknown };
    order.self = order;
    await expect(service.save(order, session)).rejects.toBeInstanceOf(InvalidEntityError);
    expect(db.rows('orders')).toEqual([]);
    expect(order.version).toBeUndefined();
  });
});
