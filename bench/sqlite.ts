import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expectedVersion, HistoryTracked, Versioned } from '../src/index.js';
import { SqliteHistoryStore } from '../src/sqlite/index.js';
import { alternate, interleave, type PairResult, timeCalls } from './stats.js';

interface Order {
  id: string;
  customer: string;
  total: number;
  lines: { sku: string; qty: number; price: number }[];
  version: number;
  timestamp?: Date;
}

const UPDATE_SQL =
  'UPDATE orders SET customer = ?, total = ?, lines = ?, version = ?, timestamp = ? WHERE id = ? AND version = ?';
const HAND_INSERT_SQL =
  "INSERT INTO hand_history (entity_type, entity_id, version, op, timestamp, snapshot, tx_id) VALUES ('Order', ?, ?, 'update', ?, ?, ?)";

function updateParams(order: Order, expected: number): unknown[] {
  return [
    order.customer,
    order.total,
    JSON.stringify(order.lines),
    order.version,
    order.timestamp?.getTime(),
    order.id,
    expected,
  ];
}

/**
 * The decorated SQLite `update` against the same transaction by hand (BEGIN IMMEDIATE, guarded
 * UPDATE, history INSERT, COMMIT), both with cached prepared statements, on a WAL database file.
 */
export interface SqliteComparison {
  /** Both sides call by call (what BENCHMARKS.md reports). */
  readonly interleaved: PairResult;
  /** Round by round, as this bench measured before: a round's load falls on one side only. */
  readonly roundByRound: PairResult;
}

export async function sqliteComparison(rounds: number, callsPerRound: number): Promise<SqliteComparison> {
  const dir = mkdtempSync(join(tmpdir(), 'event-history-bench-'));
  const db = new Database(join(dir, 'bench.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(
      'CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT NOT NULL, total INTEGER NOT NULL, lines TEXT NOT NULL, version INTEGER NOT NULL, timestamp INTEGER NOT NULL)',
    );
    const history = new SqliteHistoryStore(db, { table: 'order_history' });
    await history.ensureSchema();
    // Each side appends to its own history table (same schema), so neither gets the other's B-tree layout.
    await new SqliteHistoryStore(db, { table: 'hand_history' }).ensureSchema();
    const update = db.prepare(UPDATE_SQL);
    const insert = db.prepare(HAND_INSERT_SQL);
    // Prepared once, as careful hand-written better-sqlite3 code does (exec would compile them on every call).
    const begin = db.prepare('BEGIN IMMEDIATE');
    const commit = db.prepare('COMMIT');

    @Versioned({ methods: { update: 'update' } })
    @HistoryTracked('history', { entityType: 'Order' })
    class DecoratedOrders {
      constructor(readonly history: SqliteHistoryStore) {}
      async update(order: Order, session: Database.Database) {
        void session;
        return update.run(...updateParams(order, expectedVersion(order) as number));
      }
    }

    const handWritten = async (order: Order): Promise<void> => {
      const previous = { version: order.version, timestamp: order.timestamp };
      const expected = order.version;
      order.version = expected + 1;
      order.timestamp = new Date();
      begin.run();
      try {
        if (update.run(...updateParams(order, expected)).changes === 0) {
          throw new Error(`order ${order.id} changed since version ${expected}`);
        }
        insert.run(order.id, order.version, order.timestamp.getTime(), JSON.stringify(order), 'tx');
        commit.run();
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        order.version = previous.version;
        order.timestamp = previous.timestamp;
        throw error;
      }
    };

    const seed = (id: string): Order => {
      const order: Order = {
        id,
        customer: 'ACME Corporation',
        total: 120,
        lines: [
          { sku: 'apple', qty: 3, price: 10 },
          { sku: 'pear', qty: 5, price: 12 },
        ],
        version: 1,
        timestamp: new Date(),
      };
      db.prepare('INSERT INTO orders (customer, total, lines, version, timestamp, id) VALUES (?, ?, ?, ?, ?, ?)').run(
        ...updateParams(order, 0).slice(0, 6),
      );
      return order;
    };
    const mine = seed('decorated');
    const hand = seed('hand');
    const decorated = new DecoratedOrders(history);
    const decoratedRound = () =>
      timeCalls(
        () => {
          mine.total += 1;
          return decorated.update(mine, db);
        },
        callsPerRound,
        1,
      );
    const handRound = () =>
      timeCalls(
        () => {
          hand.total += 1;
          return handWritten(hand);
        },
        callsPerRound,
        1,
      );
    await handRound();
    await decoratedRound();
    const decoratedCall = () => {
      mine.total += 1;
      return decorated.update(mine, db);
    };
    const handCall = () => {
      hand.total += 1;
      return handWritten(hand);
    };
    const interleaved = await interleave(rounds, callsPerRound, 1, decoratedCall, handCall);
    const roundByRound = await alternate(rounds, decoratedRound, handRound);
    const counts = db
      .prepare(
        'SELECT entity_id AS id, count(*) AS n FROM order_history GROUP BY entity_id UNION ALL SELECT entity_id, count(*) FROM hand_history GROUP BY entity_id',
      )
      .all() as { id: string; n: number }[];
    for (const order of [mine, hand]) {
      if (counts.find((c) => c.id === order.id)?.n !== order.version - 1) {
        throw new Error(`benchmark sides diverged on ${order.id}`);
      }
    }
    return { interleaved, roundByRound };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
