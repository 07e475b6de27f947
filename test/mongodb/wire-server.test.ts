import { type Collection, type Db, MongoClient, MongoServerError } from 'mongodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type MongoTarget, openTarget, plainClient, REAL_MONGODB_URL, uniqueName } from './target.js';

/**
 * The server behaviour the MongoDB tests rely on. These hold for a real replica set too, so
 * they run against MONGODB_URL when it is set; the scripted-only ones check the test server itself.
 */

interface Item {
  _id: string;
  n: number;
  tags?: string[];
}

let target: MongoTarget;
let client: MongoClient;
let db: Db;
let items: Collection<Item>;

beforeAll(async () => {
  target = await openTarget();
  client = plainClient(target.url);
  await client.connect();
  db = client.db(uniqueName('eh_wire'));
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
  items = db.collection<Item>(uniqueName('items'));
  await items.createIndex({ n: 1 }, { unique: true, name: 'n_unique' });
});

describe('the server the MongoDB tests run against', () => {
  it('hides a transaction’s writes from other sessions until it commits', async () => {
    const session = client.startSession();
    try {
      session.startTransaction();
      await items.insertOne({ _id: 'a', n: 1 }, { session });
      expect(await items.findOne({ _id: 'a' }, { session })).toMatchObject({ n: 1 });
      expect(await items.findOne({ _id: 'a' })).toBeNull();
      await session.commitTransaction();
      expect(await items.findOne({ _id: 'a' })).toMatchObject({ n: 1 });
    } finally {
      await session.endSession();
    }
  });

  it('discards a transaction’s writes on abort', async () => {
    await items.insertOne({ _id: 'a', n: 1 });
    const session = client.startSession();
    try {
      session.startTransaction();
      await items.updateOne({ _id: 'a' }, { $set: { n: 2 } }, { session });
      await items.insertOne({ _id: 'b', n: 3 }, { session });
      await items.deleteOne({ _id: 'a' }, { session });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await items.find({}, { sort: { _id: 1 } }).toArray()).toEqual([{ _id: 'a', n: 1 }]);
  });

  it('enforces unique indexes with error code 11000, inside and outside transactions', async () => {
    await items.insertOne({ _id: 'a', n: 1 });
    await expect(items.insertOne({ _id: 'b', n: 1 })).rejects.toMatchObject({ code: 11000 });
    await expect(items.insertOne({ _id: 'a', n: 2 })).rejects.toMatchObject({ code: 11000 });
    const session = client.startSession();
    try {
      session.startTransaction();
      await expect(items.insertOne({ _id: 'c', n: 1 }, { session })).rejects.toMatchObject({ code: 11000 });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
  });

  it('fails the second of two transactions writing one document with a transient WriteConflict', async () => {
    await items.insertOne({ _id: 'a', n: 1 });
    const first = client.startSession();
    const second = client.startSession();
    try {
      first.startTransaction();
      second.startTransaction();
      await items.updateOne({ _id: 'a' }, { $set: { n: 2 } }, { session: first });
      const error = await items
        .updateOne({ _id: 'a' }, { $set: { n: 3 } }, { session: second })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MongoServerError);
      expect(error).toMatchObject({ code: 112 });
      expect((error as MongoServerError).hasErrorLabel('TransientTransactionError')).toBe(true);
      await second.abortTransaction();
      await first.commitTransaction();
    } finally {
      await first.endSession();
      await second.endSession();
    }
    expect(await items.findOne({ _id: 'a' })).toMatchObject({ n: 2 });
  });

  it('reports matchedCount 0 for an update whose filter matches nothing', async () => {
    await items.insertOne({ _id: 'a', n: 1 });
    expect(await items.updateOne({ _id: 'a', n: 5 }, { $set: { n: 6 } })).toMatchObject({ matchedCount: 0 });
    expect(await items.updateOne({ _id: 'a', n: 1 }, { $inc: { n: 1 } })).toMatchObject({ matchedCount: 1 });
    expect(await items.findOne({ _id: 'a' })).toMatchObject({ n: 2 });
  });

  it('filters, sorts, limits and counts the way the store and fixtures ask it to', async () => {
    await items.insertMany([
      { _id: 'a', n: 3, tags: ['x'] },
      { _id: 'b', n: 1 },
      { _id: 'c', n: 2, tags: ['x', 'y'] },
    ]);
    const ids = (docs: Item[]) => docs.map((doc) => doc._id);
    expect(ids(await items.find({ n: { $gte: 2 } }, { sort: { n: -1 } }).toArray())).toEqual(['a', 'c']);
    expect(ids(await items.find({ tags: 'y' }).toArray())).toEqual(['c']);
    expect(ids(await items.find({}, { sort: { n: 1 }, limit: 2 }).toArray())).toEqual(['b', 'c']);
    expect(await items.find({ _id: 'a' }, { projection: { _id: 0, tags: 0 } }).toArray()).toEqual([{ n: 3 }]);
    expect(await items.countDocuments({ n: { $lt: 3 } })).toBe(2);
  });
});

describe.runIf(!REAL_MONGODB_URL)('the scripted server itself', () => {
  it('answers the legacy OP_QUERY handshake and then speaks OP_MSG', async () => {
    const scripted = target.scripted;
    if (!scripted) throw new Error('scripted server expected');
    const fresh = new MongoClient(scripted.url, { serverSelectionTimeoutMS: 5_000 });
    scripted.clearRecorded();
    try {
      await fresh.db('admin').command({ ping: 1 });
    } finally {
      await fresh.close();
    }
    const names = scripted.commands.map((command) => command.name);
    expect(names[0]).toBe('ismaster');
    expect(names).toContain('ping');
  });

  it('fails the next matching command as told, with its code and labels, once', async () => {
    const scripted = target.scripted;
    if (!scripted) throw new Error('scripted server expected');
    scripted.failNext({ command: 'insert', collection: items.collectionName, code: 2, errorLabels: ['Injected'] });

    const error = await items.insertOne({ _id: 'a', n: 1 }).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 2 });
    expect((error as MongoServerError).hasErrorLabel('Injected')).toBe(true);
    await items.insertOne({ _id: 'a', n: 1 });
    expect(await items.countDocuments()).toBe(1);
  });

  it('refuses commands of a transaction it already aborted with NoSuchTransaction', async () => {
    const scripted = target.scripted;
    if (!scripted) throw new Error('scripted server expected');
    const session = client.startSession();
    try {
      session.startTransaction();
      await items.insertOne({ _id: 'a', n: 1 }, { session });
      await expect(items.insertOne({ _id: 'b', n: 1 }, { session })).rejects.toMatchObject({ code: 11000 });
      const error = await items.insertOne({ _id: 'c', n: 2 }, { session }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 251 });
      expect((error as MongoServerError).hasErrorLabel('TransientTransactionError')).toBe(true);
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await items.countDocuments()).toBe(0);
  });
});
