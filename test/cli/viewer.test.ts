import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveCommand, startViewer } from '../../src/cli/serve.js';
import { VIEWER_ASSETS } from '../../src/cli/viewer-page.js';
import { type HistoryEntry, HistoryTracked, Versioned, withHistoryContext } from '../../src/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { tickingClock } from '../support/orders.js';

const HOSTILE_ID = '<img src=x onerror="window.pwned=1">/"\'&';
const HOSTILE_NOTE = '</script><script>window.pwned=2</script>';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One raw HTTP request, so the method and Host header are exactly as given. */
function send(url: string, method = 'GET', headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function json<T>(url: string): Promise<{ status: number; body: T }> {
  const answer = await send(url);
  return { status: answer.status, body: JSON.parse(answer.body) as T };
}

const seg = encodeURIComponent;

class Order {
  version?: number;
  timestamp?: Date;
  note?: string;
  constructor(
    readonly id: string,
    public total: number,
  ) {}
}

describe('the history viewer’s JSON API (event-history serve)', () => {
  const db = new Database(':memory:');
  const store = new SqliteHistoryStore(db);
  let viewer: Awaited<ReturnType<typeof startViewer>>;
  let base: string;
  let txId: string;

  beforeAll(async () => {
    await store.ensureSchema();
    @Versioned({ clock: tickingClock() })
    @HistoryTracked(store, { chain: true })
    class OrderService {
      async save(_order: Order, _session: unknown): Promise<void> {}
      async update(_order: Order, _session: unknown): Promise<void> {}
    }
    const orders = new OrderService();
    const order = new Order('o1', 10);
    await orders.save(order, db);
    order.total = 12;
    await withHistoryContext({ actor: 'ada', reason: 'price change' }, () => orders.update(order, db));
    const long = new Order('long', 0);
    await orders.save(long, db);
    for (let v = 2; v <= 105; v++) {
      long.total = v;
      await orders.update(long, db);
    }
    const hostile = new Order(HOSTILE_ID, 1);
    hostile.note = HOSTILE_NOTE;
    await withHistoryContext({ actor: HOSTILE_NOTE }, () => orders.save(hostile, db));
    txId = (await store.latest('Order', 'o1'))?.txId as string;
    const invoice: HistoryEntry = {
      entityType: 'Invoice',
      entityId: 'i1',
      version: 1,
      op: 'create',
      timestamp: new Date(Date.UTC(2026, 0, 1)),
      snapshot: { amount: 12 },
      txId,
    };
    await store.save(invoice);
    viewer = await startViewer(store, { where: 'memory entity_history', port: 0 });
    base = viewer.url;
  });

  afterAll(async () => {
    await viewer?.close();
    db.close();
  });

  it('listens on 127.0.0.1 unless told otherwise, and serves the page, its script and style from the package', async () => {
    expect(viewer.server.address()).toMatchObject({ address: '127.0.0.1' });
    const [page, script, style] = await Promise.all([send(base), send(`${base}viewer.js`), send(`${base}viewer.css`)]);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script src="/viewer.js" defer></script>');
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.body).toBe(VIEWER_ASSETS['/viewer.js']?.body);
    expect(style.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
  });

  it('lists entity types, and a type’s ids by prefix with a cursor to the next page', async () => {
    expect((await json(`${base}api/store`)).body).toEqual({ where: 'memory entity_history' });
    expect((await json(`${base}api/types`)).body).toEqual({ types: ['Invoice', 'Order'] });
    const all = await json<{ ids: string[] }>(`${base}api/types/Order/ids`);
    expect(all.body.ids).toEqual([HOSTILE_ID, 'long', 'o1']);
    const first = await json<{ ids: string[]; next?: string }>(`${base}api/types/Order/ids?limit=1&prefix=`);
    expect(first.body).toEqual({ entityType: 'Order', ids: [HOSTILE_ID], next: HOSTILE_ID });
    const rest = await json<{ ids: string[]; next?: string }>(
      `${base}api/types/Order/ids?limit=5&after=${seg(first.body.next as string)}`,
    );
    expect(rest.body).toEqual({ entityType: 'Order', ids: ['long', 'o1'] });
    expect((await json(`${base}api/types/Order/ids?prefix=o`)).body).toEqual({ entityType: 'Order', ids: ['o1'] });
  });

  it('gives an entity’s timeline newest first with version, time, actor, reason, txId and changes, without snapshots', async () => {
    const { status, body } = await json<{ entries: Record<string, unknown>[]; next?: unknown }>(
      `${base}api/entities/Order/o1/history`,
    );
    expect(status).toBe(200);
    expect(body.next).toBeUndefined();
    expect(body.entries).toEqual([
      expect.objectContaining({
        version: 2,
        op: 'update',
        timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        actor: 'ada',
        reason: 'price change',
        txId,
        previousVersion: 1,
        changes: [{ path: 'total', kind: 'change', before: 10, after: 12 }],
      }),
      expect.objectContaining({ version: 1, op: 'create', previousVersion: null }),
    ]);
    for (const entry of body.entries) expect(entry).not.toHaveProperty('snapshot');
    expect((body.entries[1]?.changes as { path: string }[] | undefined)?.map((change) => change.path)).toEqual([
      'id',
      'total',
    ]);
  });

  it('pages a long timeline, and the oldest entry of a page shows its changes from the version past the page', async () => {
    type Page = { entries: { version: number; changes: unknown[] }[]; next?: { before: number } };
    const first = await json<Page>(`${base}api/entities/Order/long/history`);
    expect(first.body.entries).toHaveLength(100);
    expect(first.body.entries[0]?.version).toBe(105);
    expect(first.body.entries.at(-1)).toMatchObject({
      version: 6,
      changes: [{ path: 'total', kind: 'change', before: 5, after: 6 }],
    });
    expect(first.body.next).toEqual({ before: 6 });
    const second = await json<Page>(`${base}api/entities/Order/long/history?before=6`);
    expect(second.body.entries.map((entry) => entry.version)).toEqual([5, 4, 3, 2, 1]);
    expect(second.body.next).toBeUndefined();
  });

  it('gives one version with its snapshot, and a diff of any two versions with both snapshots', async () => {
    const version = await json<{ entry: HistoryEntry; changes: unknown[] }>(`${base}api/entities/Order/o1/versions/2`);
    expect(version.body.entry).toMatchObject({ version: 2, snapshot: { id: 'o1', total: 12 } });
    expect(version.body.changes).toEqual([{ path: 'total', kind: 'change', before: 10, after: 12 }]);
    const back = await json<{ from: HistoryEntry; to: HistoryEntry; changes: unknown[] }>(
      `${base}api/entities/Order/long/diff?from=105&to=3`,
    );
    expect(back.body.from).toMatchObject({ version: 105, snapshot: { total: 105 } });
    expect(back.body.to).toMatchObject({ version: 3, snapshot: { total: 3 } });
    expect(back.body.changes).toEqual([{ path: 'total', kind: 'change', before: 105, after: 3 }]);
  });

  it('gives the chain status (verifyHistory with what it proves), and finds a row altered with SQL', async () => {
    const intact = await json<{ ok: boolean; chained: boolean; anchored: boolean; notes: string[] }>(
      `${base}api/entities/Order/o1/verify`,
    );
    expect(intact.body).toMatchObject({ ok: true, chained: true, anchored: true, entries: 2 });
    expect(intact.body.notes[0]).toMatch(/^anchored: /);
    db.exec(
      `UPDATE entity_history SET snapshot = json_set(snapshot, '$.total', 99) WHERE entity_id = 'long' AND version = 50`,
    );
    const tampered = await json(`${base}api/entities/Order/long/verify`);
    expect(tampered.body).toMatchObject({ ok: false, kind: 'altered', version: 50 });
  });

  it('gives everything one transaction wrote, across entity types', async () => {
    const { status, body } = await json<{ entries: Record<string, unknown>[] }>(`${base}api/transactions/${seg(txId)}`);
    expect(status).toBe(200);
    expect(body.entries.map((entry) => [entry.entityType, entry.entityId, entry.version])).toEqual([
      ['Invoice', 'i1', 1],
      ['Order', 'o1', 2],
    ]);
    expect(body.entries[0]).not.toHaveProperty('snapshot');
    expect((await send(`${base}api/transactions/no-such-tx`)).status).toBe(404);
  });

  it('answers what it cannot find or read with 404 or 400 and a message, naming the type a wrong case meant', async () => {
    const cases: [string, number, string][] = [
      ['api/entities/order/o1/history', 404, 'no history for entity type "order"; did you mean "Order"?'],
      ['api/entities/Order/nobody/history', 404, 'Order nobody has no history.'],
      ['api/entities/Order/o1/versions/9', 404, 'Order o1 has no version 9 (its latest is 2).'],
      ['api/entities/Order/o1/versions/x', 400, 'version must be a whole number, got "x".'],
      ['api/entities/Order/o1/diff?from=1', 400, 'diff needs ?from=<version>&to=<version>.'],
      ['api/entities/order/o1/verify', 404, 'no history for entity type "order"; did you mean "Order"?'],
      ['api/nothing', 404, 'no such API route: /api/nothing'],
      ['api/types/%E0%A4%A/ids', 400, 'the path is not valid percent-encoding.'],
    ];
    for (const [path, status, error] of cases) {
      expect(await json(`${base}${path}`), path).toEqual({ status, body: { error } });
    }
  });

  it('is read-only: every method but GET is refused with 405 and Allow: GET, and nothing is written', async () => {
    const before = await store.list('Order', 'o1');
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      for (const path of ['', 'api/types', 'api/entities/Order/o1/history']) {
        const answer = await send(`${base}${path}`, method);
        expect(answer.status, `${method} /${path}`).toBe(405);
        expect(answer.headers.allow).toBe('GET');
      }
    }
    expect(await store.list('Order', 'o1')).toEqual(before);
  });

  it('answers only for its loopback names, so a page that rebinds its own name to 127.0.0.1 reads nothing', async () => {
    const port = new URL(base).port;
    const evil = await send(`${base}api/types`, 'GET', { host: `evil.example:${port}` });
    const local = await send(`${base}api/types`, 'GET', { host: `localhost:${port}` });
    expect(evil.status).toBe(421);
    expect(evil.body).not.toContain('Order');
    expect(local.status).toBe(200);
  });

  it('sends hostile ids and snapshots as JSON with no raw markup characters, exactly as stored', async () => {
    const path = `${base}api/entities/Order/${seg(HOSTILE_ID)}/versions/1`;
    const raw = await send(path);
    expect(raw.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(raw.headers['x-content-type-options']).toBe('nosniff');
    expect(raw.body).not.toMatch(/[<>]/);
    const { entry } = JSON.parse(raw.body) as { entry: HistoryEntry };
    expect(entry).toMatchObject({ entityId: HOSTILE_ID, actor: HOSTILE_NOTE, snapshot: { note: HOSTILE_NOTE } });
    expect((await send(`${base}api/types/Order/ids`)).body).not.toMatch(/[<>]/);
  });

  it('builds the page from data with textContent only: the script never parses data as HTML', () => {
    const script = VIEWER_ASSETS['/viewer.js']?.body ?? '';
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    expect(VIEWER_ASSETS['/index.html']?.body).not.toMatch(/<script>|\son\w+=/);
  });
});

describe('event-history serve', () => {
  const path = join(tmpdir(), `event-history-serve-${process.pid}-${randomBytes(4).toString('hex')}.db`);

  beforeAll(async () => {
    const db = new Database(path);
    const store = new SqliteHistoryStore(db);
    await store.ensureSchema();
    await store.save({
      entityType: 'Order',
      entityId: 'o1',
      version: 1,
      op: 'create',
      timestamp: new Date(),
      snapshot: {},
    });
    db.close();
  });

  afterAll(() => rmSync(path, { force: true }));

  it('prints its address on 127.0.0.1, serves the file until stopped, then exits 0', async () => {
    let stdout = '';
    let stderr = '';
    const io = {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      env: {},
    };
    const controller = new AbortController();
    const done = serveCommand(['--url', `sqlite:${path}`, '--port', '0'], io, controller.signal);
    while (!/http:\/\//.test(stdout) && stderr === '') await new Promise((resolve) => setImmediate(resolve));
    const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(stdout)?.[0] as string;
    expect(stderr).toBe('');
    expect(url).toBeDefined();
    expect(JSON.parse((await send(`${url}api/types`)).body)).toEqual({ types: ['Order'] });
    controller.abort();
    expect(await done).toBe(0);
  });

  it('refuses bad flags and a missing database with the usual exit codes', async () => {
    const runs = await Promise.all(
      [[], ['--url', `sqlite:${path}`, '--port', 'x'], ['--url', `sqlite:${path}.missing`], ['--nope']].map(
        async (args) => {
          let stderr = '';
          const io = { stdout: { write: () => true }, stderr: { write: (t: string) => (stderr += t) }, env: {} };
          return { code: await serveCommand(args, io, AbortSignal.abort()), stderr };
        },
      ),
    );
    expect(runs.map((run) => run.code)).toEqual([2, 2, 3, 2]);
    for (const run of runs) expect(run.stderr).toMatch(/^event-history: /);
  });
});
