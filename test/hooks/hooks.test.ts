import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  afterCommit,
  discardHooks,
  type HistoryEntry,
  HistoryTracked,
  type HookFailure,
  onEntryCommitted,
  registerTransactionAdapter,
  runCommittedHooks,
  setHookErrorHandler,
  TransactionStateError,
  Versioned,
} from '../../src/index.js';
import { SqliteHistoryStore, sqliteAdapter } from '../../src/sqlite/index.js';
import { FakeDb, FakeDbError, FakeHistoryWriter, type FakeSession } from '../support/fake-db.js';
import { need, Order, tickingClock, useFakeDb } from '../support/orders.js';

/** A service whose methods register after-commit hooks, and one that calls another (nested). */
function services(log: string[]) {
  @Versioned({ clock: tickingClock() })
  @HistoryTracked('history')
  class OrderService {
    failWith: Error | undefined;
    constructor(readonly history: FakeHistoryWriter) {}

    async save(order: Order, session?: FakeSession): Promise<void> {
      afterCommit(() => log.push(`first ${order.id}`));
      await need(session).insert('orders', order.id, { ...order });
      afterCommit(async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        log.push(`second ${order.id}`);
      });
      afterCommit(() => log.push(`third ${order.id}`));
      if (this.failWith) throw this.failWith;
    }
  }

  @Versioned({ clock: tickingClock() })
  @HistoryTracked('history')
  class BatchService {
    constructor(
      readonly history: FakeHistoryWriter,
      readonly orders: OrderService,
    ) {}

    async save(order: Order, session?: FakeSession): Promise<void> {
      afterCommit(() => log.push(`outer ${order.id}`));
      await need(session).insert('orders', order.id, { ...order });
      await this.orders.save(new Order(`${order.id}-a`, 1), session);
      await this.orders.save(new Order(`${order.id}-b`, 1), session).catch((error: Error) => {
        log.push(`caught ${error.message}`);
      });
      afterCommit(() => log.push(`outer end ${order.id}`));
    }
  }
  const history = new FakeHistoryWriter();
  const orders = new OrderService(history);
  return { orders, batch: new BatchService(history, orders) };
}

const restore: (() => void)[] = [];
afterEach(() => {
  for (const fn of restore.splice(0)) fn();
});

function captureHookErrors(): { error: unknown; failure: HookFailure }[] {
  const seen: { error: unknown; failure: HookFailure }[] = [];
  const previous = setHookErrorHandler((error, failure) => seen.push({ error, failure }));
  restore.push(() => setHookErrorHandler(previous));
  return seen;
}

