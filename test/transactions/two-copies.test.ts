import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as copyA from '../../src/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { loadLibraryCopy } from '../support/library-copy.js';

/**
 * Two copies of the library in one process (the ESM and the CommonJS build, which a NestJS app
 * next to an ESM tool easily loads together): here, the source tree copied elsewhere and loaded
 * as a second, separate module graph. Whatever copy a call comes from, they share one state:
 * locks, ambient context, stamps, registries, and error identity.
 */
type Library = typeof copyA;
let copyB: Library;
let dispose: () => void;

beforeAll(async () => {
  ({ library: copyB, dispose } = await loadLibraryCopy());
  expect(copyB.VersionConflictError).not.toBe(copyA.VersionConflictError);
});

afterAll(() => dispose());

interface Account {
  id: string;
  balance: number;
  version?: number;
  timestamp?: Date;
}

function accountsOf(library: Library, store: SqliteHistoryStore) {
  @library.Versioned()
  @library.HistoryTracked('history')
  class Accounts {
    constructor(readonly history: SqliteHistoryStore) {}
    during: (() => Promise<void>) | undefined;
    seenExpected: number | undefined;
    async save(account: Account, db: Database.Database): Promise<void> {
      db.prepare('INSERT INTO accounts VALUES (?, ?, ?)').run(account.id, account.balance, account.version);
      await this.during?.();
    }
    async update(account: Account, db: Database.Database): Promise<{ changes: number }> {
      // The user's code may import expectedVersion from the other copy.
      this.seenExpected = (library === copyA ? copyB : copyA).expectedVersion(account);
      return db
        .prepare('UPDATE accounts SET balance = ?, version = ? WHERE id = ? AND version = ?')
        .run(account.balance, account.version, account.id, this.seenExpected);
    }
  }
  return new Accounts(store);
}

describe('two copies of the library in one process', () => {
  it('errors of one copy are instances of the other copy’s classes, and only of the right ones', () => {
    const conflict = new copyB.VersionConflictError('Order', '1', 2);
    expect(conflict).toBeInstanceOf(copyA.VersionConflictError);
    expect(conflict).toBeInstanceOf(copyA.EventHistoryError);
    expect(conflict).toBeInstanceOf(Error);
    expect(conflict).not.toBeInstanceOf(copyA.InvalidEntityError);
    expect(new copyA.DecoratorError('x')).not.toBeInstanceOf(copyB.VersionConflictError);
    expect({ code: 'VERSION_CONFLICT' }).not.toBeInstanceOf(copyA.VersionConflictError);
    const state = new copyB.TransactionStateError('pg', 'TRANSACTION_ABORTED', 'aborted');
    expect(state).toBeInstanceOf(copyA.TransactionStateError);
    // A subclass of the user's own keeps the ordinary check.
    class OrderConflict extends copyA.VersionConflictError {}
    expect(new OrderConflict('Order', '1', 2)).toBeInstanceOf(copyB.VersionConflictError);
    expect(new copyA.VersionConflictError('Order', '1', 2)).not.toBeInstanceOf(OrderConflict);
  });

  it('a call of one copy waits for a transaction the other copy runs on the connection, instead of joining it', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER, version INTEGER)');
    const store = new SqliteHistoryStore(db, { table: 'account_history' });
    await store.ensureSchema();
    const a = accountsOf(copyA, store);
    const b = accountsOf(copyB, store);
    let release!: () => void;
    const holding = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    a.during = async () => {
      entered();
      await holding;
      throw new Error('copy A’s call fails');
    };

    const first = a.save({ id: 'a', balance: 1 }, db);
    await inside;
    const second = b.save({ id: 'b', balance: 2 }, db);
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();

    await expect(first).rejects.toThrow('copy A’s call fails');
    await second;
    const ids = (db.prepare('SELECT id FROM accounts').all() as { id: string }[]).map((row) => row.id);
    expect(ids).toEqual(['b']);
    expect((await store.list('Accounts', 'b')).map((entry) => entry.version)).toEqual([1]);
    db.close();
  });

  it('expectedVersion and currentCall of one copy see a call of the other', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER, version INTEGER)');
    const store = new SqliteHistoryStore(db, { table: 'account_history' });
    await store.ensureSchema();
    const a = accountsOf(copyA, store);
    const account: Account = { id: 'x', balance: 1 };
    let seenCall: string | undefined;
    a.during = async () => {
      seenCall = copyB.currentCall()?.method;
    };
    await a.save(account, db);
    account.balance = 5;
    await a.update(account, db);

    expect(seenCall).toBe('save');
    expect(a.seenExpected).toBe(1);
    expect(account.version).toBe(2);
    db.close();
  });

  it('a conflict thrown through one copy’s pipeline is caught by the other copy’s retryOnConflict', async () => {
    let attempts = 0;
    await expect(
      copyA.retryOnConflict(
        async () => {
          attempts += 1;
          throw new copyB.VersionConflictError('Order', '1', 1);
        },
        { attempts: 2, baseDelayMs: 1 },
      ),
    ).rejects.toBeInstanceOf(copyB.RetryExhaustedError);
    expect(attempts).toBe(2);
  });
});
