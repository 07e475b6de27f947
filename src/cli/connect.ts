import type { HistoryReader } from '../history/entry.js';
import { assertIdentifier } from '../history/identifier.js';
import { MongoHistoryStore } from '../mongodb/mongodb-store.js';
import { MysqlHistoryStore } from '../mysql/mysql-store.js';
import { PostgresHistoryStore } from '../postgres/postgres-store.js';
import { SqliteHistoryStore } from '../sqlite/sqlite-store.js';

/**
 * A failure the command line reports as one line on stderr, with its exit code: 2 for a usage
 * error (bad arguments or URL), 3 when the database cannot be reached or opened, 4 when the
 * history table (or collection) does not exist, 1 for "not found" and failed verification.
 *
 * ```ts
 * throw new CliError(2, 'the URL must start with postgres://, mysql://, sqlite: or mongodb://');
 * ```
 */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * What the commands read through: a built-in store with every reader method, and how to close it.
 *
 * ```ts
 * const store: CliStore = await openStore(url, undefined);
 * try { await store.reader.latest('Order', '42'); } finally { await store.close(); }
 * ```
 */
export interface CliStore {
  readonly reader: HistoryReader &
    Required<Pick<HistoryReader, 'page' | 'byTransaction' | 'entityTypes' | 'entityIds'>>;
  /** Where it reads, for messages: the URL without its password, and the table. */
  readonly where: string;
  close(): Promise<void>;
}

const DEFAULT_TABLE = 'entity_history';

/**
 * Opens the store a `--url` names, loading its driver with `import()` (only the one needed):
 * `postgres://` / `postgresql://` (pg), `mysql://` / `mariadb://` (mysql2), `sqlite:<path>`
 * (better-sqlite3, opened read-only), `mongodb://` / `mongodb+srv://` (mongodb). Checks that the
 * table or collection exists.
 *
 * ```ts
 * const { reader, close } = await openStore('sqlite:./app.db', 'order_history');
 * ```
 */
export async function openStore(url: string, table: string | undefined): Promise<CliStore> {
  const name = checkedTable(table ?? DEFAULT_TABLE);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'postgres':
    case 'postgresql':
      parsedUrl(url);
      return openPostgres(url, name);
    case 'mysql':
    case 'mariadb':
      parsedUrl(url);
      return openMysql(url.replace(/^mariadb:/i, 'mysql:'), name);
    case 'sqlite':
      return openSqlite(url, name);
    case 'mongodb':
    case 'mongodb+srv':
      parsedUrl(url);
      return openMongo(url, name);
    default:
      throw new CliError(
        2,
        `cannot read history from ${JSON.stringify(redact(url))}: the URL must start with postgres://, mysql://, ` +
          'mariadb://, sqlite: (sqlite:path/to/file.db) or mongodb://',
      );
  }
}

/** Query parameters whose value is a credential. */
const SECRET_PARAM = /^(?:password|pass|pwd)$/i;
/** A credential query parameter in raw text, its value up to the next separator. */
const RAW_SECRET_PARAM = /([?&;](?:password|pass|pwd)=)[^&#;\s]*/gi;
const MASK = '***';

/**
 * The URL as it may be printed: its userinfo password and its `password`, `pass` and `pwd` query
 * parameters (any case) replaced by `***`. Text that is not a URL is masked the same way as
 * text: those parameters, and everything between the first `:` after `://` and the last `@`.
 *
 * ```ts
 * redact('postgres://app:secret@db/shop?pwd=x'); // 'postgres://app:***@db/shop?pwd=***'
 * ```
 */
export function redact(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return redactText(url);
  }
  let changed = false;
  if (parsed.password !== '') {
    parsed.password = MASK;
    changed = true;
  }
  for (const key of new Set(parsed.searchParams.keys())) {
    if (SECRET_PARAM.test(key)) {
      parsed.searchParams.set(key, MASK);
      changed = true;
    }
  }
  // A URL the WHATWG parser reads differently from a driver could still hold secrets as text.
  return redactText(changed ? parsed.toString() : url);
}

function redactText(text: string): string {
  let out = text.replace(RAW_SECRET_PARAM, `$1${MASK}`);
  const start = out.indexOf('://');
  if (start >= 0) {
    const at = out.lastIndexOf('@');
    const colon = out.indexOf(':', start + 3);
    if (at > start && colon >= 0 && colon < at && out.slice(colon + 1, at) !== MASK) {
      out = `${out.slice(0, colon + 1)}${MASK}${out.slice(at)}`;
    }
  }
  return out;
}

