import { describe, expect, it } from 'vitest';
import { HistoryTracked, InvalidEntityError, MemoryHistoryStore, Versioned } from '../../src/index.js';

interface Doc {
  id: string;
  body?: unknown;
  version?: number;
}

function service(store: MemoryHistoryStore, maxSnapshotBytes?: number) {
  const calls: Doc[] = [];

  @Versioned()
  @HistoryTracked(
    store,
    maxSnapshotBytes === undefined ? { entityType: 'Doc' } : { entityType: 'Doc', maxSnapshotBytes },
  )
  class Docs {
    async save(doc: Doc): Promise<void> {
      calls.push(doc);
    }
  }

  return { docs: new Docs(), calls };
}

describe('reading the entity before the method runs', () => {
  it('refuses an entity with a throwing getter before the method is called', async () => {
    const store = new MemoryHistoryStore();
    const { docs, calls } = service(store);
    const doc = Object.defineProperty({ id: 'd1' } as Doc, 'body', {
      enumerable: true,
      get() {
        throw new Error('lazy load failed');
      },
    });
    const error = await docs.save(doc).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEntityError);
    expect((error as Error).message).toMatch(/could not read.*lazy load failed/);
    expect(calls).toEqual([]);
    expect(doc.version).toBeUndefined();
  });

  it('refuses a proxy entity whose reads throw with InvalidEntityError', async () => {
    const { docs, calls } = service(new MemoryHistoryStore());
    const doc = new Proxy({ id: 'd2' } as Doc, {
      get() {
        throw new Error('revoked');
      },
    });
    await expect(docs.save(doc)).rejects.toBeInstanceOf(InvalidEntityError);
    expect(calls).toEqual([]);
  });

  it('refuses a snapshot above maxSnapshotBytes before the method runs when no transaction can undo it', async () => {
    const store = new MemoryHistoryStore();
    const { docs, calls } = service(store, 1_000);
    const error = await docs.save({ id: 'd3', body: 'x'.repeat(2_000) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEntityError);
    expect((error as Error).message).toMatch(/maxSnapshotBytes/);
    expect(calls).toEqual([]);
    expect(await store.list('Doc', 'd3')).toEqual([]);
  });

  it('refuses a cyclic entity before the method runs when no transaction can undo it', async () => {
    const store = new MemoryHistoryStore();
    const { docs, calls } = service(store);
    const doc: Doc = { id: 'd4' };
    doc.body = { doc };
    await expect(docs.save(doc)).rejects.toBeInstanceOf(InvalidEntityError);
    expect(calls).toEqual([]);
  });

  it('keeps snapshots of up to 4 MiB by default and any size with maxSnapshotBytes: Infinity', async () => {
    const store = new MemoryHistoryStore();
    await service(store).docs.save({ id: 'd5', body: 'x'.repeat(1_000_000) });
    await service(store, Number.POSITIVE_INFINITY).docs.save({ id: 'd6', body: 'x'.repeat(5 * 1024 * 1024) });
    expect(await store.list('Doc', 'd5')).toHaveLength(1);
    expect(await store.list('Doc', 'd6')).toHaveLength(1);
    const error = await service(store)
      .docs.save({ id: 'd7', body: 'x'.repeat(5 * 1024 * 1024) })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEntityError);
  });
});
