/**
 * The outbox relay under fire: concurrent decorated writers (with rollbacks and transactions held
 * open while others commit) write through the real stores while the relay runs as a child
 * process that is SIGKILLed and restarted, and the NATS server (our own child, never the
 * system's) restarts once. Afterwards each broker, after deduplication, holds every committed
 * entry exactly once, none of a rolled-back transaction, each entity's versions in order.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Redis } from 'ioredis';
import * as mariadb from 'mariadb';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { expectedVersion, HistoryTracked, VersionConflictError, Versioned } from '../../src/index.js';
import { MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { Deduplicator, decodeEntry, dedupId, ensureNatsStream } from '../../src/relay/index.js';
import { suiteNeeding } from '../support/skip.js';
import { useFigures } from './support/figures.js';

const figures = useFigures('relay');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const KILLS = 3;
const WRITE_MS = Number(process.env.RELIABILITY_RELAY_MS ?? 7000);
const WRITERS = 4;
const ENTITIES = 10;
const SOURCE = fileURLToPath(new URL('./relay-child.ts', import.meta.url));
const CHILD = join(process.cwd(), '.tmp', 'reliability', `relay-child-${process.pid}.mjs`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Order {
  id: string;
  total: number;
  note: string;
  version?: number;
  timestamp?: Date;
}

/** A database the writers and the relay use: raw SQL for the orders, the built-in store for history. */
interface Db<S> {
  readonly kind: 'postgres' | 'mariadb';
  readonly url: string;
  readonly historyTable: string;
  readonly store: PostgresHistoryStore | MysqlHistoryStore;
  session(): Promise<S>;
  release(session: S): void;
  read(id: string): Promise<{ version: number } | undefined>;
  insert(session: S, order: Order): Promise<unknown>;
  update(session: S, order: Order, expected: number | undefined): Promise<unknown>;
  committed(): Promise<{ entity_type: string; entity_id: string; version: number; note: string }[]>;
  close(): Promise<void>;
}

async function openPostgres(url: string): Promise<Db<pg.PoolClient>> {
  const pool = new pg.Pool({ connectionString: url, max: WRITERS + 2 });
  const orders = `relay_orders_${randomBytes(3).toString('hex')}`;
  const historyTable = `relay_history_${randomBytes(3).toString('hex')}`;
  await pool.query(
    `CREATE TABLE "${orders}" (id text PRIMARY KEY, total int NOT NULL, note text, version int NOT NULL, ts timestamptz)`,
  );
  const store = new PostgresHistoryStore(pool, { table: historyTable });
  await store.ensureSchema();
  return {
    kind: 'postgres',
    url,
    historyTable,
    store,
    session: () => pool.connect(),
    release: (s) => s.release(),
    async read(id) {
      const { rows } = await pool.query(`SELECT version FROM "${orders}" WHERE id = $1`, [id]);
      return rows[0] as { version: number } | undefined;
    },
    insert: (s, o) =>
      s.query(`INSERT INTO "${orders}" (id, total, note, version, ts) VALUES ($1, $2, $3, $4, $5)`, [
        o.id,
        o.total,
        o.note,
        o.version,
        o.timestamp,
      ]),
    update: (s, o, expected) =>
      s.query(`UPDATE "${orders}" SET total = $2, note = $3, version = $4, ts = $5 WHERE id = $1 AND version = $6`, [
        o.id,
        o.total,
        o.note,
        o.version,
        o.timestamp,
        expected,
      ]),
    async committed() {
      const { rows } = await pool.query(
        `SELECT entity_type, entity_id, version, snapshot->>'note' AS note FROM "${historyTable}" ORDER BY 1, 2, 3`,
      );
      return rows;
    },
    async close() {
      await pool.query(`DROP TABLE IF EXISTS "${orders}", "${historyTable}", "${historyTable}_relay"`);
      await pool.end();
    },
  };
}

