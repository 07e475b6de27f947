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
