// Typed history reads: a store given an EntityTypes map types its reads by entity type. Checked
// by `npm run typecheck` under both decorator modes and both TypeScript lines (5.x and 7).
import type { Pool } from 'pg';
import { expectTypeOf } from 'vitest';
import {
  type AnyHistoryEntry,
  type HistoryEntry,
  type HistoryPage,
  type HistoryReader,
  MemoryHistoryStore,
  revert,
  upcastReader,
  type VersionChanges,
  verifyHistory,
} from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';

interface Order {
  id: string;
  total: number;
  version?: number;
}
interface Invoice {
  id: string;
  number: string;
}
// An interface is a map as well as a type literal is.
interface Shop {
  Order: Order;
  Invoice: Invoice;
}

declare const pool: Pool;
declare const db: import('better-sqlite3').Database;
declare const mongo: import('mongodb').Db;
declare const mysql: import('mysql2/promise').Pool;

export async function typedReads(): Promise<void> {
  const store = new MemoryHistoryStore<Shop>();

  // The entry type's own doc comment example, as written there.
  const entry: HistoryEntry<Order> | undefined = await store.at('Order', '42', 3);
  expectTypeOf(entry?.snapshot.total).toEqualTypeOf<number | undefined>();

  expectTypeOf(store.list('Order', '42')).resolves.toEqualTypeOf<HistoryEntry<Order>[]>();
  expectTypeOf(store.at('Invoice', '7', 1)).resolves.toEqualTypeOf<HistoryEntry<Invoice> | undefined>();
  expectTypeOf(store.asOf('Order', '42', new Date())).resolves.toEqualTypeOf<HistoryEntry<Order> | undefined>();
  expectTypeOf(store.latest('Order', '42')).resolves.toEqualTypeOf<HistoryEntry<Order> | undefined>();
  expectTypeOf(store.page('Order', '42')).resolves.toEqualTypeOf<HistoryPage<Order>>();
  expectTypeOf(store.changes('Invoice', '7')).toEqualTypeOf<AsyncIterable<VersionChanges<Invoice>>>();

  // @ts-expect-error an entity type the map does not name
  await store.list('Customer', '1');
  // @ts-expect-error a field the snapshot type lacks
  (await store.latest('Order', '42'))?.snapshot.number;

  // byTransaction: a union discriminated by entityType.
  for (const found of await store.byTransaction('tx')) {
    if (found.entityType === 'Order') expectTypeOf(found.snapshot).toEqualTypeOf<Order>();
    else expectTypeOf(found.snapshot).toEqualTypeOf<Invoice>();
  }
  expectTypeOf(store.all()).toEqualTypeOf<AnyHistoryEntry<Shop>[]>();

  // A typed store goes wherever a reader is taken.
  await verifyHistory(store, 'Order', '42');
  // @ts-expect-error verifyHistory checks the entity type against the store's map too
  await verifyHistory(store, 'Customer', '1');
  await revert({}, { id: '42' }, 1, undefined, { reader: store });
  const upcast = upcastReader(store, { Order: (snapshot) => snapshot });
  expectTypeOf(upcast.latest('Order', '42')).resolves.toEqualTypeOf<HistoryEntry<Order> | undefined>();
  const reader: HistoryReader<Shop> = store;
  expectTypeOf(reader.list('Invoice', '7')).resolves.toEqualTypeOf<HistoryEntry<Invoice>[]>();
}

export async function everyStoreTakesTheMap(): Promise<void> {
  expectTypeOf(new PostgresHistoryStore<Shop>(pool).at('Order', '1', 1)).resolves.toEqualTypeOf<
    HistoryEntry<Order> | undefined
  >();
  expectTypeOf(new SqliteHistoryStore<Shop>(db).list('Invoice', '1')).resolves.toEqualTypeOf<HistoryEntry<Invoice>[]>();
  expectTypeOf(new MongoHistoryStore<Shop>(mongo).latest('Order', '1')).resolves.toEqualTypeOf<
    HistoryEntry<Order> | undefined
  >();
  expectTypeOf(new MysqlHistoryStore<{ Order: Order }>(mysql).asOf('Order', '1', new Date())).resolves.toEqualTypeOf<
    HistoryEntry<Order> | undefined
  >();
}

export async function untypedStoresStayAsTheyWere(): Promise<void> {
  // Without a map: any entity type, snapshots unknown, assignable to the plain reader.
  const store = new MemoryHistoryStore();
  expectTypeOf(store.list('Anything', '1')).resolves.toEqualTypeOf<HistoryEntry[]>();
  const reader: HistoryReader = store;
  expectTypeOf(reader.at('Anything', '1', 1)).resolves.toEqualTypeOf<HistoryEntry | undefined>();

  // A reader of your own, written against the plain interface, still implements it.
  class OwnReader implements HistoryReader {
    async list(_type: string, _id: string): Promise<HistoryEntry[]> {
      return [];
    }
    async at(_type: string, _id: string, _version: number): Promise<HistoryEntry | undefined> {
      return undefined;
    }
    async asOf(_type: string, _id: string, _time: Date): Promise<HistoryEntry | undefined> {
      return undefined;
    }
    async latest(_type: string, _id: string): Promise<HistoryEntry | undefined> {
      return undefined;
    }
  }
  await verifyHistory(new OwnReader(), 'Order', '1');

  // A store class whose type argument is inferred from the class itself (Nest's app.get(Store)):
  // any entity type, snapshots unknown (never `never`, which would let any field through).
  const get = <T>(_type: new (...args: never[]) => T): T => ({}) as T;
  const resolved = get(SqliteHistoryStore);
  const item = await resolved.latest('Item', '1');
  expectTypeOf(item).toEqualTypeOf<HistoryEntry | undefined>();
}
