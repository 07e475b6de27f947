// Profiling aid: `node --cpu-prof .tmp/bench/bench/profile-postgres.js [calls]` after `npm run bench`
// (DATABASE_URL set): Node's CPU per decorated guarded update against the same SQL by hand, one client.
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { expectedVersion, HistoryTracked, Versioned } from '../src/index.js';
import { PostgresHistoryStore } from '../src/postgres/index.js';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('set DATABASE_URL');
const suffix = randomBytes(3).toString('hex');
const ORDERS = `profile_orders_${suffix}`;
const UPDATE = `UPDATE "${ORDERS}" SET "total" = $1, "version" = $2, "timestamp" = $3 WHERE "id" = $4 AND "version" = $5`;
const HAND_INSERT = `INSERT INTO "profile_hand_${suffix}" ("entity_type", "entity_id", "version", "op", "timestamp", "snapshot", "tx_id") VALUES ($1, $2, $3, 'update', $4, $5::jsonb, $6)`;

interface Order {
  id: string;
  total: number;
  version: number;
  timestamp?: Date;
}

const pool = new pg.Pool({ connectionString: url, max: 2 });
const store = new PostgresHistoryStore(pool, { table: `profile_history_${suffix}` });
const hand = new PostgresHistoryStore(pool, { table: `profile_hand_${suffix}` });

@Versioned({ methods: { update: 'update' } })
@HistoryTracked(store, { entityType: 'Order' })
class Orders {
  async update(order: Order, client: pg.PoolClient) {
    return client.query(UPDATE, [order.total, order.version, order.timestamp, order.id, expectedVersion(order)]);
  }
}

async function byHand(order: Order, client: pg.PoolClient): Promise<void> {
  const expected = order.version;
  order.version = expected + 1;
  order.timestamp = new Date();
  const begun = (await client.query('BEGIN; SELECT pg_current_xact_id()::text AS id')) as unknown as pg.QueryResult[];
  const txId = (begun[1]?.rows[0] as { id?: string } | undefined)?.id ?? null;
  await client.query(UPDATE, [order.total, order.version, order.timestamp, order.id, expected]);
  await client.query(HAND_INSERT, ['Order', order.id, order.version, order.timestamp, JSON.stringify(order), txId]);
  await client.query('COMMIT');
}

const calls = Number(process.argv[2] ?? 5000);
await pool.query(
  `CREATE TABLE "${ORDERS}" (id text PRIMARY KEY, total integer, version integer, "timestamp" timestamptz)`,
);
await store.ensureSchema();
await hand.ensureSchema();
const client = await pool.connect();
try {
  const a: Order = { id: 'a', total: 1, version: 1 };
  const b: Order = { id: 'b', total: 1, version: 1 };
  await pool.query(`INSERT INTO "${ORDERS}" VALUES ('a', 1, 1, now()), ('b', 1, 1, now())`);
  const service = new Orders();
  const measure = async (label: string, run: () => Promise<unknown>) => {
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await run();
    const wall = ((performance.now() - t0) * 1000) / calls;
    const used = process.cpuUsage(cpu);
    console.log(
      `${label}: ${wall.toFixed(1)} µs/call, Node CPU ${((used.user + used.system) / calls).toFixed(1)} µs/call`,
    );
  };
  for (let round = 0; round < Number(process.argv[3] ?? 2); round++) {
    const only = process.env.PROFILE_SIDE;
    if (only !== 'hand')
      await measure('decorated', () => {
        a.total++;
        return service.update(a, client);
      });
    if (only !== 'decorated')
      await measure('by hand  ', () => {
        b.total++;
        return byHand(b, client);
      });
  }
} finally {
  client.release();
  await pool.query(`DROP TABLE "${ORDERS}", "profile_history_${suffix}", "profile_hand_${suffix}"`);
  await pool.end();
}