async function openMariadb(url: string): Promise<Db<mariadb.PoolConnection>> {
  const u = new URL(url);
  const pool = mariadb.createPool({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
    connectionLimit: WRITERS + 2,
  });
  const orders = `relay_orders_${randomBytes(3).toString('hex')}`;
  const historyTable = `relay_history_${randomBytes(3).toString('hex')}`;
  await pool.query(
    `CREATE TABLE \`${orders}\` (id VARCHAR(64) PRIMARY KEY, total INT NOT NULL, note TEXT, version INT NOT NULL, ts DATETIME(3)) ENGINE=InnoDB`,
  );
  const store = new MysqlHistoryStore(pool, { table: historyTable });
  await store.ensureSchema();
  return {
    kind: 'mariadb',
    url,
    historyTable,
    store,
    session: () => pool.getConnection(),
    release: (s) => void s.release(),
    async read(id) {
      const rows = (await pool.query(`SELECT version FROM \`${orders}\` WHERE id = ?`, [id])) as { version: number }[];
      return rows[0];
    },
    insert: (s, o) =>
      s.query(`INSERT INTO \`${orders}\` (id, total, note, version, ts) VALUES (?, ?, ?, ?, ?)`, [
        o.id,
        o.total,
        o.note,
        o.version,
        o.timestamp,
      ]),
    update: (s, o, expected) =>
      s.query(`UPDATE \`${orders}\` SET total = ?, note = ?, version = ?, ts = ? WHERE id = ? AND version = ?`, [
        o.total,
        o.note,
        o.version,
        o.timestamp,
        o.id,
        expected,
      ]),
    async committed() {
      const rows = (await pool.query(
        `SELECT entity_type, entity_id, version, JSON_UNQUOTE(JSON_EXTRACT(snapshot, '$.note')) AS note FROM \`${historyTable}\` ORDER BY 1, 2, 3`,
      )) as { entity_type: string; entity_id: string; version: number; note: string }[];
      return rows.map((r) => ({ ...r, version: Number(r.version) }));
    },
    async close() {
      await pool.query(`DROP TABLE IF EXISTS \`${orders}\`, \`${historyTable}\`, \`${historyTable}_relay\``);
      await pool.end();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Our own NATS server with JetStream on disk, restartable on the same port and store. */
class OwnNats {
  #child: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'relay-nats-'));
  port = 0;
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const child = spawn('/usr/sbin/nats-server', ['-js', '-sd', this.dir, '-p', String(this.port), '-a', '127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${out}`)), 10_000);
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stderr?.on('data', onData);
      child.stdout?.on('data', onData);
      child.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${out}`)));
    });
  }
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function startRelay(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(child);
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`relay child exited (${code ?? signal}) before ready: ${err}`)),
    );
  });
}

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  return exited;
}

function services<S>(db: Db<S>) {
  @Versioned()
  @HistoryTracked(db.store as never, { entityType: 'Order' })
  class OrderService {
    async save(order: Order, session: S): Promise<unknown> {
      return this.#write(order, await db.insert(session, order));
    }
    async update(order: Order, session: S): Promise<unknown> {
      return this.#write(order, await db.update(session, order, expectedVersion(order)));
    }
    /** Holds the transaction open a while (others commit meanwhile), or fails after writing (rollback). */
    async #write(order: Order, result: unknown): Promise<unknown> {
      if (order.note.startsWith('long')) await sleep(200 + Math.random() * 1200);
      if (order.note.startsWith('fail')) throw new Error(`rolled back ${order.note}`);
      return result;
    }
  }
  return new OrderService();
}

const targets = [
  { name: 'postgres', variable: 'DATABASE_URL', url: process.env.DATABASE_URL, open: openPostgres },
  { name: 'mariadb', variable: 'MYSQL_URL', url: process.env.MYSQL_URL, open: openMariadb },
] as const;

beforeAll(async () => {
  await build({
    entryPoints: [SOURCE],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: CHILD,
    packages: 'external',
    tsconfig: 'tsconfig.json',
    logLevel: 'error',
  });
});
const totals = { entries: 0, kills: 0, restarts: 0, duplicatesDropped: 0, gaps: 0, outOfOrder: 0, lost: 0 };
afterAll(() => {
  rmSync(CHILD, { force: true });
  console.log(
    `RELAY: entries=${totals.entries} kills=${totals.kills} restarts=${totals.restarts} ` +
      `duplicatesDropped=${totals.duplicatesDropped} gaps=${totals.gaps} outOfOrder=${totals.outOfOrder} lost=${totals.lost}`,
  );
});

for (const target of targets) {
  suiteNeeding(target.url ? undefined : `${target.variable} is not set`)(`the outbox relay from ${target.name}`, () => {
    const nats = new OwnNats();
    let db: Db<unknown>;
    let redis: Redis;
    let nc: NatsConnection | undefined;
    const streamName = `EH_${randomBytes(4).toString('hex')}`;
    const prefix = `eh-rel-${randomBytes(4).toString('hex')}`;
    const redisStream = `eh-rel-${randomBytes(4).toString('hex')}`;

    beforeAll(async () => {
      if (!target.url) throw new Error(`REQUIRE_DATABASES=1, but the ${target.name} URL is not set.`);
      db = (await target.open(target.url)) as Db<unknown>;
      redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
      await redis.connect().catch((error: unknown) => {
        throw new Error(`no Redis server at ${REDIS_URL} (set REDIS_URL): ${(error as Error).message}`);
      });
      await nats.start();
      nc = await connect({ servers: nats.url });
      await ensureNatsStream(await nc.jetstreamManager(), streamName, [`${prefix}.>`]);
      await nc.close();
      nc = undefined;
    });
    afterAll(async () => {
      await nc?.close().catch(() => undefined);
      await nats.dispose();
      await redis?.del(redisStream).catch(() => undefined);
      redis?.disconnect();
      await db?.close();
    });

    it('every committed entry exactly once after dedup, none rolled back, in version order, through kills and a broker restart', async () => {
      const started = Date.now();
      const service = services(db);
      const args = [db.kind, db.url, db.historyTable, nats.url, prefix, REDIS_URL, redisStream];
      let relayChild = await startRelay(args);
      const rolledBack = new Set<string>();
      let commits = 0;
      let longCommits = 0;
      let conflicts = 0;
      const deadline = Date.now() + WRITE_MS;
      const writer = async (w: number) => {
        const session = await db.session();
        let n = 0;
        try {
          while (Date.now() < deadline) {
            const id = `o${Math.floor(Math.random() * ENTITIES)}`;
            const roll = Math.random();
            const note = `${roll < 0.15 ? 'fail' : roll < 0.27 ? 'long' : 'ok'}-${w}-${n++}`;
            const row = await db.read(id);
            const order: Order = { id, total: n, note, ...(row ? { version: Number(row.version) } : {}) };
            try {
              if (row === undefined) await service.save(order, session);
              else await service.update(order, session);
              commits++;
              if (note.startsWith('long')) longCommits++;
            } catch (error) {
              if (note.startsWith('fail') && (error as Error).message.includes('rolled back')) rolledBack.add(note);
              else if (error instanceof VersionConflictError) conflicts++;
              else throw error;
            }
          }
        } finally {
          db.release(session);
        }
      };
      const writers = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));

      // Chaos while the writers run: three SIGKILLs of the relay, one restart of the broker.
      let kills = 0;
      let restarts = 0;
      const step = WRITE_MS / (KILLS + 2);
      for (let k = 0; k < KILLS; k++) {
        await sleep(step * (0.6 + Math.random() * 0.6));
        await kill(relayChild, 'SIGKILL');
        kills++;
        if (k === 1) {
          await nats.stop();
          await sleep(300);
          await nats.start();
          restarts++;
        }
        relayChild = await startRelay(args);
      }
      await writers;

      // Let the relay catch up, then stop it gracefully.
      const committed = await db.committed();
      const natsMessages = async () => {
        const conn = await connect({ servers: nats.url });
        try {
          const jsm = await conn.jetstreamManager();
          const info = await jsm.streams.info(streamName);
          const out: { msgId: string; payload: Uint8Array }[] = [];
          for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
            const msg = await jsm.streams.getMessage(streamName, { seq });
            out.push({ msgId: msg.header.get('Nats-Msg-Id'), payload: msg.data });
          }
          return out;
        } finally {
          await conn.close();
        }
      };
      const catchUp = Date.now() + 20_000;
      for (;;) {
        const count = await redis.xlen(redisStream);
        const distinct = new Set((await natsMessages()).map((m) => m.msgId)).size;
        if (distinct >= committed.length && count >= committed.length) break;
        if (Date.now() > catchUp) break;
        await sleep(200);
      }
      expect(await kill(relayChild, 'SIGTERM')).toBe(0);

      // What each broker holds, deduplicated on the consumer side by per-entity version watermark.
      const expected = new Map(
        committed.map((r) => [
          dedupId({ entityType: r.entity_type, entityId: r.entity_id, version: r.version }),
          r.note,
        ]),
      );
      const check = (name: string, entries: ReturnType<typeof decodeEntry>[]) => {
        const dedup = new Deduplicator();
        const delivered = new Map<string, string>();
        let outOfOrder = 0;
        let fromRolledBack = 0;
        const lastFirst = new Map<string, number>();
        for (const entry of entries) {
          const key = dedupId(entry);
          const entity = `${entry.entityType}/${entry.entityId}`;
          const note = String((entry.snapshot as { note?: unknown }).note);
          if (rolledBack.has(note)) fromRolledBack++;
          if (!delivered.has(key)) {
            // A first delivery must come after every earlier version's first delivery.
            if ((lastFirst.get(entity) ?? 0) >= entry.version) outOfOrder++;
            lastFirst.set(entity, entry.version);
          }
          if (!dedup.accept(entry)) continue;
          if (delivered.has(key)) outOfOrder++;
          delivered.set(key, note);
        }
        const lost = [...expected.keys()].filter((key) => !delivered.has(key)).length;
        const extra = [...delivered.keys()].filter((key) => !expected.has(key)).length;
        const wrongContent = [...delivered].filter(
          ([key, note]) => expected.has(key) && expected.get(key) !== note,
        ).length;
        let gaps = 0;
        const versions = new Map<string, number[]>();
        for (const key of delivered.keys()) {
          const cut = key.lastIndexOf('/');
          const list = versions.get(key.slice(0, cut)) ?? [];
          list.push(Number(key.slice(cut + 1)));
          versions.set(key.slice(0, cut), list);
        }
        for (const list of versions.values()) {
          list.sort((a, b) => a - b);
          for (let i = 1; i < list.length; i++) if (list[i] !== (list[i - 1] as number) + 1) gaps++;
        }
        return {
          name,
          raw: entries.length,
          delivered: delivered.size,
          duplicatesDropped: dedup.dropped,
          lost,
          extra,
          wrongContent,
          outOfOrder,
          fromRolledBack,
          gaps,
        };
      };
      const fromNats = (await natsMessages()).map((m) => decodeEntry(m.payload));
      const natsIdsMatch = (await natsMessages()).every((m) => {
        const e = decodeEntry(m.payload);
        return m.msgId === dedupId(e);
      });
      const fromRedis = ((await redis.xrange(redisStream, '-', '+')) as [string, string[]][]).map(([, fields]) =>
        decodeEntry(fields[fields.indexOf('entry') + 1] as string),
      );
      const results = [check('nats', fromNats), check('redis', fromRedis)];
      const duplicatesDropped = results.reduce((sum, r) => sum + r.duplicatesDropped, 0);
      const gaps = results.reduce((sum, r) => sum + r.gaps, 0);
      const outOfOrder = results.reduce((sum, r) => sum + r.outOfOrder, 0);
      const lost = results.reduce((sum, r) => sum + r.lost, 0);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(
        `RELAY[${target.name}]: entries=${committed.length} kills=${kills} restarts=${restarts} duplicatesDropped=${duplicatesDropped} ` +
          `gaps=${gaps} outOfOrder=${outOfOrder} lost=${lost} rolledBack=${rolledBack.size} longTransactions=${longCommits} ` +
          `conflicts=${conflicts} natsRaw=${results[0]?.raw} redisRaw=${results[1]?.raw} seconds=${seconds}`,
      );
      totals.entries += committed.length;
      totals.kills += kills;
      totals.restarts += restarts;
      totals.duplicatesDropped += duplicatesDropped;
      totals.gaps += gaps;
      totals.outOfOrder += outOfOrder;
      totals.lost += lost;
      for (const [name, count] of Object.entries({
        'committed entries relayed': committed.length,
        'relay SIGKILLs': kills,
        'broker restarts': restarts,
        'duplicates dropped by the consumer': duplicatesDropped,
        'rolled-back calls': rolledBack.size,
        'long transactions committed late': longCommits,
        'entries lost, out of order or from rollbacks':
          lost + outOfOrder + gaps + results.reduce((sum, r) => sum + r.fromRolledBack + r.extra, 0),
      })) {
        figures.add('relay', name, target.name, count);
      }
      expect(committed.length).toBeGreaterThan(20);
      expect(commits).toBe(committed.length);
      expect(rolledBack.size).toBeGreaterThan(0);
      expect(longCommits).toBeGreaterThan(0);
      expect(natsIdsMatch).toBe(true);
      for (const result of results) {
        expect(result).toMatchObject({ lost: 0, extra: 0, wrongContent: 0, outOfOrder: 0, fromRolledBack: 0, gaps: 0 });
        expect(result.delivered).toBe(committed.length);
      }
    }, 90_000);
  });
}
