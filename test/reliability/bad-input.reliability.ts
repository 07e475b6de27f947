import Database from 'better-sqlite3';
import * as mariadb from 'mariadb';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionLostError,
  DecoratorError,
  EventHistoryError,
  HistoryTracked,
  HistoryWriteError,
  type HistoryWriter,
  InvalidEntityError,
  MissingSessionError,
  SessionEndedError,
  UnsupportedSessionError,
  Versioned,
} from '../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { useFigures } from './support/figures.js';
import { accountServices } from './support/services.js';
import {
  type Account,
  MARIADB_URL,
  POSTGRES_URL,
  runsHere,
  TARGETS,
  type Target,
  uniqueName,
} from './support/targets.js';

const figures = useFigures('bad-input');
type ErrorClass = abstract new (...args: never[]) => Error;

/** Words with which the library's messages tell the caller what to do next. */
const ADVICE =
  /\b(must be|pass|use|set|add|load|remove|register|start|release|fix|inject|reload|retry|raise|let|list|keep|end|make|give)\b/i;

interface Context {
  readonly target: Target;
  readonly services: ReturnType<typeof accountServices<unknown>>;
  /** An account already stored at version 1, for update kinds. */
  stored(): Promise<Account>;
}

interface BadInput {
  readonly kind: string;
  readonly error: ErrorClass;
  call(context: Context, session: unknown): Promise<unknown>;
}

const save = (entity: unknown) => (c: Context, s: unknown) => c.services.accounts.save(entity as Account, s);
const update = (change: (a: Account) => unknown) => async (c: Context, s: unknown) =>
  c.services.accounts.update((await change(await c.stored())) as Account, s);
const fresh = (): Account => ({ id: uniqueName('bad'), balance: 1, note: 'n' });

function throwingGetter(): Account {
  const account = fresh();
  Object.defineProperty(account, 'note', {
    enumerable: true,
    get() {
      throw new Error('getter exploded');
    },
  });
  return account;
}

/** Entities and calls each of which must be refused with a typed error, leaving the tables as they were. */
const ENTITY_KINDS: readonly BadInput[] = [
  { kind: 'entity is null', error: InvalidEntityError, call: save(null) },
  { kind: 'entity is undefined', error: InvalidEntityError, call: save(undefined) },
  { kind: 'entity is a number', error: InvalidEntityError, call: save(42) },
  { kind: 'entity is a string', error: InvalidEntityError, call: save('account') },
  { kind: 'entity is a boolean', error: InvalidEntityError, call: save(true) },
  { kind: 'entity is an array', error: InvalidEntityError, call: save([fresh()]) },
  { kind: 'entity is frozen', error: InvalidEntityError, call: save(Object.freeze(fresh())) },
  { kind: 'entity is sealed (no version field to add)', error: InvalidEntityError, call: save(Object.seal(fresh())) },
  {
    kind: 'entity version is read-only',
    error: InvalidEntityError,
    call: update((a) =>
      Object.defineProperty({ ...a }, 'version', { value: a.version, writable: false, enumerable: true }),
    ),
  },
  {
    kind: 'entity is cyclic',
    error: InvalidEntityError,
    call: (c, s) => {
      const a = fresh() as Account & { self?: unknown };
      a.self = { back: a };
      return save(a)(c, s);
    },
  },
  { kind: 'entity has a throwing getter', error: InvalidEntityError, call: (c, s) => save(throwingGetter())(c, s) },
  {
    kind: 'entity has a throwing toJSON inside',
    error: InvalidEntityError,
    call: (c, s) =>
      save({
        ...fresh(),
        money: {
          toJSON() {
            throw new Error('toJSON exploded');
          },
        },
      })(c, s),
  },
  {
    kind: 'entity is a Proxy whose reads throw',
    error: InvalidEntityError,
    call: (c, s) =>
      save(
        new Proxy(fresh(), {
          get() {
            throw new Error('proxy read exploded');
          },
        }),
      )(c, s),
  },
  {
    kind: 'entity snapshot of 10 MB',
    error: InvalidEntityError,
    call: (c, s) => save({ ...fresh(), attachment: 'x'.repeat(10 * 1024 * 1024) })(c, s),
  },
  { kind: 'update without a version', error: InvalidEntityError, call: update((a) => ({ ...a, version: undefined })) },
  { kind: 'update with version 0', error: InvalidEntityError, call: update((a) => ({ ...a, version: 0 })) },
  {
    kind: 'update with a fractional version',
    error: InvalidEntityError,
    call: update((a) => ({ ...a, version: 1.5 })),
  },
  { kind: 'update with a string version', error: InvalidEntityError, call: update((a) => ({ ...a, version: '1' })) },
  {
    kind: 'update with a NaN version',
    error: InvalidEntityError,
    call: update((a) => ({ ...a, version: Number.NaN })),
  },
  { kind: 'update with a BigInt version', error: InvalidEntityError, call: update((a) => ({ ...a, version: 1n })) },
  { kind: 'update without an id', error: InvalidEntityError, call: update((a) => ({ ...a, id: undefined })) },
  { kind: 'update with an empty id', error: InvalidEntityError, call: update((a) => ({ ...a, id: '' })) },
  { kind: 'update with a plain-object id', error: InvalidEntityError, call: update((a) => ({ ...a, id: {} })) },
  { kind: 'session is missing', error: MissingSessionError, call: (c) => c.services.accounts.save(fresh(), undefined) },
  {
    kind: 'session is a plain object without a session property',
    error: MissingSessionError,
    call: (c) => c.services.accounts.save(fresh(), { query: 'not a function' }),
  },
  {
    kind: 'session is an object no adapter matches',
    error: UnsupportedSessionError,
    call: (c) => c.services.accounts.save(fresh(), new (class LegacyConnection {})()),
  },
  {
    kind: 'session is a string',
    error: UnsupportedSessionError,
    call: (c) => c.services.accounts.save(fresh(), 'session'),
  },
];

