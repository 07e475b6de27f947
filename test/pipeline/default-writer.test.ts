import { afterEach, describe, expect, it } from 'vitest';
import {
  DecoratorError,
  HistoryTracked,
  MemoryHistoryStore,
  setDefaultHistoryWriter,
  Versioned,
} from '../../src/index.js';

interface Order {
  id: string;
  total: number;
  version?: number;
}

class Orders {
  @Versioned({ requireSession: false })
  @HistoryTracked()
  async create(order: Order) {
    return order;
  }

  @Versioned({ requireSession: false })
  @HistoryTracked({ entityType: 'Order' })
  async save(order: Order) {
    return order;
  }

  @Versioned({ requireSession: false, op: 'update' })
  @HistoryTracked({ op: 'update', entityType: 'Order' })
  async reprice(order: Order) {
    return order;
  }
}

describe('@HistoryTracked() without a source', () => {
  afterEach(() => setDefaultHistoryWriter(undefined));

  it('writes to the default store, looked up at each call', async () => {
    const store = new MemoryHistoryStore();
    setDefaultHistoryWriter(store);
    const order: Order = { id: 'o1', total: 1 };
    await new Orders().save(order);
    await new Orders().reprice(order);
    expect((await store.list('Order', 'o1')).map((e) => [e.version, e.op])).toEqual([
      [1, 'create'],
      [2, 'update'],
    ]);
  });

  it('is a DecoratorError naming the module option when no default store is set', async () => {
    const error = await new Orders().create({ id: 'o2', total: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DecoratorError);
    expect((error as Error).message).toMatch(/EventHistoryModule\.forRoot\(\{ store \}\)/);
  });

  it('still refuses an object that is neither a writer nor options', () => {
    expect(() => HistoryTracked({ write() {} } as never)).toThrow(DecoratorError);
  });
});
