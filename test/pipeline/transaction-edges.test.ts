import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import {
  expectedVersion,
  HistoryTracked,
  InvalidEntityError,
  registerTransactionAdapter,
  type TransactionAdapter,
  TransactionRetriesExhaustedError,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { NESTED_WAIT_WARNING_MS } from '../../src/pipeline/invoke.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { FakeDbError, FakeHistoryWriter, type FakeSession, fakeAdapter, historyRows } from '../support/fake-db.js';
import { need, Order, setup, tickingClock } from '../support/orders.js';

/**
 * The transaction promises at their edges (issue 11): a call that fails inside a transaction it
 * did not begin leaves none of its writes there; a call that outlives the call that started it
 * does not run in whatever transaction happens to be open on the session then; a retried call
 * has the effect of one call; running out of retries is a typed error.
 */

interface Wallet {
  id: string;
  balance: number;
  items: string[];
  version?: number;
  timestamp?: Date;
}

function walletService(options: { retries?: number; maxSnapshotBytes?: number } = {}) {
  const history = new FakeHistoryWriter();
  @Versioned({ clock: tickingClock(), ...(options.retries === undefined ? {} : { retries: options.retries }) })
  @HistoryTracked(
    'history',
    options.maxSnapshotBytes === undefined ? {} : { maxSnapshotBytes: options.maxSnapshotBytes },
  )
  class WalletService {
    constructor(readonly history: FakeHistoryWriter) {}
    /** Set by a test: runs inside the method after its write. */
    afterWrite: ((wallet: Wallet) => Promise<void> | void) | undefined;
    /** Set by a test: runs inside the method before its write. */
    beforeWrite: (() => Promise<void>) | undefined;

    async save(wallet: Wallet, session?: FakeSession): Promise<void> {
      await this.beforeWrite?.();
      await need(session).insert('wallets', wallet.id, { ...wallet });
      await this.afterWrite?.(wallet);
    }

    async update(wallet: Wallet, session?: FakeSession): Promise<{ matchedCount: number }> {
      wallet.balance += 10;
      wallet.items.push(`deposit ${wallet.items.length}`);
      const result = await need(session).update('wallets', wallet.id, expectedVersion(wallet), { ...wallet });
      await this.afterWrite?.(wallet);
      return result;
    }
  }
  return new WalletService(history);
}

describe('a call that fails inside a transaction it did not begin', () => {
  it('leaves nothing of its writes in the caller’s transaction, which the caller can still commit', async () => {
    const { db, session, service } = setup();
    await session.begin();
    await service.save(new Order('kept', 1), session);
    service.failWith = new Error('the method failed after its write');
    const failing = new Order('dropped', 2);
    await expect(service.save(failing, session)).rejects.toThrow('after its write');
    service.failWith = undefined;
    await session.commit();

    expect(db.rows('orders').map((row) => row.id)).toEqual(['kept']);
    expect(historyRows(db).map((entry) => entry.entityId)).toEqual(['kept']);
    expect(failing.version).toBeUndefined();
    expect(session.savepointCounts).toEqual({ taken: 2, rolledBack: 1, released: 1 });
  });

  it('rolls back the method’s write when the snapshot is too large for history', async () => {
    const { db, session } = setup();
    const service = walletService({ maxSnapshotBytes: 200 });
    await session.begin();
    const wallet: Wallet = { id: 'w1', balance: 0, items: ['x'.repeat(500)] };
    await expect(service.save(wallet, session)).rejects.toBeInstanceOf(InvalidEntityError);
    await session.commit();

    expect(db.rows('wallets')).toEqual([]);
    expect(historyRows(db)).toEqual([]);
  });

  it('rolls back the write of a call that lost a race on the history key', async () => {
    const { db, session, service, history } = setup();
    await service.save(new Order('o1', 1), db.session());
    const stale = { ...new Order('o1', 5), version: 1 } as Order;
    // Another writer already recorded version 2 in history (not in the row): the history key refuses ours.
    const other = db.session();
    await other.insert('history', 'Order/o1/2', { entityType: 'Order', entityId: 'o1', version: 2 });
    await session.begin();
    await expect(service.update(stale, session)).rejects.toBeInstanceOf(VersionConflictError);
    await session.commit();

    expect(db.row('orders', 'o1')).toMatchObject({ total: 1, version: 1 });
    expect(history.saved).toBe(1);
    expect(stale.version).toBe(1);
  });

  it('rolls back a nested call’s write when the outer method catches its error and goes on', async () => {
    const { db, session } = setup();
    const inner = walletService();
    const outer = walletService();
    inner.afterWrite = () => {
      throw new Error('inner failed after its write');
    };
    outer.afterWrite = async (wallet) => {
      if (wallet.id !== 'outer') return;
      await expect(inner.save({ id: 'inner', balance: 0, items: [] })).rejects.toThrow('inner failed');
    };

    await outer.save({ id: 'outer', balance: 0, items: [] }, session);

    expect(db.rows('wallets').map((row) => row.id)).toEqual(['outer']);
    expect(historyRows(db).map((entry) => entry.entityId)).toEqual(['outer']);
    expect(session).toMatchObject({ begins: 1, commits: 1 });
  });

  it('undoes the stamp of a nested call that succeeded when the unit it ran in fails', async () => {
    const { session } = setup();
    const inner = walletService();
    const outer = walletService();
    const nested: Wallet = { id: 'inner', balance: 0, items: [] };
    outer.afterWrite = async (wallet) => {
      if (wallet.id !== 'outer') return;
      await inner.save(nested);
      throw new Error('outer failed after the nested call');
    };

    await expect(outer.save({ id: 'outer', balance: 0, items: [] }, session)).rejects.toThrow('outer failed');

    expect(nested.version).toBeUndefined();
    expect(nested.timestamp).toBeUndefined();
  });

  it('keeps today’s behaviour, documented, for an adapter without join: the write stays', async () => {
    const withoutJoin: TransactionAdapter<FakeSession> = { ...fakeAdapter, name: 'fake-db without join' };
    delete (withoutJoin as { join?: unknown }).join;
    const unregister = registerTransactionAdapter(withoutJoin);
    try {
      const { db, session, service } = setup();
      await session.begin();
      service.failWith = new Error('failed after its write');
      await expect(service.save(new Order('o1', 1), session)).rejects.toThrow('after its write');
      await session.commit();
      expect(db.rows('orders').map((row) => row.id)).toEqual(['o1']);
      expect(session.savepointCounts.taken).toBe(0);
    } finally {
      unregister();
    }
  });
});

describe('a call that outlives the call that started it', () => {
  it('a nested call the method did not await finishes inside the unit, before it commits', async () => {
    const { db, session } = setup();
    const inner = walletService();
    const outer = walletService();
    let pending: Promise<void> | undefined;
    inner.beforeWrite = () => new Promise((resolve) => setTimeout(resolve, 20));
    outer.afterWrite = (wallet) => {
      if (wallet.id !== 'outer') return;
      // Started, not awaited: the outer method returns while the nested call still runs.
      pending = inner.save({ id: 'late-inner', balance: 0, items: [] });
    };

    await outer.save({ id: 'outer', balance: 0, items: [] }, session);

    expect(
      db
        .rows('wallets')
        .map((row) => row.id)
        .sort(),
    ).toEqual(['late-inner', 'outer']);
    expect(session).toMatchObject({ begins: 1, commits: 1 });
    expect(new Set(historyRows(db).map((entry) => entry.txId)).size).toBe(1);
    await pending;
  });

  it('a call started after its parent returned runs in a transaction of its own', async () => {
    const { db, session } = setup();
    const inner = walletService();
    const outer = walletService();
    let late: Promise<void> | undefined;
    outer.afterWrite = (wallet) => {
      if (wallet.id !== 'outer') return;
      late = new Promise<void>((resolve, reject) => {
        setTimeout(() => inner.save({ id: 'timer', balance: 0, items: [] }).then(resolve, reject), 10);
      });
    };
    await outer.save({ id: 'outer', balance: 0, items: [] }, session);
    await late;

    expect(
      db
        .rows('wallets')
        .map((row) => row.id)
        .sort(),
    ).toEqual(['outer', 'timer']);
    expect(session).toMatchObject({ begins: 2, commits: 2, rollbacks: 0 });
    const txIds = historyRows(db).map((entry) => entry.txId);
    expect(new Set(txIds).size).toBe(2);
  });

  it('on one connection, a late call waits for another call’s transaction instead of joining it', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE wallets (id TEXT PRIMARY KEY, balance INTEGER, version INTEGER)');
    const store = new SqliteHistoryStore(db, { table: 'wallet_history' });
    await store.ensureSchema();

    @Versioned()
    @HistoryTracked('history')
    class Wallets {
      constructor(readonly history: SqliteHistoryStore) {}
      behaviour: ((wallet: Wallet) => Promise<void> | void) | undefined;
      async save(wallet: Wallet, session: Database.Database): Promise<void> {
        session.prepare('INSERT INTO wallets VALUES (?, ?, ?)').run(wallet.id, wallet.balance, wallet.version);
        await this.behaviour?.(wallet);
      }
    }
    const wallets = new Wallets(store);

    let late: Promise<void> | undefined;
    let lateStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      lateStarted = resolve;
    });
    // The first call starts a call on a timer, and returns at once.
    wallets.behaviour = (wallet) => {
      if (wallet.id !== 'first') return;
      late = new Promise<void>((resolve, reject) => {
        setTimeout(() => {
          lateStarted();
          wallets.save({ id: 'late', balance: 0, items: [] }, db).then(resolve, reject);
        }, 20);
      });
    };
    await wallets.save({ id: 'first', balance: 0, items: [] }, db);
    // A second call then holds the connection while the timer fires, and fails.
    wallets.behaviour = async (wallet) => {
      if (wallet.id !== 'second') return;
      await started;
      await new Promise((resolve) => setTimeout(resolve, 20));
      throw new Error('the second call fails');
    };
    await expect(wallets.save({ id: 'second', balance: 0, items: [] }, db)).rejects.toThrow('second call fails');
    await late;

    const ids = (db.prepare('SELECT id FROM wallets ORDER BY id').all() as { id: string }[]).map((row) => row.id);
    expect(ids).toEqual(['first', 'late']);
    expect((await store.list('Wallets', 'late')).map((entry) => entry.version)).toEqual([1]);
    db.close();
  });
});

