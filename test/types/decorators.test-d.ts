// Type-level specification, checked by `npm run typecheck` under both tsconfig.json
// (experimentalDecorators) and tsconfig.standard.json (TC39 decorators).
import { expectTypeOf } from 'vitest';
import {
  currentSession,
  expectedVersion,
  type HistoryEntry,
  HistoryTracked,
  MemoryHistoryStore,
  type VersionConflictError,
  Versioned,
} from '../../src/index.js';

interface Order {
  id: string;
  version?: number;
}
interface Session {
  readonly kind: 'session';
}
const store = new MemoryHistoryStore();

// Accepted: async methods, on the class and on methods, with any parameters.
@Versioned()
@HistoryTracked(store)
export class Accepted {
  async save(_order: Order, _session?: Session): Promise<void> {}
  update(_order: Order, _session?: Session): Promise<{ matchedCount: number }> {
    return Promise.resolve({ matchedCount: 1 });
  }
  @Versioned({ op: 'delete' })
  @HistoryTracked('history', { op: 'delete' })
  async archive(_order: Order): Promise<void> {}
}

@Versioned({ methods: { store: 'create' } })
export class ListedMethods {
  async store(_order: Order): Promise<void> {}
}

// Accepted: an explicit opt-out (false) of a method the other class decorator wraps alone.
@Versioned({ methods: { save: 'create', touch: 'update' } })
@HistoryTracked(store, { methods: { save: 'create', touch: false } })
export class OptsOut {
  async save(_order: Order): Promise<void> {}
  async touch(_order: Order): Promise<void> {}
}

// @ts-expect-error a method's operation is an op or false, nothing else
@HistoryTracked(store, { methods: { save: true } })
export class RejectsTrueOptOut {
  async save(_order: Order): Promise<void> {}
}

export class RejectsSyncMethod {
  // @ts-expect-error a decorated method must return a Promise
  @Versioned()
  save(_order: Order): number {
    return 1;
  }
}

export class RejectsSyncMethodTracked {
  // @ts-expect-error a decorated method must return a Promise
  @HistoryTracked(store)
  update(_order: Order): void {}
}

// @ts-expect-error the class's save must return a Promise
@Versioned()
export class RejectsSyncClass {
  save(_order: Order): boolean {
    return true;
  }
}

// @ts-expect-error a listed method must exist on the class
@Versioned({ methods: { store: 'create' } })
export class RejectsMissingListedMethod {
  async save(_order: Order): Promise<void> {}
}

// @ts-expect-error a class decorator needs save or update (or the listed methods)
@Versioned()
export class RejectsClassWithoutMethods {
  async find(_id: string): Promise<void> {}
}

// @ts-expect-error op must be one of create, update, delete
Versioned({ op: 'upsert' });

// @ts-expect-error options are checked
Versioned({ retries: 'three' });

expectTypeOf(expectedVersion({})).toEqualTypeOf<number | undefined>();
expectTypeOf(currentSession<Session>()).toEqualTypeOf<Session | undefined>();
expectTypeOf<HistoryEntry['op']>().toEqualTypeOf<'create' | 'update' | 'delete'>();
expectTypeOf<VersionConflictError['expectedVersion']>().toEqualTypeOf<number | undefined>();
expectTypeOf(store.list('Order', '1')).resolves.toEqualTypeOf<HistoryEntry[]>();
