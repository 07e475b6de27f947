import { describe, expect, it } from 'vitest';
import {
  DecoratorError,
  HistoryTracked,
  MemoryHistoryStore,
  setHistoryWriterResolver,
  Versioned,
} from '../../src/index.js';
import { FakeHistoryWriter, type FakeSession, historyRows } from '../support/fake-db.js';
import { need, Order, setup, useFakeDb } from '../support/orders.js';

/** Decorators applied through plain calls, so the tests can reach paths the type system forbids. */
function callDecorator(decorator: unknown, ...args: unknown[]): unknown {
  return (decorator as (...a: unknown[]) => unknown)(...args);
}

describe('composition', () => {
  const history = new FakeHistoryWriter();

  @Versioned()
  @HistoryTracked('history')
  class ClassThenClass {
    history = history;
    async save(order: Order, session?: FakeSession) {
      await need(session).insert('orders', order.id, { ...order });
    }
  }

  @HistoryTracked('history')
  @Versioned()
  class ClassThenClassReversed {
    history = history;
    async save(order: Order, session?: FakeSession) {
      await need(session).insert('orders', order.id, { ...order });
    }
  }

  @Versioned()
  class ClassThenMethod {
    history = history;
    @HistoryTracked('history')
    async save(order: Order, session?: FakeSession) {
      await need(session).insert('orders', order.id, { ...order });
    }
  }

  class MethodThenMethod {
    history = history;
    @HistoryTracked('history')
    @Versioned()
    async save(order: Order, session?: FakeSession) {
      await need(session).insert('orders', order.id, { ...order });
    }
  }

  it.each([
    ['both on the class', ClassThenClass],
    ['both on the class, reversed', ClassThenClassReversed],
    ['one on the class, one on the method', ClassThenMethod],
    ['both on the method', MethodThenMethod],
  ])('%s make one wrapper: one transaction, one history entry with the stamped version', async (_, Service) => {
    const { db, session } = setup();
    const order = new Order('o1', 1);

    await new Service().save(order, session);

    expect(session).toMatchObject({ begins: 1, commits: 1 });
    expect(historyRows(db).map((e) => e.version)).toEqual([1]);
    expect(order.version).toBe(1);
  });

  it('a method-level decoration overrides the class-level one of the same kind', async () => {
    const store = new MemoryHistoryStore();
    @Versioned({ initialVersion: 1 })
    class Service {
      @Versioned({ initialVersion: 10 })
      @HistoryTracked(store)
      async save(_order: Order) {}
    }
    const order = new Order('o1', 1);
    await new Service().save(order);
    expect(order.version).toBe(10);
  });

  it('a subclass may decorate a method it inherits from a decorated parent without changing the parent', async () => {
    const parentStore = new MemoryHistoryStore();
    @Versioned()
    @HistoryTracked(parentStore)
    class Parent {
      async save(_order: Order) {}
    }
    @Versioned({ initialVersion: 5 })
    class Child extends Parent {}

    const parentOrder = new Order('p', 1);
    const childOrder = new Order('c', 1);
    await new Parent().save(parentOrder);
    await new Child().save(childOrder);

    expect(parentOrder.version).toBe(1);
    expect(childOrder.version).toBe(5);
    expect((await parentStore.latest('Order', 'c'))?.version).toBe(5);
    expect(Object.hasOwn(Child.prototype, 'save')).toBe(true);
  });

  it('wraps only the default methods the class has, leaving other methods alone', async () => {
    @Versioned({ requireSession: false })
    class Service {
      async save(_order: Order) {}
      async find(order: Order) {
        return order;
      }
    }
    const order = new Order('o1', 1);
    await new Service().find(order);
    expect(order.version).toBeUndefined();
    expect(Object.getOwnPropertyNames(Service.prototype)).toEqual(['constructor', 'save', 'find']);
  });

  it('wraps the methods listed in options.methods with their operations', async () => {
    const store = new MemoryHistoryStore();
    @Versioned({ methods: { store: 'create', amend: 'update' } })
    @HistoryTracked(store, { methods: { store: 'create', amend: 'update' } })
    class Service {
      async store(_order: Order) {}
      async amend(_order: Order) {}
    }
    const service = new Service();
    const order = new Order('o1', 1);
    await service.store(order);
    await service.amend(order);
    expect((await store.list('Order', 'o1')).map((e) => [e.version, e.op])).toEqual([
      [1, 'create'],
      [2, 'update'],
    ]);
  });
});

