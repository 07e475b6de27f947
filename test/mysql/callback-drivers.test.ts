import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { type HistoryEntry, HistoryTracked, UnsupportedSessionError, Versioned } from '../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable, mysql2Adapter } from '../../src/mysql/index.js';
import { findAdapter } from '../../src/transactions/registry.js';

type Callback = (error: Error | null, result?: unknown) => void;

/**
 * A stand-in for the `mysql` driver (mysqljs), which is not installed: the shape of its
 * Connection and Pool (callback methods with these arities, `_protocol`, `config`, `state`),
 * and its behaviour: `query` returns a Query event emitter, never a promise, and reports
 * failures to the callback (or as an 'error' event) only. Every statement here fails, as the
 * writes the old store answered success for did.
 */
class MysqljsQuery extends EventEmitter {
  constructor(readonly sql: string) {
    super();
  }
}

class MysqljsConnection {
  readonly config = { host: '127.0.0.1', port: 3306, user: 'root', database: 'test' };
  readonly _protocol = { _queue: [] as unknown[] };
  readonly _socket = undefined;
  state = 'authenticated';
  threadId = 42;
  readonly sent: string[] = [];

  connect(_options?: unknown, callback?: Callback): void {
    callback?.(null);
  }
  query(sql: unknown, values?: unknown, callback?: Callback): MysqljsQuery {
    const text = typeof sql === 'string' ? sql : String((sql as { sql?: unknown }).sql);
    this.sent.push(text);
    const query = new MysqljsQuery(text);
    const done = typeof values === 'function' ? (values as Callback) : callback;
    const error = Object.assign(new Error('ER_NO_SUCH_TABLE: the write failed'), {
      errno: 1146,
      code: 'ER_NO_SUCH_TABLE',
    });
    // Swallowed when nobody listens, as a Query with no callback and no 'error' listener would be lost to the caller.
    setImmediate(() => (done ? done(error) : query.listenerCount('error') > 0 && query.emit('error', error)));
    return query;
  }
  beginTransaction(_options?: unknown, callback?: Callback): void {
    callback?.(null);
  }
  commit(_options?: unknown, callback?: Callback): void {
    callback?.(null);
  }
  rollback(_options?: unknown, callback?: Callback): void {
    callback?.(null);
  }
  ping(_options?: unknown, callback?: Callback): void {
    callback?.(null);
  }
  end(_options?: unknown, callback?: Callback): void {
    callback?.(null);
  }
  destroy(): void {}
  release(): void {}
  escape(value: unknown): string {
    return JSON.stringify(value);
  }
}

class MysqljsPool extends EventEmitter {
  readonly config = { connectionLimit: 10, connectionConfig: new MysqljsConnection().config };
  readonly _allConnections: MysqljsConnection[] = [];
  readonly connection = new MysqljsConnection();

  getConnection(callback: (error: Error | null, connection?: MysqljsConnection) => void): void {
    callback(null, this.connection);
  }
  query(sql: unknown, values?: unknown, callback?: Callback): MysqljsQuery {
    return this.connection.query(sql, values, callback);
  }
  end(callback?: Callback): void {
    callback?.(null);
  }
}

const entry: HistoryEntry = {
  entityType: 'Order',
  entityId: 'o1',
  version: 1,
  op: 'create',
  timestamp: new Date(Date.UTC(2026, 0, 1)),
  snapshot: { id: 'o1' },
};

describe('MySQL: callback-API drivers (mysqljs) are refused, not silently accepted', () => {
  it('MysqlHistoryStore refuses a mysqljs pool or connection at construction, naming mysql2, before sending anything', () => {
    const pool = new MysqljsPool();
    for (const target of [pool, pool.connection]) {
      expect(() => new MysqlHistoryStore(target as unknown as MysqlQueryable)).toThrow(TypeError);
      expect(() => new MysqlHistoryStore(target as unknown as MysqlQueryable)).toThrow(/mysqljs.*Use mysql2/s);
    }
    expect(pool.connection.sent).toEqual([]);
  });

  it('MysqlHistoryStore.save refuses a mysqljs connection given as session', async () => {
    const writes: string[] = [];
    const store = new MysqlHistoryStore({
      query: async (options) => {
        writes.push(options.sql);
        return [{ affectedRows: 1, serverStatus: 2 }, undefined];
      },
    });
    const connection = new MysqljsConnection();
    await expect(store.save(entry, connection as unknown as MysqlQueryable)).rejects.toThrow(/Use mysql2/);
    expect(connection.sent).toEqual([]);
    expect(writes).toEqual([]);
  });

  it('a store over a wrapper whose query() returns no promise fails instead of answering success', async () => {
    const store = new MysqlHistoryStore({
      query: ((options: { sql: string }) => new MysqljsQuery(options.sql)) as unknown as MysqlQueryable['query'],
    });
    await expect(store.save(entry)).rejects.toThrow(/returned no promise/);
  });

  it('a decorated call given a mysqljs connection as session is refused with UnsupportedSessionError naming mysql2', async () => {
    const connection = new MysqljsConnection();
    expect(findAdapter(connection)).toBe(mysql2Adapter);
    const store = new MysqlHistoryStore({ query: async () => [[], undefined] });
    @Versioned()
    @HistoryTracked(store)
    class OrderService {
      ran = false;
      async save(_order: { id: string; version?: number }, _session: MysqljsConnection): Promise<void> {
        this.ran = true;
      }
    }
    const service = new OrderService();
    const order: { id: string; version?: number } = { id: 'o1' };
    const error = await service.save(order, connection).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedSessionError);
    expect(error).toMatchObject({ code: 'UNSUPPORTED_SESSION' });
    expect((error as Error).message).toMatch(/mysql \(mysqljs\).*Use mysql2/s);
    expect(service.ran).toBe(false);
    expect(order.version).toBeUndefined();
    expect(connection.sent).toEqual([]);
    expect(() => mysql2Adapter.run(connection as never, async () => undefined)).toThrow(UnsupportedSessionError);
  });

  it('the recognition is conservative: promise-API look-alikes and plain objects are not taken for mysqljs', () => {
    const promiseLike = { query: async (_sql: unknown, _values?: unknown) => [[], undefined] };
    expect(() => new MysqlHistoryStore(promiseLike as MysqlQueryable)).not.toThrow();
    const restArgs = { query: async (..._args: unknown[]) => [[], undefined] };
    expect(() => new MysqlHistoryStore(restArgs as MysqlQueryable)).not.toThrow();
    const withoutProtocol = Object.assign(new MysqljsConnection(), { _protocol: undefined });
    expect(mysql2Adapter.matches(withoutProtocol)).toBe(false);
    expect(mysql2Adapter.matches({ query() {}, beginTransaction() {}, commit() {}, rollback() {} })).toBe(false);
  });
});
