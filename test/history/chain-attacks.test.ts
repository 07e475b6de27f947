import { PGlite } from '@electric-sql/pglite';
import Database from 'better-sqlite3';
import * as mariadb from 'mariadb';
import type { ClientSession, MongoClient } from 'mongodb';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainEntry } from '../../src/history/chain.js';
import { selectRange } from '../../src/history/reader.js';
import {
  type ChainHead,
  type ChainKeys,
  type HistoryEntry,
  type HistoryReader,
  HistoryTracked,
  type HistoryTrackedOptions,
  type HistoryWriter,
  type ListOptions,
  MemoryHistoryStore,
  Versioned,
  verifyHistory,
} from '../../src/index.js';
import { MongoHistoryStore } from '../../src/mongodb/index.js';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { type MongoTarget, openTarget, plainClient, uniqueName } from '../mongodb/target.js';
import { MYSQL_URL } from '../mysql/support.js';
import { tickingClock } from '../support/orders.js';

const DATABASE_URL = process.env.DATABASE_URL;

const K1 = 'k1-secret-0123456789abcdef';
const K2 = 'k2-secret-fedcba9876543210';
const ONLY_K1: ChainKeys = { current: 'k1', keys: { k1: K1 } };
const ROTATED: ChainKeys = { current: 'k2', keys: { k1: K1, k2: K2 } };
const ONLY_K2: ChainKeys = { current: 'k2', keys: { k2: K2 } };

type Store = HistoryWriter<never> & HistoryReader & Required<Pick<HistoryReader, 'head'>>;

/**
 * One store under attack: how to run decorated calls on it, and what someone with write access
 * to its tables (documents) can do to them, bypassing the library.
 */
interface Target {
  readonly name: string;
  readonly store: Store;
  /** What `verifyHistory` and the attacker read: the store itself (for memory, a view that shows the tampering). */
  readonly reader: HistoryReader & Pick<Store, 'head'>;
  /** Runs decorated calls with a session of the store's database (`undefined` for memory). */
  withSession<T>(work: (session: unknown) => Promise<T>): Promise<T>;
  /** Runs work in a transaction the caller opened, then rolls it back; `undefined` when the store has none. */
  rolledBack?(work: (session: unknown) => Promise<void>): Promise<void>;
  /** Sets `hash` and `prev_hash` to NULL on every row of the entity. */
  strip(id: string): Promise<void>;
  /** Sets `snapshot.total` of one stored row. */
  setTotal(id: string, version: number, total: number): Promise<void>;
  /** Deletes the rows from `version` up. */
  truncate(id: string, fromVersion: number): Promise<void>;
  deleteHead(id: string): Promise<void>;
  putHead(head: ChainHead): Promise<void>;
  /** Replaces every row of the entity with `entries` (and the head with `head`, or none). */
  rewrite(id: string, entries: readonly HistoryEntry[], head: ChainHead | undefined): Promise<void>;
  close(): Promise<void>;
}

class Order {
  version?: number;
  timestamp?: Date;
  constructor(
    readonly id: string,
    public total: number,
  ) {}
}

let counter = 0;
function orderId(): string {
  counter += 1;
  return `o${process.pid}_${counter}`;
}

function service(store: Store, chain: HistoryTrackedOptions['chain']) {
  @Versioned({ clock: tickingClock() })
  @HistoryTracked(store, { chain, entityType: 'Order' })
  class OrderService {
    async save(_order: Order, _session: unknown): Promise<void> {}
    async update(_order: Order, _session: unknown): Promise<void> {}
  }
  return new OrderService();
}

/** Writes versions `order.version + 1` … `upTo` (creating it first when new), each in its own transaction. */
async function writeUpTo(
  target: Target,
  order: Order,
  upTo: number,
  chain: HistoryTrackedOptions['chain'] = true,
): Promise<Order> {
  const orders = service(target.store, chain);
  while ((order.version ?? 0) < upTo) {
    await target.withSession(async (session) => {
      if (order.version === undefined) await orders.save(order, session);
      else {
        order.total += 1;
        await orders.update(order, session);
      }
    });
  }
  return order;
}

