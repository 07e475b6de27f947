import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { expectedVersion, HistoryTracked, Versioned } from '../../src/index.js';
import { Order } from './order.js';
import { OrderHistory } from './order-history.js';

@Injectable()
@Versioned()
@HistoryTracked(OrderHistory)
export class OrdersService {
  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}

  /** Given the root manager, the library opens the transaction and passes its manager in. */
  async save(order: Order, manager: EntityManager): Promise<void> {
    await manager.insert(Order, order);
  }

  /** Guarded by the version the caller read: a stale one matches no row, a VersionConflictError (HTTP 409). */
  async update(order: Order, manager: EntityManager): Promise<unknown> {
    const { id, ...changes } = order;
    return manager.update(Order, { id, version: expectedVersion(order) }, changes);
  }

  async create(input: { id: string; total: number }): Promise<Order> {
    const order = Object.assign(new Order(), { id: input.id, total: input.total });
    await this.save(order, this.dataSource.manager);
    return order;
  }

  async change(id: string, input: { total: number; version: number }): Promise<Order> {
    const found = await this.dataSource.manager.findOneBy(Order, { id });
    if (found === null) throw new NotFoundException(`order ${id} not found`);
    const order = Object.assign(found, { total: input.total, version: input.version });
    await this.update(order, this.dataSource.manager);
    return order;
  }
}
