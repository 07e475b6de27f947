import { parseArgs } from 'node:util';
import type { HistoryEntry, HistoryReader, HistoryWriter } from '../history/entry.js';
import { assertIdentifier } from '../history/identifier.js';
import { MysqlHistoryStore } from '../mysql/mysql-store.js';
import { PostgresHistoryStore } from '../postgres/postgres-store.js';
import { SqliteHistoryStore } from '../sqlite/sqlite-store.js';
import { CliError, redact, redactMessage } from './connect.js';
import type { CliIo } from './main.js';

const USAGE = `Usage: event-history baseline <entityType> --url <url> --from <table> [options]

Writes a baseline history entry (op create, metadata.baseline = true) for every row of <table> that
has no history yet: its current state, at its version (0 when the version is 0 or null). Rows are
read in batches by id; a row that already has history is skipped, so an interrupted run resumes
where it stopped when run again.

Options:
  --url <url>              postgres://…, mysql://… (or mariadb://…) or sqlite:<path>
                           (default: the EVENT_HISTORY_URL environment variable)
  --from <table>           the entity table to baseline
  --id-column <name>       its primary key column (default: id)
  --version-column <name>  its version column (default: version)
  --table <name>           the history table (default: entity_history; created when missing)
  --batch <n>              rows per batch (default: 500)
  -h, --help               this help

Progress on a terminal (rows done, rate, time left), a summary line otherwise.
`;

type Row = Record<string, unknown>;

/** One database, as the command reads rows and writes history. */
interface Target {
  readonly store: HistoryWriter & HistoryReader & { ensureSchema(): Promise<void> };
  count(): Promise<number>;
  /** The next batch of rows with an id above `after` (all from the start when `undefined`), by id. */
  batch(after: unknown, size: number): Promise<Row[]>;
  close(): Promise<void>;
}

/**
 * `event-history baseline`: baseline entries for a whole table, in batches, resumable.
 *
 * ```ts
 * await baselineCommand(['Article', '--url', 'sqlite:./app.db', '--from', 'article'], io);
 * ```
 */