/** What an attacker who can write the tables but has no key does: edits v2 and recomputes every hash and the head. */
async function recomputeWithoutKey(target: Target, id: string): Promise<void> {
  const entries = await target.reader.list('Order', id);
  const forged: HistoryEntry[] = [];
  for (const entry of entries) {
    const edited =
      entry.version === 2 ? { ...entry, snapshot: { ...(entry.snapshot as object), total: 1_000_000 } } : entry;
    forged.push(chainEntry(edited, forged.at(-1)));
  }
  const last = forged.at(-1) as HistoryEntry;
  await target.rewrite(id, forged, {
    entityType: 'Order',
    entityId: id,
    version: last.version,
    hash: last.hash as string,
  });
}

function attackSuite(open: () => Promise<Target>, transactional: boolean, unavailable?: string): void {
  let target: Target;
  beforeAll(async () => {
    if (unavailable !== undefined) throw new Error(`REQUIRE_DATABASES=1, but ${unavailable}.`);
    target = await open();
  });
  afterAll(async () => {
    await target?.close();
  });

  it('an intact chain verifies as chained and anchored, and unkeyed without a key', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 3);

    const result = await verifyHistory(target.reader, 'Order', order.id);

    expect(result).toEqual({
      ok: true,
      entries: 3,
      unchained: 0,
      chained: true,
      anchored: true,
      keyed: false,
      findings: [],
    });
    const head = await target.reader.head('Order', order.id);
    expect(head).toEqual({
      entityType: 'Order',
      entityId: order.id,
      version: 3,
      hash: (await target.reader.latest('Order', order.id))?.hash,
    });
  });

  it('stripping every hash, then editing a row, is found: the head says the entity is chained', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 3);
    await target.strip(order.id);
    await target.setTotal(order.id, 2, 999);

    expect((await target.reader.list('Order', order.id)).every((entry) => entry.hash === undefined)).toBe(true);
    expect(await verifyHistory(target.reader, 'Order', order.id)).toMatchObject({
      ok: false,
      version: 3,
      kind: 'stripped',
      chained: true,
      anchored: false,
    });
  });

  it('stripping every hash and deleting the head passes only as "not chained", and fails with requireChain', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 3);
    await target.strip(order.id);
    await target.deleteHead(order.id);

    expect(await verifyHistory(target.reader, 'Order', order.id)).toMatchObject({
      ok: true,
      chained: false,
      anchored: false,
      unchained: 3,
    });
    expect(await verifyHistory(target.reader, 'Order', order.id, { requireChain: true })).toMatchObject({
      ok: false,
      kind: 'unchained',
      version: 0,
    });
  });

  it('deleting the newest entries is found without latestVersion, and so is deleting the head with them', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 4);
    const other = await writeUpTo(target, new Order(orderId(), 10), 3);
    await target.truncate(order.id, 3);
    await target.truncate(other.id, 3);
    await target.deleteHead(other.id);

    expect(await verifyHistory(target.reader, 'Order', order.id)).toMatchObject({
      ok: false,
      version: 3,
      kind: 'removed',
      entries: 2,
    });
    const unanchored = await verifyHistory(target.reader, 'Order', other.id);
    expect(unanchored).toMatchObject({ ok: false, kind: 'unanchored', version: 2, anchored: false });
    expect(await verifyHistory(target.reader, 'Order', other.id, { allowUnanchored: true })).toMatchObject({
      ok: true,
      anchored: false,
      findings: [{ kind: 'unanchored', fatal: false }],
    });
  });

  it('a keyed chain verifies with its key, and cannot be checked without it', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 3, { key: ONLY_K1 });
    const entries = await target.reader.list('Order', order.id);

    expect(entries.map((entry) => entry.hash?.slice(0, 8))).toEqual(['hmac:k1:', 'hmac:k1:', 'hmac:k1:']);
    expect(entries.every((entry) => (entry.hash?.length ?? 0) <= 64)).toBe(true);
    expect((await target.reader.head('Order', order.id))?.mac).toMatch(/^hmac:k1:[A-Za-z0-9_-]{43}$/);
    expect(await verifyHistory(target.reader, 'Order', order.id, { key: ONLY_K1 })).toEqual({
      ok: true,
      entries: 3,
      unchained: 0,
      chained: true,
      anchored: true,
      keyed: true,
      findings: [],
    });
    expect(await verifyHistory(target.reader, 'Order', order.id, { key: K1, keyId: 'k1' })).toMatchObject({ ok: true });
    expect(await verifyHistory(target.reader, 'Order', order.id)).toMatchObject({
      ok: false,
      version: 1,
      kind: 'unknown-key',
    });
  });

  it('recomputing the whole chain (and its head) without the key passes unkeyed verification, and fails with the key', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 3, { key: ONLY_K1 });
    await recomputeWithoutKey(target, order.id);

    expect((await target.reader.at('Order', order.id, 2))?.snapshot).toMatchObject({ total: 1_000_000 });
    // Without the key nothing can tell: this is what the key is for.
    expect(await verifyHistory(target.reader, 'Order', order.id)).toMatchObject({ ok: true, keyed: false });
    expect(await verifyHistory(target.reader, 'Order', order.id, { key: ONLY_K1 })).toMatchObject({
      ok: false,
      kind: 'unkeyed',
      version: 3,
    });
  });

  it('with a key, a guessed key, a head without MAC, a forged head or stripping everything all fail', async () => {
    const guessed = await writeUpTo(target, new Order(orderId(), 10), 2, { key: ONLY_K1 });
    const entries = await target.reader.list('Order', guessed.id);
    const wrong: ChainKeys = { current: 'k1', keys: { k1: 'not-the-real-key-0000' } };
    const forged: HistoryEntry[] = [];
    for (const entry of entries) forged.push(chainEntry(entry, forged.at(-1), wrong));
    await target.rewrite(guessed.id, forged, undefined);
    expect(await verifyHistory(target.reader, 'Order', guessed.id, { key: ONLY_K1 })).toMatchObject({
      ok: false,
      kind: 'altered',
      version: 1,
    });

    const truncated = await writeUpTo(target, new Order(orderId(), 10), 3, { key: ONLY_K1 });
    const newest = (await target.reader.head('Order', truncated.id)) as ChainHead;
    await target.truncate(truncated.id, 3);
    const second = (await target.reader.at('Order', truncated.id, 2)) as HistoryEntry;
    const base = { entityType: 'Order', entityId: truncated.id, version: 2, hash: second.hash as string };
    await target.putHead(base);
    expect(await verifyHistory(target.reader, 'Order', truncated.id, { key: ONLY_K1 })).toMatchObject({
      ok: false,
      kind: 'unkeyed',
      version: 2,
    });
    await target.putHead({ ...base, mac: newest.mac as string });
    expect(await verifyHistory(target.reader, 'Order', truncated.id, { key: ONLY_K1 })).toMatchObject({
      ok: false,
      kind: 'altered',
      version: 2,
    });

    const stripped = await writeUpTo(target, new Order(orderId(), 10), 2, { key: ONLY_K1 });
    await target.strip(stripped.id);
    await target.deleteHead(stripped.id);
    expect(await verifyHistory(target.reader, 'Order', stripped.id, { key: ONLY_K1 })).toMatchObject({
      ok: false,
      kind: 'unchained',
    });
  });

  it('key rotation: entries signed with k1 then k2 verify with both keys, and name k1 when only k2 is given', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 2, { key: ONLY_K1 });
    await writeUpTo(target, order, 4, { key: () => ROTATED });
    const entries = await target.reader.list('Order', order.id);

    expect(entries.map((entry) => entry.hash?.slice(0, 8))).toEqual(['hmac:k1:', 'hmac:k1:', 'hmac:k2:', 'hmac:k2:']);
    expect(await verifyHistory(target.reader, 'Order', order.id, { key: ROTATED })).toMatchObject({
      ok: true,
      keyed: true,
      anchored: true,
    });
    const onlyK2 = await verifyHistory(target.reader, 'Order', order.id, { key: ONLY_K2 });
    expect(onlyK2).toMatchObject({ ok: false, kind: 'unknown-key', version: 1 });
    expect(onlyK2.ok ? '' : onlyK2.detail).toContain('"k1"');
    expect(JSON.stringify(onlyK2)).not.toContain(K2);
  });

  it('a chain started without a key and continued with one verifies with the key (the keyed entries pin the older ones)', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 2);
    await writeUpTo(target, order, 3, { key: ONLY_K1 });
    expect(await verifyHistory(target.reader, 'Order', order.id, { key: ONLY_K1 })).toMatchObject({
      ok: true,
      keyed: true,
    });
    await target.setTotal(order.id, 1, 5);
    expect(await verifyHistory(target.reader, 'Order', order.id, { key: ONLY_K1 })).toMatchObject({
      ok: false,
      kind: 'altered',
      version: 1,
    });
  });

  it('not detected, as documented: replaying an older head (and MAC) after deleting the newest entries', async () => {
    const order = await writeUpTo(target, new Order(orderId(), 10), 2, { key: ONLY_K1 });
    const old = (await target.reader.head('Order', order.id)) as ChainHead;
    await writeUpTo(target, order, 3, { key: ONLY_K1 });
    await target.truncate(order.id, 3);
    await target.putHead(old);

    expect(await verifyHistory(target.reader, 'Order', order.id, { key: ONLY_K1 })).toMatchObject({ ok: true });
    expect(await verifyHistory(target.reader, 'Order', order.id, { key: ONLY_K1, latestVersion: 3 })).toMatchObject({
      ok: false,
      kind: 'removed',
    });
  });

  if (!transactional) return;
  it('the head is written in the call’s transaction: rolled back with it', async () => {
    if (target.rolledBack === undefined) throw new Error(`${target.name} has no transactions to roll back`);
    const order = await writeUpTo(target, new Order(orderId(), 10), 2);
    const orders = service(target.store, true);
    await target.rolledBack(async (session) => {
      order.total = 99;
      await orders.update(order, session);
    });

    expect((await target.reader.head('Order', order.id))?.version).toBe(2);
    expect(await verifyHistory(target.reader, 'Order', order.id)).toMatchObject({
      ok: true,
      entries: 2,
      anchored: true,
    });
  });
}

