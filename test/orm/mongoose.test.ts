import mongoose, { type ClientSession, type Connection, type Model } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { expectedVersion, HistoryTracked, takeSnapshot, Versioned } from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { entityTypeName, snapshotSource } from '../../src/pipeline/entity-kind.js';
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

describe('Mongoose documents as entities', () => {
  interface ItemDocument {
    _id: string;
    total: number;
    tags: string[];
    version?: number;
    timestamp?: Date;
  }
  const itemSchema = new mongoose.Schema<ItemDocument>(
    { _id: String, total: Number, tags: [String], version: Number, timestamp: Date },
    { versionKey: false, autoIndex: false, autoCreate: false },
  );

  it('entityTypeName gives the model name and snapshotSource the toObject() data, not the internals', async () => {
    await fixture.open();
    try {
      const Invoice = fixture.connection.model<ItemDocument>('Invoice', itemSchema, uniqueName('invoices'));
      const doc = new Invoice({ _id: 'i1', total: 5, tags: ['a'] });
      expect(doc.constructor.name).toBe('model');
      expect(entityTypeName(doc)).toBe('Invoice');
      expect(entityTypeName(new Order('o', 1))).toBe('Order');
      expect(entityTypeName({ id: 1 })).toBeUndefined();
      expect(entityTypeName(Object.create(null))).toBeUndefined();
      expect(snapshotSource(doc)).toEqual({ _id: 'i1', total: 5, tags: ['a'] });
      expect(takeSnapshot(doc)).toEqual({ _id: 'i1', total: 5, tags: ['a'] });
      await Invoice.create({ _id: 'i2', total: 7, tags: ['b', 'c'] });
      const hydrated = await Invoice.findById('i2').orFail();
      expect(entityTypeName(hydrated)).toBe('Invoice');
      expect(takeSnapshot(hydrated)).toEqual({ _id: 'i2', total: 7, tags: ['b', 'c'] });
      // Structural: something merely named like a model, without `$__`, is not a document.
      const lookalike = { toObject: () => ({}), constructor: { modelName: 'X' } };
      expect(snapshotSource(lookalike)).toBe(lookalike);
    } finally {
      await fixture.close();
    }
  });

  // Needs the pipeline's entityTypeOf to call entityTypeName (src/pipeline/invoke.ts, applied at merge).
  it('records hydrated documents of two models under their model names, with their fields, apart though they share an _id', async () => {
    await fixture.open();
    try {
      const Invoice = fixture.connection.model<ItemDocument>('Invoice', itemSchema, uniqueName('invoices'));
      const Receipt = fixture.connection.model<ItemDocument>('Receipt', itemSchema, uniqueName('receipts'));
      @Versioned()
      @HistoryTracked('history')
      class DocumentService {
        constructor(readonly history: MongoHistoryStore) {}
        async save(
          doc: { save(options: { session: ClientSession }): Promise<unknown> },
          session: ClientSession,
        ): Promise<unknown> {
          return doc.save({ session });
        }
      }
      const service = new DocumentService(fixture.store);
      const session = await fixture.connection.startSession();
      try {
        await service.save(new Invoice({ _id: 'same', total: 1, tags: ['x'] }), session);
        await service.save(new Receipt({ _id: 'same', total: 2, tags: [] }), session);
      } finally {
        await session.endSession();
      }
      const invoice = await fixture.store.list('Invoice', 'same');
      const receipt = await fixture.store.list('Receipt', 'same');
      expect(await fixture.store.list('model', 'same')).toEqual([]);
      expect(invoice[0]?.snapshot).toEqual({
        _id: 'same',
        total: 1,
        tags: ['x'],
        version: 1,
        timestamp: expect.any(Date),
      });
      expect(receipt.map((entry) => entry.snapshot)).toEqual([
        { _id: 'same', total: 2, tags: [], version: 1, timestamp: expect.any(Date) },
      ]);
      for (const entry of [...invoice, ...receipt]) expect(Object.keys(entry.snapshot as object)).not.toContain('$__');
    } finally {
      await fixture.close();
    }
  });
});
