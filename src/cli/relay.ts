import { parseArgs } from 'node:util';
import type { RelayPublisher } from '../relay/brokers.js';
import { allPublishers, ensureNatsStream, natsPublisher, redisPublisher } from '../relay/brokers.js';
import { relay } from '../relay/relay.js';
import { mysqlRelaySource, postgresRelaySource, type RelaySource, sqliteRelaySource } from '../relay/source.js';
import { CliError, redact } from './connect.js';
import type { CliIo } from './main.js';

export const RELAY_USAGE = `Usage: event-history relay --url <db url> (--nats <url> | --redis <url>) [options]

Publishes every committed history entry to NATS JetStream and/or a Redis stream, at least once,
each entity's versions in order, from a position kept in <table>_relay. Stops on SIGTERM or SIGINT
after the message in flight, with its position saved.

Options:
  --url <url>            postgres://…, mysql://… (or mariadb://…) or sqlite:<path> (default: EVENT_HISTORY_URL)
  --table <name>         the history table (default: entity_history)
  --nats <url>           NATS server, e.g. nats://127.0.0.1:4222
  --stream <name>        JetStream stream, created when missing (default: EVENT_HISTORY)
  --subject <prefix>     subject prefix; entries go to <prefix>.<EntityType> (default: event-history)
  --redis <url>          Redis server, e.g. redis://127.0.0.1:6379
  --redis-stream <key>   Redis stream key (default: event-history)
  --name <name>          the relay's position name (default: default)
  --batch <n>            entries per batch (default: 200)
  --once                 publish what is committed now, then exit
`;

interface Closer {
  close(): Promise<unknown>;
}

/**
 * The `event-history relay` command: resolves to its exit code (0 after a graceful stop).
 *
 * ```ts
 * process.exitCode = await relayCommand(['--url', 'sqlite:app.db', '--nats', 'nats://127.0.0.1:4222'], process);
 * ```
 */
export async function relayCommand(argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  const closers: Closer[] = [];
  const controller = new AbortController();
  const stop = () => controller.abort();
  signal?.addEventListener('abort', stop, { once: true });
  if (signal === undefined) {
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  }
  try {
    const values = parse(argv);
    if (values.help) {
      io.stdout.write(RELAY_USAGE);
      return 0;
    }
    const url = values.url ?? io.env.EVENT_HISTORY_URL;
    if (url === undefined || url === '') throw new CliError(2, 'relay: no database given: pass --url <url>.');
    if (values.nats === undefined && values.redis === undefined) {
      throw new CliError(2, 'relay: no broker given: pass --nats <url> and/or --redis <url>.');
    }
    const batchSize = values.batch === undefined ? undefined : Number(values.batch);
    if (batchSize !== undefined && (!Number.isSafeInteger(batchSize) || batchSize < 1)) {
      throw new CliError(
        2,
        `relay: --batch must be a whole number of at least 1, got ${JSON.stringify(values.batch)}.`,
      );
    }
    const table = values.table ?? 'entity_history';
    const source = await openSource(url, table, closers);
    const publishers: RelayPublisher[] = [];
    if (values.nats !== undefined) publishers.push(await openNats(values.nats, values, closers));
    if (values.redis !== undefined) publishers.push(await openRedis(values.redis, values, closers));
    const publisher = publishers.length === 1 ? (publishers[0] as RelayPublisher) : allPublishers(...publishers);
    io.stderr.write(`event-history relay: ${redact(url)} ${table} → ${publishers.length} broker(s)\n`);
    const stats = await relay({
      source,
      publisher,
      name: values.name ?? 'default',
      ...(batchSize === undefined ? {} : { batchSize }),
      signal: controller.signal,
      untilCaughtUp: values.once === true,
      onError: (error) => io.stderr.write(`event-history relay: ${describe(error)}; retrying\n`),
    });
    io.stdout.write(`${JSON.stringify(stats)}\n`);
    return 0;
  } catch (error) {
    const code = error instanceof CliError ? error.exitCode : 1;
    io.stderr.write(`event-history: ${describe(error)}\n`);
    return code;
  } finally {
    process.removeListener('SIGTERM', stop);
    process.removeListener('SIGINT', stop);
    for (const closer of closers.reverse()) await closer.close().catch(() => undefined);
  }
}

type Values = ReturnType<typeof parse>;

