import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  type HistoryEntry,
  HistoryTracked,
  InvalidEntityError,
  TransactionStateError,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { MysqlHistoryStore, type MysqlQueryable } from '../../src/mysql/index.js';
import { runQuery } from '../../src/mysql/query.js';
import { orderId } from '../integration/behaviour.js';
import { useFigures } from '../reliability/support/figures.js';
import { countRows, describeMysql, type MysqlDriverKit, uniqueTable } from './support.js';

interface Order {
  id: string;
  total: number;
  version?: number;
  timestamp?: Date;
  [field: string]: unknown;
}

/** The sql_modes the store must be indifferent to, each added to the server's default. */
const MODES: Record<string, readonly string[]> = {
  default: [],
  NO_BACKSLASH_ESCAPES: ['NO_BACKSLASH_ESCAPES'],
  ANSI_QUOTES: ['ANSI_QUOTES'],
  both: ['NO_BACKSLASH_ESCAPES', 'ANSI_QUOTES'],
};

/** Strings that broke (or could break) SQL built by escaping: quotes, backslashes, NUL, every plane. */
const HOSTILE = [
  "O'Brien",
  'back\\slash',
  "\\'",
  "\\\\'",
  "''",
  '"double" `tick`',
  'nul\u0000inside',
  '\u0000',
  "'; DROP TABLE canary; -- ",
  '%_\\%\\_',
  '\u00e9\u4e2d\u{1f600}\u{10ffff}\u{20000}\u{e0001}',
  '\r\n\t\b\u001a',
  '\u00bf\u0027',
  '\u815c\u0027',
];

/**
 * Text for an entry's own fields (id, actor): every store refuses a NUL there before writing
 * (InvalidEntityError, the codec's rule, tested in test/history/codec-stores.test.ts); inside
 * snapshots and metadata a NUL is carried exactly.
 */
function keyText(value: string): string {
  return value.replaceAll('\u0000', '\u2400');
}

/**
 * An entity id that, interpolated by mysql2 (which escapes a quote as \') under
 * NO_BACKSLASH_ESCAPES, closes its own literal, completes the row and appends a second row for
 * the entity Victim/v1, commenting out the rest of the statement. Hex literals: no quotes needed.
 */
const FORGING_ID =
  "', 1, 1, 20260101000000, 0x7b7d, NULL, NULL, NULL, NULL, NULL, NULL, NULL), " +
  '(0x56696374696d, 0x7631, 1, 1, 20260101000000, 0x7b7d, NULL, NULL, NULL, NULL, NULL, NULL, NULL) -- ';