/** Memory: its rows are not reachable from outside, so the attacks act on the view verifyHistory reads. */
function memoryTarget(): Target {
  const store = new MemoryHistoryStore();
  const rows = new Map<string, HistoryEntry[]>();
  const heads = new Map<string, ChainHead | null>();
  const current = async (id: string) => rows.get(id) ?? (await store.list('Order', id));
  const reader: HistoryReader & Pick<Store, 'head'> = {
    list: async (_type: string, id: string, opts: ListOptions = {}) => selectRange(await current(id), opts),
    at: async (_type, id, version) => (await current(id)).find((entry) => entry.version === version),
    asOf: (type, id, time) => store.asOf(type, id, time),
    latest: async (_type, id) => (await current(id)).at(-1),
    head: async (_type, id) => {
      const head = heads.get(id);
      return head === null ? undefined : (head ?? store.head('Order', id));
    },
  };
  const edit = async (id: string, change: (entries: HistoryEntry[]) => HistoryEntry[]) => {
    rows.set(id, change(await current(id)));
  };
  return {
    name: 'memory',
    store: Object.assign(store, {}) as unknown as Store,
    reader,
    withSession: (work) => work(undefined),
    strip: (id) => edit(id, (entries) => entries.map(({ hash: _h, prevHash: _p, ...entry }) => entry)),
    setTotal: (id, version, total) =>
      edit(id, (entries) =>
        entries.map((entry) =>
          entry.version === version ? { ...entry, snapshot: { ...(entry.snapshot as object), total } } : entry,
        ),
      ),
    truncate: (id, from) => edit(id, (entries) => entries.filter((entry) => entry.version < from)),
    deleteHead: async (id) => {
      heads.set(id, null);
    },
    putHead: async (head) => {
      heads.set(head.entityId, head);
    },
    rewrite: async (id, entries, head) => {
      rows.set(id, [...entries]);
      heads.set(id, head ?? null);
    },
    close: async () => {},
  };
}

