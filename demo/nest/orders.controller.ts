import { Body, Controller, Get, Inject, Param, Post, Put } from '@nestjs/common';
import type { HistoryEntry } from '../../src/index.js';
import type { Order } from './order.js';
import { OrderHistory } from './order-history.js';
import { OrdersService } from './orders.service.js';

@Controller('orders')
export class OrdersController {
  constructor(
    @Inject(OrdersService) private readonly orders: OrdersService,
    @Inject(OrderHistory) private readonly history: OrderHistory,
  ) {}

  @Post()
  create(@Body() body: { id: string; total: number }): Promise<Order> {
    return this.orders.create(body);
  }

  @Put(':id')
  update(@Param('id') id: string, @Body() body: { total: number; version: number }): Promise<Order> {
    return this.orders.change(id, body);
  }

  @Get(':id/history')
  historyOf(@Param('id') id: string): Promise<HistoryEntry[]> {
    return this.history.list('Order', id);
  }
}
