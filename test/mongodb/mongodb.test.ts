import type { ClientSession, Collection, CommandStartedEvent, Db, MongoClient } from 'mongodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  expectedVersion,
  HistoryTracked,
  SessionEndedError,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { type MongoTarget, openTarget, plainClient, REAL_MONGODB_URL, recordingClient, uniqueName } from './target.js';

class Order {
  version?: number;
  timestamp?: Date;

  constructor(
    readonly _id: string,
    public total: number,
  ) {}
}

class Shipment {
  version?: number;
  timestamp?: Date;

  constructor(
    readonly _id: string,
    readonly orderId: string,
  ) {}
}

function makeServices(orders: Collection<Order>, shipments: Collection<Shipment>, history: MongoHistoryStore) {
  @Versioned()
  @HistoryTracked(history)
  class OrderService {
    failAfterWrite: Error | undefined;

    async save(order: Order, session?: ClientSession): Promise<void> {
      await orders.insertOne(order, { session });
      if (this.failAfterWrite) throw this.failAfterWrite;
    }

    async update(order: Order, session?: ClientSession) {
      const { _id, ...fields } = order;
      return orders.updateOne({ _id, version: expectedVersion(order) }, { $set: fields }, { session });
    }
  }

  /** A service whose create also updates the order through the decorated OrderService. */
  @Versioned()
  @HistoryTracked(history)
  class ShipmentService {
    constructor(readonly orderService: OrderService) {}

    async save(shipment: Shipment, session: ClientSession, order: Order): Promise<void> {
      await shipments.insertOne(shipment, { session });
      await this.orderService.update(order, session);
    }
  }

  /** Takes the session the way the driver's own methods do: inside an options object. */
  class OptionsStyleService {
    @Versioned()
    @HistoryTracked(history, { entityType: 'Order' })
    async create(order: Order, options: { session?: ClientSession } = {}): Promise<void> {
      await orders.insertOne(order, options);
    }
  }

  const orderService = new OrderService();
  return {
    orderService,
    shipmentService: new ShipmentService(orderService),
    optionsService: new OptionsStyleService(),
  };
}

/** What a transaction test asserts about one command the driver sent. */
interface Sent {
  readonly name: string;
  readonly on: string | undefined;
  readonly txn: number | undefined;
  readonly start?: true;
}

function summarize(events: readonly CommandStartedEvent[], session: ClientSession): Sent[] {
  const lsid = hexOf(session.id?.id);
  return events
    .filter((event) => hexOf((event.command.lsid as { id?: unknown } | undefined)?.id) === lsid)
    .map((event) => {
      const command = event.command;
      const on = command[event.commandName];
      const txn = command.txnNumber === undefined ? undefined : Number(command.txnNumber);
      if (command.startTransaction === true) expect(command.autocommit).toBe(false);
      if (command.autocommit !== undefined) expect(command.autocommit).toBe(false);
      const sent: Sent = { name: event.commandName, on: typeof on === 'string' ? on : undefined, txn };
      return command.startTransaction === true ? { ...sent, start: true } : sent;
    });
}

function hexOf(id: unknown): string | undefined {
  const bytes = (id as { buffer?: unknown } | undefined)?.buffer;
  return bytes instanceof Uint8Array ? Buffer.from(bytes).toString('hex') : undefined;
}

/** The txnNumber the next transaction on `session` will carry. */
function nextTxn(session: ClientSession): number {
  return Number((session as unknown as { serverSession: { txnNumber: number } }).serverSession.txnNumber) + 1;
}

let target: MongoTarget;
let client: MongoClient;
let reader: MongoClient;
let sent: CommandStartedEvent[];
let db: Db;
let dbName: string;
let history: MongoHistoryStore;
let ordersName: string;
let historyName: string;
let services: ReturnType<typeof makeServices>;
let session: ClientSession;

beforeAll(async () => {
  target = await openTarget();
  ({ client, sent } = recordingClient(target.url));
  reader = plainClient(target.url);
  await Promise.all([client.connect(), reader.connect()]);
  dbName = uniqueName('eh_mongodb');
  db = client.db(dbName);
});

afterAll(async () => {
  try {
    if (REAL_MONGODB_URL) await db.dropDatabase();
  } finally {
    await client?.close();
    await reader?.close();
    await target?.close();
  }
});

beforeEach(async () => {
  ordersName = uniqueName('orders');
  history = new MongoHistoryStore(db, { collection: uniqueName('history') });
  historyName = history.collectionName;
  await history.ensureSchema();
  const shipmentsName = uniqueName('shipments');
  await Promise.all([db.createCollection(ordersName), db.createCollection(shipmentsName)]);
  services = makeServices(db.collection<Order>(ordersName), db.collection<Shipment>(shipmentsName), history);
  session = client.startSession();
  sent.length = 0;
  return async () => {
    await session.endSession();
  };
});

const readOrder = (id: string) => reader.db(dbName).collection<Order>(ordersName).findOne({ _id: id });
const countHistory = (entityId: string) =>
  reader.db(dbName).collection(historyName).countDocuments({ entityType: 'Order', entityId });