describe('the wrapper', () => {
  it('keeps the name and length of the original method', () => {
    class Service {
      @Versioned()
      async updateOrder(_order: Order, _session: unknown, _extra: number) {}
    }
    expect(Service.prototype.updateOrder.name).toBe('updateOrder');
    expect(Service.prototype.updateOrder.length).toBe(3);
  });

  it('rejects at call time a method that returns something other than a promise', async () => {
    class Service {
      save(_order: Order): number {
        return 1;
      }
    }
    const descriptor = Object.getOwnPropertyDescriptor(Service.prototype, 'save');
    const wrapped = callDecorator(
      Versioned({ requireSession: false }),
      Service.prototype,
      'save',
      descriptor,
    ) as PropertyDescriptor;
    Object.defineProperty(Service.prototype, 'save', wrapped);
    const order = new Order('o1', 1);

    const error = await (new Service().save(order) as unknown as Promise<void>).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DecoratorError);
    expect((error as Error).message).toMatch(/returned number instead of a Promise/);
    expect(order.version).toBeUndefined();
  });
});

describe('decoration mistakes are DecoratorErrors when the class is defined', () => {
  it('a method listed in options.methods that the class lacks', () => {
    expect(() => {
      // @ts-expect-error the types reject it too; this checks the runtime for JavaScript callers
      @Versioned({ methods: { store: 'create' } })
      class Service {
        async save(_order: Order) {}
      }
      return Service;
    }).toThrow(/lists method 'store', but Service has no such method/);
  });

  it('an operation that cannot be inferred from the method name, and that no decorator gives', async () => {
    // Both decorators there, neither with op: at class definition.
    expect(() => {
      class Service {
        @Versioned()
        @HistoryTracked(new MemoryHistoryStore())
        async process(_order: Order) {}
      }
      return Service;
    }).toThrow(/cannot tell whether process creates.*one decorator carrying it is enough/);
    // One decorator alone might still get op from one applied after it: at the first call.
    class Lone {
      @Versioned()
      async process(_order: Order) {}
    }
    await expect(new Lone().process({ id: 'x', total: 1 })).rejects.toThrow(DecoratorError);
  });

  it('an operation given to one decorator only is enough, whichever carries it', async () => {
    const store = new MemoryHistoryStore();
    class Service {
      readonly history = store;
      @Versioned({ op: 'create', requireSession: false })
      @HistoryTracked('history', { entityType: 'Order' })
      async process(_order: Order) {}

      @Versioned({ requireSession: false })
      @HistoryTracked('history', { op: 'update', entityType: 'Order' })
      async reprice(_order: Order) {}
    }
    const order: Order = { id: 'once', total: 1 };
    await new Service().process(order);
    await new Service().reprice(order);
    expect(order.version).toBe(2);
    expect((await store.list('Order', 'once')).map((entry) => entry.op)).toEqual(['create', 'update']);
  });

  it('two decorators that disagree on the operation', () => {
    expect(() => {
      class Service {
        @Versioned({ op: 'create' })
        @HistoryTracked(new MemoryHistoryStore(), { op: 'update' })
        async process(_order: Order) {}
      }
      return Service;
    }).toThrow(/'update' and 'create'|'create' and 'update'/);
  });

  it('the same decorator twice on one method', () => {
    expect(() => {
      class Service {
        @Versioned()
        @Versioned()
        async save(_order: Order) {}
      }
      return Service;
    }).toThrow(/applied twice/);
  });

  it('a class decorator that wraps no method: neither save nor update, and no methods listed', () => {
    // What tsx, SWC and esbuild users get: no type error is ever reported to them.
    const versioned = () => {
      @(Versioned() as (target: unknown, context?: unknown) => void)
      class Account {
        async deposit(_order: Order) {}
      }
      return Account;
    };
    const tracked = () => {
      @(HistoryTracked(new MemoryHistoryStore()) as (target: unknown, context?: unknown) => void)
      class Account {
        async deposit(_order: Order) {}
      }
      return Account;
    };
    expect(versioned).toThrow(DecoratorError);
    expect(versioned).toThrow(/@Versioned on Account wraps no method.*has neither.*methods: \{ deposit: 'update' \}/);
    expect(tracked).toThrow(/@HistoryTracked on Account wraps no method/);
    expect(() =>
      callDecorator(
        Versioned({ methods: {} }),
        class Empty {
          async save(_order: Order) {}
        },
      ),
    ).toThrow(/wraps no method: its methods option lists none/);
  });

  it.each([
    ['@Versioned above', 'versioned-first'],
    ['@HistoryTracked above', 'tracked-first'],
  ])('a method one class decorator maps and the other does not, whichever order (%s)', (_, order) => {
    const store = new MemoryHistoryStore();
    const define = () => {
      const versioned = Versioned({ methods: { save: 'create', deposit: 'update' } });
      const tracked = HistoryTracked(store, { methods: { save: 'create' } });
      if (order === 'versioned-first') {
        @versioned
        @tracked
        class Account {
          async save(_order: Order) {}
          async deposit(_order: Order) {}
        }
        return Account;
      }
      @tracked
      @versioned
      class Account {
        async save(_order: Order) {}
        async deposit(_order: Order) {}
      }
      return Account;
    };
    expect(define).toThrow(DecoratorError);
    expect(define).toThrow(
      /@Versioned on Account wraps 'deposit', but @HistoryTracked on the same class does not.*versioned but write no history.*deposit: false/,
    );
  });

  it('the reverse: history without versioning for a method only @HistoryTracked maps, with defaults on @Versioned', () => {
    expect(() => {
      @Versioned()
      @HistoryTracked(new MemoryHistoryStore(), { methods: { save: 'create', deposit: 'update' } })
      class Account {
        async save(_order: Order) {}
        async deposit(_order: Order) {}
      }
      return Account;
    }).toThrow(/@HistoryTracked on Account wraps 'deposit', but @Versioned.*write history but not be versioned/);
  });

  it('no error when the other decorator covers the method on the method itself, or opts out with false', async () => {
    const store = new MemoryHistoryStore();
    @Versioned({ methods: { save: 'create', deposit: 'update', touch: 'update' }, requireSession: false })
    @HistoryTracked(store, { methods: { save: 'create', touch: false }, requireSession: false })
    class Account {
      async save(_order: Order) {}
      @HistoryTracked(store, { op: 'update', requireSession: false })
      async deposit(_order: Order) {}
      async touch(_order: Order) {}
    }
    const account = new Account();
    const order = new Order('a1', 1);
    await account.save(order);
    await account.deposit(order);
    await account.touch(order);
    expect(order.version).toBe(3);
    expect((await store.list('Order', 'a1')).map((e) => [e.version, e.op])).toEqual([
      [1, 'create'],
      [2, 'update'],
    ]);
  });

  it('a class with only one of the two decorators may wrap what it likes', async () => {
    const store = new MemoryHistoryStore();
    @HistoryTracked(store, { methods: { deposit: 'update' }, requireSession: false })
    class Ledger {
      async deposit(_order: Order) {}
    }
    const order = Object.assign(new Order('l1', 1), { version: 4 });
    await new Ledger().deposit(order);
    expect((await store.latest('Order', 'l1'))?.version).toBe(4);
  });

  it('a history source that is not one', () => {
    expect(() => HistoryTracked(42 as never)).toThrow(DecoratorError);
    expect(() => HistoryTracked({ write() {} } as never)).toThrow(DecoratorError);
  });

  it('a getter, a field or a parameter (legacy call shapes)', () => {
    const decorator = Versioned();
    const getter = { get: () => 1, configurable: true, enumerable: false };
    expect(() => callDecorator(decorator, {}, 'total', getter)).toThrow(/accessor/);
    expect(() => callDecorator(decorator, {}, 'total')).toThrow(/property 'total'/);
    expect(() => callDecorator(decorator, {}, 'save', 0)).toThrow(/parameter/);
  });

  it('a field, getter or accessor (standard call shapes)', () => {
    const decorator = Versioned();
    expect(() => callDecorator(decorator, undefined, { kind: 'field', name: 'total' })).toThrow(/field 'total'/);
    expect(() => callDecorator(decorator, () => 1, { kind: 'getter', name: 'total' })).toThrow(/getter 'total'/);
  });
});

