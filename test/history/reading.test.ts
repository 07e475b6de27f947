import { describe, expect, it } from 'vitest';
import {
  DecoratorError,
  type HistoryEntry,
  HistoryTracked,
  MemoryHistoryStore,
  RevertError,
  revert,
  upcastReader,
  Versioned,
  verifyHistory,
} from '../../src/index.js';
import { tickingClock } from '../support/orders.js';

class Account {
  version?: number;
  timestamp?: Date;
  cache?: number;
  constructor(
    readonly id: string,
    public owner: string,
    public card: { number: string; holder: string },
    public note?: string,
  ) {}
}

function accountService(store: MemoryHistoryStore, options: Parameters<typeof HistoryTracked>[1] = {}) {
  @Versioned({ clock: tickingClock(), requireSession: false })
  @HistoryTracked(store, { ignore: ['cache'], redact: ['card.number'], ...options })
  class AccountService {
    updates = 0;
    async save(_account: Account): Promise<void> {}
    async update(_account: Account): Promise<void> {
      this.updates += 1;
    }
  }
  return new AccountService();
}

describe('MemoryHistoryStore reading', () => {
  it('pages forwards and backwards, lists newest first, and finds a transaction’s entries across types', async () => {
    const store = new MemoryHistoryStore();
    const at = new Date(0);
    for (let version = 1; version <= 3; version++) {
      store.save({
        entityType: 'Order',
        entityId: 'o',
        version,
        op: 'update',
        timestamp: at,
        snapshot: { version },
        txId: `t${version}`,
      });
    }
    store.save({
      entityType: 'Invoice',
      entityId: 'i',
      version: 1,
      op: 'create',
      timestamp: at,
      snapshot: {},
      txId: 't2',
    });

    expect(await store.page('Order', 'o', { limit: 2 })).toMatchObject({ next: { after: 2, limit: 2 } });
    expect((await store.page('Order', 'o', { after: 2 })).entries.map((e) => e.version)).toEqual([3]);
    const back = await store.page('Order', 'o', { direction: 'backward', limit: 2 });
    expect(back.entries.map((e) => e.version)).toEqual([3, 2]);
    expect((await store.page('Order', 'o', back.next)).entries.map((e) => e.version)).toEqual([1]);
    expect((await store.list('Order', 'o', { order: 'desc', limit: 1 }))[0]?.version).toBe(3);
    expect((await store.byTransaction('t2')).map((e) => e.entityType)).toEqual(['Invoice', 'Order']);
  });
});

describe("@HistoryTracked({ onUnchanged: 'skip' })", () => {
  it('skips an update that only changes an ignored field, and keeps recording when a redacted field is present', async () => {
    const store = new MemoryHistoryStore();
    const accounts = accountService(store, { onUnchanged: 'skip', redact: [] });
    const account = new Account('a1', 'ada', { number: '4111', holder: 'ada' });
    await accounts.save(account);
    account.cache = 5;

    await accounts.update(account);

    expect(accounts.updates).toBe(0);
    expect(account.version).toBe(1);
    const redacting = accountService(store, { onUnchanged: 'skip' });
    const other = new Account('a2', 'bob', { number: '4111', holder: 'bob' });
    await redacting.save(other);
    other.card.number = '5500';
    await redacting.update(other);
    expect(redacting.updates).toBe(1);
    expect((await store.latest('Account', 'a2'))?.version).toBe(2);
  });

  it('rejects unknown values, and map with chain or skip, at the first call with DecoratorError', async () => {
    const store = new MemoryHistoryStore();
    const account = () => new Account('a', 'ada', { number: '1', holder: 'ada' });
    await expect(accountService(store, { onUnchanged: 'never' as 'skip' }).save(account())).rejects.toBeInstanceOf(
      DecoratorError,
    );
    await expect(accountService(store, { chain: true, map: (e) => e }).save(account())).rejects.toThrow(/map/);
    await expect(accountService(store, { schemaVersion: 0 }).save(account())).rejects.toThrow(/schemaVersion/);
  });

  it('needs a writer that can read its latest entry, and says so', async () => {
    const writer = { transactional: false, save: () => undefined };
    @Versioned({ requireSession: false })
    @HistoryTracked(writer, { chain: true })
    class Service {
      async save(_account: Account): Promise<void> {}
    }

    const error = await new Service()
      .save(new Account('a', 'ada', { number: '1', holder: 'ada' }))
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DecoratorError);
    expect((error as Error).message).toMatch(/latest\(entityType, entityId, \{ session \}\)/);
  });
});