/** Fails the next `command` once: on the scripted server directly, on a real one with the failCommand fail point. */
async function failNext(command: string, code: number, errorLabels: string[]): Promise<boolean> {
  if (target.scripted) {
    target.scripted.failNext({ command, code, errorLabels });
    return true;
  }
  try {
    await reader.db('admin').command({
      configureFailPoint: 'failCommand',
      mode: { times: 1 },
      data: { failCommands: [command], errorCode: code, errorLabels },
    });
    return true;
  } catch {
    return false; // the server does not run with enableTestCommands
  }
}

describe('a decorated service on the MongoDB driver', () => {
  it('starts a transaction on the session, writes the order and its history in it, and commits', async () => {
    const order = new Order('o1', 10);
    const txn = nextTxn(session);

    await services.orderService.save(order, session);

    expect(summarize(sent, session)).toEqual([
      { name: 'insert', on: ordersName, txn, start: true },
      { name: 'insert', on: historyName, txn },
      { name: 'commitTransaction', on: undefined, txn },
    ]);
    expect(session.inTransaction()).toBe(false);
    expect(await readOrder('o1')).toMatchObject({ total: 10, version: 1, timestamp: order.timestamp });
    const entry = await history.latest('Order', 'o1');
    expect(entry).toMatchObject({ entityType: 'Order', entityId: 'o1', version: 1, op: 'create' });
    expect(entry?.timestamp).toEqual(order.timestamp);
    expect(entry?.txId).toBe(`${hexOf(session.id?.id)}:${txn}`);
    expect(entry).not.toHaveProperty('_id');
  });

  it('aborts the transaction when the method fails after writing, and leaves nothing behind', async () => {
    const order = new Order('o1', 10);
    const txn = nextTxn(session);
    services.orderService.failAfterWrite = new Error('payment service down');

    await expect(services.orderService.save(order, session)).rejects.toThrow('payment service down');

    expect(summarize(sent, session)).toEqual([
      { name: 'insert', on: ordersName, txn, start: true },
      { name: 'abortTransaction', on: undefined, txn },
    ]);
    expect(await readOrder('o1')).toBeNull();
    expect(await countHistory('o1')).toBe(0);
    expect(order.version).toBeUndefined();
    expect(order.timestamp).toBeUndefined();
  });

  it('retries the whole transaction, with a new txnNumber, after a TransientTransactionError', async (ctx) => {
    const order = new Order('o1', 10);
    const txn = nextTxn(session);
    if (!(await failNext('insert', 112, ['TransientTransactionError'])))
      ctx.skip('the MongoDB server refuses the failCommand fail point (start it with enableTestCommands)');

    await services.orderService.save(order, session);

    expect(summarize(sent, session)).toEqual([
      { name: 'insert', on: ordersName, txn, start: true },
      { name: 'abortTransaction', on: undefined, txn },
      { name: 'insert', on: ordersName, txn: txn + 1, start: true },
      { name: 'insert', on: historyName, txn: txn + 1 },
      { name: 'commitTransaction', on: undefined, txn: txn + 1 },
    ]);
    expect(order.version).toBe(1);
    expect(await readOrder('o1')).toMatchObject({ version: 1 });
    expect(await countHistory('o1')).toBe(1);
  });

  it('sends commitTransaction again when the commit outcome is unknown', async (ctx) => {
    const order = new Order('o1', 10);
    const txn = nextTxn(session);
    if (!(await failNext('commitTransaction', 50, ['UnknownTransactionCommitResult'])))
      ctx.skip('the MongoDB server refuses the failCommand fail point (start it with enableTestCommands)');

    await services.orderService.save(order, session);

    const commits = summarize(sent, session).filter((command) => command.name === 'commitTransaction');
    expect(commits).toEqual([
      { name: 'commitTransaction', on: undefined, txn },
      { name: 'commitTransaction', on: undefined, txn },
    ]);
    expect(await readOrder('o1')).toMatchObject({ version: 1 });
    expect(await countHistory('o1')).toBe(1);
  });

  it('reports a stale guarded update ({ matchedCount: 0 }) as VersionConflictError and changes nothing', async () => {
    const order = new Order('o1', 10);
    await services.orderService.save(order, session);
    const stale = Object.assign(new Order('o1', 10), { version: order.version, timestamp: order.timestamp });
    order.total = 20;
    await services.orderService.update(order, session);
    stale.total = 30;
    sent.length = 0;
    const txn = nextTxn(session);

    const error = await services.orderService.update(stale, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ code: 'VERSION_CONFLICT', entityType: 'Order', entityId: 'o1', expectedVersion: 1 });
    expect(summarize(sent, session)).toEqual([
      { name: 'update', on: ordersName, txn, start: true },
      { name: 'abortTransaction', on: undefined, txn },
    ]);
    expect(stale.version).toBe(1);
    expect(await readOrder('o1')).toMatchObject({ total: 20, version: 2 });
    expect((await history.list('Order', 'o1')).map((entry) => entry.version)).toEqual([1, 2]);
  });

  it('reports a version the history already holds as VersionConflictError and rolls the order back', async () => {
    const order = new Order('o1', 10);
    await services.orderService.save(order, session);
    // Another writer recorded version 2 without touching the order (an unguarded path).
    await history.save({
      entityType: 'Order',
      entityId: 'o1',
      version: 2,
      op: 'update',
      timestamp: new Date(),
      snapshot: { _id: 'o1', total: 99, version: 2 },
    });
    order.total = 20;

    const error = await services.orderService.update(order, session).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ entityId: 'o1', expectedVersion: 1 });
    expect((error as Error).cause).toMatchObject({ code: 11000 });
    expect(order.version).toBe(1);
    expect(await readOrder('o1')).toMatchObject({ total: 10, version: 1 });
    expect(summarize(sent, session).at(-1)).toMatchObject({ name: 'abortTransaction' });
  });

  it('joins a transaction the caller started, and the caller’s abort discards the orders and their history', async () => {
    const txn = nextTxn(session);
    session.startTransaction();

    await services.orderService.save(new Order('o1', 10), session);
    await services.orderService.save(new Order('o2', 20), session);
    expect(session.inTransaction()).toBe(true);
    await session.abortTransaction();

    expect(summarize(sent, session)).toEqual([
      { name: 'insert', on: ordersName, txn, start: true },
      { name: 'insert', on: historyName, txn },
      { name: 'insert', on: ordersName, txn },
      { name: 'insert', on: historyName, txn },
      { name: 'abortTransaction', on: undefined, txn },
    ]);
    expect(await readOrder('o1')).toBeNull();
    expect(await readOrder('o2')).toBeNull();
    expect(await countHistory('o1')).toBe(0);
    expect(await countHistory('o2')).toBe(0);
  });

  it('joins a transaction the caller started and commits nothing itself; the caller’s commit keeps both', async () => {
    session.startTransaction();
    await services.orderService.save(new Order('o1', 10), session);
    await services.orderService.save(new Order('o2', 20), session);
    expect(sent.some((event) => event.commandName === 'commitTransaction')).toBe(false);
    await session.commitTransaction();

    const [first, second] = [await history.latest('Order', 'o1'), await history.latest('Order', 'o2')];
    expect(first?.txId).toBeDefined();
    expect(first?.txId).toBe(second?.txId);
    expect(await readOrder('o2')).toMatchObject({ version: 1 });
  });

  it('runs a decorated call nested in another in the outer call’s transaction', async () => {
    const order = new Order('o1', 10);
    await services.orderService.save(order, session);
    sent.length = 0;
    const txn = nextTxn(session);

    await services.shipmentService.save(new Shipment('s1', 'o1'), session, order);

    const commands = summarize(sent, session);
    expect(commands.filter((command) => command.start)).toHaveLength(1);
    expect(commands.map((command) => command.txn)).toEqual(commands.map(() => txn));
    expect(commands.map((command) => command.name)).toEqual([
      'insert',
      'update',
      'insert',
      'insert',
      'commitTransaction',
    ]);
    const shipmentEntry = await history.latest('Shipment', 's1');
    const orderEntry = await history.latest('Order', 'o1');
    expect(orderEntry).toMatchObject({ version: 2, op: 'update' });
    expect(shipmentEntry?.txId).toBe(orderEntry?.txId);
  });

  it('finds the session inside the driver-style { session } options object', async () => {
    const order = new Order('o1', 10);
    const txn = nextTxn(session);

    await services.optionsService.create(order, { session });

    expect(summarize(sent, session).map((command) => [command.name, command.txn])).toEqual([
      ['insert', txn],
      ['insert', txn],
      ['commitTransaction', txn],
    ]);
    expect(await history.at('Order', 'o1', 1)).toMatchObject({ op: 'create' });
  });

  it('refuses an ended session with SessionEndedError before stamping or sending anything', async () => {
    const ended = client.startSession();
    await ended.endSession();
    sent.length = 0;
    const order = new Order('o1', 10);

    const error = await services.orderService.save(order, ended).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SessionEndedError);
    expect(error).toMatchObject({ code: 'SESSION_ENDED' });
    expect(sent.filter((event) => event.commandName !== 'endSessions')).toEqual([]);
    expect(order.version).toBeUndefined();
  });
});

describe.runIf(!REAL_MONGODB_URL)('what the scripted server itself received', () => {
  it('saw every transaction field the driver reported sending', async () => {
    target.scripted?.clearRecorded();
    const txn = nextTxn(session);

    await services.orderService.save(new Order('o1', 10), session);

    const lsid = hexOf(session.id?.id);
    const received = (target.scripted?.commands ?? []).filter((command) => command.lsid === lsid);
    expect(
      received.map(({ name, collection, txnNumber, startTransaction, autocommit }) => ({
        name,
        collection,
        txnNumber,
        startTransaction,
        autocommit,
      })),
    ).toEqual([
      { name: 'insert', collection: ordersName, txnNumber: txn, startTransaction: true, autocommit: false },
      { name: 'insert', collection: historyName, txnNumber: txn, startTransaction: undefined, autocommit: false },
      {
        name: 'commitTransaction',
        collection: undefined,
        txnNumber: txn,
        startTransaction: undefined,
        autocommit: false,
      },
    ]);
  });
});