describe('history sources', () => {
  class OrderHistory extends FakeHistoryWriter {}

  it('a class is found as the one property holding an instance of it', async () => {
    useFakeDb();
    @Versioned()
    @HistoryTracked(OrderHistory)
    class Service {
      constructor(readonly audit: OrderHistory) {}
      async save(order: Order, session?: FakeSession) {
        await need(session).insert('orders', order.id, { ...order });
      }
    }
    const { db, session } = setup();
    await new Service(new OrderHistory()).save(new Order('o1', 1), session);
    expect(historyRows(db)).toHaveLength(1);
  });

  it('a class held by no property, or by several, is a DecoratorError at the first call naming it', async () => {
    @Versioned({ requireSession: false })
    @HistoryTracked(OrderHistory)
    class Service {
      constructor(readonly writers: OrderHistory[]) {}
      async save(_order: Order) {}
    }
    @Versioned({ requireSession: false })
    @HistoryTracked(OrderHistory)
    class Twice {
      constructor(
        readonly a: OrderHistory,
        readonly b: OrderHistory,
      ) {}
      async save(_order: Order) {}
    }
    await expect(new Service([]).save(new Order('o1', 1))).rejects.toThrow(/OrderHistory.*no property/s);
    await expect(new Twice(new OrderHistory(), new OrderHistory()).save(new Order('o1', 1))).rejects.toThrow(
      /properties a, b all hold one/,
    );
  });

  it('a class is resolved through the registered resolver first (as the NestJS module does)', async () => {
    const fromContainer = new MemoryHistoryStore();
    class ContainerHistory extends MemoryHistoryStore {}
    setHistoryWriterResolver((cls) => (cls === ContainerHistory ? fromContainer : undefined));
    try {
      @Versioned()
      @HistoryTracked(ContainerHistory)
      class Service {
        async save(_order: Order) {}
      }
      await new Service().save(new Order('o1', 1));
      expect(fromContainer.all()).toHaveLength(1);
    } finally {
      setHistoryWriterResolver(undefined);
    }
  });

  it('a property name that holds no writer is a DecoratorError at the first call', async () => {
    @Versioned({ requireSession: false })
    @HistoryTracked('histroy')
    class Service {
      history = new MemoryHistoryStore();
      async save(_order: Order) {}
    }
    await expect(new Service().save(new Order('o1', 1))).rejects.toThrow(/property 'histroy'.*undefined/s);
  });
});

