import type { INestApplication } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemo } from '../../demo/nest/main.js';

describe('the NestJS demo app over HTTP', () => {
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    ({ app, url } = await startDemo(0));
  });

  afterAll(async () => {
    await app.close();
  });

  const send = async (method: string, path: string, body?: unknown, user = 'alice') => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-user': user },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it('creates an order, updates it, answers a stale update with 409 and lists the history with each request’s actor', async () => {
    const created = await send('POST', '/orders', { id: 'o-1', total: 10 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'o-1', total: 10, version: 1 });

    const updated = await send('PUT', '/orders/o-1', { total: 12, version: 1 }, 'bob');
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ total: 12, version: 2 });

    const stale = await send('PUT', '/orders/o-1', { total: 99, version: 1 }, 'carol');
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({
      code: 'VERSION_CONFLICT',
      entityType: 'Order',
      entityId: 'o-1',
      expectedVersion: 1,
    });

    const history = await fetch(`${url}/orders/o-1/history`);
    const entries = (await history.json()) as {
      version: number;
      op: string;
      actor?: string;
      snapshot: { total: number };
    }[];
    expect(entries.map((e) => [e.version, e.op, e.actor, e.snapshot.total])).toEqual([
      [1, 'create', 'alice', 10],
      [2, 'update', 'bob', 12],
    ]);
  });

  it('answers an update without a valid version with 400 through the filter', async () => {
    await send('POST', '/orders', { id: 'o-2', total: 5 });
    const invalid = await send('PUT', '/orders/o-2', { total: 6, version: 'latest' });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatchObject({ code: 'INVALID_ENTITY' });
  });
});
