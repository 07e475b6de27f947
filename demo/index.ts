import 'reflect-metadata';
import { isAbsolute, join, relative } from 'node:path';
import {
  diff,
  expectedVersion,
  type HistoryEntry,
  type HistoryReader,
  HistoryTracked,
  type HistoryWriter,
  VersionConflictError,
  Versioned,
  withHistoryContext,
} from '../src/index.js';
import { type DemoDatabase, type Order, postgresDemo, sqliteDemo } from './databases.js';

// The story of one order: created, changed twice, a stale edit rejected, a failed history write
// rolled back, and the history read back. `npm run demo` tells it on an SQLite file,
// ./demo-history.db, and ends with the commands that explore what it wrote;
// `DATABASE_URL=postgres://… npm run demo` tells it on PostgreSQL (and drops its tables after).

/** Wraps the real history store so the demo can make one write fail after it inserted its row. */
class UnreliableHistory implements HistoryWriter {
  failNext = false;
  constructor(private readonly store: HistoryWriter & HistoryReader) {}
  /** What the hash chain reads: the entity's newest entry, inside the call's transaction. */
  latest(entityType: string, entityId: string, opts?: { session?: unknown }) {
    return this.store.latest(entityType, entityId, opts);
  }
  async save(entry: HistoryEntry, session?: unknown): Promise<void> {
    await this.store.save(entry, session);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full while writing history');
    }
  }
}

@Versioned()
@HistoryTracked('history', { entityType: 'Order', chain: true })
class OrderService<S> {
  readonly history: UnreliableHistory;
  constructor(private readonly db: DemoDatabase<S>) {
    this.history = new UnreliableHistory(db.history);
  }
  async save(order: Order, session: S) {
    return this.db.insert(session, order);
  }
  async update(order: Order, session: S) {
    return this.db.update(session, order, expectedVersion(order));
  }
}

const say = (text: string) => console.log(`\n• ${text}`);

/** The demo's SQLite file, in the directory it runs in. */
const DEMO_FILE = 'demo-history.db';

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (url) {
    await tell(await postgresDemo(url));
    console.log(
      '\nThe PostgreSQL tables are dropped again; run `npm run demo` without DATABASE_URL to explore the history.',
    );
    return;
  }
  const path = join(process.cwd(), DEMO_FILE);
  await tell(await sqliteDemo(path));
  printExploreCommands(path);
}

/**
 * The command lines that explore the demo's file, as they run from this repository (`npm run cli`
 * is the CLI on the sources; an installed package is `npx event-history`).
 */
function printExploreCommands(path: string): void {
  const root = join(import.meta.dirname, '..');
  const fromRoot = relative(root, path);
  const file = fromRoot.startsWith('..') || isAbsolute(fromRoot) ? path : fromRoot;
  const url = `sqlite:${/[\s'"$\\]/.test(file) ? JSON.stringify(file) : file}`;
  say(`The history is in ${path}. Explore it (from ${root}):`);
  for (const command of [
    'types',
    'log Order A-1001',
    'show Order A-1001 2',
    'diff Order A-1001 1 3',
    'verify Order A-1001',
    'serve',
  ]) {
    console.log(`  npm run cli -- ${command} --url ${url}`);
  }
  console.log('  (serve prints the address of a read-only viewer to open in your browser; Ctrl-C stops it)');
}

async function tell<S>(db: DemoDatabase<S>): Promise<void> {
  console.log(`event-history demo on ${db.label}`);
  const orders = new OrderService(db);
  const session = await db.session();
  try {
    const order: Order = { id: 'A-1001', customer: 'Ada', items: ['teapot'], address: '1 Analytical Way' };
    say('Ada places an order.');
    await withHistoryContext({ actor: 'ada' }, () => orders.save(order, session));
    console.log(`  stored as version ${order.version} at ${order.timestamp?.toISOString()}`);

    say('Grace places an order too.');
    const grace: Order = { id: 'A-1002', customer: 'Grace', items: ['kettle'], address: '7 Compiler Close' };
    await withHistoryContext({ actor: 'grace' }, () => orders.save(grace, session));
    console.log(`  stored as version ${grace.version}`);

    const carolsScreen = structuredClone(order);

    say('Ada adds two cups.');
    order.items = [...order.items, 'cup', 'cup'];
    await withHistoryContext({ actor: 'ada' }, () => orders.update(order, session));
    console.log(`  now version ${order.version}`);

    say('Bob from support corrects the address.');
    order.address = '12 Difference Engine Rd';
    await withHistoryContext({ actor: 'bob', reason: 'customer called' }, () => orders.update(order, session));
    console.log(`  now version ${order.version}`);

    say(`Carol edits the copy she opened at version ${carolsScreen.version}, and saves.`);
    carolsScreen.items = ['kettle'];
    try {
      await withHistoryContext({ actor: 'carol' }, () => orders.update(carolsScreen, session));
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      console.log(`  rejected: ${error.name} (expected version ${error.expectedVersion})`);
      console.log(`  her copy is still version ${carolsScreen.version}; nothing was written`);
    }

    say('Ada removes a cup, but the history write fails half-way.');
    orders.history.failNext = true;
    order.items = ['teapot', 'cup'];
    try {
      await withHistoryContext({ actor: 'ada' }, () => orders.update(order, session));
    } catch (error) {
      console.log(`  failed: ${(error as Error).message.split('. ')[0]}`);
      const stored = await db.read(order.id);
      console.log(`  the order in the database is still version ${stored?.version} with ${stored?.items.join(', ')}`);
      console.log(`  and Ada's object is back at version ${order.version}`);
    }

    say('The order’s history:');
    printHistory(await db.history.list('Order', order.id));
  } finally {
    await db.release(session);
    await db.close();
  }
}

function printHistory(entries: HistoryEntry[]): void {
  let previous: unknown;
  const rows = entries.map((entry) => {
    const row = {
      version: entry.version,
      op: entry.op,
      time: entry.timestamp.toISOString().replace('T', ' ').slice(0, 23),
      actor: entry.actor ?? '',
      reason: entry.reason ?? '',
      changed: previous === undefined ? 'created' : describeChanges(previous, entry.snapshot),
    };
    previous = entry.snapshot;
    return row;
  });
  const columns = Object.keys(rows[0] ?? {}) as (keyof (typeof rows)[number])[];
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => `  ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  console.log(line(columns));
  console.log(line(widths.map((w) => '─'.repeat(w))));
  for (const row of rows) console.log(line(columns.map((c) => String(row[c]))));
}

/** The library's field-level `diff`, without the stamp fields every row shows anyway. */
function describeChanges(before: unknown, after: unknown): string {
  return diff(before, after)
    .filter((change) => change.path !== 'version' && change.path !== 'timestamp')
    .map((change) =>
      change.kind === 'add'
        ? `+${change.path}: ${JSON.stringify(change.after)}`
        : change.kind === 'remove'
          ? `-${change.path}: ${JSON.stringify(change.before)}`
          : `${change.path}: ${JSON.stringify(change.before)} → ${JSON.stringify(change.after)}`,
    )
    .join('; ');
}

await main();