/**
 * The credentials a URL carries, as they may appear in a driver's message: the userinfo password
 * and the credential query parameters, both as written and decoded.
 */
function secretsOf(url: string): string[] {
  const found = new Set<string>();
  const add = (raw: string) => {
    found.add(raw);
    try {
      found.add(decodeURIComponent(raw.replace(/\+/g, ' ')));
    } catch {
      // not percent-encoded text: the raw form is enough
    }
  };
  for (const match of url.matchAll(RAW_SECRET_PARAM))
    add(url.slice((match.index ?? 0) + (match[1] as string).length, (match.index ?? 0) + match[0].length));
  const start = url.indexOf('://');
  if (start >= 0) {
    const at = url.lastIndexOf('@');
    const colon = url.indexOf(':', start + 3);
    if (at > start && colon >= 0 && colon < at) add(url.slice(colon + 1, at));
  }
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') add(parsed.password);
    for (const [key, value] of parsed.searchParams) if (SECRET_PARAM.test(key)) found.add(value);
  } catch {
    // the text forms above are all there is
  }
  found.delete('');
  found.delete(MASK);
  return [...found].sort((a, b) => b.length - a.length);
}

/**
 * `text` (a message about `url`) with the URL redacted and every credential it carries masked
 * wherever it appears, in case a driver's message repeats it.
 *
 * ```ts
 * redactMessage('bad password secret', 'postgres://app:secret@db/shop'); // 'bad password ***'
 * ```
 */
export function redactMessage(text: string, url: string): string {
  let out = text.split(url).join(redact(url));
  for (const secret of secretsOf(url)) out = out.split(secret).join(MASK);
  return out;
}

/** A URL neither we nor the driver can read: a usage error (exit 2), its text redacted. */
function badUrl(url: string, error: unknown): CliError {
  return new CliError(
    2,
    `cannot read the URL ${JSON.stringify(redact(url))}: ${redactMessage(message(error), url)}. ` +
      'Check its syntax (percent-encode special characters in the user name and password, as %40 for @).',
  );
}

/** Whether `url` parses as a URL with a host; a `CliError` (exit 2) otherwise. */
function parsedUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw badUrl(url, error);
  }
  if (parsed.host === '' && !/^mongodb\+srv:/i.test(url)) throw badUrl(url, new Error('it names no host'));
}

async function load<M>(driver: string, url: string, loader: () => Promise<M>): Promise<M> {
  try {
    return await loader();
  } catch (error) {
    throw new CliError(
      3,
      `reading ${redact(url)} needs the ${driver} package, which could not be loaded (${message(error)}). ` +
        `Install it next to event-history: npm install ${driver}`,
    );
  }
}

function unreachable(url: string, error: unknown): CliError {
  return new CliError(3, `cannot connect to ${redact(url)}: ${redactMessage(message(error), url)}`);
}

/** A driver's refusal of the URL itself (not of the connection): Node's URL error, MongoDB's parse error. */
function isUrlError(error: unknown): boolean {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  return code === 'ERR_INVALID_URL' || name === 'MongoParseError' || error instanceof URIError;
}

function missingTable(what: string, name: string, where: string): CliError {
  return new CliError(
    4,
    `the ${what} ${JSON.stringify(name)} does not exist in ${where}. Pass --table <name> for another one, ` +
      "or create it with the store's ensureSchema().",
  );
}

function message(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return message(error.errors[0]);
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return error.message || (typeof code === 'string' ? code : error.name);
  }
  return String(error);
}

function checkedTable(name: string): string {
  try {
    return assertIdentifier(name, '--table');
  } catch (error) {
    throw new CliError(2, message(error));
  }
}

