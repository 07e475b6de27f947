import mongoose, { type ClientSession, type Connection, type Model } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { expectedVersion, HistoryTracked, Versioned } from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { findAdapter } from '../../src/transactions/registry.js';
import { Order, orderId, runBehaviourSuite } from '../integration/behaviour.js';
import type { DatabaseFixture, HistoryTamper, OrderRow } from '../integration/fixture.js';
import { mongoTamper } from '../mongodb/mongodb-fixture.js';
import { type MongoTarget, openTarget, REAL_MONGODB_URL, uniqueName } from '../mongodb/target.js';

interface OrderDocument {
  _id: string;
  total: number;
  version?: number;
  timestamp?: Date;
}

const orderSchema = new mongoose.Schema<OrderDocument>(
  { _id: String, total: Number, version: Number, timestamp: Date },
  { versionKey: false, autoIndex: false, autoCreate: false },
);

/**
 * MongoDB through Mongoose: sessions are Mongoose's `ClientSession`s (the driver's, from
 * `connection.startSession()`), the user's code writes with a Model, and the history store uses
 * the connection's driver `Db`. Against the scripted wire server unless MONGODB_URL is set.
 */
class MongooseFixture implements DatabaseFixture<ClientSession> {
  readonly name = REAL_MONGODB_URL ? 'Mongoose' : 'Mongoose (scripted wire server)';
  readonly unavailable = undefined;
  readonly concurrentSessions = true;
  readonly dbName = uniqueName('eh_mongoose');
  readonly tamper: HistoryTamper = mongoTamper(() => this.#history());
  #target: MongoTarget | undefined;
  #connection: Connection | undefined;
  #reader: Connection | undefined;
  #orders: Model<OrderDocument> | undefined;
  #store: MongoHistoryStore | undefined;

  get connection(): Connection {
    if (!this.#connection) throw new Error('the Mongoose fixture is not open');
    return this.#connection;
  }

  get store(): MongoHistoryStore {
    if (!this.#store) throw new Error('the Mongoose fixture is not open');
    return this.#store;
  }

  get orders(): Model<OrderDocument> {
    if (!this.#orders) throw new Error('the Mongoose fixture is not open');
    return this.#orders;
  }

  async open(): Promise<void> {
    this.#target = await openTarget();
    const options = { dbName: this.dbName, serverSelectionTimeoutMS: 5_000, autoIndex: false, autoCreate: false };
    this.#connection = await mongoose.createConnection(this.#target.url, options).asPromise();
    this.#reader = await mongoose.createConnection(this.#target.url, options).asPromise();
    this.#orders = this.#connection.model<OrderDocument>('Order', orderSchema, uniqueName('orders'));
    const db = this.#connection.db;
    if (db === undefined) throw new Error('the Mongoose connection has no db');
    this.#store = new MongoHistoryStore(db, { collection: uniqueName('history') });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    try {
      if (REAL_MONGODB_URL) await this.#connection?.dropDatabase();
    } finally {
      await this.#connection?.close();
      await this.#reader?.close();
      await this.#target?.close();
      this.#connection = this.#reader = this.#target = this.#store = this.#orders = undefined;
    }
  }

  session(): Promise<ClientSession> {
    return this.connection.startSession();
  }

  async release(session: ClientSession): Promise<void> {
    await session.endSession();
  }

  insertOrder(session: ClientSession, order: OrderRow): Promise<unknown> {
    return this.orders.create([toDocument(order)], { session });
  }

  updateOrder(session: ClientSession, order: OrderRow, expected: number | undefined): Promise<unknown> {
    const { _id, ...fields } = toDocument(order);
    return this.orders.updateOne(guard(_id, expected), { $set: fields }, { session }).exec();
  }

  deleteOrder(session: ClientSession, order: OrderRow, expected: number | undefined): Promise<unknown> {
    return this.orders.deleteOne(guard(order.id, expected), { session }).exec();
  }

  async readOrder(id: string): Promise<OrderRow | undefined> {
    const found = await this.#readerDb()
      .collection<OrderDocument>(this.orders.collection.collectionName)
      .findOne({ _id: id });
    if (!found) return undefined;
    const { _id, ...fields } = found;
    return { id: _id, ...fields };
  }

  countHistory(entityType: string, entityId: string): Promise<number> {
    return this.#history().countDocuments({ entityType, entityId });
  }

  async begin(session: ClientSession): Promise<void> {
    session.startTransaction();
  }

  async commit(session: ClientSession): Promise<void> {
    await session.commitTransaction();
  }

  async rollback(session: ClientSession): Promise<void> {
    await session.abortTransaction();
  }

  async isIdle(session: ClientSession): Promise<boolean> {
    return !session.inTransaction() && !session.hasEnded;
  }

  #readerDb() {
    const db = this.#reader?.db;
    if (db === undefined) throw new Error('the Mongoose fixture is not open');
    return db;
  }

  #history() {
    return this.#readerDb().collection(this.store.collectionName);
  }
}

function toDocument(order: OrderRow): OrderDocument {
  const document: OrderDocument = { _id: order.id, total: order.total };
  if (order.version !== undefined) document.version = order.version;
  if (order.timestamp !== undefined) document.timestamp = order.timestamp;
  return document;
}

function guard(id: string, expected: number | undefined): { _id: string; version?: number } {
  return expected === undefined ? { _id: id } : { _id: id, version: expected };
}

const fixture = new MongooseFixture();
runBehaviourSuite(fixture);

describe('Mongoose connection.transaction()', () => {
  it('a call inside connection.transaction() joins it: the session is the mongodb adapter’s, and a throw discards both writes', async () => {
    await fixture.open();
    try {
      @Versioned()
      @HistoryTracked('history', { entityType: 'Order' })
      class OrderService {
        constructor(readonly history: MongoHistoryStore) {}
        async save(order: Order, session: ClientSession): Promise<unknown> {
          return fixture.insertOrder(session, order);
        }
        async update(order: Order, session: ClientSession): Promise<unknown> {
          return fixture.updateOrder(session, order, expectedVersion(order));
        }
      }
      const orders = new OrderService(fixture.store);
      const kept = new Order(orderId(), 1);
      const dropped = new Order(orderId(), 2);
      await fixture.connection.transaction(async (session) => {
        expect(findAdapter(session)?.name).toBe('mongodb');
        await orders.save(kept, session);
      });
      await expect(
        fixture.connection.transaction(async (session) => {
          await orders.save(dropped, session);
          throw new Error('abandoned');
        }),
      ).rejects.toThrow('abandoned');
      expect(await fixture.readOrder(kept.id)).toMatchObject({ version: 1 });
      expect(await fixture.countHistory('Order', kept.id)).toBe(1);
      expect(await fixture.readOrder(dropped.id)).toBeUndefined();
      expect(await fixture.countHistory('Order', dropped.id)).toBe(0);
    } finally {
      await fixture.close();
    }
  });
});
