import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { VERSION } from '../../src/cli/version.js';
import { HistoryTracked, Versioned, withHistoryContext } from '../../src/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { tickingClock } from '../support/orders.js';

const ROOT = join(import.meta.dirname, '../..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command line in this process, its output captured. */
async function run(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: {},
  });
  return { code, stdout, stderr };
}

class Order {
  version?: number;
  timestamp?: Date;
  constructor(
    readonly id: string,
    public total: number,
    public lines: { id: number; qty: number }[] = [],
  ) {}
}

/** The change lines of text output (`    + path: …`), as [kind, path]. */
function changeLines(text: string): string[][] {
  return text
    .split('\n')
    .map((line) => /^ {4}([+~-]) ([^:]+):/.exec(line))
    .filter((match) => match !== null)
    .map((match) => [match[1] as string, match[2] as string]);
}

const KIND = { add: '+', remove: '-', change: '~' } as const;

describe('event-history CLI: finding what a store holds, and saying what it does not', () => {
  const path = join(tmpdir(), `event-history-explore-${process.pid}-${randomBytes(4).toString('hex')}.db`);
  const url = `sqlite:${path}`;
  let db: Database.Database;

  beforeAll(async () => {
    db = new Database(path);
    const store = new SqliteHistoryStore(db);
    await store.ensureSchema();
    @Versioned({ clock: tickingClock() })
    @HistoryTracked(store, { chain: true })
    class OrderService {
      async save(_order: Order, _session: unknown): Promise<void> {}
      async update(_order: Order, _session: unknown): Promise<void> {}
    }
    const orders = new OrderService();
    const order = new Order('o1', 10, [{ id: 1, qty: 1 }]);
    await orders.save(order, db);
    order.total = 12;
    await withHistoryContext({ actor: 'ada', reason: 'price change' }, () => orders.update(order, db));
    order.lines.push({ id: 2, qty: 3 });
    order.lines[0] = { id: 1, qty: 5 };
    await orders.update(order, db);
    await orders.save(new Order('o2', 1), db);
    const at = new Date(Date.UTC(2026, 0, 1));
    await store.save({ entityType: 'Invoice', entityId: 'i1', version: 1, op: 'create', timestamp: at, snapshot: {} });
    for (let i = 0; i < 150; i++) {
      const entityId = `b${String(i).padStart(3, '0')}`;
      await store.save({ entityType: 'Bulk', entityId, version: 1, op: 'create', timestamp: at, snapshot: {} });
    }
  });

  afterAll(() => {
    db.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
  });

  it('--version and -V print the version package.json declares, from the bin too', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
    expect(await run(['--version'])).toEqual({ code: 0, stdout: `event-history ${pkg.version}\n`, stderr: '' });
    expect(await run(['-V'])).toEqual({ code: 0, stdout: `event-history ${pkg.version}\n`, stderr: '' });
    const bin = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/bin.ts'), '--version'], (error, stdout) =>
        error ? reject(error) : resolve(stdout),
      ),
    );
    expect(bin).toBe(`event-history ${pkg.version}\n`);
  });

  it('log --limit 0 prints no entry ([] with --json), --limit 1 exactly one, and a missing entity is still not found', async () => {
    const none = await run(['log', 'Order', 'o1', '--url', url, '--limit', '0']);
    const json = await run(['log', 'Order', 'o1', '--url', url, '--limit', '0', '--json']);
    const one = await run(['log', 'Order', 'o1', '--url', url, '--limit', '1', '--json']);
    const missing = await run(['log', 'Order', 'nobody', '--url', url, '--limit', '0']);

    expect(none).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(json).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
    expect((JSON.parse(one.stdout) as { version: number }[]).map((entry) => entry.version)).toEqual([3]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Order nobody has no history');
  });

  it('a type in the wrong case is not found, and the message names the type that exists', async () => {
    for (const args of [
      ['log', 'order', 'o1'],
      ['show', 'ORDER', 'o1', '1'],
      ['diff', 'order', 'o1', '1', '2'],
      ['verify', 'order', 'o1'],
      ['ids', 'order'],
    ]) {
      const result = await run([...args, '--url', url]);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toBe(
        `event-history: no history for entity type ${JSON.stringify(args[1])} in ${path} entity_history; did you mean "Order"?\n`,
      );
    }
    const unknown = await run(['log', 'Ordr', 'o1', '--url', url]);
    expect(unknown.stderr).toContain(
      `no history for entity type "Ordr" in ${path} entity_history; it holds "Bulk", "Invoice", "Order"`,
    );
  });

  it('types lists the entity types; ids lists a type’s ids, by prefix and limit, across pages, as text or --json', async () => {
    expect(await run(['types', '--url', url])).toEqual({ code: 0, stdout: 'Bulk\nInvoice\nOrder\n', stderr: '' });
    expect(JSON.parse((await run(['types', '--url', url, '--json'])).stdout)).toEqual(['Bulk', 'Invoice', 'Order']);
    expect((await run(['ids', 'Order', '--url', url])).stdout).toBe('o1\no2\n');
    expect((await run(['ids', 'Order', '--url', url, '--prefix', 'o2'])).stdout).toBe('o2\n');
    expect((await run(['ids', 'Order', '--url', url, '--limit', '1', '--json'])).stdout).toBe('["o1"]\n');

    const all = (await run(['ids', 'Bulk', '--url', url])).stdout.trimEnd().split('\n');
    const some = JSON.parse((await run(['ids', 'Bulk', '--url', url, '--limit', '120', '--json'])).stdout) as string[];
    const prefixed = (await run(['ids', 'Bulk', '--url', url, '--prefix', 'b14'])).stdout;
    expect(all).toHaveLength(150);
    expect(new Set(all).size).toBe(150);
    expect(all).toEqual([...all].sort());
    expect(some).toEqual(all.slice(0, 120));
    expect(prefixed).toBe(`${Array.from({ length: 10 }, (_, i) => `b14${i}`).join('\n')}\n`);
    expect(await run(['ids', 'Order', '--url', url, '--prefix', 'zz'])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await run(['types', 'extra', '--url', url])).toMatchObject({ code: 2 });
  });

  it('diff shows the changes between any two versions, or from the version before, and a missing version exits 1', async () => {
    const both = await run(['diff', 'Order', 'o1', '1', '3', '--url', url]);
    const backwards = await run(['diff', 'Order', 'o1', '3', '1', '--url', url, '--json']);
    const previous = await run(['diff', 'Order', 'o1', '3', '--url', url]);
    const missing = await run(['diff', 'Order', 'o1', '1', '9', '--url', url]);

    expect(both.code).toBe(0);
    expect(both.stdout).toBe(
      'Order o1: version 1 → version 3\n\n' +
        '    ~ lines[id=1].qty: 1 → 5\n    + lines[id=2]: {"id":2,"qty":3}\n    ~ total: 10 → 12\n',
    );
    expect(JSON.parse(backwards.stdout)).toMatchObject({
      fromVersion: 3,
      toVersion: 1,
      changes: [
        { path: 'lines[id=1].qty', kind: 'change', before: 5, after: 1 },
        { path: 'lines[id=2]', kind: 'remove' },
        { path: 'total', kind: 'change', before: 12, after: 10 },
      ],
    });
    expect(previous.stdout).toMatch(/^Order o1: version 2 → version 3\n/);
    expect(changeLines(previous.stdout)).toEqual([
      ['~', 'lines[id=1].qty'],
      ['+', 'lines[id=2]'],
    ]);
    expect(missing).toMatchObject({ code: 1, stderr: 'event-history: Order o1 has no version 9 (its latest is 3).\n' });
  });

  it('--json holds exactly the changes the text prints, for log, show and diff', async () => {
    const [text, json] = await Promise.all([
      run(['log', 'Order', 'o1', '--url', url]),
      run(['log', 'Order', 'o1', '--url', url, '--json']),
    ]);
    const entries = JSON.parse(json.stdout) as { version: number; changes: { path: string; kind: 'add' }[] }[];
    const blocks = text.stdout.split(/\n(?=version \d+ )/);
    expect(blocks).toHaveLength(entries.length);
    entries.forEach((entry, i) => {
      expect(blocks[i]).toMatch(new RegExp(`^version ${entry.version} `));
      expect(changeLines(blocks[i] as string)).toEqual(entry.changes.map((change) => [KIND[change.kind], change.path]));
      expect(entry.changes.map((change) => change.path)).not.toContain('version');
      expect(entry.changes.map((change) => change.path)).not.toContain('timestamp');
    });
    for (const args of [
      ['show', 'Order', 'o1', '2'],
      ['diff', 'Order', 'o1', '1', '3'],
    ]) {
      const [shown, shownJson] = await Promise.all([
        run([...args, '--url', url]),
        run([...args, '--url', url, '--json']),
      ]);
      const changes = (JSON.parse(shownJson.stdout) as { changes: { path: string; kind: 'add' }[] }).changes;
      expect(changeLines(shown.stdout.split('Snapshot:')[0] as string), args.join(' ')).toEqual(
        changes.map((change) => [KIND[change.kind], change.path]),
      );
    }
  });
});
