import type { ClientSession, Collection, MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryTracked, TransactionStateError, Versioned } from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { mongodbAdapter } from '../../src/transactions/mongodb.js';
import { type MongoTarget, openTarget, plainClient, uniqueName } from './target.js';

interface OrderDocument {
  _id: string;
  total: number;
  version?: number;
  timestamp?: Date;
}

class Order {
  version?: number;
  timestamp?: Date;
  constructor(
    readonly _id: string,
    public total: number,
  ) {}
}

let target: MongoTarget;
let client: MongoClient;
let reader: MongoClient;
let orders: Collection<OrderDocument>;
let readOrders: Collection<OrderDocument>;
let history: MongoHistoryStore;

beforeAll(async () => {
  target = await openTarget();
  client = plainClient(target.url);
  reader = plainClient(target.url);
  await Promise.all([client.connect(), reader.connect()]);
  const dbName = uniqueName('eh_join');
  const ordersName = uniqueName('orders');
  orders = client.db(dbName).collection(ordersName);
  readOrders = reader.db(dbName).collection(ordersName);
  history = new MongoHistoryStore(client.db(dbName), { collection: uniqueName('history') });
  await history.ensureSchema();
});

afterAll(async () => {
  await client?.close();
  await reader?.close();
  await target?.close();
});

const stored = async (id: string) => (await readOrders.findOne({ _id: id })) !== null;
const join = <R>(session: ClientSession, work: () => Promise<R>): Promise<R> => {
  const joinFn = mongodbAdapter.join;
  if (joinFn === undefined) throw new Error('the MongoDB adapter has no join');
  return joinFn(session, work);
};

describe('MongoDB join: no savepoints, so a failure aborts the caller’s transaction', () => {
  it('the caller’s later commitTransaction fails instead of committing the caller’s and half the call’s writes', async () => {
    const session = client.startSession();
    try {
      session.startTransaction();
      await orders.insertOne({ _id: 'caller-1', total: 1 }, { session });
      const error = await join(session, async () => {
        await orders.insertOne({ _id: 'call-1', total: 2 }, { session });
        throw new Error('the call failed after writing');
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionStateError);
      expect((error as TransactionStateError).code).toBe('TRANSACTION_ABORTED');
      expect((error as Error).message).toMatch(/your whole transaction was aborted/);
      expect(((error as Error).cause as Error).message).toBe('the call failed after writing');
      expect(session.inTransaction()).toBe(false);
      await expect(session.commitTransaction()).rejects.toThrow();
      expect([await stored('caller-1'), await stored('call-1')]).toEqual([false, false]);
      expect(target.scripted?.commands.some((c) => c.name === 'abortTransaction') ?? true).toBe(true);
    } finally {
      await session.endSession();
    }
  });

  it('work that succeeds stays in the caller’s transaction, which commits it', async () => {
    const session = client.startSession();
    try {
      session.startTransaction();
      await orders.insertOne({ _id: 'caller-2', total: 1 }, { session });
      expect(await join(session, () => orders.insertOne({ _id: 'call-2', total: 2 }, { session }))).toBeDefined();
      await session.commitTransaction();
      expect([await stored('caller-2'), await stored('call-2')]).toEqual([true, true]);
    } finally {
      await session.endSession();
    }
  });

  it('a nested join passes its error on as it is; the outer one reports the abort', async () => {
    const session = client.startSession();
    try {
      session.startTransaction();
      await orders.insertOne({ _id: 'caller-3', total: 1 }, { session });
      const inner = new Error('inner failed');
      let seenInside: unknown;
      const error = await join(session, async () => {
        seenInside = await join(session, async () => {
          await orders.insertOne({ _id: 'call-3', total: 2 }, { session });
          throw inner;
        }).catch((e: unknown) => e);
        throw seenInside;
      }).catch((e: unknown) => e);
      expect(seenInside).toBe(inner);
      expect((error as TransactionStateError).code).toBe('TRANSACTION_ABORTED');
      await expect(session.commitTransaction()).rejects.toThrow();
      expect([await stored('caller-3'), await stored('call-3')]).toEqual([false, false]);
    } finally {
      await session.endSession();
    }
  });
});

describe('concurrent decorated calls on one ClientSession', () => {
  @Versioned()
  @HistoryTracked('history')
  class OrderService {
    get history(): MongoHistoryStore {
      return history;
    }
    async save(order: Order, session: ClientSession, fail?: string): Promise<void> {
      await orders.insertOne({ ...order }, { session });
      // Let the other call start (and, before the fix, finish) while this one's transaction is open.
      await new Promise((resolve) => setTimeout(resolve, fail === undefined ? 5 : 60));
      if (fail !== undefined) throw new Error(fail);
    }
  }
  const service = new OrderService();

  it('run one after the other: the first failing does not take the second’s reported success with it', async () => {
    const session = client.startSession();
    try {
      const failing = new Order('concurrent-fail', 1);
      const succeeding = new Order('concurrent-ok', 2);
      const [first, second] = await Promise.allSettled([
        service.save(failing, session, 'the first call failed'),
        service.save(succeeding, session),
      ]);
      // What the second call reported is what the database holds.
      expect(second.status === 'fulfilled').toBe(await stored(succeeding._id));
      expect(first.status).toBe('rejected');
      expect(second.status).toBe('fulfilled');
      expect((await history.latest('Order', succeeding._id))?.version).toBe(1);
      expect(await stored(failing._id)).toBe(false);
      expect(await history.latest('Order', failing._id)).toBeUndefined();
      expect(succeeding.version).toBe(1);
      expect(failing.version).toBeUndefined();
      // Each ran in a transaction of its own.
      const commits = target.scripted?.commands.filter((c) => c.name === 'commitTransaction' && c.lsid !== undefined);
      if (commits !== undefined) expect(commits.length).toBeGreaterThan(0);
    } finally {
      await session.endSession();
    }
  });

  it('many concurrent calls, every other one failing: each success is stored, no failure is', async () => {
    const session = client.startSession();
    try {
      const calls = Array.from({ length: 8 }, (_, i) => new Order(`many-${i}`, i));
      const results = await Promise.allSettled(
        calls.map((order, i) => service.save(order, session, i % 2 === 0 ? `call ${i} failed` : undefined)),
      );
      for (const [i, result] of results.entries()) {
        expect(result.status).toBe(i % 2 === 0 ? 'rejected' : 'fulfilled');
        expect(await stored(`many-${i}`)).toBe(i % 2 !== 0);
      }
    } finally {
      await session.endSession();
    }
  });
});
