// Compiles the README's quick start as a user would, against the built package, twice:
// as a NestJS-style CommonJS project with experimentalDecorators + emitDecoratorMetadata, and as
// an ES module project with TC39 standard decorators. Then runs both and checks their output.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const work = join(root, '.tmp', 'consumer');
rmSync(work, { recursive: true, force: true });

const quickStart = `
import 'reflect-metadata';
import Database from 'better-sqlite3';
import { expectedVersion, HistoryTracked, Versioned, VersionConflictError } from 'event-history';
import { SqliteHistoryStore } from 'event-history/sqlite';

interface Order { id: string; total: number; version?: number; timestamp?: Date }

@Versioned()
@HistoryTracked('history')
class OrderService {
  constructor(readonly db: Database.Database, readonly history: SqliteHistoryStore) {}
  async save(order: Order, session?: Database.Database) {
    session!.prepare('INSERT INTO orders (id, total, version) VALUES (?, ?, ?)').run(order.id, order.total, order.version);
  }
  async update(order: Order, session?: Database.Database) {
    return session!.prepare('UPDATE orders SET total = ?, version = ? WHERE id = ? AND version = ?')
      .run(order.total, order.version, order.id, expectedVersion(order));
  }
}

async function main() {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER, version INTEGER)');
  const history = new SqliteHistoryStore(db);
  await history.ensureSchema();
  const orders = new OrderService(db, history);
  const order: Order = { id: 'o1', total: 10 };
  await orders.save(order, db);
  const stale = { ...order };
  order.total = 20;
  await orders.update(order, db);
  let conflict = false;
  try { await orders.update(stale, db); } catch (e) { conflict = e instanceof VersionConflictError; }
  const versions = (await history.list('Order', 'o1')).map((e) => e.version + ':' + e.op);
  console.log(JSON.stringify({ version: order.version, versions, conflict }));
}
main();
`;

const expected = JSON.stringify({ version: 2, versions: ['1:create', '2:update'], conflict: true });

const projects = {
  legacy: {
    packageType: 'commonjs',
    // A new NestJS project's settings: CommonJS, and so Node10 module resolution.
    compilerOptions: { module: 'CommonJS', experimentalDecorators: true, emitDecoratorMetadata: true },
  },
  standard: {
    packageType: 'module',
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' },
  },
};

for (const [name, project] of Object.entries(projects)) {
  const dir = join(work, name);
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(root, join(dir, 'node_modules', 'event-history'));
  for (const dep of ['reflect-metadata', 'better-sqlite3', 'bindings', 'file-uri-to-path']) {
    symlinkSync(join(root, 'node_modules', dep), join(dir, 'node_modules', dep));
  }
  for (const types of ['node', 'better-sqlite3']) {
    symlinkSync(join(root, 'node_modules', '@types', types), join(dir, 'node_modules', '@types', types));
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, type: project.packageType }));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', strict: true, esModuleInterop: true, skipLibCheck: false, types: ['node'], outDir: 'out', ...project.compilerOptions },
      include: ['quick-start.ts'],
    }),
  );
  writeFileSync(join(dir, 'quick-start.ts'), quickStart);
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { stdio: 'inherit' });
  const output = execFileSync(process.execPath, [join(dir, 'out', 'quick-start.js')], { encoding: 'utf8' }).trim();
  if (output !== expected) {
    throw new Error(`quick start compiled as ${name} printed ${output}, expected ${expected}`);
  }
  console.log(`quick start, ${name} decorators (${project.packageType}): ${output}`);
}