/** The SQL attacks, for a dialect's placeholders and JSON edit. */
function sqlAttacks(
  run: (sql: string, values: unknown[]) => Promise<unknown>,
  store: Store,
  table: string,
  dialect: { p: (n: number) => string; q: (name: string) => string; setTotal: string; positional: boolean },
): Pick<Target, 'strip' | 'setTotal' | 'truncate' | 'deleteHead' | 'putHead' | 'rewrite'> {
  const { p, q } = dialect;
  const t = q(table);
  const h = q(`${table}_heads`);
  const key = `${q('entity_type')} = ${p(1)} AND ${q('entity_id')} = ${p(2)}`;
  const attacks = {
    strip: async (id: string) => {
      await run(`UPDATE ${t} SET ${q('hash')} = NULL, ${q('prev_hash')} = NULL WHERE ${key}`, ['Order', id]);
    },
    setTotal: async (id: string, version: number, total: number) => {
      // `?` placeholders bind in text order (the total comes first); `$n` by number.
      const values = dialect.positional ? [total, 'Order', id, version] : ['Order', id, total, version];
      await run(`UPDATE ${t} SET ${dialect.setTotal} WHERE ${key} AND ${q('version')} = ${p(4)}`, values);
    },
    truncate: async (id: string, from: number) => {
      await run(`DELETE FROM ${t} WHERE ${key} AND ${q('version')} >= ${p(3)}`, ['Order', id, from]);
    },
    deleteHead: async (id: string) => {
      await run(`DELETE FROM ${h} WHERE ${key}`, ['Order', id]);
    },
    putHead: async (head: ChainHead) => {
      await attacks.deleteHead(head.entityId);
      await run(`INSERT INTO ${h} VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)})`, [
        head.entityType,
        head.entityId,
        head.version,
        head.hash,
        head.mac ?? null,
      ]);
    },
    rewrite: async (id: string, entries: readonly HistoryEntry[], head: ChainHead | undefined) => {
      await attacks.truncate(id, -1);
      // The store's own INSERT without a session: the same row a hand-written INSERT would make.
      for (const entry of entries) await (store.save as (entry: HistoryEntry) => Promise<void>)(entry);
      if (head === undefined) await attacks.deleteHead(id);
      else await attacks.putHead(head);
    },
  };
  return attacks;
}

