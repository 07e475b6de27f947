import 'reflect-metadata';
import {
  expectedVersion,
  type HistoryEntry,
  HistoryTracked,
  type HistoryWriter,
  VersionConflictError,
  Versioned,
  withHistoryContext,
} from '../src/index.js';
import { type DemoDatabase, type Order, postgresDemo, sqliteDemo } from './databases.js';

// The story of one order: created, changed twice, a stale edit rejected, a failed history write
// rolled back, and the history read back. `npm run demo` tells it on an embedded SQLite database;
// `DATABASE_URL=postgres://… npm run demo` on PostgreSQL.

/** Wraps the real history store so the demo can make one write fail after it inserted its row. */
class UnreliableHistory implements HistoryWriter {
  failNext = false;
  constructor(private readonly store: HistoryWriter) {}
  async save(entry: HistoryEntry, session?: unknown): Promise<void> {
    await this.store.save(entry, session);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full while writing history');
    }
  }
}

@Versioned()
@HistoryTracked('history', { entityType: 'Order' })
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

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (url) await tell(await postgresDemo(url));
  else await tell(await sqliteDemo());
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
  let previous: Record<string, unknown> | undefined;
  const rows = entries.map((entry) => {
    const snapshot = entry.snapshot as Record<string, unknown>;
    const row = {
      version: entry.version,
      op: entry.op,
      time: entry.timestamp.toISOString().replace('T', ' ').slice(0, 23),
      actor: entry.actor ?? '',
      reason: entry.reason ?? '',
      changed: describeChanges(previous, snapshot),
    };
    previous = snapshot;
    return row;
  });
  const columns = Object.keys(rows[0] ?? {}) as (keyof (typeof rows)[number])[];
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => `  ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd();
  console.log(line(columns));
  console.log(line(widths.map((w) => '─'.repeat(w))));
  for (const row of rows) console.log(line(columns.map((c) => String(row[c]))));
}

function describeChanges(before: Record<string, unknown> | undefined, after: Record<string, unknown>): string {
  if (!before) return 'created';
  return Object.keys(after)
    .filter((key) => key !== 'version' && key !== 'timestamp')
    .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]))
    .map((key) => `${key}: ${JSON.stringify(before[key])} → ${JSON.stringify(after[key])}`)
    .join('; ');
}

await main();