// Both builds in one process, as a NestJS app compiled to CommonJS next to an ESM tool loads them:
// they must share one state (locks, stamps, context) and one error identity.
{
  const dir = join(work, 'dual');
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  symlinkSync(root, join(dir, 'node_modules', 'event-history'));
  for (const dep of ['better-sqlite3', 'bindings', 'file-uri-to-path']) {
    symlinkSync(join(root, 'node_modules', dep), join(dir, 'node_modules', dep));
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer-dual', type: 'module' }));
  writeFileSync(
    join(dir, 'dual.mjs'),
    `
import { createRequire } from 'node:module';
import Database from 'better-sqlite3';
import * as esm from 'event-history';
import { SqliteHistoryStore } from 'event-history/sqlite';
const cjs = createRequire(import.meta.url)('event-history');
if (cjs.Versioned === esm.Versioned) throw new Error('expected two copies of the library');

function service(library, store) {
  class Accounts {
    constructor(history) { this.history = history; }
    async save(account, db) {
      db.prepare('INSERT INTO accounts VALUES (?, ?)').run(account.id, account.version);
      await this.during?.();
    }
    async update(account, db) {
      return db.prepare('UPDATE accounts SET version = ? WHERE id = ? AND version = ?')
        .run(account.version, account.id, library.expectedVersion(account));
    }
  }
  library.HistoryTracked('history')(Accounts);
  library.Versioned()(Accounts);
  return new Accounts(store);
}

const db = new Database(':memory:');
db.exec('CREATE TABLE accounts (id TEXT PRIMARY KEY, version INTEGER)');
const store = new SqliteHistoryStore(db);
await store.ensureSchema();
const fromCjs = service(cjs, store);
const fromEsm = service(esm, store);

// A CommonJS call holds the connection and then fails; the ESM call waits for it, and is kept.
let release;
fromCjs.during = () => new Promise((_, reject) => { release = () => reject(new Error('fails')); });
const first = fromCjs.save({ id: 'a' }, db).catch((e) => e.message);
await new Promise((r) => setTimeout(r, 10));
const second = fromEsm.save({ id: 'b' }, db);
await new Promise((r) => setTimeout(r, 10));
release();
fromCjs.during = undefined;
const results = [await first, await second.then(() => 'ok')];
const ids = db.prepare('SELECT id FROM accounts').all().map((row) => row.id);

// A conflict from the CommonJS copy is an instance of the ESM copy's class.
const account = { id: 'c' };
await fromCjs.save(account, db);
const stale = { ...account };
await fromEsm.update(account, db);
let conflict = false;
try { await fromCjs.update(stale, db); } catch (e) { conflict = e instanceof esm.VersionConflictError && e instanceof esm.EventHistoryError; }
console.log(JSON.stringify({ results, ids, conflict }));
`,
  );
  const output = execFileSync(process.execPath, [join(dir, 'dual.mjs')], { encoding: 'utf8' }).trim();
  const expectedDual = JSON.stringify({ results: ['fails', 'ok'], ids: ['b'], conflict: true });
  if (output !== expectedDual) throw new Error(`the ESM and CJS builds together printed ${output}, expected ${expectedDual}`);
  console.log(`ESM and CommonJS builds in one process: ${output}`);
}

// A NestJS project's default test set-up: Jest with ts-jest, CommonJS, experimentalDecorators,
// against the built package. `jest.isolateModules` loads a second copy of the package in the same
// test, as two copies of a dependency tree do: they must share one state and one error identity.
{
  const dir = join(work, 'jest');
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(root, join(dir, 'node_modules', 'event-history'));
  for (const dep of ['reflect-metadata', 'better-sqlite3', 'bindings', 'file-uri-to-path', 'ts-jest', 'jest']) {
    symlinkSync(join(root, 'node_modules', dep), join(dir, 'node_modules', dep));
  }
  for (const types of ['node', 'jest', 'better-sqlite3']) {
    symlinkSync(join(root, 'node_modules', '@types', types), join(dir, 'node_modules', '@types', types));
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer-jest', private: true }));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'commonjs',
        target: 'ES2021',
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        strict: true,
        esModuleInterop: true,
        skipLibCheck: true,
        types: ['node', 'jest'],
      },
    }),
  );
  writeFileSync(
    join(dir, 'jest.config.js'),
    `module.exports = { rootDir: __dirname, testEnvironment: 'node', testRegex: '.*\\\\.spec\\\\.ts$', transform: { '^.+\\\\.(t|j)s$': 'ts-jest' }, moduleFileExtensions: ['js', 'json', 'ts'], modulePaths: [${JSON.stringify(join(root, 'node_modules'))}] };`,
  );
  writeFileSync(
    join(dir, 'orders.service.spec.ts'),
    `
import 'reflect-metadata';
import Database from 'better-sqlite3';
import { expectedVersion, HistoryTracked, Versioned, VersionConflictError } from 'event-history';
import { SqliteHistoryStore } from 'event-history/sqlite';

interface Order { id: string; total: number; version?: number; timestamp?: Date }

@Versioned()
@HistoryTracked('history')
class OrdersService {
  constructor(readonly history: SqliteHistoryStore) {}
  async save(order: Order, db: Database.Database) {
    db.prepare('INSERT INTO orders VALUES (?, ?, ?)').run(order.id, order.total, order.version);
  }
  async update(order: Order, db: Database.Database) {
    return db.prepare('UPDATE orders SET total = ?, version = ? WHERE id = ? AND version = ?')
      .run(order.total, order.version, order.id, expectedVersion(order));
  }
}

describe('OrdersService under Jest and ts-jest (CommonJS)', () => {
  it('versions, records history and reports a stale update as a conflict, across copies of the package', async () => {
    let copy: typeof import('event-history') | undefined;
    jest.isolateModules(() => {
      copy = require('event-history');
    });
    expect(copy!.VersionConflictError).not.toBe(VersionConflictError);
    const db = new Database(':memory:');
    db.exec('CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER, version INTEGER)');
    const history = new SqliteHistoryStore(db);
    await history.ensureSchema();
    const orders = new OrdersService(history);
    const order: Order = { id: 'o1', total: 10 };
    await orders.save(order, db);
    const stale = { ...order };
    order.total = 20;
    await orders.update(order, db);
    const error = await orders.update(stale, db).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toBeInstanceOf(copy!.VersionConflictError);
    expect((await history.list('Orders', 'o1')).map((e) => e.version)).toEqual([1, 2]);
  });
});
`,
  );
  // A service as Nest apps write them (an injected TypeORM repository, update(slug, dto)) as a unit of
  // work. Not through @nestjs/* itself: NestJS 12 ships ES modules only, which Jest's CommonJS mode
  // cannot load (the Nest module is tested under vitest).
  writeFileSync(
    join(dir, 'articles.unit-of-work.spec.ts'),
    `
import 'reflect-metadata';
import { HistoryTracked, registerUnitOfWork, setDefaultHistoryWriter, typeormHistoryStore, typeormUnitOfWork, VersionConflictError } from 'event-history';
import { Column, DataSource, Entity, PrimaryColumn, Repository, VersionColumn } from 'typeorm';

@Entity()
class Article {
  @PrimaryColumn() slug!: string;
  @Column() title!: string;
  @VersionColumn() version!: number;
}

class ArticleService {
  constructor(private readonly articles: Repository<Article>) {}
  @HistoryTracked()
  async create(slug: string, title: string) {
    return this.articles.save(this.articles.create({ slug, title }));
  }
  @HistoryTracked()
  async update(slug: string, dto: { title?: string; version?: number }) {
    const article = await this.articles.findOneByOrFail({ slug });
    return this.articles.save(Object.assign(article, dto));
  }
}

describe('a TypeORM service adopted with decorators under Jest and ts-jest (CommonJS)', () => {
  it('runs a decorated update(slug, dto) as a unit of work and refuses a stale one', async () => {
    const dataSource = await new DataSource({ type: 'better-sqlite3', database: ':memory:', entities: [Article], synchronize: true }).initialize();
    const store = typeormHistoryStore(dataSource);
    await store.ensureSchema();
    setDefaultHistoryWriter(store);
    const unregister = registerUnitOfWork(typeormUnitOfWork(dataSource, { track: [Article] }));
    const service = new ArticleService(dataSource.getRepository(Article));
    await service.create('a', 'one');
    await service.update('a', { title: 'two', version: 1 });
    await expect(service.update('a', { title: 'stale', version: 1 })).rejects.toBeInstanceOf(VersionConflictError);
    expect((await store.list('Article', 'a')).map((e) => e.version)).toEqual([1, 2]);
    unregister();
    await dataSource.destroy();
  });
});
`,
  );
  execFileSync(process.execPath, [join(root, 'node_modules', 'jest', 'bin', 'jest.js'), '--ci', '--rootDir', dir, '-c', join(dir, 'jest.config.js')], {
    cwd: dir,
    stdio: 'inherit',
  });
  console.log('Jest with ts-jest (CommonJS, experimentalDecorators), decorated services, a TypeORM unit of work: passed');
}