const pgDialect = {
  p: (n: number) => `$${n}`,
  q: (name: string) => `"${name}"`,
  setTotal: `"snapshot" = jsonb_set("snapshot", '{total}', to_jsonb($3::int))`,
  positional: false,
};

async function sqliteTarget(): Promise<Target> {
  const db = new Database(':memory:');
  const store = new SqliteHistoryStore(db, { table: 'attack_history' });
  await store.ensureSchema();
  const run = async (sql: string, values: unknown[]) => db.prepare(sql).run(...values);
  return {
    name: 'SQLite',
    store: store as unknown as Store,
    reader: store,
    withSession: (work) => work(db),
    rolledBack: async (work) => {
      db.exec('BEGIN');
      try {
        await work(db);
      } finally {
        db.exec('ROLLBACK');
      }
    },
    ...sqlAttacks(run, store as unknown as Store, store.table, {
      p: () => '?',
      q: (name) => `"${name}"`,
      setTotal: `"snapshot" = json_set("snapshot", '$.total', ?)`,
      positional: true,
    }),
    close: async () => {
      db.close();
    },
  };
}

async function postgresTarget(): Promise<Target> {
  if (DATABASE_URL === undefined) throw new Error('REQUIRE_DATABASES=1, but DATABASE_URL is not set.');
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3 });
  const table = uniqueName('attack_history');
  const store = new PostgresHistoryStore(pool, { table });
  await store.ensureSchema();
  const run = (sql: string, values: unknown[]) => pool.query(sql, values);
  const withClient = async <T>(work: (client: pg.PoolClient) => Promise<T>) => {
    const client = await pool.connect();
    try {
      return await work(client);
    } finally {
      client.release();
    }
  };
  return {
    name: 'PostgreSQL (pg)',
    store: store as unknown as Store,
    reader: store,
    withSession: (work) => withClient(work),
    rolledBack: (work) =>
      withClient(async (client) => {
        await client.query('BEGIN');
        try {
          await work(client);
        } finally {
          await client.query('ROLLBACK');
        }
      }),
    ...sqlAttacks(run, store as unknown as Store, table, pgDialect),
    close: async () => {
      await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_heads"`);
      await pool.end();
    },
  };
}

