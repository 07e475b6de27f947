import {
  currentSession,
  expectedVersion,
  HistoryTracked,
  type HistoryWriter,
  registerTransactionAdapter,
  Versioned,
  type VersionedOptions,
} from '../../src/index.js';
import { FakeDb, FakeHistoryWriter, type FakeSession, fakeAdapter } from './fake-db.js';

let registered = false;
/** Registers the fake database's adapter once per test file. */
export function useFakeDb(): void {
  if (registered) return;
  registerTransactionAdapter(fakeAdapter);
  registered = true;
}

export class Order {
  id: string;
  total: number;
  version?: number;
  timestamp?: Date;
  note?: string;

  constructor(id: string, total: number) {
    this.id = id;
    this.total = total;
  }
}

/** The session a test service writes through: its argument, else the one in effect for the call. */
export function need(session: FakeSession | undefined): FakeSession {
  const effective = session ?? currentSession<FakeSession>();
  if (!effective) throw new Error('this test service needs a session');
  return effective;
}

/** A fixed clock that ticks a second at each read, so every stamp is distinct and predictable. */
export function tickingClock(start = Date.UTC(2026, 0, 1)): () => Date {
  let now = start;
  return () => {
    now += 1000;
    return new Date(now);
  };
}

/** The service most tests use: decorated on the class, guarded update, history through the session. */
export function makeOrderService(options: { history?: HistoryWriter; versioned?: VersionedOptions } = {}) {
  @Versioned(options.versioned)
  @HistoryTracked('history')
  class OrderService {
    readonly calls: string[] = [];
    failWith: Error | undefined;

    constructor(readonly history: HistoryWriter) {}

    async save(order: Order, session?: FakeSession): Promise<void> {
      this.calls.push('save');
      await need(session).insert('orders', order.id, { ...order });
      if (this.failWith) throw this.failWith;
    }

    async update(order: Order, session?: FakeSession): Promise<{ matchedCount: number }> {
      this.calls.push('update');
      const result = await need(session).update('orders', order.id, expectedVersion(order), { ...order });
      if (this.failWith) throw this.failWith;
      return result;
    }
  }
  const history = options.history ?? new FakeHistoryWriter();
  return { service: new OrderService(history), history, OrderService };
}

export function setup(options: { versioned?: VersionedOptions } = {}) {
  useFakeDb();
  const db = new FakeDb();
  const history = new FakeHistoryWriter();
  const { service } = makeOrderService({ history, versioned: { clock: tickingClock(), ...options.versioned } });
  return { db, session: db.session(), history, service };
}