describe('a retried call', () => {
  it('has the effect of one call: the method runs again on the entity as the caller passed it', async () => {
    const { db, session } = setup();
    const service = walletService();
    const wallet: Wallet = { id: 'w1', balance: 100, items: ['opened'] };
    await service.save(wallet, db.session());
    session.commitFailures.push(new FakeDbError('TRANSIENT', 'serialization failure'));

    await service.update(wallet, session);

    expect(wallet).toMatchObject({ balance: 110, items: ['opened', 'deposit 1'], version: 2 });
    expect(db.row('wallets', 'w1')).toMatchObject({ balance: 110, items: ['opened', 'deposit 1'], version: 2 });
    expect(session.begins).toBe(2);
  });

  it('reports running out of retries as TransactionRetriesExhaustedError, with the entity as it was', async () => {
    const { db, session } = setup();
    const service = walletService({ retries: 2 });
    const wallet: Wallet = { id: 'w1', balance: 100, items: [] };
    await service.save(wallet, db.session());
    for (let i = 0; i < 3; i++) session.commitFailures.push(new FakeDbError('TRANSIENT', `attempt ${i}`));

    const error = await service.update(wallet, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransactionRetriesExhaustedError);
    expect(error).toMatchObject({ code: 'TRANSACTION_RETRIES_EXHAUSTED', attempts: 3, adapter: 'fake-db' });
    expect((error as Error).cause).toBeInstanceOf(FakeDbError);
    expect(wallet).toEqual({ id: 'w1', balance: 100, items: [], version: 1, timestamp: wallet.timestamp });
    expect(db.row('wallets', 'w1')).toMatchObject({ balance: 100, version: 1 });
  });

  it('with retries: 0, the first transient failure is TransactionRetriesExhaustedError', async () => {
    const { db, session } = setup();
    const service = walletService({ retries: 0 });
    const wallet: Wallet = { id: 'w1', balance: 100, items: [] };
    await service.save(wallet, db.session());
    session.commitFailures.push(new FakeDbError('TRANSIENT', 'deadlock'));

    const error = await service.update(wallet, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransactionRetriesExhaustedError);
    expect(error).toMatchObject({ attempts: 1 });
    expect(wallet.version).toBe(1);
    expect(db.row('wallets', 'w1')).toMatchObject({ balance: 100, version: 1 });
    expect(session.begins).toBe(1);
  });
});