let pglite: PGlite | undefined;

async function pgliteTarget(): Promise<Target> {
  pglite ??= await PGlite.create();
  const db = pglite;
  const table = uniqueName('attack_history');
  const store = new PostgresHistoryStore(db, { table });
  await store.ensureSchema();
  return {
    name: 'PostgreSQL (PGlite)',
    store: store as unknown as Store,
    reader: store,
    withSession: (work) => work(db),
    rolledBack: async (work) => {
      await db.exec('BEGIN');
      try {
        await work(db);
      } finally {
        await db.exec('ROLLBACK');
      }
    },
    ...sqlAttacks((sql, values) => db.query(sql, values), store as unknown as Store, table, pgDialect),
    close: async () => {
      await db.close();
      pglite = undefined;
    },
  };
}

const mysqlDialect = {
  p: () => '?',
  q: (name: string) => `\`${name}\``,
  setTotal: "`snapshot` = JSON_SET(`snapshot`, '$.total', ?)",
  positional: true,
};

async function mysql2Target(): Promise<Target> {
  const pool = mysql.createPool({ uri: MYSQL_URL as string, connectionLimit: 3 });
  const table = uniqueName('attack_history');
  const store = new MysqlHistoryStore(pool, { table });
  await store.ensureSchema();
  const withConnection = async <T>(work: (connection: mysql.PoolConnection) => Promise<T>) => {
    const connection = await pool.getConnection();
    try {
      return await work(connection);
    } finally {
      connection.release();
    }
  };
  return {
    name: 'MariaDB (mysql2)',
    store: store as unknown as Store,
    reader: store,
    withSession: (work) => withConnection(work),
    rolledBack: (work) =>
      withConnection(async (connection) => {
        await connection.query('START TRANSACTION');
        try {
          await work(connection);
        } finally {
          await connection.query('ROLLBACK');
        }
      }),
    ...sqlAttacks((sql, values) => pool.query(sql, values), store as unknown as Store, table, mysqlDialect),
    close: async () => {
      await pool.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_heads\``);
      await pool.end();
    },
  };
}

async function mariadbTarget(): Promise<Target> {
  const url = new URL(MYSQL_URL as string);
  const pool = mariadb.createPool({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: url.pathname.replace(/^\//, ''),
    connectionLimit: 3,
  });
  const table = uniqueName('attack_history');
  const store = new MysqlHistoryStore(pool, { table });
  await store.ensureSchema();
  const withConnection = async <T>(work: (connection: mariadb.PoolConnection) => Promise<T>) => {
    const connection = await pool.getConnection();
    try {
      return await work(connection);
    } finally {
      await connection.release();
    }
  };
  return {
    name: 'MariaDB (mariadb)',
    store: store as unknown as Store,
    reader: store,
    withSession: (work) => withConnection(work),
    rolledBack: (work) =>
      withConnection(async (connection) => {
        await connection.beginTransaction();
        try {
          await work(connection);
        } finally {
          await connection.rollback();
        }
      }),
    ...sqlAttacks((sql, values) => pool.query(sql, values), store as unknown as Store, table, mysqlDialect),
    close: async () => {
      await pool.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_heads\``);
      await pool.end();
    },
  };
}