describe('revert', () => {
  it('keeps the current value of redacted and ignored fields, and removes fields the old version did not have', async () => {
    const store = new MemoryHistoryStore();
    const accounts = accountService(store);
    const account = new Account('a1', 'ada', { number: '4111', holder: 'ada' });
    await accounts.save(account);
    account.owner = 'ada lovelace';
    account.note = 'vip';
    account.card = { number: '5500', holder: 'A. L.' };
    account.cache = 7;
    await accounts.update(account);

    await revert(accounts, account, 1);

    expect(account).toMatchObject({ owner: 'ada', card: { number: '5500', holder: 'ada' }, cache: 7, version: 3 });
    expect(account).not.toHaveProperty('note');
    expect(await store.latest('Account', 'a1')).toMatchObject({ reason: 'revert to v1', version: 3 });
  });

  it('fails with RevertError, writing nothing, for an undecorated update or a writer it cannot read', async () => {
    class Plain {
      async update(): Promise<void> {}
    }
    const writeOnly = { transactional: false, save: () => undefined };
    @Versioned({ requireSession: false })
    @HistoryTracked(writeOnly)
    class WriteOnly {
      async update(_account: Account): Promise<void> {}
    }
    const account = new Account('a', 'ada', { number: '1', holder: 'ada' });
    account.version = 1;

    await expect(revert(new Plain(), account, 1)).rejects.toThrow(/not decorated/);
    const error = await revert(new WriteOnly(), account, 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RevertError);
    expect((error as Error).message).toMatch(/Pass \{ reader \}/);
    expect(account.version).toBe(1);
  });
});

describe('upcastReader and verifyHistory on the memory store', () => {
  it('upcasts by entity type only, with schema version 1 for entries that carry none', async () => {
    const store = new MemoryHistoryStore();
    const base = { entityId: '1', version: 1, op: 'create' as const, timestamp: new Date(0) };
    store.save({ ...base, entityType: 'Order', snapshot: { total: 1 } });
    store.save({ ...base, entityType: 'Order', entityId: '2', snapshot: { total: 1 }, schemaVersion: 3 });
    store.save({ ...base, entityType: 'Invoice', snapshot: { total: 1 } });
    const seen: number[] = [];
    const reader = upcastReader(store, {
      Order: (snapshot, from) => {
        seen.push(from);
        return { ...snapshot, upcast: true };
      },
    });

    expect((await reader.at('Order', '1', 1))?.snapshot).toEqual({ total: 1, upcast: true });
    expect((await reader.latest('Order', '2'))?.schemaVersion).toBe(3);
    expect((await reader.at('Invoice', '1', 1))?.snapshot).toEqual({ total: 1 });
    expect(seen).toEqual([1, 3]);
  });

  it('finds an entry inserted without a hash after chained ones, and accepts entries from before chaining', async () => {
    const store = new MemoryHistoryStore();
    const accounts = accountService(store, { chain: true });
    const plain = new MemoryHistoryStore();
    const unchained = accountService(plain);
    const account = new Account('a1', 'ada', { number: '1', holder: 'ada' });
    await unchained.save(account);
    for (const entry of await plain.list('Account', 'a1')) store.save(entry);
    account.owner = 'bob';
    await accounts.update(account);

    expect(await verifyHistory(store, 'Account', 'a1')).toMatchObject({
      ok: true,
      entries: 2,
      unchained: 1,
      chained: true,
      anchored: true,
      findings: [{ kind: 'unchained', version: 1, fatal: false }],
    });
    const forged: HistoryEntry = { ...(await store.at('Account', 'a1', 2)), version: 3 } as HistoryEntry;
    delete forged.hash;
    store.save(forged);
    expect(await verifyHistory(store, 'Account', 'a1')).toMatchObject({ ok: false, version: 3, kind: 'inserted' });
  });
});
