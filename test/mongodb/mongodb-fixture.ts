import type { ClientSession, Collection, MongoClient } from 'mongodb';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import type { DatabaseFixture, HistoryTamper, OrderRow } from '../integration/fixture.js';
import { type MongoTarget, openTarget, plainClient, REAL_MONGODB_URL, uniqueName } from './target.js';

interface OpenState {
  readonly dbName: string;
  readonly orders: string;
  readonly history: string;
  readonly store: MongoHistoryStore;
}

interface OrderDocument {
  _id: string;
  total: number;
  version?: number;
  timestamp?: Date;
}

/**
 * MongoDB for the shared behaviour suite: the official driver against the real replica set in
 * `MONGODB_URL`, or against the scripted wire server when it is not set. Sessions are
 * `ClientSession`s of one client; reads go through a second client.
 */
export class MongoFixture implements DatabaseFixture<ClientSession> {
  readonly name = REAL_MONGODB_URL ? 'mongodb' : 'mongodb (scripted wire server)';
  readonly unavailable = undefined;
  readonly concurrentSessions = true;
  readonly tamper: HistoryTamper = mongoTamper(() => this.#history());
  #target: MongoTarget | undefined;
  #client: MongoClient | undefined;
  #reader: MongoClient | undefined;
  #state: OpenState | undefined;

  async open(): Promise<void> {
    const target = await openTarget();
    this.#target = target;
    this.#client = plainClient(target.url);
    this.#reader = plainClient(target.url);
    await Promise.all([this.#client.connect(), this.#reader.connect()]);
    const dbName = uniqueName('eh_suite');
    const store = new MongoHistoryStore(this.#client.db(dbName), { collection: uniqueName('history') });
    await store.ensureSchema();
    this.#state = { dbName, orders: uniqueName('orders'), history: store.collectionName, store };
  }

  async close(): Promise<void> {
    try {
      if (this.#state && REAL_MONGODB_URL) await this.#client?.db(this.#state.dbName).dropDatabase();
    } finally {
      await this.#client?.close();
      await this.#reader?.close();
      await this.#target?.close();
      this.#client = this.#reader = this.#target = this.#state = undefined;
    }
  }

  get store(): MongoHistoryStore {
    return this.#opened().store;
  }

  async session(): Promise<ClientSession> {
    return this.#connected(this.#client).startSession();
  }

  async release(session: ClientSession): Promise<void> {
    await session.endSession();
  }

  insertOrder(session: ClientSession, order: OrderRow): Promise<unknown> {
    return this.#orders().insertOne(toDocument(order), { session });
  }

  updateOrder(session: ClientSession, order: OrderRow, expectedVersion: number | undefined): Promise<unknown> {
    const { _id, ...fields } = toDocument(order);
    return this.#orders().updateOne(guard(_id, expectedVersion), { $set: fields }, { session });
  }

  deleteOrder(session: ClientSession, order: OrderRow, expectedVersion: number | undefined): Promise<unknown> {
    return this.#orders().deleteOne(guard(order.id, expectedVersion), { session });
  }

  async readOrder(id: string): Promise<OrderRow | undefined> {
    const found = await this.#orders(this.#reader).findOne({ _id: id });
    if (!found) return undefined;
    const { _id, ...fields } = found;
    return { id: _id, ...fields };
  }

  countHistory(entityType: string, entityId: string): Promise<number> {
    const { dbName, history } = this.#opened();
    return this.#connected(this.#reader).db(dbName).collection(history).countDocuments({ entityType, entityId });
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

  #orders(client = this.#client): Collection<OrderDocument> {
    const { dbName, orders } = this.#opened();
    return this.#connected(client).db(dbName).collection<OrderDocument>(orders);
  }

  #history(): Collection {
    const { dbName, history } = this.#opened();
    return this.#connected(this.#reader).db(dbName).collection(history);
  }

  #opened(): OpenState {
    if (!this.#state) throw new Error('MongoFixture is not open: call open() first');
    return this.#state;
  }

  #connected(client: MongoClient | undefined): MongoClient {
    if (!client) throw new Error('MongoFixture is not open: call open() first');
    return client;
  }
}

/** The document for a row; a copy, since insertOne adds `_id` to what it is given. */
function toDocument(order: OrderRow): OrderDocument {
  const document: OrderDocument = { _id: order.id, total: order.total };
  if (order.version !== undefined) document.version = order.version;
  if (order.timestamp !== undefined) document.timestamp = order.timestamp;
  return document;
}

function guard(id: string, expectedVersion: number | undefined): { _id: string; version?: number } {
  return expectedVersion === undefined ? { _id: id } : { _id: id, version: expectedVersion };
}

/** The writes `mongoTamper` needs, of the driver's or Mongoose's (bundled driver) collection. */
interface TamperableCollection {
  updateOne(filter: Record<string, unknown>, update: Record<string, unknown>): Promise<unknown>;
  deleteOne(filter: Record<string, unknown>): Promise<unknown>;
  insertOne(document: Record<string, unknown>): Promise<unknown>;
}

/** Edits stored history documents directly, as an attacker with write access would. */
export function mongoTamper(history: () => TamperableCollection): HistoryTamper {
  return {
    setTotal: async (entityType, entityId, version, total) => {
      await history().updateOne({ entityType, entityId, version }, { $set: { 'snapshot.total': total } });
    },
    remove: async (entityType, entityId, version) => {
      await history().deleteOne({ entityType, entityId, version });
    },
    insert: async (entityType, entityId, version, total) => {
      await history().insertOne({
        entityType,
        entityId,
        version,
        op: 'update',
        timestamp: new Date(),
        snapshot: { id: entityId, total },
      });
    },
  };
}
