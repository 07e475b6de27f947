import { randomUUID } from 'node:crypto';
import {
  type HistoryEntry,
  HistoryTracked,
  registerTransactionAdapter,
  type TransactionAdapter,
  takeSnapshot,
  Versioned,
} from '../src/index.js';

/** The cheapest honest transaction: begin/commit/rollback that do no I/O. */
export class BenchSession {
  inTransaction = false;
  begins = 0;
  async begin(): Promise<void> {
    this.inTransaction = true;
    this.begins += 1;
  }
  async commit(): Promise<void> {
    this.inTransaction = false;
  }
  async rollback(): Promise<void> {
    this.inTransaction = false;
  }
}

const adapter: TransactionAdapter<BenchSession> = {
  name: 'bench',
  matches: (session): session is BenchSession => session instanceof BenchSession,
  isActive: (session) => session.inTransaction,
  async run(session, work) {
    await session.begin();
    try {
      const result = await work();
      await session.commit();
      return result;
    } catch (error) {
      await session.rollback();
      throw error;
    }
  },
};

interface Order {
  id: string;
  total: number;
  lines: { sku: string; qty: number }[];
  version?: number;
  timestamp?: Date;
}

/** Keeps the latest entry per key, so memory stays flat however many calls run. */
class BenchHistory {
  last: HistoryEntry | undefined;
  count = 0;
  async save(entry: HistoryEntry, _session?: BenchSession): Promise<void> {
    this.last = entry;
    this.count += 1;
  }
}

class OrderRepository {
  readonly rows = new Map<string, Order>();
  async insert(order: Order, _session?: BenchSession): Promise<void> {
    this.rows.set(order.id, order);
  }
  async update(order: Order, _session?: BenchSession): Promise<{ matchedCount: number }> {
    this.rows.set(order.id, order);
    return { matchedCount: 1 };
  }
}

@Versioned()
@HistoryTracked('history')
class DecoratedOrderService {
  constructor(
    readonly repo: OrderRepository,
    readonly history: BenchHistory,
  ) {}
  async save(order: Order, session?: BenchSession) {
    await this.repo.insert(order, session);
  }
  async update(order: Order, session?: BenchSession) {
    return this.repo.update(order, session);
  }
}

/** The same work written by hand: stamp, begin, write, snapshot, history write, commit, restore on failure. */
class HandWrittenOrderService {
  constructor(
    readonly repo: OrderRepository,
    readonly history: BenchHistory,
  ) {}

  save(order: Order, session: BenchSession) {
    return this.#run(order, session, 'create', () => this.repo.insert(order, session));
  }

  update(order: Order, session: BenchSession) {
    return this.#run(order, session, 'update', async () => {
      const result = await this.repo.update(order, session);
      if (result.matchedCount === 0) throw new Error('conflict');
    });
  }

  async #run(order: Order, session: BenchSession, op: 'create' | 'update', write: () => Promise<void>) {
    const previous = { version: order.version, timestamp: order.timestamp };
    order.version = op === 'create' ? 1 : (order.version ?? 0) + 1;
    order.timestamp = new Date();
    await session.begin();
    try {
      await write();
      await this.history.save(
        {
          entityType: 'Order',
          entityId: order.id,
          version: order.version,
          op,
          timestamp: order.timestamp,
          snapshot: takeSnapshot(order),
          txId: randomUUID(),
        },
        session,
      );
      await session.commit();
    } catch (error) {
      await session.rollback();
      order.version = previous.version;
      order.timestamp = previous.timestamp;
      throw error;
    }
  }
}

export interface InProcessPair {
  decorated: () => Promise<void>;
  handWritten: () => Promise<void>;
}

/** A save followed by an update of a fresh order, through each service. */
export function inProcessPair(): InProcessPair {
  registerTransactionAdapter(adapter);
  const session = new BenchSession();
  const decorated = new DecoratedOrderService(new OrderRepository(), new BenchHistory());
  const hand = new HandWrittenOrderService(new OrderRepository(), new BenchHistory());
  const order = (): Order => ({ id: 'o1', total: 10, lines: [{ sku: 'a', qty: 1 }] });
  return {
    decorated: async () => {
      const o = order();
      await decorated.save(o, session);
      await decorated.update(o, session);
    },
    handWritten: async () => {
      const o = order();
      await hand.save(o, session);
      await hand.update(o, session);
    },
  };
}
