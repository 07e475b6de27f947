import { describe, expect, it } from 'vitest';
import {
  ConnectionLostError,
  commitOutcome,
  type HistoryEntry,
  type HistoryReader,
  MemoryHistoryStore,
} from '../../src/index.js';

const inFlight = { entityType: 'Order', entityId: 'o1', version: 2, txId: 'tx-ours' } as const;

function entry(txId: string | undefined): HistoryEntry {
  return {
    entityType: 'Order',
    entityId: 'o1',
    version: 2,
    op: 'update',
    timestamp: new Date('2026-01-02T00:00:00Z'),
    snapshot: { total: 20 },
    ...(txId === undefined ? {} : { txId }),
  };
}

/** A reader of another kind: no commitOutcome of its own, transactional, so absence proves nothing. */
function readerHolding(stored: HistoryEntry | undefined): HistoryReader {
  return {
    list: async () => (stored ? [stored] : []),
    at: async (type, id, version) =>
      stored && stored.entityType === type && stored.entityId === id && stored.version === version ? stored : undefined,
    asOf: async () => stored,
    latest: async () => stored,
  };
}

describe('commitOutcome', () => {
  it('says committed when the entry at the key carries the call’s txId', async () => {
    const store = new MemoryHistoryStore();
    await store.save(entry('tx-ours'));
    const outcome = await commitOutcome(store, new ConnectionLostError('pg', new Error('cut'), inFlight));
    expect(outcome.status).toBe('committed');
    expect(outcome.entry?.txId).toBe('tx-ours');
  });

  it('says not-committed when another transaction holds the version, and names it', async () => {
    const outcome = await commitOutcome(readerHolding(entry('tx-theirs')), inFlight);
    expect(outcome.status).toBe('not-committed');
    expect(outcome.reason).toContain('tx-theirs');
  });

  it('says not-committed for an empty key of a store that writes at once, unknown for one that cannot prove it', async () => {
    expect((await commitOutcome(new MemoryHistoryStore(), inFlight)).status).toBe('not-committed');
    const outcome = await commitOutcome(readerHolding(undefined), inFlight);
    expect(outcome.status).toBe('unknown');
    expect(outcome.reason).toMatch(/cannot prove/);
  });

  it('answers from the error alone when the connection broke before COMMIT, and unknown when no key was written', async () => {
    const store = new MemoryHistoryStore();
    await store.save(entry('tx-ours'));
    const rolledBack = new ConnectionLostError('pg', new Error('cut'));
    expect(rolledBack.outcome).toBe('rolled-back');
    expect((await commitOutcome(store, rolledBack)).status).toBe('not-committed');
    const noKey = new ConnectionLostError('pg', new Error('cut'), true);
    expect(noKey.outcome).toBe('unknown');
    expect(noKey.message).toMatch(/re-read the entity/);
    expect((await commitOutcome(store, noKey)).status).toBe('unknown');
  });

  it('rejects a key that is not one', async () => {
    const bad = { entityType: 'Order', entityId: 'o1', version: 1.5, txId: 'x' };
    await expect(commitOutcome(new MemoryHistoryStore(), bad)).rejects.toThrow(TypeError);
  });

  it('puts the key into the error message and freezes it', () => {
    const error = new ConnectionLostError('mysql2', new Error('cut'), inFlight);
    expect(error.message).toContain('Order o1 version 2');
    expect(error.message).toContain('commitOutcome');
    expect(Object.isFrozen(error.inFlight)).toBe(true);
  });
});
