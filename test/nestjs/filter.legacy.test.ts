// What the exception filter answers over HTTP for a duplicate create and for a misplaced decorator.
import type { INestApplication, LoggerService } from '@nestjs/common';
import { Controller, Param, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryTracked, MemoryHistoryStore, Versioned } from '../../src/index.js';
import { EventHistoryModule } from '../../src/nestjs/index.js';

const store = new MemoryHistoryStore();

interface Order {
  id: string;
  total: number;
  version?: number;
}

@Controller('orders')
class OrdersController {
  readonly history = store;

  // Misplaced: the decorators belong on the service's save(order), not on a route taking an id.
  @Post(':id/misplaced')
  @Versioned({ op: 'create' })
  @HistoryTracked('history')
  async misplaced(@Param('id') id: string): Promise<string> {
    return id;
  }

  @Post(':id')
  @Versioned({ op: 'create', requireSession: false })
  @HistoryTracked('history', { entityType: 'Order' })
  async create(order: Order): Promise<Order> {
    return order;
  }

  @Post(':id/create')
  async createFromRoute(@Param('id') id: string): Promise<Order> {
    return this.create({ id, total: 1 });
  }
}

describe('the exception filter over HTTP', () => {
  let app: INestApplication;
  let base: string;
  const logged: string[] = [];
  const logger: LoggerService = {
    log: () => {},
    warn: () => {},
    error: (message: unknown, ...rest: unknown[]) => {
      logged.push([message, ...rest].map((part) => (part instanceof Error ? part.stack : String(part))).join(' '));
    },
  };

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [EventHistoryModule.forRoot({})],
      controllers: [OrdersController],
    }).compile();
    app = moduleRef.createNestApplication({ logger });
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  });

  afterAll(async () => {
    await app.close();
  });

  it('answers a misplaced decorator (no entity where it looks) with a logged 500 that names nothing internal', async () => {
    logged.length = 0;
    const response = await fetch(`${base.replace('[::1]', '127.0.0.1')}/orders/o-1/misplaced`, { method: 'POST' });
    const text = await response.text();
    expect(response.status).toBe(500);
    expect(JSON.parse(text)).toEqual({ statusCode: 500, message: 'Internal server error' });
    expect(text).not.toMatch(/OrdersController|misplaced|INVALID_ENTITY|entityIndex/);
    expect(logged.join('\n')).toMatch(/OrdersController\.misplaced expects an entity object as argument 0/);
  });

  it('answers a duplicate create with 409 and a message that says it already exists, not that it changed', async () => {
    const url = `${base.replace('[::1]', '127.0.0.1')}/orders/dup/create`;
    expect((await fetch(url, { method: 'POST' })).status).toBe(201);
    const response = await fetch(url, { method: 'POST' });
    const body = (await response.json()) as { code: string; message: string };
    expect(response.status).toBe(409);
    expect(body.code).toBe('VERSION_CONFLICT');
    expect(body.message).toMatch(/^Order dup already exists/);
    expect(body.message).not.toMatch(/changed by another writer|reload/);
  });
});
