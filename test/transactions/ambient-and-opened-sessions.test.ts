import { afterEach, describe, expect, it } from 'vitest';
import {
  currentSession,
  HistoryTracked,
  MemoryHistoryStore,
  MissingSessionError,
  registerSessionProvider,
  registerTransactionAdapter,
  runInSession,
  type TransactionAdapter,
  Versioned,
} from '../../src/index.js';

/** An ORM-like root whose transactions are new objects, as with TypeORM, Knex, Kysely, Drizzle and Prisma. */
class Root {
  readonly log: string[] = [];
}
class Tx {
  constructor(readonly root: Root) {}
}

const rootAdapter: TransactionAdapter<Root | Tx> = {
  name: 'root-and-tx',
  matches: (s): s is Root | Tx => s instanceof Root || s instanceof Tx,
  isActive: (s) => s instanceof Tx,
  async run(s, work) {
    const root = s as Root;
    root.log.push('begin');
    try {
      const result = await work(new Tx(root));
      root.log.push('commit');
      return result;
    } catch (error) {
      root.log.push('rollback');
      throw error;
    }
  },
};

const undo: (() => void)[] = [];
afterEach(() => {
  for (const fn of undo.splice(0)) fn();
});

function service() {
  const history = new MemoryHistoryStore();
  const seen: { argument: unknown; ambient: unknown }[] = [];
  @Versioned()
  @HistoryTracked('history')
  class Orders {
    history = history;
    async save(_order: { id: string }, session?: unknown): Promise<void> {
      seen.push({ argument: session, ambient: currentSession() });
    }
  }
  return { orders: new Orders(), seen };
}

describe('sessions an adapter opens and sessions a provider supplies', () => {
  it('a call given the root runs with the transaction the adapter opened, as argument and as currentSession()', async () => {
    undo.push(registerTransactionAdapter(rootAdapter));
    const { orders, seen } = service();
    const root = new Root();
    await orders.save({ id: 'a' }, root);
    expect(seen[0]?.argument).toBeInstanceOf(Tx);
    expect(seen[0]?.ambient).toBe(seen[0]?.argument);
    expect(root.log).toEqual(['begin', 'commit']);
  });

  it('a root passed as { session } in an options object is replaced inside that object', async () => {
    undo.push(registerTransactionAdapter(rootAdapter));
    const { orders, seen } = service();
    const root = new Root();
    await orders.save({ id: 'b' }, { session: root } as unknown);
    const [first] = seen as { argument: { session: unknown } }[];
    expect(first?.argument.session).toBeInstanceOf(Tx);
  });

  it('a registered provider supplies the session of a call given none, after runInSession', async () => {
    undo.push(registerTransactionAdapter(rootAdapter));
    const { orders, seen } = service();
    const provided = new Tx(new Root());
    const explicit = new Tx(new Root());
    undo.push(registerSessionProvider(() => provided));
    await orders.save({ id: 'c' });
    await runInSession(explicit, () => orders.save({ id: 'd' }));
    expect(seen.map((s) => s.ambient)).toEqual([provided, explicit]);
  });

  it('a provider that has no session, or was unregistered, leaves a call without one a MissingSessionError', async () => {
    undo.push(registerSessionProvider(() => undefined));
    const unregister = registerSessionProvider(() => new Tx(new Root()));
    unregister();
    @Versioned()
    @HistoryTracked({ save: async () => undefined })
    class Strict {
      async save(_order: { id: string }, _session?: unknown): Promise<void> {}
    }
    await expect(new Strict().save({ id: 'e' })).rejects.toBeInstanceOf(MissingSessionError);
  });
});