/** Writers and methods that misbehave: each a typed error, and the rolled-back call leaves nothing. */
function misbehaving(target: Target): readonly BadInput[] {
  const methods = { save: 'create' } as const;
  const service = (history: unknown, body: (a: Account, s: unknown) => unknown) => {
    @Versioned({ methods })
    @HistoryTracked('history', { methods, entityType: 'Account' })
    class Misbehaving {
      constructor(readonly history: unknown) {}
      save(account: Account, session: unknown): Promise<unknown> {
        return body(account, session) as Promise<unknown>;
      }
    }
    return new Misbehaving(history);
  };
  const write = (a: Account, s: unknown) => target.insert(s, a);
  const writerThat = (save: HistoryWriter['save']): HistoryWriter => ({ save });
  return [
    {
      kind: 'writer throws synchronously',
      error: HistoryWriteError,
      call: (_, s) =>
        service(
          writerThat(() => {
            throw new Error('writer threw');
          }),
          write,
        ).save(fresh(), s),
    },
    {
      kind: 'writer rejects',
      error: HistoryWriteError,
      call: (_, s) =>
        service(
          writerThat(() => Promise.reject(new Error('writer rejected'))),
          write,
        ).save(fresh(), s),
    },
    {
      kind: 'writer returns a thenable that rejects',
      error: HistoryWriteError,
      call: (_, s) =>
        service(
          writerThat(() => ({
            // biome-ignore lint/suspicious/noThenProperty: a non-promise thenable is the point of this case
            then: (_ok: unknown, fail: (e: Error) => void) => fail(new Error('thenable failed')),
          })),
          write,
        ).save(fresh(), s),
    },
    {
      kind: 'writer has no save function',
      error: DecoratorError,
      call: (_, s) => service({ save: 'not a function' }, write).save(fresh(), s),
    },
    { kind: 'writer is missing', error: DecoratorError, call: (_, s) => service(undefined, write).save(fresh(), s) },
    {
      kind: 'method returns a non-promise',
      error: DecoratorError,
      call: (c, s) => service(c.services.history, (a, session) => void write(a, session)).save(fresh(), s),
    },
    {
      kind: 'method returns null',
      error: DecoratorError,
      call: (c, s) => service(c.services.history, () => null).save(fresh(), s),
    },
  ];
}

function expectTyped(error: unknown, expected: ErrorClass, kind: string): void {
  expect(error, `${kind} must be refused`).toBeInstanceOf(expected);
  if (expected !== TypeError) expect(error).toBeInstanceOf(EventHistoryError);
  expect((error as Error).message, `${kind}: the message says what to do`).toMatch(ADVICE);
}