interface PgModule {
  Client: new (config: { connectionString: string; connectionTimeoutMillis: number }) => PgClient;
}
interface PgClient {
  connect(): Promise<unknown>;
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

async function openPostgres(url: string, table: string): Promise<CliStore> {
  const pg = await load('pg', url, async () => {
    const module = (await import('pg')) as unknown as PgModule & { default?: PgModule };
    return module.default ?? module;
  });
  let client: PgClient;
  try {
    client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  } catch (error) {
    throw badUrl(url, error);
  }
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw unreachable(url, error);
  }
  const close = () => client.end();
  const quoted = table
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
  const { rows } = await client.query('SELECT to_regclass($1) IS NOT NULL AS found', [quoted]);
  if (!(rows[0] as { found: boolean }).found) {
    await close();
    throw missingTable('table', table, redact(url));
  }
  return { reader: new PostgresHistoryStore(client, { table }), where: `${redact(url)} ${table}`, close };
}

interface MysqlModule {
  createConnection(config: { uri: string; connectTimeout: number }): Promise<MysqlConnection>;
}
interface MysqlConnection {
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

async function openMysql(url: string, table: string): Promise<CliStore> {
  const mysql = await load('mysql2', url, async () => {
    const module = (await import('mysql2/promise')) as unknown as MysqlModule & { default?: MysqlModule };
    return module.default ?? module;
  });
  let connection: MysqlConnection;
  try {
    connection = await mysql.createConnection({ uri: url, connectTimeout: 5_000 });
  } catch (error) {
    throw isUrlError(error) ? badUrl(url, error) : unreachable(url, error);
  }
  connection.on('error', () => {});
  const close = () => connection.end();
  const parts = table.split('.');
  const [rows] = await connection.query(
    'SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?',
    parts.length === 2 ? parts : [null, table],
  );
  if (Number((rows as { n: number | string }[])[0]?.n) === 0) {
    await close();
    throw missingTable('table', table, redact(url));
  }
  return {
    reader: new MysqlHistoryStore(connection as never, { table }),
    where: `${redact(url)} ${table}`,
    close,
  };
}

interface SqliteDatabase {
  prepare(sql: string): { all(...params: unknown[]): unknown[]; run(...params: unknown[]): unknown };
  exec(sql: string): unknown;
  close(): unknown;
}
type SqliteModule = new (path: string, options: { readonly: boolean; fileMustExist: boolean }) => SqliteDatabase;

async function openSqlite(url: string, table: string): Promise<CliStore> {
  const path = url.replace(/^sqlite:(\/\/)?/i, '');
  if (path === '') throw new CliError(2, 'a sqlite: URL needs a file path, as in sqlite:./app.db');
  const Database = await load('better-sqlite3', url, async () => {
    const module = (await import('better-sqlite3')) as unknown as { default: SqliteModule };
    return module.default;
  });
  let db: SqliteDatabase;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new CliError(3, `cannot open the SQLite database ${path}: ${message(error)}`);
  }
  const close = async () => {
    db.close();
  };
  const parts = table.split('.');
  const master = parts.length === 2 ? `"${parts[0]}".sqlite_master` : 'sqlite_master';
  const found = db.prepare(`SELECT 1 FROM ${master} WHERE type = 'table' AND name = ?`).all(parts.at(-1));
  if (found.length === 0) {
    await close();
    throw missingTable('table', table, path);
  }
  return { reader: new SqliteHistoryStore(db, { table }), where: `${path} ${table}`, close };
}

interface MongoModule {
  MongoClient: new (url: string, options: { serverSelectionTimeoutMS: number }) => MongoClientLike;
}
interface MongoClientLike {
  connect(): Promise<unknown>;
  close(): Promise<void>;
  db(): { listCollections(filter: { name: string }): { toArray(): Promise<unknown[]> } } & ConstructorParameters<
    typeof MongoHistoryStore
  >[0];
}

async function openMongo(url: string, collection: string): Promise<CliStore> {
  const mongodb = await load('mongodb', url, async () => (await import('mongodb')) as unknown as MongoModule);
  let client: MongoClientLike;
  try {
    client = new mongodb.MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
  } catch (error) {
    throw badUrl(url, error);
  }
  try {
    await client.connect();
  } catch (error) {
    await client.close().catch(() => {});
    throw isUrlError(error) ? badUrl(url, error) : unreachable(url, error);
  }
  const close = () => client.close();
  const db = client.db();
  const store = new MongoHistoryStore(db, { collection });
  const found = (await db.listCollections({ name: collection }).toArray()) as { name?: unknown }[];
  if (!found.some((entry) => entry.name === collection)) {
    await close();
    throw missingTable('collection', collection, redact(url));
  }
  return { reader: store, where: `${redact(url)} ${collection}`, close };
}