describe('afterCommit with the in-memory database', () => {
  useFakeDb();

  it('runs hooks after the commit, in registration order, awaiting each', async () => {
    const log: string[] = [];
    const { orders } = services(log);
    const db = new FakeDb();
    const session = db.session();
    const seenAtHook: number[] = [];
    afterCommitProbe(session, seenAtHook);
    await orders.save(new Order('o1', 1), session);
    expect(log).toEqual(['first o1', 'second o1', 'third o1']);
    expect(session.commits).toBe(1);
  });

  it('drops the hooks of a call that rolls back', async () => {
    const log: string[] = [];
    const { orders } = services(log);
    orders.failWith = new Error('refused');
    const session = new FakeDb().session();
    await expect(orders.save(new Order('o1', 1), session)).rejects.toThrow('refused');
    expect(session.rollbacks).toBe(1);
    expect(log).toEqual([]);
  });

  it('drops the hooks of a failed attempt and runs those of the successful retry once', async () => {
    const log: string[] = [];
    const { orders } = services(log);
    const session = new FakeDb().session();
    session.commitFailures.push(new FakeDbError('TRANSIENT', 'serialization failure'));
    await orders.save(new Order('o1', 1), session);
    expect(session.begins).toBe(2);
    expect(log).toEqual(['first o1', 'second o1', 'third o1']);
  });

  it('a failing commit runs no hook', async () => {
    const log: string[] = [];
    const { orders } = services(log);
    const session = new FakeDb().session();
    session.commitFailures.push(new Error('disk full at commit'));
    await expect(orders.save(new Order('o1', 1), session)).rejects.toThrow();
    expect(log).toEqual([]);
  });

  it('nested calls hand their hooks to the outermost transaction; a failed nested call drops its own', async () => {
    const log: string[] = [];
    const { orders, batch } = services(log);
    const session = new FakeDb().session();
    let failNext = 0;
    const original = orders.save.bind(orders);
    // The second nested call (o1-b) fails after registering its hooks.
    orders.save = (order: Order, s?: FakeSession) => {
      failNext += 1;
      orders.failWith = failNext === 2 ? new Error('b refused') : undefined;
      return original(order, s);
    };
    await batch.save(new Order('o1', 1), session);
    expect(session).toMatchObject({ begins: 1, commits: 1 });
    expect(log).toEqual(['caught b refused', 'outer o1', 'first o1-a', 'second o1-a', 'third o1-a', 'outer end o1']);
  });

  it('a hook that throws is reported and neither undoes the commit nor stops the later hooks', async () => {
    const seen = captureHookErrors();
    const log: string[] = [];
    @Versioned({ clock: tickingClock() })
    @HistoryTracked('history')
    class Failing {
      readonly history = new FakeHistoryWriter();
      async save(order: Order, session?: FakeSession): Promise<void> {
        await need(session).insert('orders', order.id, { ...order });
        afterCommit(() => {
          throw new Error('mailer down');
        });
        afterCommit(() => Promise.reject(new Error('webhook down')));
        afterCommit(() => log.push('still ran'));
      }
    }
    const db = new FakeDb();
    const session = db.session();
    await new Failing().save(new Order('o1', 1), session);
    expect(db.row('orders', 'o1')).toMatchObject({ version: 1 });
    expect(log).toEqual(['still ran']);
    expect(seen.map((s) => [(s.error as Error).message, s.failure.kind])).toEqual([
      ['mailer down', 'afterCommit'],
      ['webhook down', 'afterCommit'],
    ]);
  });

  it('the default handler reports a failing hook on console.error', async () => {
    const errors: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    restore.push(() => {
      console.error = original;
    });
    @Versioned({ clock: tickingClock() })
    @HistoryTracked('history')
    class Failing {
      readonly history = new FakeHistoryWriter();
      async save(order: Order, session?: FakeSession): Promise<void> {
        await need(session).insert('orders', order.id, { ...order });
        afterCommit(() => {
          throw new Error('boom after commit');
        });
      }
    }
    await new Failing().save(new Order('o1', 1), new FakeDb().session());
    expect(errors).toHaveLength(1);
    expect(String(errors[0]?.[0])).toContain('after the commit');
    expect(errors[0]?.[1]).toMatchObject({ message: 'boom after commit' });
  });

  it('joined calls queue their hooks on the session until runCommittedHooks or discardHooks', async () => {
    const log: string[] = [];
    const { orders } = services(log);
    const session = new FakeDb().session();
    await session.begin();
    await orders.save(new Order('o1', 1), session);
    orders.failWith = new Error('refused');
    await expect(orders.save(new Order('o2', 1), session)).rejects.toThrow('refused');
    orders.failWith = undefined;
    expect(log).toEqual([]);
    await session.commit();
    await runCommittedHooks(session);
    expect(log).toEqual(['first o1', 'second o1', 'third o1']);
    await runCommittedHooks(session);
    expect(log).toHaveLength(3);

    await session.begin();
    await orders.save(new Order('o3', 1), session);
    await session.rollback();
    discardHooks(session);
    await runCommittedHooks(session);
    expect(log).toHaveLength(3);
  });

  it('drops hooks a caller neither ran nor discarded when a later transaction on the session queues its own', async () => {
    const log: string[] = [];
    const { orders } = services(log);
    const session = new FakeDb().session();
    await session.begin();
    await orders.save(new Order('forgotten', 1), session);
    await session.rollback(); // and no discardHooks(session)
    await session.begin();
    await orders.save(new Order('o2', 1), session);
    await orders.save(new Order('o3', 1), session);
    await session.commit();
    await runCommittedHooks(session);
    expect(log).toEqual(['first o2', 'second o2', 'third o2', 'first o3', 'second o3', 'third o3']);
  });

  it('refuses afterCommit outside a transaction', () => {
    expect(() => afterCommit(() => undefined)).toThrow(TransactionStateError);
  });

  it('onEntryCommitted sees each committed entry once, after commit, never a rolled-back or retried one', async () => {
    const entries: HistoryEntry[] = [];
    const stop = onEntryCommitted((entry) => {
      entries.push(entry);
    });
    restore.push(stop);
    const seen = captureHookErrors();
    restore.push(
      onEntryCommitted((entry) => {
        if (entry.entityId === 'o2') throw new Error('listener down');
      }),
    );
    const log: string[] = [];
    const { orders } = services(log);
    const db = new FakeDb();
    const session = db.session();
    session.commitFailures.push(new FakeDbError('TRANSIENT', 'serialization failure'));
    await orders.save(new Order('o1', 1), session);
    orders.failWith = new Error('refused');
    await expect(orders.save(new Order('bad', 1), session)).rejects.toThrow('refused');
    orders.failWith = undefined;
    await orders.save(new Order('o2', 1), session);
    expect(entries.map((e) => [e.entityId, e.version, e.txId])).toEqual([
      ['o1', 1, 'fake-2'],
      ['o2', 1, 'fake-4'],
    ]);
    expect(seen.map((s) => [s.failure.kind, s.failure.entry?.entityId])).toEqual([['entryCommitted', 'o2']]);
    stop();
    await orders.save(new Order('o3', 1), session);
    expect(entries).toHaveLength(2);
  });
});

