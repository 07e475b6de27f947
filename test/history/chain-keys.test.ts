import { describe, expect, it } from 'vitest';
import { chainEntry } from '../../src/history/chain.js';
import {
  DecoratorError,
  type HistoryEntry,
  HistoryTracked,
  type HistoryTrackedOptions,
  hashEntry,
  MemoryHistoryStore,
  Versioned,
  verifyHistory,
} from '../../src/index.js';

class Order {
  version?: number;
  constructor(
    readonly id: string,
    public total: number,
  ) {}
}

function service(store: MemoryHistoryStore, chain: unknown) {
  @Versioned()
  @HistoryTracked(store, { chain: chain as HistoryTrackedOptions['chain'], entityType: 'Order' })
  class OrderService {
    async save(_order: Order): Promise<void> {}
  }
  return new OrderService();
}

const entry: HistoryEntry = {
  entityType: 'Order',
  entityId: '1',
  version: 1,
  op: 'create',
  timestamp: new Date(0),
  snapshot: { total: 1 },
};

describe('chain keys', () => {
  it('a keyed hash is an HMAC that names its key, fits 64 characters, and depends on the key', () => {
    const plain = hashEntry(entry);
    const keyed = hashEntry(entry, 'a-secret-of-16-bytes', 'k1');
    const longest = hashEntry(entry, { current: 'abcdefghijkl', keys: { abcdefghijkl: 'a-secret-of-16-bytes' } });

    expect(plain).toMatch(/^[0-9a-f]{64}$/);
    expect(keyed).toMatch(/^hmac:k1:[A-Za-z0-9_-]{43}$/);
    expect(longest.length).toBeLessThanOrEqual(64);
    expect(hashEntry(entry, 'another-secret-16bytes', 'k1')).not.toBe(keyed);
    expect(hashEntry(entry, 'a-secret-of-16-bytes', 'k1')).toBe(keyed);
  });

  it('rejects bad chain options with DecoratorError at the first call, never quoting the secret', async () => {
    const store = new MemoryHistoryStore();
    const attempts: unknown[] = [
      'yes',
      { keyId: 'k1' },
      { key: 'too-short' },
      { key: 'long-enough-secret-123', keyId: 'has:colon' },
      { key: { current: 'k3', keys: { k1: 'long-enough-secret-123' } } },
    ];
    for (const chain of attempts) {
      const error = await service(store, chain)
        .save(new Order('o1', 1))
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(DecoratorError);
      expect((error as Error).message).toMatch(/chain/);
      expect((error as Error).message).not.toContain('long-enough-secret-123');
      expect((error as Error).message).not.toContain('too-short');
    }
    expect(store.all()).toEqual([]);
  });

  it('a key function returning a bad key fails the call and writes nothing', async () => {
    const store = new MemoryHistoryStore();
    await expect(service(store, { key: () => 'short' }).save(new Order('o1', 1))).rejects.toBeInstanceOf(
      DecoratorError,
    );
    expect(store.all()).toEqual([]);
    expect(await store.head('Order', 'o1')).toBeUndefined();
  });

  it('verifyHistory rejects a bad key with a TypeError naming the problem, not the secret', async () => {
    const store = new MemoryHistoryStore();
    await expect(verifyHistory(store, 'Order', '1', { key: 'tiny' })).rejects.toThrow(/at least 16 bytes/);
  });

  it('a hash set to null by hand counts as no hash (stripped, not a malformed hash)', async () => {
    const store = new MemoryHistoryStore();
    const chained = chainEntry(entry, undefined);
    store.save(chained);
    const nulled = { ...chained, hash: null, prevHash: null } as unknown as HistoryEntry;
    const reader = { ...store, list: async () => [nulled], head: () => store.head('Order', '1') };

    expect(await verifyHistory(reader as never, 'Order', '1')).toMatchObject({
      ok: false,
      kind: 'stripped',
      version: 1,
    });
  });
});
