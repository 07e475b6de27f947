import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import type { Order } from '../integration/behaviour.js';
import { runBehaviourSuite } from '../integration/behaviour.js';
import type { SuiteStore } from '../integration/fixture.js';
import { countHistory, postgresTamper } from '../postgres/shared.js';
import { type OrmCase, runOrmSuite, uniqueName } from './orm-suite.js';
import { type OrmDriver, RootSessionFixture } from './root-session-fixture.js';
import { holdTransaction } from './switchable.js';

const DATABASE_URL = process.env.DATABASE_URL;

/** The generated client's surface the case uses (the real type is generated at run time). */
interface OrdersDelegate {
  create(args: { data: Record<string, unknown> }): Promise<unknown>;
  updateMany(args: { where: Record<string, unknown>; data: Record<string, unknown> }): Promise<{ count: number }>;
  deleteMany(args: { where: Record<string, unknown> }): Promise<{ count: number }>;
  findUnique(args: { where: { id: string } }): Promise<{ total: number; version: number; timestamp: Date } | null>;
}
interface Prisma {
  order: OrdersDelegate;
  $transaction<R>(work: (tx: Prisma) => Promise<R>): Promise<R>;
  $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
  $disconnect(): Promise<void>;
}

/**
 * Generates a Prisma 7 client (`prisma-client` generator, no query engine: the pg driver adapter
 * runs the queries) for a table of this process. `prisma generate` does not run the schema
 * engine, but the CLI fetches it from binaries.prisma.sh first; where that host is unreachable
 * (CI without internet) PRISMA_SCHEMA_ENGINE_BINARY names a stand-in so that nothing is fetched.
 */
function generateClient(table: string): string {
  const dir = join(process.cwd(), '.tmp', 'prisma', uniqueName('client'));
  mkdirSync(dir, { recursive: true });
  const schema = join(dir, 'schema.prisma');
  writeFileSync(
    schema,
    `generator client {\n  provider = "prisma-client"\n  output = "./generated"\n  engineType = "client"\n}\n` +
      `datasource db {\n  provider = "postgresql"\n}\n` +
      `model Order {\n  id String @id\n  total Float\n  version Int\n  timestamp DateTime @db.Timestamptz\n  @@map("${table}")\n}\n`,
  );
  const cli = createRequire(import.meta.url).resolve('prisma/build/index.js');
  execFileSync(process.execPath, [cli, 'generate', '--schema', schema], {
    cwd: dir,
    stdio: 'pipe',
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath },
  });
  return dir;
}

/** Prisma 7 on PostgreSQL through @prisma/adapter-pg; the history store on a pg Pool of the same database. */
class PrismaCase implements OrmCase<Prisma> {
  readonly name = 'Prisma 7 on PostgreSQL (@prisma/adapter-pg)';
  readonly adapter = 'prisma';
  readonly replacesRoot = true;
  readonly sharesCallerTxId = true;
  readonly unavailable = DATABASE_URL ? undefined : 'DATABASE_URL is not set';
  readonly table = uniqueName('orders');
  readonly historyTable = uniqueName('history');
  #dir: string | undefined;
  #prisma: Prisma | undefined;
  #pool: pg.Pool | undefined;
  #store: SuiteStore<unknown> | undefined;