/** Checks, from inside a hook, that the transaction is no longer open when hooks run. */
function afterCommitProbe(session: FakeSession, out: number[]): void {
  const stop = onEntryCommitted(() => {
    out.push(session.inTransaction ? 1 : 0);
  });
  restore.push(stop);
  restore.push(() => expect(out.every((x) => x === 0) && out.length > 0).toBe(true));
}

describe('afterCommit with SQLite (better-sqlite3)', () => {
  registerTransactionAdapter(sqliteAdapter);

  function setupSqlite() {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY, total REAL NOT NULL, version INTEGER NOT NULL)');
    const history = new SqliteHistoryStore(db);
    const log: string[] = [];
    @Versioned({ clock: tickingClock() })
    @HistoryTracked(history)
    class OrderService {
      failAt: string | undefined;
      async save(order: Order, session: Database.Database): Promise<void> {
        afterCommit(() => log.push(`committed ${order.id} inTx=${session.inTransaction}`));
        session
          .prepare('INSERT INTO orders (id, total, version) VALUES (?, ?, ?)')
          .run(order.id, order.total, order.version);
        if (this.failAt === order.id) throw new Error(`refused ${order.id}`);
      }
    }
    @Versioned({ clock: tickingClock() })
    @HistoryTracked(history)
    class BatchService {
      constructor(readonly orders: OrderService) {}
      async save(order: Order, session: Database.Database): Promise<void> {
        afterCommit(() => log.push(`outer ${order.id}`));
        session
          .prepare('INSERT INTO orders (id, total, version) VALUES (?, ?, ?)')
          .run(order.id, order.total, order.version);
        await this.orders.save(new Order(`${order.id}-child`, 1), session);
      }
    }
    const service = new OrderService();
    return { db, history, log, service, batch: new BatchService(service) };
  }

  it('runs after COMMIT, in order, with nested calls; rolled-back calls leave no hook', async () => {
    const { db, history, log, service, batch } = setupSqlite();
    await history.ensureSchema();
    await service.save(new Order('a', 1), db);
    service.failAt = 'b';
    await expect(service.save(new Order('b', 1), db)).rejects.toThrow('refused b');
    service.failAt = undefined;
    await batch.save(new Order('c', 1), db);
    expect(log).toEqual(['committed a inTx=false', 'outer c', 'committed c-child inTx=false']);
    const rows = db.prepare('SELECT id FROM orders ORDER BY id').all() as { id: string }[];
    expect(rows.map((r) => r.id)).toEqual(['a', 'c', 'c-child']);
  });

  it('joined: hooks wait for runCommittedHooks after the caller commits', async () => {
    const { db, history, log, service } = setupSqlite();
    await history.ensureSchema();
    db.exec('BEGIN');
    await service.save(new Order('j', 1), db);
    expect(log).toEqual([]);
    db.exec('COMMIT');
    await runCommittedHooks(db);
    expect(log).toEqual(['committed j inTx=false']);
  });
});