export async function baselineCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let url: string | undefined;
  let target: Target | undefined;
  try {
    const { values, positionals } = parseOptions(argv);
    if (values.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    const [entityType] = positionals;
    if (entityType === undefined || positionals.length > 1) {
      throw new CliError(2, `baseline takes one entity type.\n\n${USAGE}`);
    }
    url = values.url ?? io.env.EVENT_HISTORY_URL;
    if (url === undefined) throw new CliError(2, 'baseline needs --url (or EVENT_HISTORY_URL).');
    if (values.from === undefined) throw new CliError(2, 'baseline needs --from <table>, the table to baseline.');
    const names = {
      from: identifier('--from', values.from),
      id: identifier('--id-column', values['id-column'] ?? 'id'),
      version: identifier('--version-column', values['version-column'] ?? 'version'),
      history: identifier('--table', values.table ?? 'entity_history'),
    };
    const size = Number(values.batch ?? 500);
    if (!Number.isInteger(size) || size < 1)
      throw new CliError(2, `--batch must be a positive integer, got ${values.batch}.`);
    target = await openTarget(url, names);
    await target.store.ensureSchema();
    const summary = await run(target, entityType, names, size, io);
    io.stdout.write(
      `baseline ${entityType} from ${names.from}: ${summary.rows} rows, ${summary.written} baseline entries written, ` +
        `${summary.skipped} skipped (already had history), in ${seconds(summary.ms)}\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr.write(`event-history baseline: ${error.message}\n`);
      return error.exitCode;
    }
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`event-history baseline: ${url === undefined ? message : redactMessage(message, url)}\n`);
    return 1;
  } finally {
    await target?.close();
  }
}

function parseOptions(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        from: { type: 'string' },
        'id-column': { type: 'string' },
        'version-column': { type: 'string' },
        table: { type: 'string' },
        batch: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new CliError(2, `${(error as Error).message}\n\n${USAGE}`);
  }
}

function identifier(option: string, name: string): string {
  try {
    assertIdentifier(name, option);
  } catch (error) {
    throw new CliError(2, `${option}: ${(error as Error).message}`);
  }
  return name;
}

interface Names {
  readonly from: string;
  readonly id: string;
  readonly version: string;
  readonly history: string;
}

async function run(
  target: Target,
  entityType: string,
  names: Names,
  size: number,
  io: CliIo,
): Promise<{ rows: number; written: number; skipped: number; ms: number }> {
  const total = await target.count();
  const started = Date.now();
  const tty = io.stderr.isTTY === true;
  let rows = 0;
  let written = 0;
  let skipped = 0;
  let after: unknown;
  for (;;) {
    const batch = await target.batch(after, size);
    if (batch.length === 0) break;
    for (const row of batch) {
      const id = row[names.id];
      if (id === undefined || id === null) throw new CliError(2, `${names.from} has rows without ${names.id}.`);
      const entityId = id instanceof Date ? id.toISOString() : String(id);
      const version = Number.isInteger(row[names.version]) ? (row[names.version] as number) : 0;
      if ((await target.store.latest(entityType, entityId)) !== undefined) skipped++;
      else {
        const entry: HistoryEntry = {
          entityType,
          entityId,
          version,
          op: 'create',
          timestamp: new Date(),
          snapshot: { ...row },
          metadata: { baseline: true },
        };
        await target.store.save(entry);
        written++;
      }
      rows++;
    }
    after = batch[batch.length - 1]?.[names.id];
    if (tty) io.stderr.write(`\r${progress(rows, total, Date.now() - started)}`);
  }
  if (tty) io.stderr.write('\n');
  return { rows, written, skipped, ms: Date.now() - started };
}

/** `1200/5000 rows (24%), 830 rows/s, 4.6s left`. */
export function progress(done: number, total: number, ms: number): string {
  const rate = ms > 0 ? (done * 1000) / ms : 0;
  const left = rate > 0 ? Math.max(0, total - done) / rate : 0;
  const share = total > 0 ? Math.floor((done * 100) / total) : 100;
  return `${done}/${total} rows (${share}%), ${Math.round(rate)} rows/s, ${seconds(left * 1000)} left`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

async function load<M>(name: string, loader: () => Promise<M>): Promise<M> {
  try {
    return await loader();
  } catch (error) {
    throw new CliError(
      3,
      `baseline needs the ${name} package (${(error as Error).message}). Install it: npm install ${name}`,
    );
  }
}

async function openTarget(url: string, names: Names): Promise<Target> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  const table = { table: names.history };
  switch (scheme) {
    case 'postgres':
    case 'postgresql': {
      type Pool = {
        query(sql: string, values?: unknown[]): Promise<{ rows: Row[] }>;
        end(): Promise<void>;
        on(event: 'error', listener: () => void): unknown;
      };
      type Pg = { Pool: new (c: { connectionString: string; max: number }) => Pool };
      const pg = await load('pg', async () => {
        const module = (await import('pg')) as unknown as Pg & { default?: Pg };
        return module.default ?? module;
      });
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      pool.on('error', () => {});
      const q = (name: string) => `"${name}"`;
      return {
        store: new PostgresHistoryStore(
          pool as unknown as ConstructorParameters<typeof PostgresHistoryStore>[0],
          table,
        ),
        count: async () => Number((await pool.query(`SELECT count(*) AS n FROM ${q(names.from)}`)).rows[0]?.n ?? 0),
        batch: async (after, size) =>
          (
            await (after === undefined
              ? pool.query(`SELECT * FROM ${q(names.from)} ORDER BY ${q(names.id)} LIMIT $1`, [size])
              : pool.query(
                  `SELECT * FROM ${q(names.from)} WHERE ${q(names.id)} > $1 ORDER BY ${q(names.id)} LIMIT $2`,
                  [after, size],
                ))
          ).rows,
        close: () => pool.end(),
      };
    }
    case 'mysql':
    case 'mariadb': {
      type Pool = {
        query(sql: string, values?: unknown[]): Promise<[Row[], unknown]>;
        end(): Promise<void>;
      };
      type My = { createPool(c: { uri: string; connectionLimit: number }): Pool };
      const mysql = await load('mysql2', async () => {
        const module = (await import('mysql2/promise')) as unknown as My & { default?: My };
        return module.default ?? module;
      });
      const pool = mysql.createPool({ uri: url.replace(/^mariadb:/i, 'mysql:'), connectionLimit: 2 });
      const q = (name: string) => `\`${name}\``;
      return {
        store: new MysqlHistoryStore(pool as unknown as ConstructorParameters<typeof MysqlHistoryStore>[0], table),
        count: async () => Number((await pool.query(`SELECT COUNT(*) AS n FROM ${q(names.from)}`))[0][0]?.n ?? 0),
        batch: async (after, size) =>
          (
            await (after === undefined
              ? pool.query(`SELECT * FROM ${q(names.from)} ORDER BY ${q(names.id)} LIMIT ?`, [size])
              : pool.query(`SELECT * FROM ${q(names.from)} WHERE ${q(names.id)} > ? ORDER BY ${q(names.id)} LIMIT ?`, [
                  after,
                  size,
                ]))
          )[0],
        close: () => pool.end(),
      };
    }
    case 'sqlite': {
      const path = url.replace(/^sqlite:(\/\/)?/i, '');
      if (path === '') throw new CliError(2, 'a sqlite: URL needs a file path, as in sqlite:./app.db');
      type Db = {
        prepare(sql: string): { all(...values: unknown[]): Row[]; get(...values: unknown[]): Row | undefined };
        pragma(text: string): unknown;
        close(): unknown;
      };
      type Sq = new (p: string, o: { fileMustExist: boolean }) => Db;
      const Database = await load(
        'better-sqlite3',
        async () => ((await import('better-sqlite3')) as unknown as { default: Sq }).default,
      );
      let db: Db;
      try {
        db = new Database(path, { fileMustExist: true });
      } catch (error) {
        throw new CliError(3, `cannot open ${path}: ${(error as Error).message}`);
      }
      db.pragma('busy_timeout = 1000');
      const q = (name: string) => `"${name}"`;
      return {
        store: new SqliteHistoryStore(db as unknown as ConstructorParameters<typeof SqliteHistoryStore>[0], table),
        count: async () => Number(db.prepare(`SELECT count(*) AS n FROM ${q(names.from)}`).get()?.n ?? 0),
        batch: async (after, size) =>
          after === undefined
            ? db.prepare(`SELECT * FROM ${q(names.from)} ORDER BY ${q(names.id)} LIMIT ?`).all(size)
            : db
                .prepare(`SELECT * FROM ${q(names.from)} WHERE ${q(names.id)} > ? ORDER BY ${q(names.id)} LIMIT ?`)
                .all(after, size),
        close: async () => {
          db.close();
        },
      };
    }
    default:
      throw new CliError(
        2,
        `baseline: unsupported --url ${JSON.stringify(redact(url))}: use postgres://, mysql://, mariadb:// or sqlite:<path>.`,
      );
  }
}
