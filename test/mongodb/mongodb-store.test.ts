import type { Db, MongoClient } from 'mongodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type HistoryEntry, VersionConflictError } from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { type MongoTarget, openTarget, plainClient, REAL_MONGODB_URL, uniqueName } from './target.js';

let target: MongoTarget;
let client: MongoClient;
let db: Db;
let store: MongoHistoryStore;

beforeAll(async () => {
  target = await openTarget();
  client = plainClient(target.url);
  await client.connect();
  db = client.db(uniqueName('eh_store'));
});

afterAll(async () => {
  try {
    if (REAL_MONGODB_URL) await db.dropDatabase();
  } finally {
    await client?.close();
    await target?.close();
  }
});

beforeEach(async () => {
  store = new MongoHistoryStore(db, { collection: uniqueName('history') });
  await store.ensureSchema();
});

const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds));

function entry(version: number, overrides: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    entityType: 'Order',
    entityId: 'o1',
    version,
    op: version === 1 ? 'create' : 'update',
    timestamp: at(version * 10),
    snapshot: { id: 'o1', total: version * 10, version },
    ...overrides,
  };
}

describe('MongoHistoryStore', () => {
  it('keeps entries in entity_history unless told otherwise, and refuses unsafe collection names', () => {
    expect(new MongoHistoryStore(db).collectionName).toBe('entity_history');
    for (const name of ['bad-name', 'a;drop', '$cmd', '', 'x'.repeat(64)]) {
      expect(() => new MongoHistoryStore(db, { collection: name })).toThrow(TypeError);
    }
  });

  it('creates the unique version key, the (timestamp, version) index and the txId index, and can do so again', async () => {
    await store.ensureSchema();
    const indexes = await db.collection(store.collectionName).listIndexes().toArray();
    const byName = Object.fromEntries(indexes.map((index) => [index.name, index]));
    expect(byName.entity_history_version_key).toMatchObject({
      key: { entityType: 1, entityId: 1, version: 1 },
      unique: true,
    });
    expect(byName.entity_history_timestamp_version).toMatchObject({
      key: { entityType: 1, entityId: 1, timestamp: 1, version: 1 },
    });
    expect(byName.entity_history_timestamp_version?.unique).toBeUndefined();
    expect(byName.entity_history_tx).toMatchObject({ key: { txId: 1 } });
  });

  it('round-trips snapshots with nested objects, arrays and Dates, as native BSON dates', async () => {
    const shippedAt = new Date('2026-02-03T04:05:06.789Z');
    const written = entry(1, {
      snapshot: { id: 'o1', lines: [{ sku: 'a', qty: 2, addedAt: shippedAt }], address: { city: 'Oslo', zip: null } },
      actor: 'alice',
      reason: 'import',
      metadata: { source: 'csv', batch: [1, 2] },
      txId: 'tx-1',
    });

    await store.save(written);

    expect(written).not.toHaveProperty('_id');
    const read = await store.at('Order', 'o1', 1);
    expect(read).toEqual(written);
    expect(read).not.toHaveProperty('_id');
    const raw = await db.collection(store.collectionName).findOne({ entityId: 'o1' });
    expect(raw?.timestamp).toBeInstanceOf(Date);
    expect(raw?.snapshot.lines[0].addedAt).toBeInstanceOf(Date);
  });

  it('leaves optional fields out of entries that had none', async () => {
    await store.save(entry(1));
    expect(Object.keys((await store.latest('Order', 'o1')) ?? {}).sort()).toEqual(
      ['entityId', 'entityType', 'op', 'snapshot', 'timestamp', 'version'].sort(),
    );
  });

  it('reports a version it already holds as VersionConflictError when saving without a session', async () => {
    await store.save(entry(1));
    await store.save(entry(2));

    const error = await store.save(entry(2, { snapshot: { other: true } })).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ entityType: 'Order', entityId: 'o1', expectedVersion: 1 });
    expect((error as Error).cause).toMatchObject({ code: 11000 });
    expect(await store.list('Order', 'o1')).toHaveLength(2);
  });

  it('keeps the same version of different entities and types apart', async () => {
    await store.save(entry(1));
    await store.save(entry(1, { entityId: 'o2' }));
    await store.save(entry(1, { entityType: 'Invoice' }));
    expect(await store.list('Order', 'o1')).toHaveLength(1);
    expect(await store.list('Order', 'o2')).toHaveLength(1);
    expect(await store.list('Invoice', 'o1')).toHaveLength(1);
  });

  it('lists versions in ascending order, within inclusive bounds and up to a limit', async () => {
    for (const version of [3, 1, 4, 2, 5]) await store.save(entry(version));

    const versions = async (opts?: Parameters<MongoHistoryStore['list']>[2]) =>
      (await store.list('Order', 'o1', opts)).map((e) => e.version);
    expect(await versions()).toEqual([1, 2, 3, 4, 5]);
    expect(await versions({ fromVersion: 2, toVersion: 4 })).toEqual([2, 3, 4]);
    expect(await versions({ fromVersion: 3, limit: 2 })).toEqual([3, 4]);
    expect(await versions({ limit: 0 })).toEqual([]);
    expect(await store.list('Order', 'unknown')).toEqual([]);
  });

  it('answers at, asOf and latest', async () => {
    for (const version of [1, 2, 3]) await store.save(entry(version));

    expect((await store.at('Order', 'o1', 2))?.snapshot).toEqual({ id: 'o1', total: 20, version: 2 });
    expect(await store.at('Order', 'o1', 9)).toBeUndefined();
    expect((await store.asOf('Order', 'o1', at(25)))?.version).toBe(2);
    expect((await store.asOf('Order', 'o1', at(30)))?.version).toBe(3);
    expect(await store.asOf('Order', 'o1', at(5))).toBeUndefined();
    expect((await store.latest('Order', 'o1'))?.version).toBe(3);
    expect(await store.latest('Order', 'nothing')).toBeUndefined();
  });

  it('writes through the session it is given, so the caller’s abort discards the entry', async () => {
    const session = client.startSession();
    try {
      session.startTransaction();
      await store.save(entry(1), session);
      expect(await store.latest('Order', 'o1')).toBeUndefined();
      await session.abortTransaction();
      expect(await store.latest('Order', 'o1')).toBeUndefined();

      session.startTransaction();
      await store.save(entry(1), session);
      await session.commitTransaction();
      expect((await store.latest('Order', 'o1'))?.version).toBe(1);
    } finally {
      await session.endSession();
    }
  });
});
