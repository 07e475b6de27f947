import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import {
  consumeDeduplicated,
  Deduplicator,
  decodeEntry,
  dedupId,
  ensureNatsStream,
  mysqlRelaySource,
  natsPublisher,
  postgresRelaySource,
  type RelaySource,
  redisPublisher,
  relay,
  sqliteRelaySource,
} from '../../src/relay/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { suiteNeeding } from '../support/skip.js';
import { entry, MemoryBroker, NATS_URL, REDIS_URL, reachable } from './support.js';

const DATABASE_URL = process.env.DATABASE_URL;
const MYSQL_URL = process.env.MYSQL_URL;
const unique = () => `relay_${process.pid}_${randomBytes(3).toString('hex')}`;

/**
 * A writer that can hold its transaction open: `begin`, write entries, `commit` or `rollback`
 * later, through the store's real save path.
 */
interface Writer {
  begin(): Promise<void>;
  save(e: ReturnType<typeof entry>): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** Takes a shared row lock on a committed entry inside the open transaction (SQL databases with row locks). */
  lockShared?(entityType: string, entityId: string, version: number): Promise<void>;
}

interface Target {
  readonly name: string;
  readonly unavailable: string | undefined;
  open(): Promise<{ source: RelaySource; writer(): Promise<Writer>; close(): Promise<void> }>;
}