describe('nested calls that wait for each other', () => {
  it('cannot finish, and the process is warned, naming the call that waits for its turn', async () => {
    const { session } = setup();
    const service = walletService();
    let open!: () => void;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      service.beforeWrite = undefined;
      service.afterWrite = async (wallet) => {
        if (wallet.id === 'parent') {
          // The first nested call waits for the second, which runs only after the first.
          service.afterWrite = async (inner) => {
            if (inner.id === 'waits') await opened;
            if (inner.id === 'opens') open();
          };
          await Promise.all([
            service.save({ id: 'waits', balance: 0, items: [] }, session),
            service.save({ id: 'opens', balance: 0, items: [] }, session),
          ]);
        }
      };
      const running = service.save({ id: 'parent', balance: 0, items: [] }, session);
      for (let i = 0; i < 50; i++) await Promise.resolve();
      expect(warnings).toHaveLength(0);
      vi.advanceTimersByTime(NESTED_WAIT_WARNING_MS);
      await new Promise((resolve) => process.nextTick(resolve));
      expect(warnings.map((w) => (w as Error & { code?: string }).code)).toEqual(['EVENT_HISTORY_NESTED_WAIT']);
      expect(warnings[0]?.message).toMatch(/WalletService\.save has waited 10 s for its turn/);
      open(); // released from outside, the calls finish
      await running;
    } finally {
      vi.useRealTimers();
      process.off('warning', onWarning);
    }
  });
});
