/**
 * The relay process relay.reliability.ts kills and restarts: it relays one history table to a
 * NATS JetStream stream and a Redis stream until SIGTERM (graceful) or SIGKILL. Prints `ready`
 * once connected. Run (bundled by the test) as
 *   node relay-child.mjs <postgres|mariadb> <db url> <history table> <nats url> <subject prefix> <redis url> <redis stream>
 */
import { Redis } from 'ioredis';
import * as mariadb from 'mariadb';
import { connect } from 'nats';
import pg from 'pg';
import {
  allPublishers,
  mysqlRelaySource,
  natsPublisher,
  postgresRelaySource,
  redisPublisher,
  relay,
} from '../../src/relay/index.js';

const [kind, url, table, natsUrl, prefix, redisUrl, redisStream] = process.argv.slice(2);
if (!kind || !url || !table || !natsUrl || !prefix || !redisUrl || !redisStream)
  throw new Error('usage: see the header');

const nc = await connect({ servers: natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
const pool = kind === 'postgres' ? new pg.Pool({ connectionString: url, max: 2 }) : undefined;
const mpool = kind === 'mariadb' ? mariadb.createPool({ ...mariadbConfig(url), connectionLimit: 2 }) : undefined;
const source = pool ? postgresRelaySource(pool, { table }) : mysqlRelaySource(mpool as mariadb.Pool, { table });
const publisher = allPublishers(
  natsPublisher(nc.jetstream(), { subject: (e) => `${prefix}.${e.entityType}`, timeout: 1500 }),
  redisPublisher(redis, { stream: redisStream }),
);
const controller = new AbortController();
process.once('SIGTERM', () => controller.abort());
await source.ensureSchema();
process.stdout.write('ready\n');
const stats = await relay({
  source,
  publisher,
  batchSize: 25,
  pollIntervalMs: 20,
  signal: controller.signal,
  ensureSchema: false,
  onError: (error) => process.stderr.write(`relay error: ${(error as Error)?.message ?? String(error)}\n`),
});
process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
await nc.drain().catch(() => undefined);
redis.disconnect();
await pool?.end();
await mpool?.end();

function mariadbConfig(text: string) {
  const u = new URL(text);
  return {
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
  };
}