for (const entry of TARGETS) {
  describe.runIf(runsHere(entry.unavailable))(`${entry.name}: bad input`, () => {
    let context: Context;

    beforeAll(async () => {
      const target = await entry.open();
      const services = accountServices(target);
      context = {
        target,
        services,
        async stored() {
          const session = await target.session();
          try {
            const account = fresh();
            await services.accounts.save(account, session);
            return account;
          } finally {
            await target.release(session);
          }
        },
      };
    });
    afterAll(() => context?.target.close());

    it('refuses every bad entity, session, writer and method with a typed error that says what to do, writing nothing', async () => {
      const kinds = [...ENTITY_KINDS, ...misbehaving(context.target)];
      for (const bad of kinds) {
        const { target } = context;
        // Update kinds store their account first; count after that, so the refused call alone is measured.
        const session = await target.session();
        try {
          let error: unknown;
          let before = -1;
          const counted: Context = {
            ...context,
            stored: async () => {
              const account = await context.stored();
              before = await target.countAll();
              return account;
            },
          };
          if (!bad.kind.startsWith('update')) before = await target.countAll();
          try {
            await bad.call(counted, session);
          } catch (caught) {
            error = caught;
          }
          expectTyped(error, bad.error, bad.kind);
          expect(await target.countAll(), `${bad.kind} wrote nothing`).toBe(before);
          figures.add('bad-input', 'calls', target.name);
          figures.add('bad-input', bad.kind, target.name);
        } finally {
          await target.release(session);
        }
      }
      expect(kinds.length).toBeGreaterThanOrEqual(30);
    });
  });
}

describe('sessions that are closed, ended or released', () => {
  const services = () => {
    const writes: unknown[] = [];
    const history: HistoryWriter = { save: (entry) => void writes.push(entry) };
    @Versioned()
    @HistoryTracked('history', { entityType: 'Account' })
    class Service {
      constructor(readonly history: HistoryWriter) {}
      async save(account: Account, session: unknown): Promise<unknown> {
        return { account, session };
      }
    }
    return { service: new Service(history), writes };
  };

  async function refused(kind: string, session: unknown, expected: ErrorClass): Promise<void> {
    const { service, writes } = services();
    const account = fresh();
    const error = await service.save(account, session).catch((e: unknown) => e);
    expectTyped(error, expected, kind);
    expect(writes).toEqual([]);
    expect(account.version).toBeUndefined();
    figures.add('bad-input', 'calls', 'driver sessions');
    figures.add('bad-input', kind, 'driver sessions');
  }

  it('refuses an ended MongoDB session with SessionEndedError', async () => {
    const client = new MongoClient('mongodb://127.0.0.1:1', { serverSelectionTimeoutMS: 100 });
    const session = client.startSession();
    await session.endSession();
    await refused('session is an ended MongoDB session', session, SessionEndedError);
    await client.close();
  });

  it('refuses a closed SQLite database with ConnectionLostError', async () => {
    const db = new Database(':memory:');
    db.close();
    await refused('session is a closed SQLite database', db, ConnectionLostError);
  });

  it.runIf(runsHere(POSTGRES_URL === undefined ? 'DATABASE_URL is not set' : undefined))(
    'refuses a pg client released with destroy and an ended pg client with ConnectionLostError',
    async () => {
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
      const released = await pool.connect();
      released.release(true);
      await refused('session is a pg client released (destroyed) to its pool', released, ConnectionLostError);
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      await client.end();
      await refused('session is an ended pg client', client, ConnectionLostError);
      await pool.end();
    },
  );

  it.runIf(runsHere(MARIADB_URL === undefined ? 'MYSQL_URL is not set' : undefined))(
    'refuses an ended mariadb connection with ConnectionLostError',
    async () => {
      const url = new URL(MARIADB_URL ?? '');
      const connection = await mariadb.createConnection({
        host: url.hostname,
        port: Number(url.port || 3306),
        user: decodeURIComponent(url.username || 'root'),
        database: url.pathname.slice(1) || 'test',
      });
      await connection.end();
      await refused('session is an ended mariadb connection', connection, ConnectionLostError);
    },
  );
});

describe('unsafe table names', () => {
  const NAMES = [
    'history; DROP TABLE accounts',
    '"quoted"',
    'back`tick',
    '',
    'has space',
    'a.b.c',
    `t${'x'.repeat(70)}`,
    '1starts_with_digit',
    'naïve',
  ];

  it('refuses each unsafe table name in every SQL store with a TypeError that says which names are safe', () => {
    const connection = { query: () => Promise.resolve({ rows: [] }) };
    const db = new Database(':memory:');
    for (const table of NAMES) {
      for (const [store, create] of [
        ['PostgresHistoryStore', () => new PostgresHistoryStore(connection, { table })],
        ['MysqlHistoryStore', () => new MysqlHistoryStore(connection as unknown as MysqlQueryable, { table })],
        ['SqliteHistoryStore', () => new SqliteHistoryStore(db, { table })],
      ] as const) {
        let error: unknown;
        try {
          create();
        } catch (caught) {
          error = caught;
        }
        expectTyped(error, TypeError, `${store} with table ${JSON.stringify(table)}`);
        figures.add('bad-input', 'calls', 'table names');
      }
      figures.add('bad-input', `table name ${JSON.stringify(table)}`, 'table names');
    }
    db.close();
  });
});