const targets: Target[] = [
  {
    name: 'PostgreSQL',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    async open() {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 12 });
      const table = unique();
      const store = new PostgresHistoryStore(pool, { table });
      await store.ensureSchema();
      const clients: pg.PoolClient[] = [];
      return {
        source: postgresRelaySource(pool, { table }),
        async writer() {
          const client = await pool.connect();
          clients.push(client);
          return {
            begin: async () => void (await client.query('BEGIN')),
            save: (e) => store.save(e, client),
            commit: async () => void (await client.query('COMMIT')),
            rollback: async () => void (await client.query('ROLLBACK')),
            lockShared: async (type, id, version) =>
              void (await client.query(
                `SELECT 1 FROM "${table}" WHERE entity_type = $1 AND entity_id = $2 AND version = $3 FOR SHARE`,
                [type, id, version],
              )),
          };
        },
        async close() {
          for (const client of clients) client.release();
          await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_relay"`);
          await pool.end();
        },
      };
    },
  },
  {
    name: 'MariaDB',
    unavailable: MYSQL_URL ? undefined : 'MYSQL_URL is not set',
    async open() {
      const pool = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 12 });
      const table = unique();
      const store = new MysqlHistoryStore(pool, { table });
      await store.ensureSchema();
      const conns: mysql.PoolConnection[] = [];
      return {
        source: mysqlRelaySource(pool, { table }),
        async writer() {
          const conn = await pool.getConnection();
          conns.push(conn);
          return {
            begin: async () => void (await conn.query('START TRANSACTION')),
            save: (e) => store.save(e, conn),
            commit: async () => void (await conn.query('COMMIT')),
            rollback: async () => void (await conn.query('ROLLBACK')),
            lockShared: async (type, id, version) =>
              void (await conn.query(
                `SELECT 1 FROM \`${table}\` WHERE entity_type = ? AND entity_id = ? AND version = ? LOCK IN SHARE MODE`,
                [type, id, version],
              )),
          };
        },
        async close() {
          for (const conn of conns) conn.release();
          await pool.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_relay\``);
          await pool.end();
        },
      };
    },
  },
  {
    name: 'SQLite',
    unavailable: undefined,
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'relay-sqlite-'));
      const file = join(dir, 'history.db');
      const relayDb = new Database(file);
      relayDb.pragma('journal_mode = WAL');
      relayDb.pragma('busy_timeout = 50');
      const store = new SqliteHistoryStore(relayDb);
      await store.ensureSchema();
      const writers: Database.Database[] = [];
      return {
        source: sqliteRelaySource(relayDb),
        async writer() {
          const db = new Database(file);
          db.pragma('busy_timeout = 50');
          writers.push(db);
          const own = new SqliteHistoryStore(db);
          return {
            // SQLite has one writer: the transaction holds the write lock from its first write.
            begin: async () => void db.exec('BEGIN'),
            save: (e) => own.save(e, db),
            commit: async () => void db.exec('COMMIT'),
            rollback: async () => void db.exec('ROLLBACK'),
          };
        },
        async close() {
          for (const db of writers) db.close();
          relayDb.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

for (const target of targets) {
  const suite = suiteNeeding(target.unavailable);
  suite(`relay from ${target.name}`, () => {
    let opened: Awaited<ReturnType<Target['open']>>;
    beforeAll(async () => {
      if (target.unavailable !== undefined) throw new Error(`REQUIRE_DATABASES=1, but ${target.unavailable}.`);
      opened = await target.open();
      await opened.source.ensureSchema();
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('publishes an entry whose transaction began first but committed last, and nothing rolled back', async () => {
      const { source } = opened;
      const broker = new MemoryBroker();
      const early = await opened.writer();
      const late = await opened.writer();
      const aborted = await opened.writer();
      const sqlite = target.name === 'SQLite';

      // The early transaction writes first (earlier timestamp) and stays open.
      await early.begin();
      await early.save(entry('Order', 'early', 1));
      if (!sqlite) {
        await late.begin();
        await late.save(entry('Order', 'late', 1));
        await late.commit();
        await aborted.begin();
        await aborted.save(entry('Order', 'ghost', 1));
      }
      const first = await relay({
        source,
        publisher: broker,
        untilCaughtUp: false,
        pollIntervalMs: 5,
        signal: AbortSignal.timeout(300),
      });
      expect(broker.keys()).toEqual(sqlite ? [] : ['Order/late/1']);

      await early.commit();
      if (!sqlite) await aborted.rollback();
      else {
        await late.begin();
        await late.save(entry('Order', 'late', 1));
        await late.commit();
      }
      const second = await relay({ source, publisher: broker, untilCaughtUp: true, pollIntervalMs: 5 });
      expect(broker.keys().sort()).toEqual(['Order/early/1', 'Order/late/1']);
      expect(second.position).toBeGreaterThanOrEqual(first.position);
      expect(await source.position('default')).toBe(2);
    });

    // SQLite has no row locks: its relay never passes over a row.
    const withRowLocks = target.name === 'SQLite' ? () => undefined : it;
    withRowLocks('never numbers a later version before an earlier one that SKIP LOCKED passed over', async () => {
      const { source } = opened;
      const writer = await opened.writer();
      const locker = await opened.writer();
      if (locker.lockShared === undefined) throw new Error(`${target.name} needs lockShared`);
      const broker = new MemoryBroker();
      // Everything before this test is published first, so only this test's entries are in play.
      await relay({ source, publisher: broker, name: 'locks', untilCaughtUp: true });
      broker.messages.length = 0;
      await writer.begin();
      await writer.save(entry('Ledger', 'l1', 1));
      await writer.commit();
      // Someone holds a lock on the committed version 1 (a foreign-key check, a FOR SHARE read)…
      await locker.begin();
      await locker.lockShared('Ledger', 'l1', 1);
      // …while version 2 commits.
      await writer.begin();
      await writer.save(entry('Ledger', 'l1', 2));
      await writer.commit();
      await relay({ source, publisher: broker, name: 'locks', pollIntervalMs: 5, signal: AbortSignal.timeout(200) });
      expect(broker.keys()).toEqual([]);
      await locker.commit();
      await relay({ source, publisher: broker, name: 'locks', untilCaughtUp: true });
      expect(broker.keys()).toEqual(['Ledger/l1/1', 'Ledger/l1/2']);
    });

    it('keeps per-entity order, resumes from its saved position and resends after a broker failure', async () => {
      const { source } = opened;
      const broker = new MemoryBroker();
      const writer = await opened.writer();
      for (let v = 1; v <= 5; v++) {
        await writer.begin();
        await writer.save(entry('Invoice', 'i1', v));
        await writer.save(entry('Invoice', 'i2', v));
        await writer.commit();
      }
      broker.failNext = 3;
      const errors: unknown[] = [];
      const stats = await relay({
        source,
        publisher: broker,
        name: 'second',
        batchSize: 3,
        pollIntervalMs: 2,
        untilCaughtUp: true,
        onError: (e) => errors.push(e),
      });
      expect(errors).toHaveLength(3);
      expect(stats.errors).toBe(3);
      const invoice = broker.messages.filter((m) => m.entry.entityType === 'Invoice');
      for (const id of ['i1', 'i2']) {
        expect(invoice.filter((m) => m.entry.entityId === id).map((m) => m.entry.version)).toEqual([1, 2, 3, 4, 5]);
      }
      // Everything, the entries of the first test included, exactly once; a second run has nothing to send.
      expect(new Set(broker.keys()).size).toBe(broker.messages.length);
      const again = await relay({ source, publisher: broker, name: 'second', untilCaughtUp: true });
      expect(again.published).toBe(0);
      const sequences = broker.messages.map((m) => m.sequence);
      expect([...sequences].sort((a, b) => a - b)).toEqual(sequences);
    });
  });
}

describe('dedup ids and the consumer-side deduplicator', () => {
  it('escapes the parts so that no two entries share an id', () => {
    expect(dedupId({ entityType: 'A/B', entityId: 'c', version: 1 })).not.toBe(
      dedupId({ entityType: 'A', entityId: 'B/c', version: 1 }),
    );
    expect(dedupId({ entityType: 'Order', entityId: '4 2', version: 3 })).toBe('Order/4%202/3');
  });

  it('drops repeated and older versions per entity, and survives a restart through its snapshot', () => {
    const dedup = new Deduplicator();
    const seen = [1, 2, 3, 2, 3, 4].map((version) => dedup.accept({ entityType: 'O', entityId: '1', version }));
    expect(seen).toEqual([true, true, true, false, false, true]);
    const restarted = new Deduplicator(dedup.snapshot());
    expect(restarted.accept({ entityType: 'O', entityId: '1', version: 4 })).toBe(false);
    expect(restarted.accept({ entityType: 'O', entityId: '1', version: 5 })).toBe(true);
    expect(restarted.dropped).toBe(1);
  });
});

const natsUp = await reachable(NATS_URL);
const redisUp = await reachable(REDIS_URL);

suiteNeeding(natsUp ? undefined : `NATS does not answer at ${NATS_URL} (NATS_URL)`)(
  'relay to NATS JetStream (NATS_URL)',
  () => {
    let nc: NatsConnection;
    const stream = `EH_${randomBytes(4).toString('hex')}`;
    const prefix = `eh-test-${randomBytes(4).toString('hex')}`;
    beforeAll(async () => {
      if (!natsUp) throw new Error(`REQUIRE_DATABASES=1, but no NATS server answers at ${NATS_URL}.`);
      nc = await connect({ servers: NATS_URL });
    });
    afterAll(async () => {
      if (!nc) return;
      const jsm = await nc.jetstreamManager();
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
    });

    it('sets Nats-Msg-Id to the dedup id, so a republished entry is stored once', async () => {
      const jsm = await nc.jetstreamManager();
      await ensureNatsStream(jsm, stream, [`${prefix}.>`]);
      const db = new Database(':memory:');
      const store = new SqliteHistoryStore(db);
      await store.ensureSchema();
      for (let v = 1; v <= 3; v++) await store.save(entry('Order', 'n1', v));
      const source = sqliteRelaySource(db);
      const publisher = natsPublisher(nc.jetstream(), { subject: (e) => `${prefix}.${e.entityType}` });
      const first = await relay({ source, publisher, untilCaughtUp: true });
      // A crash before the position was saved: the relay starts over and sends all three again.
      await source.savePosition('replay', 0);
      const replay = await relay({ source, publisher, name: 'replay', untilCaughtUp: true });
      expect(first).toMatchObject({ published: 3, duplicates: 0 });
      expect(replay).toMatchObject({ published: 3, duplicates: 3 });
      const info = await jsm.streams.info(stream);
      expect(info.state.messages).toBe(3);
      const stored = await jsm.streams.getMessage(stream, { seq: info.state.first_seq });
      expect(stored.header.get('Nats-Msg-Id')).toBe('Order/n1/1');
      expect(decodeEntry(stored.data)).toMatchObject({ entityType: 'Order', entityId: 'n1', version: 1 });
      expect(decodeEntry(stored.data).timestamp).toBeInstanceOf(Date);
    });
  },
);

suiteNeeding(redisUp ? undefined : `Redis does not answer at ${REDIS_URL} (REDIS_URL)`)(
  'relay to Redis Streams (REDIS_URL)',
  () => {
    let redis: Redis;
    const stream = `eh-test-${randomBytes(4).toString('hex')}`;
    beforeAll(async () => {
      if (!redisUp) throw new Error(`REQUIRE_DATABASES=1, but no Redis server answers at ${REDIS_URL}.`);
      redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    });
    afterAll(async () => {
      await redis?.del(stream);
      redis?.disconnect();
    });

    it('XADDs each entry with its dedup id; consumeDeduplicated hands each entry over once', async () => {
      const db = new Database(':memory:');
      const store = new SqliteHistoryStore(db);
      await store.ensureSchema();
      for (let v = 1; v <= 4; v++) await store.save(entry('Order', 'r1', v));
      await store.save(entry('Order', 'r2', 1));
      const source = sqliteRelaySource(db);
      const publisher = redisPublisher(redis, { stream });
      await relay({ source, publisher, untilCaughtUp: true });
      await source.savePosition('replay', 2);
      await relay({ source, publisher, name: 'replay', untilCaughtUp: true });
      expect(await redis.xlen(stream)).toBe(8);
      const got: string[] = [];
      const result = await consumeDeduplicated(redis, (e) => void got.push(dedupId(e)), { stream, untilEmpty: true });
      expect(got).toEqual(['Order/r1/1', 'Order/r1/2', 'Order/r1/3', 'Order/r1/4', 'Order/r2/1']);
      expect(result).toMatchObject({ duplicatesDropped: 3, delivered: 5 });
      const [[, fields]] = (await redis.xrange(stream, '-', '+', 'COUNT', 1)) as [[string, string[]]];
      expect(fields.slice(0, 2)).toEqual(['id', 'Order/r1/1']);
    });
  },
);