function parse(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        url: { type: 'string' },
        table: { type: 'string' },
        nats: { type: 'string' },
        stream: { type: 'string' },
        subject: { type: 'string' },
        redis: { type: 'string' },
        'redis-stream': { type: 'string' },
        name: { type: 'string' },
        batch: { type: 'string' },
        once: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    throw new CliError(2, `relay: ${(error as Error).message} (event-history relay --help for usage)`);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

async function load<M>(name: string, loader: () => Promise<M>): Promise<M> {
  try {
    return await loader();
  } catch (error) {
    throw new CliError(3, `relay needs the ${name} package (${describe(error)}). Install it: npm install ${name}`);
  }
}

async function openSource(url: string, table: string, closers: Closer[]): Promise<RelaySource> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  try {
    switch (scheme) {
      case 'postgres':
      case 'postgresql': {
        type Pg = {
          Pool: new (c: {
            connectionString: string;
            max: number;
          }) => Parameters<typeof postgresRelaySource>[0] &
            Closer & { end(): Promise<void>; on(e: 'error', l: () => void): unknown };
        };
        const pg = await load('pg', async () => {
          const module = (await import('pg')) as unknown as Pg & { default?: Pg };
          return module.default ?? module;
        });
        const pool = new pg.Pool({ connectionString: url, max: 2 });
        pool.on('error', () => {});
        closers.push({ close: () => pool.end() });
        await pool.query('SELECT 1');
        return postgresRelaySource(pool, { table });
      }
      case 'mysql':
      case 'mariadb': {
        type My = {
          createPool(c: {
            uri: string;
            connectionLimit: number;
          }): Parameters<typeof mysqlRelaySource>[0] & { end(): Promise<void> };
        };
        const mysql = await load('mysql2', async () => {
          const module = (await import('mysql2/promise')) as unknown as My & { default?: My };
          return module.default ?? module;
        });
        const pool = mysql.createPool({ uri: url.replace(/^mariadb:/i, 'mysql:'), connectionLimit: 2 });
        closers.push({ close: () => pool.end() });
        const source = mysqlRelaySource(pool, { table });
        await source.backlog().catch((error: unknown) => {
          if (/doesn't exist|no such table/i.test(describe(error))) return;
          throw error;
        });
        return source;
      }
      case 'sqlite': {
        const path = url.replace(/^sqlite:(\/\/)?/i, '');
        if (path === '') throw new CliError(2, 'a sqlite: URL needs a file path, as in sqlite:./app.db');
        type Sq = new (
          p: string,
          o: { fileMustExist: boolean },
        ) => Parameters<typeof sqliteRelaySource>[0] & { close(): unknown; pragma(s: string): unknown };
        const Database = await load(
          'better-sqlite3',
          async () => ((await import('better-sqlite3')) as unknown as { default: Sq }).default,
        );
        const db = new Database(path, { fileMustExist: true });
        db.pragma('busy_timeout = 1000');
        closers.push({ close: async () => db.close() });
        return sqliteRelaySource(db, { table });
      }
      default:
        throw new CliError(
          2,
          `relay: unsupported --url ${JSON.stringify(redact(url))}: use postgres://, mysql://, mariadb:// or sqlite:<path>.`,
        );
    }
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(3, `cannot connect to ${redact(url)}: ${describe(error)}`);
  }
}

async function openNats(url: string, values: Values, closers: Closer[]): Promise<RelayPublisher> {
  type Nats = {
    connect(o: { servers: string; maxReconnectAttempts: number; reconnectTimeWait: number }): Promise<{
      jetstream(): Parameters<typeof natsPublisher>[0];
      jetstreamManager(): Promise<Parameters<typeof ensureNatsStream>[0]>;
      drain(): Promise<void>;
    }>;
  };
  const nats = await load('nats', async () => (await import('nats')) as unknown as Nats);
  const prefix = values.subject ?? 'event-history';
  let nc: Awaited<ReturnType<Nats['connect']>>;
  try {
    nc = await nats.connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  } catch (error) {
    throw new CliError(3, `cannot connect to NATS at ${redact(url)}: ${describe(error)}`);
  }
  closers.push({ close: () => nc.drain() });
  await ensureNatsStream(await nc.jetstreamManager(), values.stream ?? 'EVENT_HISTORY', [`${prefix}.>`]);
  return natsPublisher(nc.jetstream(), {
    subject: (entry) => `${prefix}.${entry.entityType.replace(/[.*>\s]/g, '_')}`,
  });
}

async function openRedis(url: string, values: Values, closers: Closer[]): Promise<RelayPublisher> {
  type RedisCtor = new (
    url: string,
    o: { lazyConnect: boolean },
  ) => Parameters<typeof redisPublisher>[0] & {
    connect(): Promise<void>;
    quit(): Promise<unknown>;
    on(e: 'error', l: () => void): unknown;
  };
  const Redis = await load('ioredis', async () => {
    const module = (await import('ioredis')) as unknown as { default: RedisCtor; Redis?: RedisCtor };
    return module.Redis ?? module.default;
  });
  const redis = new Redis(url, { lazyConnect: true });
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch (error) {
    throw new CliError(3, `cannot connect to Redis at ${redact(url)}: ${describe(error)}`);
  }
  closers.push({ close: () => redis.quit() });
  return redisPublisher(redis, { stream: values['redis-stream'] ?? 'event-history' });
}