describe('@HistoryTracked without @Versioned', () => {
  it('records the version the entity carries after the method ran', async () => {
    const store = new MemoryHistoryStore();
    class Service {
      @HistoryTracked(store)
      async update(order: Order) {
        order.version = (order.version ?? 0) + 1;
      }
    }
    const order = Object.assign(new Order('o1', 1), { version: 3 });
    await new Service().update(order);
    expect(await store.latest('Order', 'o1')).toMatchObject({ version: 4, op: 'update' });
  });

  it('an entity with no integer version after the method is an InvalidEntityError suggesting @Versioned', async () => {
    const store = new MemoryHistoryStore();
    class Service {
      @HistoryTracked(store)
      async save(_order: Order) {}
    }
    await expect(new Service().save(new Order('o1', 1))).rejects.toThrow(/Add @Versioned\(\)/);
    expect(store.all()).toEqual([]);
  });
});

describe('entity type', () => {
  it('comes from the option, else the entity class, else the service name without Service', async () => {
    const store = new MemoryHistoryStore();
    class InvoiceService {
      @Versioned()
      @HistoryTracked(store)
      async save(_invoice: { id: string }) {}
      @Versioned()
      @HistoryTracked(store, { entityType: 'Bill' })
      async create(_invoice: { id: string }) {}
    }
    const service = new InvoiceService();
    await service.save({ id: 'i1' });
    await service.create({ id: 'i2' });
    await service.save(new Order('o1', 1) as never);
    expect(store.all().map((e) => `${e.entityType}/${e.entityId}`)).toEqual(['Invoice/i1', 'Bill/i2', 'Order/o1']);
  });
});