async function mongoTarget(): Promise<Target> {
  const server: MongoTarget = await openTarget();
  const client: MongoClient = plainClient(server.url);
  await client.connect();
  const name = uniqueName('attack_history');
  const store = new MongoHistoryStore(client.db(), { collection: name });
  await store.ensureSchema();
  const rows = client.db().collection(name);
  const heads = client.db().collection(`${name}_heads`);
  const withSession = async <T>(work: (session: ClientSession) => Promise<T>) => {
    const session = client.startSession();
    try {
      return await work(session);
    } finally {
      await session.endSession();
    }
  };
  const truncate = async (id: string, from: number) => {
    await rows.deleteMany({ entityType: 'Order', entityId: id, version: { $gte: from } });
  };
  const deleteHead = async (id: string) => {
    await heads.deleteMany({ entityType: 'Order', entityId: id });
  };
  const putHead = async (head: ChainHead) => {
    await deleteHead(head.entityId);
    await heads.insertOne({ ...head, mac: head.mac ?? null });
  };
  return {
    name: 'MongoDB',
    store: store as unknown as Store,
    reader: store,
    withSession: (work) => withSession(work),
    rolledBack: (work) =>
      withSession(async (session) => {
        session.startTransaction();
        try {
          await work(session);
        } finally {
          await session.abortTransaction();
        }
      }),
    strip: async (id) => {
      await rows.updateMany({ entityType: 'Order', entityId: id }, { $unset: { hash: '', prevHash: '' } });
    },
    setTotal: async (id, version, total) => {
      await rows.updateMany({ entityType: 'Order', entityId: id, version }, { $set: { 'snapshot.total': total } });
    },
    truncate,
    deleteHead,
    putHead,
    rewrite: async (id, entries, head) => {
      await truncate(id, -1);
      for (const entry of entries) await rows.insertOne({ ...entry });
      if (head === undefined) await deleteHead(id);
      else await putHead(head);
    },
    close: async () => {
      await rows.drop().catch(() => undefined);
      await heads.drop().catch(() => undefined);
      await client.close();
      await server.close();
    },
  };
}

describe('chain attacks on the memory store', () => attackSuite(async () => memoryTarget(), false));
describe('chain attacks on SQLite', () => attackSuite(sqliteTarget, true));
describe('chain attacks on PGlite', () => attackSuite(pgliteTarget, true));
describe('chain attacks on MongoDB (scripted wire server, or MONGODB_URL)', () => attackSuite(mongoTarget, true));

if (DATABASE_URL === undefined && !REQUIRE_DATABASES) {
  describe.skip('chain attacks on PostgreSQL: skipped because DATABASE_URL is not set (REQUIRE_DATABASES=1 makes this fail)', () => {
    it('attacks a PostgreSQL history', () => {});
  });
} else {
  describe('chain attacks on PostgreSQL (pg)', () =>
    attackSuite(postgresTarget, true, DATABASE_URL === undefined ? 'DATABASE_URL is not set' : undefined));
}

if (MYSQL_URL === undefined && !REQUIRE_DATABASES) {
  describe.skip('chain attacks on MySQL/MariaDB: skipped because MYSQL_URL is not set (REQUIRE_DATABASES=1 makes this fail)', () => {
    it('attacks a MySQL history', () => {});
  });
} else {
  const missing = MYSQL_URL === undefined ? 'MYSQL_URL is not set' : undefined;
  describe('chain attacks on MariaDB through mysql2', () => attackSuite(mysql2Target, true, missing));
  describe('chain attacks on MariaDB through mariadb', () => attackSuite(mariadbTarget, true, missing));
}
