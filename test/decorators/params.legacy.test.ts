import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { EntityArg, HistoryTracked, MemoryHistoryStore, SessionArg, Versioned } from '../../src/index.js';
import type { FakeSession } from '../support/fake-db.js';
import { need, Order, setup } from '../support/orders.js';

// Parameter decorators and design-time types exist only under experimentalDecorators.
describe('legacy decorators with reflect-metadata, as NestJS compiles them', () => {
  it('@EntityArg and @SessionArg say where the entity and the session are', async () => {
    class Service {
      history = new MemoryHistoryStore();
      @Versioned()
      @HistoryTracked('history')
      async save(tenant: string, @EntityArg() order: Order, _note: string, @SessionArg() session?: FakeSession) {
        await need(session).insert(`${tenant}_orders`, order.id, { ...order });
      }
    }
    const { db, session } = setup();
    const service = new Service();
    const order = new Order('o1', 1);

    await service.save('acme', order, 'first', session);

    expect(order.version).toBe(1);
    expect(db.rows('acme_orders')).toHaveLength(1);
    expect(session.commits).toBe(1);
    expect(Reflect.getMetadata('event-history:session-arg', Service.prototype, 'save')).toBe(3);
    expect(Reflect.getMetadata('event-history:entity-arg', Service.prototype, 'save')).toBe(1);
  });

  it('takes the entity type from the design:paramtypes of the entity parameter', async () => {
    class Invoice {
      id = 'i1';
    }
    const store = new MemoryHistoryStore();
    class BillingService {
      @Versioned()
      @HistoryTracked(store)
      async save(_invoice: Invoice) {}
    }
    await new BillingService().save({ id: 'i1' } as Invoice);
    expect(store.all()[0]?.entityType).toBe('Invoice');
  });

  it('copies metadata stored on the original method to the wrapper and keeps design metadata', () => {
    const SetMetadata =
      (key: string, value: unknown) => (_target: object, _key: string, descriptor: PropertyDescriptor) => {
        Reflect.defineMetadata(key, value, descriptor.value);
      };
    class Controller {
      @Versioned()
      @SetMetadata('roles', ['admin'])
      async update(_order: Order, _session?: FakeSession) {}
    }
    expect(Reflect.getMetadata('roles', Controller.prototype.update)).toEqual(['admin']);
    expect(Reflect.getMetadata('design:paramtypes', Controller.prototype, 'update')).toEqual([Order, Object]);
  });

  it('keeps working when Nest-style metadata is added above the wrapper', async () => {
    const { session } = setup();
    const SetMetadata =
      (key: string, value: unknown) => (_target: object, _key: string, descriptor: PropertyDescriptor) => {
        Reflect.defineMetadata(key, value, descriptor.value);
      };
    const history = new MemoryHistoryStore();
    class Service {
      history = history;
      @SetMetadata('audited', true)
      @Versioned()
      @HistoryTracked('history')
      async save(order: Order, session?: FakeSession) {
        await need(session).insert('orders', order.id, { ...order });
      }
    }
    await new Service().save(new Order('o1', 1), session);
    expect(Reflect.getMetadata('audited', Service.prototype.save)).toBe(true);
    expect(history.all().map((e) => e.version)).toEqual([1]);
  });
});