/** The history statements against a database whose session runs in the given sql_modes; MySQL suites per driver. */
export function runMysqlSafetySuite<C extends MysqlQueryable, P>(kit: MysqlDriverKit<C, P>): void {
  // Also run by the reliability suite (test/reliability/differential.reliability.ts), whose report lists these.
  const figures = useFigures(`differential-mysql-${kit.name}`);
  describeMysql(`MySQL (${kit.name}): values, sql_mode and transaction state`, () => {
    const ordersTable = uniqueTable('eh_sorders');
    const historyTable = uniqueTable('eh_shistory');
    const canaryTable = uniqueTable('eh_canary');
    const locksTable = uniqueTable('eh_slocks');
    const weightTable = uniqueTable('eh_sweight');
    const ddlTables: string[] = [];
    let pool: P;
    let store: MysqlHistoryStore;

    const exec = (target: P | C, sql: string, values?: unknown[]) => kit.exec(target, sql, values);
    /** A statement with its values sent apart (a prepared statement), as code that must survive any sql_mode sends it. */
    const bound = (target: P | C, sql: string, values: unknown[]) => runQuery(kit.queryable(target), sql, values);

    async function withConnection<R>(work: (connection: C) => Promise<R>): Promise<R> {
      const connection = await kit.getConnection(pool);
      try {
        return await work(connection);
      } finally {
        await kit.release(connection);
      }
    }

    /** A decorated service over `history`; `during` runs after the order row is written. */
    function orderService(history: MysqlHistoryStore = store, options: { maxSnapshotBytes?: number } = {}) {
      @Versioned()
      @HistoryTracked(history, options)
      class OrderService {
        attempts = 0;
        during: ((session: C) => Promise<void>) | undefined;

        async save(order: Order, session: C): Promise<void> {
          this.attempts += 1;
          await bound(session, `INSERT INTO ${ordersTable} (id, total, version) VALUES (?, ?, ?)`, [
            order.id,
            order.total,
            order.version ?? null,
          ]);
          await this.during?.(session);
        }
      }
      return new OrderService();
    }

    const orderRow = async (id: string) =>
      ((await exec(pool, `SELECT id, version FROM ${ordersTable} WHERE id = ?`, [id])) as { version: unknown }[])[0];
    const canaryAlive = async () =>
      Number(((await exec(pool, `SELECT COUNT(*) AS n FROM ${canaryTable}`)) as { n: unknown }[])[0]?.n) === 1;

    beforeAll(async () => {
      pool = kit.createPool();
      await exec(
        pool,
        `CREATE TABLE ${ordersTable} (id VARCHAR(255) PRIMARY KEY, total DOUBLE NOT NULL, version INT NULL) ` +
          'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
      );
      await exec(pool, `CREATE TABLE ${canaryTable} (id INT PRIMARY KEY) ENGINE=InnoDB`);
      await exec(pool, `INSERT INTO ${canaryTable} VALUES (1)`);
      await exec(pool, `CREATE TABLE ${locksTable} (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB`);
      await exec(pool, `INSERT INTO ${locksTable} (id, n) VALUES (1, 0), (2, 0)`);
      await exec(pool, `CREATE TABLE ${weightTable} (id INT PRIMARY KEY) ENGINE=InnoDB`);
      store = new MysqlHistoryStore(kit.queryable(pool), { table: historyTable });
      await store.ensureSchema();
    });

    afterAll(async () => {
      if (pool === undefined) return;
      try {
        const tables = [ordersTable, historyTable, canaryTable, locksTable, weightTable, ...ddlTables];
        await exec(pool, `DROP TABLE IF EXISTS ${tables.flatMap((t) => [t, `${t}_heads`]).join(', ')}`);
      } finally {
        await kit.endPool(pool);
      }
    });

    function entryFor(entityId: string, snapshot: Record<string, unknown>, version = 1): HistoryEntry {
      return {
        entityType: 'Hostile',
        entityId,
        version,
        op: version === 1 ? 'create' : 'update',
        timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, version)),
        snapshot,
        actor: HOSTILE[0],
        reason: HOSTILE[2],
        metadata: { note: HOSTILE[3] },
        txId: HOSTILE[1],
      };
    }

    for (const [label, modes] of Object.entries(MODES).filter(([name]) => name !== 'default' && name !== 'both')) {
      it(`under ${label}, hostile values are written through every path and read back identical; a crafted id forges nothing`, async () => {
        const connection = await kit.connect({ sqlModes: modes });
        const modePool = kit.createPool({ sqlModes: modes });
        try {
          const [mode] = (await exec(connection, 'SELECT @@SESSION.sql_mode AS m')) as { m: string }[];
          for (const m of modes) expect(mode?.m).toContain(m);
          const onConnection = new MysqlHistoryStore(kit.queryable(connection), { table: historyTable });
          const onPool = new MysqlHistoryStore(kit.queryable(modePool), { table: historyTable });
          const tag = orderId();
          let n = 0;
          for (const value of [...HOSTILE, FORGING_ID]) {
            const snapshot = { [value]: value, nested: { [value]: [value, 0, -1.5e-300, Number.MAX_SAFE_INTEGER] } };
            // No session (pool, then connection), and with the connection as session.
            const written = [
              [onPool, entryFor(`${tag}:${n++}:${keyText(value)}`, snapshot), undefined],
              [onConnection, entryFor(`${tag}:${n++}:${keyText(value)}`, snapshot), undefined],
              [onPool, entryFor(`${tag}:${n++}:${keyText(value)}`, snapshot), connection],
            ] as const;
            for (const [target, entry, session] of written) {
              await target.save(entry, session);
              expect(await onConnection.at(entry.entityType, entry.entityId, 1)).toEqual(entry);
              expect(await onPool.list(entry.entityType, entry.entityId, { limit: 5 })).toEqual([entry]);
              expect(await onPool.latest(entry.entityType, entry.entityId)).toEqual(entry);
              expect(await onPool.byTransaction(HOSTILE[1] as string)).toContainEqual(entry);
            }
          }
          // Through the decorated pipeline, on the session in that mode: the id itself forges.
          const service = orderService(onPool);
          for (const id of [FORGING_ID, ...HOSTILE.map((value) => `${tag}:${keyText(value)}`)]) {
            const order: Order = { id: id === FORGING_ID ? `${FORGING_ID}${tag}`.slice(0, 255) : id, total: 1 };
            await service.save(order, connection);
            const [entry] = await onConnection.list('Order', order.id);
            expect(entry?.entityId).toBe(order.id);
            expect(entry?.snapshot).toEqual({ id: order.id, total: 1, version: 1, timestamp: order.timestamp });
          }
          expect(await countRows(kit, pool, historyTable, 'Victim', 'v1')).toBe(0);
          expect(await canaryAlive()).toBe(true);
        } finally {
          await kit.close(connection);
          await kit.endPool(modePool);
        }
      });
    }

    if (kit.name === 'mysql2') {
      it('the crafted id does forge a row through mysql2’s client-side interpolation under NO_BACKSLASH_ESCAPES (what the store no longer uses)', async () => {
        const connection = await kit.connect({ sqlModes: ['NO_BACKSLASH_ESCAPES'] });
        const table = uniqueTable('eh_forged');
        ddlTables.push(table);
        try {
          const probe = new MysqlHistoryStore(kit.queryable(connection), { table });
          await probe.ensureSchema();
          // The store's own INSERT, sent the way the previous version sent it: query() with values.
          const insert =
            `INSERT INTO \`${table}\` (\`entity_type\`, \`entity_id\`, \`version\`, \`op\`, \`timestamp\`, \`snapshot\`, ` +
            '`actor`, `reason`, `metadata`, `tx_id`, `schema_version`, `hash`, `prev_hash`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
          const values = ['Order', FORGING_ID, 1, 'create', '2026-01-01 00:00:00.000', '{}', null, null, null, null];
          await exec(connection, insert, [...values, null, null, null]);
          expect(await countRows(kit, pool, table, 'Victim', 'v1')).toBe(1);
          await expect(probe.save(entryFor(FORGING_ID, {}))).resolves.toBeUndefined();
          expect(await countRows(kit, pool, table, 'Victim', 'v1')).toBe(1);
          expect((await probe.list('Hostile', FORGING_ID)).map((entry) => entry.entityId)).toEqual([FORGING_ID]);
        } finally {
          await kit.close(connection);
        }
      });
    }

    it('differential: random entries through every path and sql_mode read back identical (bounded by count and time)', async () => {
      const COUNT = Number(process.env.MYSQL_DIFFERENTIAL_ENTRIES ?? 150);
      const BUDGET_MS = Number(process.env.MYSQL_DIFFERENTIAL_MS ?? 20_000);
      // Any code point but lone surrogates (the JSON codec's exactness for those is another change).
      const text = fc.oneof(
        { weight: 6, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
        { weight: 3, arbitrary: fc.constantFrom(...HOSTILE, FORGING_ID) },
        {
          weight: 3,
          arbitrary: fc
            .array(fc.constantFrom("'", '\\', '"', '`', '\u0000', '\u{1f600}', 'é', '\u{10ffff}', '%', '_'), {
              maxLength: 16,
            })
            .map((parts) => parts.join('')),
        },
      );
      // Huge values: about 0.4 MB and 1.3 MB of UTF-8, quotes, backslashes and 4-byte characters.
      const huge = fc.constantFrom(64_000, 225_000).map((times) => "\\'\u{1f600}".repeat(times));
      // -0 is excluded: JSON has no negative zero; NaN and infinities are not JSON either.
      const number = fc.oneof(
        fc.constantFrom(
          Number.MAX_SAFE_INTEGER,
          Number.MIN_SAFE_INTEGER,
          Number.MAX_VALUE,
          Number.MIN_VALUE,
          2 ** 31,
          -(2 ** 31) - 1,
          0.1,
        ),
        fc.double({ noNaN: true, noDefaultInfinity: true }).filter((value) => !Object.is(value, -0)),
        fc.integer(),
      );
      const leaf = fc.oneof(text, number, fc.boolean(), fc.constant(null));
      // '__proto__' and '$date' are left out: the first is no plain data key, the second is the JSON codec's Date tag.
      const key = text.filter((value) => value !== '__proto__' && value !== '$date');
      const { tree } = fc.letrec((tie) => ({
        tree: fc.oneof(
          { depthSize: 'small', withCrossShrink: true },
          leaf,
          fc.array(tie('tree'), { maxLength: 4 }),
          fc.dictionary(key, tie('tree'), { maxKeys: 4, noNullPrototype: true }),
        ),
      }));
      const sample = fc.record({
        key: text.filter((value) => value.length <= 60).map(keyText),
        snapshot: fc.dictionary(key, tree, { maxKeys: 5, noNullPrototype: true }),
        // One entry in fifteen carries a huge value.
        big: fc.oneof({ weight: 14, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: huge }),
        actor: fc.option(text.map(keyText), { nil: undefined }),
        metadata: fc.option(fc.dictionary(key, tree, { maxKeys: 3, noNullPrototype: true }), { nil: undefined }),
      });
      const samples = fc.sample(sample, {
        numRuns: COUNT,
        seed: Number(process.env.MYSQL_DIFFERENTIAL_SEED ?? 20261201),
      });

      const paths = ['owned', 'joined', 'pool', 'connection'] as const;
      const targets = await Promise.all(
        Object.entries(MODES).map(async ([label, modes]) => {
          const connection = await kit.connect({ sqlModes: modes });
          const modePool = kit.createPool({ sqlModes: modes });
          const onPool = new MysqlHistoryStore(kit.queryable(modePool), { table: historyTable });
          @Versioned()
          @HistoryTracked(onPool)
          class ThingService {
            async save(_thing: Record<string, unknown>, _session: C): Promise<void> {}
          }
          return {
            label,
            connection,
            modePool,
            onPool,
            onConnection: new MysqlHistoryStore(kit.queryable(connection), { table: historyTable }),
            service: new ThingService(),
          };
        }),
      );
      const started = Date.now();
      const mismatches: string[] = [];
      let entries = 0;
      try {
        for (const [index, { key, snapshot: drawn, big, actor, metadata }] of samples.entries()) {
          const snapshot = big === undefined ? drawn : { ...drawn, big };
          if (Date.now() - started > BUDGET_MS) break;
          entries += 1;
          for (const target of targets) {
            for (const path of paths) {
              const id = `d${index}:${target.label}:${path}:${key}`;
              let expected: HistoryEntry;
              if (path === 'owned' || path === 'joined') {
                const thing: Record<string, unknown> = { ...snapshot, id };
                if (path === 'joined') await kit.beginTransaction(target.connection);
                await target.service.save(thing, target.connection);
                if (path === 'joined') await kit.commit(target.connection);
                expected = {
                  entityType: 'Thing',
                  entityId: id,
                  version: 1,
                  op: 'create',
                  timestamp: thing.timestamp as Date,
                  snapshot: { ...thing },
                };
              } else {
                expected = {
                  entityType: 'Thing',
                  entityId: id,
                  version: 1,
                  op: 'create',
                  timestamp: new Date(Date.UTC(2026, 5, 1, 12, 0, 0, index % 1000)),
                  snapshot,
                  txId: key,
                };
                if (actor !== undefined) expected.actor = actor;
                if (metadata !== undefined) expected.metadata = metadata;
                await (path === 'pool' ? target.onPool : target.onConnection).save(expected);
              }
              // Read back through the mode's connection or its pool, in turn.
              for (const reader of [index % 2 === 0 ? target.onConnection : target.onPool]) {
                const read = await reader.at('Thing', id, 1);
                const { txId: _readTx, ...readRest } = read ?? ({} as HistoryEntry);
                const { txId: _expectedTx, ...expectedRest } = expected;
                const sameTx =
                  path === 'owned' || path === 'joined' ? typeof read?.txId === 'string' : read?.txId === key;
                if (!sameTx || !isDeepStrictEqual(readRest, expectedRest)) {
                  mismatches.push(`${target.label}/${path}/${index}: ${JSON.stringify(key)}`);
                }
              }
            }
          }
        }
      } finally {
        for (const target of targets) {
          await kit.close(target.connection);
          await kit.endPool(target.modePool);
        }
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.info(
        `DIFFERENTIAL mysql: driver=${kit.name} entries=${entries} modes=${targets.length} paths=${paths.length} ` +
          `writes=${entries * targets.length * paths.length} seconds=${seconds} mismatches=${mismatches.length}`,
      );
      const where = `MariaDB (${kit.name})`;
      figures.add('differential', 'random entries, each written through every path', where, entries);
      figures.add(
        'differential',
        'sql_modes tried (default, NO_BACKSLASH_ESCAPES, ANSI_QUOTES, both)',
        where,
        targets.length,
      );
      figures.add('differential', 'write paths (owned, joined, pool, connection)', where, paths.length);
      figures.add('differential', 'read-back mismatches', where, mismatches.length);
      const alive = await canaryAlive();
      figures.add('differential', 'canary tables lost', where, alive ? 0 : 1);
      expect(mismatches).toEqual([]);
      expect(entries).toBeGreaterThanOrEqual(Math.min(COUNT, 20));
      expect(await countRows(kit, pool, historyTable, 'Victim', 'v1')).toBe(0);
      expect(await canaryAlive()).toBe(true);
    }, 120_000);

    it('a joined call that fails after the method wrote leaves nothing of it; the caller commits its own work (history conflict)', async () => {
      const service = orderService();
      const [callerRow, id] = [orderId(), orderId()];
      // The history already holds version 1 of this id: the call's INSERT conflicts after the method wrote.
      await store.save({ ...entryFor(id, {}), entityType: 'Order' });
      await withConnection(async (connection) => {
        await kit.beginTransaction(connection);
        await exec(connection, `INSERT INTO ${ordersTable} (id, total, version) VALUES (?, 7, NULL)`, [callerRow]);
        const order: Order = { id, total: 1 };
        const error = await service.save(order, connection).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(VersionConflictError);
        expect(order.version).toBeUndefined();
        expect(await kit.serverInTransaction(connection)).toBe(true);
        await kit.commit(connection);
      });
      expect(await orderRow(callerRow)).toBeDefined();
      expect(await orderRow(id)).toBeUndefined();
      expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(1);
    });

    it('a joined call whose snapshot is over maxSnapshotBytes leaves nothing of it; the caller commits its own work', async () => {
      const service = orderService(store, { maxSnapshotBytes: 64 });
      const [callerRow, id] = [orderId(), orderId()];
      await withConnection(async (connection) => {
        await kit.beginTransaction(connection);
        await exec(connection, `INSERT INTO ${ordersTable} (id, total, version) VALUES (?, 7, NULL)`, [callerRow]);
        const error = await service.save({ id, total: 1, note: 'x'.repeat(200) }, connection).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidEntityError);
        await kit.commit(connection);
      });
      expect(await orderRow(callerRow)).toBeDefined();
      expect(await orderRow(id)).toBeUndefined();
      expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(0);
    });

    it('a nested decorated call that fails is undone to its savepoint; the outer call catches it and commits its own work', async () => {
      // Passes once the pipeline hands nested calls to adapter.join (the lead's pipeline change).
      const inner = orderService();
      inner.during = async () => {
        throw new Error('inner fails after its write');
      };
      const [outerId, innerId] = [orderId(), orderId()];
      @Versioned()
      @HistoryTracked(store, { entityType: 'Order' })
      class OuterService {
        async save(order: Order, session: C): Promise<void> {
          await bound(session, `INSERT INTO ${ordersTable} (id, total, version) VALUES (?, ?, ?)`, [
            order.id,
            order.total,
            order.version ?? null,
          ]);
          await expect(inner.save({ id: innerId, total: 2 }, session)).rejects.toThrow('inner fails');
        }
      }
      await withConnection((connection) => new OuterService().save({ id: outerId, total: 1 }, connection));
      expect(await orderRow(outerId)).toBeDefined();
      expect(await orderRow(innerId)).toBeUndefined();
      expect(await countRows(kit, pool, historyTable, 'Order', outerId)).toBe(1);
      expect(await countRows(kit, pool, historyTable, 'Order', innerId)).toBe(0);
    });

    it('adapter.join runs work after a savepoint: a failure rolls back to it, a success stays, the outer transaction commits', async () => {
      const { adapter } = kit;
      const [outerRow, failedRow, keptRow] = [orderId(), orderId(), orderId()];
      const sent: string[] = [];
      await withConnection(async (connection) => {
        const join = adapter.join;
        if (join === undefined) throw new Error(`${adapter.name} has no join`);
        await adapter.run(connection, async () => {
          await exec(connection, `INSERT INTO ${ordersTable} (id, total) VALUES (?, 1)`, [outerRow]);
          const spying = connection as unknown as { query(sql: unknown, values?: unknown): Promise<unknown> };
          const original = spying.query;
          spying.query = function (this: unknown, sql: unknown, values?: unknown) {
            if (typeof sql === 'string') sent.push(sql);
            return original.call(this, sql, values);
          };
          try {
            await expect(
              join.call(adapter, connection, async () => {
                await exec(connection, `INSERT INTO ${ordersTable} (id, total) VALUES (?, 1)`, [failedRow]);
                // Nested one level deeper: its own savepoint, kept.
                await join.call(adapter, connection, async () => {
                  await exec(connection, `INSERT INTO ${ordersTable} (id, total) VALUES (?, 2)`, [
                    `${failedRow}-inner`,
                  ]);
                });
                throw new Error('undo the joined work');
              }),
            ).rejects.toThrow('undo the joined work');
            await join.call(adapter, connection, () =>
              exec(connection, `INSERT INTO ${ordersTable} (id, total) VALUES (?, 1)`, [keptRow]),
            );
          } finally {
            spying.query = original;
          }
        });
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      expect(sent.filter((sql) => /SAVEPOINT/.test(sql))).toEqual([
        'SAVEPOINT event_history_1',
        'SAVEPOINT event_history_2',
        'ROLLBACK TO SAVEPOINT event_history_1',
        'SAVEPOINT event_history_1',
      ]);
      expect(await orderRow(outerRow)).toBeDefined();
      expect(await orderRow(failedRow)).toBeUndefined();
      expect(await orderRow(`${failedRow}-inner`)).toBeUndefined();
      expect(await orderRow(keptRow)).toBeDefined();
    });

    /**
     * A real deadlock whose error the method catches: `other` writes many rows (so InnoDB picks
     * the call as the victim) and locks row 2; the method locks row 1 and waits for row 2; then
     * `other` asks for row 1.
     */
    async function deadlockCaught(connection: C, call: (service: ReturnType<typeof orderService>) => Promise<void>) {
      const service = orderService();
      let caught: unknown;
      service.during = async (session) => {
        try {
          await exec(session, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 1`);
          await exec(session, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 2`);
        } catch (error) {
          caught = error;
        }
      };
      const other = await kit.getConnection(pool);
      try {
        await kit.beginTransaction(other);
        const rows = Array.from({ length: 200 }, (_, i) => `(${i})`).join(', ');
        await exec(other, `INSERT INTO ${weightTable} (id) VALUES ${rows}`);
        await exec(other, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 2`);
        const running = Promise.allSettled([call(service)]);
        await waitForLockWait(kit.threadId(connection));
        await exec(other, `UPDATE ${locksTable} SET n = n + 1 WHERE id = 1`);
        await kit.rollback(other);
        const [outcome] = await running;
        return { service, caught, outcome: outcome as PromiseSettledResult<void> };
      } finally {
        await kit.rollback(other).catch(() => {});
        await kit.release(other);
      }
    }

    async function waitForLockWait(threadId: number): Promise<void> {
      for (let tries = 0; tries < 50; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 120));
        const rows = (await exec(
          pool,
          "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'",
          [threadId],
        )) as { n: number | bigint }[];
        if (Number(rows[0]?.n) > 0) return;
      }
      throw new Error(`connection ${threadId} never waited for the lock`);
    }

    function expectClosed(outcome: PromiseSettledResult<void>, pattern: RegExp): TransactionStateError {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as TransactionStateError;
      expect(error).toBeInstanceOf(TransactionStateError);
      expect(error).toMatchObject({ code: 'TRANSACTION_CLOSED', adapter: kit.name });
      expect(error.message).toMatch(pattern);
      return error;
    }

    it('a deadlock the method catches, in a transaction the library owns: TRANSACTION_CLOSED, no history in autocommit, entity restored', async () => {
      const id = orderId();
      const order: Order = { id, total: 1 };
      await withConnection(async (connection) => {
        const { service, caught, outcome } = await deadlockCaught(connection, (service) =>
          service.save(order, connection),
        );
        expect(caught).toMatchObject({ errno: 1213 });
        expectClosed(outcome, /deadlock \(1213\)/);
        expect(service.attempts).toBe(1);
        expect(await kit.serverInTransaction(connection)).toBe(false);
      });
      expect(order.version).toBeUndefined();
      expect(order.timestamp).toBeUndefined();
      expect(await orderRow(id)).toBeUndefined();
      expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(0);
    });

    it('a deadlock the method catches, in a transaction the caller began: TRANSACTION_CLOSED, nothing written', async () => {
      const id = orderId();
      const order: Order = { id, total: 1 };
      await withConnection(async (connection) => {
        await kit.beginTransaction(connection);
        const { caught, outcome } = await deadlockCaught(connection, (service) => service.save(order, connection));
        expect(caught).toMatchObject({ errno: 1213 });
        expectClosed(outcome, /The transaction you began/);
        expect(await kit.serverInTransaction(connection)).toBe(false);
        await kit.rollback(connection);
      });
      expect(order.version).toBeUndefined();
      expect(await orderRow(id)).toBeUndefined();
      expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(0);
    });

    for (const joined of [false, true]) {
      const whose = joined ? 'the caller’s transaction' : 'a transaction the library owns';
      it(`DDL inside the method, in ${whose}, then success: TRANSACTION_CLOSED, no history, the committed row reported as such`, async () => {
        const service = orderService();
        const table = uniqueTable('eh_ddl');
        ddlTables.push(table);
        service.during = async (session) => {
          await exec(session, `CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
        };
        const id = orderId();
        const order: Order = { id, total: 1 };
        await withConnection(async (connection) => {
          if (joined) await kit.beginTransaction(connection);
          const error = await service.save(order, connection).catch((e: unknown) => e);
          expectClosed({ status: 'rejected', reason: error }, /commits implicitly \(CREATE/);
          expect((error as Error).message).toMatch(/none was/);
          expect(await kit.serverInTransaction(connection)).toBe(false);
          if (joined) await kit.rollback(connection);
        });
        expect(order.version).toBeUndefined();
        // MySQL committed the method's INSERT with the CREATE TABLE, as the error says; no history claims it.
        expect(await orderRow(id)).toMatchObject({ version: 1 });
        expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(0);
      });

      it(`DDL inside the method, in ${whose}, then a failure: TRANSACTION_CLOSED with the failure as cause, no history`, async () => {
        const service = orderService();
        const table = uniqueTable('eh_ddl');
        ddlTables.push(table);
        const failure = new Error('fails after the DDL');
        service.during = async (session) => {
          await exec(session, `CREATE TABLE ${table} (id INT PRIMARY KEY) ENGINE=InnoDB`);
          throw failure;
        };
        const id = orderId();
        const order: Order = { id, total: 1 };
        await withConnection(async (connection) => {
          if (joined) await kit.beginTransaction(connection);
          const error = await service.save(order, connection).catch((e: unknown) => e);
          expectClosed({ status: 'rejected', reason: error }, /which then failed/);
          expect((error as Error).cause).toBe(failure);
          if (joined) await kit.rollback(connection);
        });
        expect(order.version).toBeUndefined();
        expect(await orderRow(id)).toMatchObject({ version: 1 });
        expect(await countRows(kit, pool, historyTable, 'Order', id)).toBe(0);
      });
    }

    it('a failure that leaves the transaction open is reported as it is, and the next call commits normally', async () => {
      const service = orderService();
      const failure = new Error('plain failure');
      service.during = async () => {
        throw failure;
      };
      const [failed, kept] = [orderId(), orderId()];
      await withConnection(async (connection) => {
        await expect(service.save({ id: failed, total: 1 }, connection)).rejects.toBe(failure);
        service.during = undefined;
        await service.save({ id: kept, total: 1 }, connection);
      });
      expect(await orderRow(failed)).toBeUndefined();
      expect(await countRows(kit, pool, historyTable, 'Order', kept)).toBe(1);
    });
  });
}