  get root(): Prisma {
    if (!this.#prisma) throw new Error(`${this.name} is not open`);
    return this.#prisma;
  }

  get store(): SuiteStore<unknown> {
    if (!this.#store) throw new Error(`${this.name} is not open`);
    return this.#store;
  }

  async open(): Promise<void> {
    this.#dir = generateClient(this.table);
    const { PrismaClient } = (await import(join(this.#dir, 'generated', 'client.ts'))) as {
      PrismaClient: new (options: { adapter: PrismaPg }) => Prisma;
    };
    this.#prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: DATABASE_URL }) });
    this.#pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    await this.#pool.query(
      `CREATE TABLE ${this.table} (id text PRIMARY KEY, total double precision NOT NULL, version integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
    );
    this.#store = new PostgresHistoryStore(this.#pool, { table: this.historyTable });
    await this.#store.ensureSchema();
  }

  async close(): Promise<void> {
    try {
      await this.#pool?.query(`DROP TABLE IF EXISTS ${this.table}, ${this.historyTable}`);
    } finally {
      await this.#prisma?.$disconnect();
      await this.#pool?.end();
      if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    }
  }

  transaction<R>(work: (tx: Prisma) => Promise<R>): Promise<R> {
    return this.root.$transaction(work);
  }

  insert(prisma: Prisma, order: Order): Promise<unknown> {
    return prisma.order.create({
      data: { id: order.id, total: order.total, version: order.version, timestamp: order.timestamp },
    });
  }

  update(prisma: Prisma, order: Order, expected: number | undefined): Promise<unknown> {
    return prisma.order.updateMany({
      where: { id: order.id, version: expected },
      data: { total: order.total, version: order.version, timestamp: order.timestamp },
    });
  }

  async read(id: string): Promise<{ total: number; version: number } | undefined> {
    const row = await this.root.order.findUnique({ where: { id } });
    return row === null ? undefined : { total: row.total, version: row.version };
  }
}

runOrmSuite(new PrismaCase());

/** The shared behaviour suite through Prisma: a held-open interactive `$transaction()` is the caller's own. */
function prismaDriver(): OrmDriver<Prisma> {
  const table = uniqueName('orders');
  const historyTable = uniqueName('history');
  let dir: string | undefined;
  let prisma: Prisma | undefined;
  let pool: pg.Pool | undefined;
  const opened = () => {
    if (!prisma || !pool) throw new Error('Prisma fixture is not open');
    return { prisma, pool };
  };
  const guard = (id: string, expected: number | undefined) =>
    expected === undefined ? { id } : { id, version: expected };
  return {
    name: 'Prisma 7 on PostgreSQL (@prisma/adapter-pg)',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    concurrentSessions: true,
    async open() {
      dir = generateClient(table);
      const { PrismaClient } = (await import(join(dir, 'generated', 'client.ts'))) as {
        PrismaClient: new (options: { adapter: PrismaPg }) => Prisma;
      };
      prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: DATABASE_URL, max: 6 }) });
      pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3 });
      await pool.query(
        `CREATE TABLE ${table} (id text PRIMARY KEY, total double precision NOT NULL, version integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
      );
      const store = new PostgresHistoryStore(pool, { table: historyTable });
      await store.ensureSchema();
      const live = pool;
      return { root: prisma, store, tamper: postgresTamper(() => live, historyTable) };
    },
    async close() {
      try {
        await pool?.query(`DROP TABLE IF EXISTS ${table}, ${historyTable}`);
      } finally {
        await prisma?.$disconnect();
        await pool?.end();
        if (dir) rmSync(dir, { recursive: true, force: true });
        prisma = pool = dir = undefined;
      }
    },
    begin: (root) => holdTransaction<Prisma>((work) => root.$transaction(work)),
    insert: (s, { id, total, version, timestamp }) => s.order.create({ data: { id, total, version, timestamp } }),
    update: (s, { id, total, version, timestamp }, expected) =>
      s.order.updateMany({ where: guard(id, expected), data: { total, version, timestamp } }),
    remove: (s, { id }, expected) => s.order.deleteMany({ where: guard(id, expected) }),
    async read(id) {
      const row = await opened().prisma.order.findUnique({ where: { id } });
      return row === null ? undefined : { id, total: row.total, version: row.version, timestamp: row.timestamp };
    },
    countHistory: (type, id) => countHistory(opened().pool, historyTable, type, id),
    ping: async (root) => ((await root.$queryRawUnsafe('SELECT 1 AS ok')) as { ok: number }[])[0]?.ok === 1,
  };
}

runBehaviourSuite(new RootSessionFixture(prismaDriver()));
