import { describe, expect, it } from 'vitest';
import {
  HistoryTracked,
  MemoryHistoryStore,
  registerTransactionAdapter,
  type TransactionAdapter,
  Versioned,
} from '../../src/index.js';

class Conn {
  log: string[] = [];
  active = false;
}

function recordingAdapter(name: string): TransactionAdapter<Conn> {
  return {
    name,
    matches: (session): session is Conn => session instanceof Conn,
    isActive: (session) => session.active,
    async run(session, work) {
      session.log.push(`${name}:begin`);
      const result = await work();
      session.log.push(`${name}:commit`);
      return result;
    },
  };
}

describe('registerTransactionAdapter', () => {
  it('tries the most recently registered adapter first, and unregisters', async () => {
    class Service {
      @Versioned()
      @HistoryTracked(new MemoryHistoryStore())
      async save(_order: { id: string }, _conn: Conn) {}
    }
    const first = registerTransactionAdapter(recordingAdapter('first'));
    const second = registerTransactionAdapter(recordingAdapter('second'));
    const conn = new Conn();

    await new Service().save({ id: 'a' }, conn);
    second();
    await new Service().save({ id: 'b' }, conn);
    first();

    expect(conn.log).toEqual(['second:begin', 'second:commit', 'first:begin', 'first:commit']);
    await expect(new Service().save({ id: 'c' }, conn)).rejects.toThrow(/Conn/);
  });
});
