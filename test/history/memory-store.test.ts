import { describe, expect, it } from 'vitest';
import { type HistoryEntry, MemoryHistoryStore, VersionConflictError } from '../../src/index.js';

function entry(version: number, at: string, id = 'o1'): HistoryEntry {
  return {
    entityType: 'Order',
    entityId: id,
    version,
    op: version === 1 ? 'create' : 'update',
    timestamp: new Date(at),
    snapshot: { total: version * 10, at: new Date(at) },
  };
}

describe('MemoryHistoryStore', () => {
  const store = new MemoryHistoryStore();
  store.save(entry(2, '2026-01-02T00:00:00Z'));
  store.save(entry(1, '2026-01-01T00:00:00Z'));
  store.save(entry(3, '2026-01-03T00:00:00Z'));
  store.save(entry(1, '2026-01-01T00:00:00Z', 'other'));

  it('lists one entity’s entries in ascending version order, within bounds and a limit', async () => {
    expect((await store.list('Order', 'o1')).map((e) => e.version)).toEqual([1, 2, 3]);
    expect((await store.list('Order', 'o1', { fromVersion: 2 })).map((e) => e.version)).toEqual([2, 3]);
    expect((await store.list('Order', 'o1', { toVersion: 2, limit: 1 })).map((e) => e.version)).toEqual([1]);
    expect(await store.list('Order', 'missing')).toEqual([]);
  });

  it('reads one version, the latest, and the version in force at a time', async () => {
    expect((await store.at('Order', 'o1', 2))?.snapshot).toEqual({ total: 20, at: new Date('2026-01-02T00:00:00Z') });
    expect(await store.at('Order', 'o1', 9)).toBeUndefined();
    expect((await store.latest('Order', 'o1'))?.version).toBe(3);
    expect((await store.asOf('Order', 'o1', new Date('2026-01-02T12:00:00Z')))?.version).toBe(2);
    expect((await store.asOf('Order', 'o1', new Date('2026-01-02T00:00:00Z')))?.version).toBe(2);
    expect(await store.asOf('Order', 'o1', new Date('2025-12-31T00:00:00Z'))).toBeUndefined();
  });

  it('answers asOf with the latest timestamp not after the time, ties to the highest version, when timestamps do not follow versions', async () => {
    const skewed = new MemoryHistoryStore();
    skewed.save(entry(1, '2026-01-01T00:00:00Z'));
    skewed.save(entry(2, '2026-01-03T00:00:00Z'));
    skewed.save(entry(3, '2026-01-02T00:00:00Z'));
    skewed.save(entry(4, '2026-01-01T00:00:00Z'));
    const asOf = async (at: string) => (await skewed.asOf('Order', 'o1', new Date(at)))?.version;

    expect(await asOf('2025-12-31T23:59:59Z')).toBeUndefined();
    expect(await asOf('2026-01-01T00:00:00Z')).toBe(4);
    expect(await asOf('2026-01-02T12:00:00Z')).toBe(3);
    expect(await asOf('2026-01-03T00:00:00Z')).toBe(2);
    expect(await asOf('2026-02-01T00:00:00Z')).toBe(2);
  });

  it('enforces the unique (entityType, entityId, version) key with VersionConflictError, as a rejection like every store', async () => {
    let saving: Promise<void> | undefined;
    expect(() => {
      saving = store.save(entry(2, '2026-02-01T00:00:00Z'));
    }).not.toThrow();
    await expect(saving).rejects.toBeInstanceOf(VersionConflictError);
    expect((await store.at('Order', 'o1', 2))?.timestamp).toEqual(new Date('2026-01-02T00:00:00Z'));
  });

  it('hands out copies, so readers cannot change what is stored', async () => {
    const read = await store.at('Order', 'o1', 1);
    if (read) (read.snapshot as { total: number }).total = -1;
    expect((await store.at('Order', 'o1', 1))?.snapshot).toMatchObject({ total: 10 });
  });
});

describe('MemoryHistoryStore.entityTypes and entityIds', () => {
  const at = new Date('2026-01-01T00:00:00Z');
  const save = (store: MemoryHistoryStore, entityType: string, entityId: string) =>
    store.save({ entityType, entityId, version: 1, op: 'create', timestamp: at, snapshot: {} });

  it('list types and ids once each, in code point order as the database stores do, by exact prefix and id cursor', async () => {
    const store = new MemoryHistoryStore();
    // U+FF5E sorts before U+1F600 by code point, after it by UTF-16 code unit.
    for (const id of ['b', 'a-2', 'a-10', '\u{1F600}', '\uFF5E', 'A']) await save(store, 'Order', id);
    await save(store, 'Invoice', 'a-2');
    await store.save({ entityType: 'Order', entityId: 'b', version: 2, op: 'update', timestamp: at, snapshot: {} });

    expect(await store.entityTypes()).toEqual(['Invoice', 'Order']);
    expect(await store.entityIds('Order')).toEqual(['A', 'a-10', 'a-2', 'b', '\uFF5E', '\u{1F600}']);
    expect(await store.entityIds('Order', { prefix: 'a-' })).toEqual(['a-10', 'a-2']);
    expect(await store.entityIds('Order', { after: 'a-2', limit: 2 })).toEqual(['b', '\uFF5E']);
    expect(await store.entityIds('Order', { limit: 0 })).toEqual([]);
    expect(await store.entityIds('order')).toEqual([]);
  });
});
