import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { PostgresHistoryStore, PostgresQueryable } from '../../src/postgres/index.js';
import type { HistoryTamper, OrderRow } from '../integration/fixture.js';

/** A table name no other test file, project or process uses. */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** What pg clients, pools, PGlite and its transactions all answer to. */
export interface Queryable {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount?: number | null }>;
}

/** The user's own repository code for the suite's orders table, written with plain SQL. */
export function orderSql(table: string) {
  return {
    create: `CREATE TABLE ${table} (id text PRIMARY KEY, total double precision NOT NULL, version integer NOT NULL, "timestamp" timestamptz NOT NULL)`,
    insert: (db: Queryable, order: OrderRow) =>
      db.query(`INSERT INTO ${table} (id, total, version, "timestamp") VALUES ($1, $2, $3, $4)`, [
        order.id,
        order.total,
        order.version,
        order.timestamp,
      ]),
    update: (db: Queryable, order: OrderRow, expected: number | undefined) =>
      expected === undefined
        ? db.query(`UPDATE ${table} SET total = $2, version = $3, "timestamp" = $4 WHERE id = $1`, [
            order.id,
            order.total,
            order.version,
            order.timestamp,
          ])
        : db.query(`UPDATE ${table} SET total = $2, version = $3, "timestamp" = $4 WHERE id = $1 AND version = $5`, [
            order.id,
            order.total,
            order.version,
            order.timestamp,
            expected,
          ]),
    remove: (db: Queryable, order: OrderRow, expected: number | undefined) =>
      expected === undefined
        ? db.query(`DELETE FROM ${table} WHERE id = $1`, [order.id])
        : db.query(`DELETE FROM ${table} WHERE id = $1 AND version = $2`, [order.id, expected]),
    read: async (db: Queryable, id: string): Promise<OrderRow | undefined> => {
      const { rows } = await db.query(`SELECT id, total, version, "timestamp" FROM ${table} WHERE id = $1`, [id]);
      const row = rows[0] as { id: string; total: number; version: number; timestamp: Date } | undefined;
      return row && { id: row.id, total: Number(row.total), version: Number(row.version), timestamp: row.timestamp };
    },
  };
}

export async function countHistory(
  db: Queryable,
  table: string,
  entityType: string,
  entityId: string,
): Promise<number> {
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE entity_type = $1 AND entity_id = $2`, [
    entityType,
    entityId,
  ]);
  return (rows[0] as { n: number }).n;
}

/** Passes every query on to `db` and remembers the ones the store sent. */
export function recording(db: Queryable): {
  connection: PostgresQueryable;
  sent: { text: string; params: unknown[] }[];
} {
  const sent: { text: string; params: unknown[] }[] = [];
  return {
    sent,
    connection: {
      query: (text: string, params?: unknown[]) => {
        sent.push({ text, params: params ?? [] });
        return db.query(text, params);
      },
    },
  };
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/**
 * Fills the store's table with 4 000 entries of 400 entities, then EXPLAINs every read the store
 * sends and checks that each is served by the history key or the timestamp index, not a scan.
 */
export async function expectIndexedReads(
  db: Queryable,
  store: PostgresHistoryStore,
  sent: { text: string }[],
): Promise<void> {
  await store.ensureSchema();
  await db.query(
    `INSERT INTO ${store.table} (entity_type, entity_id, version, op, "timestamp", snapshot)
     SELECT 'Order', 'o' || (i % 400), i / 400 + 1, 'update', timestamptz '2026-01-01' + i * interval '1 second', '{}'::jsonb
     FROM generate_series(0, 3999) AS i`,
  );
  await db.query(`ANALYZE ${store.table}`);
  sent.length = 0;
  await store.list('Order', 'o7', { fromVersion: 2, toVersion: 5 });
  await store.at('Order', 'o7', 3);
  await store.asOf('Order', 'o7', new Date(Date.UTC(2026, 0, 1, 0, 20)));
  await store.latest('Order', 'o7');
  await store.page('Order', 'o7', { after: 2, limit: 2 });
  await store.page('Order', 'o7', { direction: 'backward', limit: 2 });
  await store.byTransaction('tx-1');
  expect(sent).toHaveLength(7);
  for (const { text, params } of sent as { text: string; params: unknown[] }[]) {
    const { rows } = await db.query(`EXPLAIN (FORMAT JSON) ${text}`, params);
    const raw = (rows[0] as { 'QUERY PLAN': unknown })['QUERY PLAN'];
    const [{ Plan }] = (typeof raw === 'string' ? JSON.parse(raw) : raw) as [{ Plan: PlanNode }];
    const all = nodes(Plan);
    expect(
      all.map((node) => node['Node Type']),
      text,
    ).not.toContain('Seq Scan');
    expect(
      all.some((node) => node['Index Name']?.startsWith(store.table.split('.').at(-1) ?? '')),
      text,
    ).toBe(true);
    if (text.includes('"timestamp" <=')) {
      // asOf walks the timestamp index backwards; at most the entries of one instant get sorted.
      expect(all.map((node) => node['Index Name'] ?? '').some((name) => name.endsWith('entity_time_idx'))).toBe(true);
      expect(all.map((node) => node['Node Type'])).not.toContain('Sort');
    }
  }
}

/** Direct SQL edits of a history table, for the tamper-evidence tests. */
export function postgresTamper(db: () => Queryable, table: string): HistoryTamper {
  const key = 'entity_type = $1 AND entity_id = $2 AND version = $3';
  return {
    setTotal: async (type, id, version, total) => {
      await db().query(
        `UPDATE ${table} SET snapshot = jsonb_set(snapshot, '{total}', to_jsonb($4::float8)) WHERE ${key}`,
        [type, id, version, total],
      );
    },
    remove: async (type, id, version) => {
      await db().query(`DELETE FROM ${table} WHERE ${key}`, [type, id, version]);
    },
    insert: async (type, id, version, total) => {
      await db().query(
        `INSERT INTO ${table} (entity_type, entity_id, version, op, "timestamp", snapshot) ` +
          `VALUES ($1, $2, $3, 'update', now(), jsonb_build_object('id', $2::text, 'total', $4::float8))`,
        [type, id, version, total],
      );
    },
  };
}

/**
 * Counts round trips on a node-postgres client's socket, as a network would: one each time the
 * server's bytes arrive after the client wrote some. Counts what reaches the wire, whoever writes.
 */
export function wireRoundTrips(client: object): { readonly count: () => number; readonly stop: () => void } {
  const stream = (client as { connection: { stream: import('node:net').Socket } }).connection.stream;
  let written = stream.bytesWritten;
  let trips = 0;
  const onData = (): void => {
    if (stream.bytesWritten > written) trips++;
    written = stream.bytesWritten;
  };
  stream.prependListener('data', onData);
  return { count: () => trips, stop: () => void stream.off('data', onData) };
}
