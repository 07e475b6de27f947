import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { type VerifyResult, verifyHistory } from '../history/chain.js';
import { diff } from '../history/diff.js';
import type { HistoryEntry, HistoryReader } from '../history/entry.js';
import { CliError, type CliStore, openStore, redactMessage } from './connect.js';
import type { CliIo } from './main.js';
import { positiveInteger, shownChanges } from './output.js';
import { explain } from './verify.js';
import { VIEWER_ASSETS } from './viewer-page.js';

/**
 * The help of `event-history serve`.
 *
 * ```ts
 * process.stdout.write(SERVE_USAGE);
 * ```
 */
export const SERVE_USAGE = `Usage: event-history serve --url <db url> [--port <n>] [--host <address>]

Serves a read-only history viewer: entity types and ids with search, an entity's timeline, a
side-by-side diff of any two versions, its chain status, and everything one transaction wrote.
It answers GET only, binds 127.0.0.1 unless told otherwise, and stops on Ctrl-C.

Options:
  --url <url>        postgres://…, mysql://… (or mariadb://…), sqlite:<path> or mongodb://… (default: EVENT_HISTORY_URL)
  --table <name>     the history table or collection (default: entity_history)
  --port <n>         the port (default: 4321; 0 picks a free one)
  --host <address>   the address to bind (default: 127.0.0.1; anything else exposes the history to the network)
`;

/**
 * What the viewer reads through: a built-in store (every reader method, with `entityTypes`,
 * `entityIds`, `page` and `byTransaction`).
 *
 * ```ts
 * const reader: ViewerReader = new SqliteHistoryStore(db);
 * ```
 */
export type ViewerReader = CliStore['reader'];

/**
 * Options of {@link viewerHandler}.
 *
 * ```ts
 * viewerHandler(store, { where: 'app.db entity_history' });
 * ```
 */
export interface ViewerOptions {
  /** Where the history is, as the page shows it (no credentials). */
  readonly where: string;
}

const TIMELINE_PAGE = 100;
const IDS_PAGE = 100;

/** A JSON answer, with `<`, `>` and `&` escaped so that no sniffing turns data into markup. */
function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...SECURITY_HEADERS });
  response.end(text);
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The entry as the timeline shows it: everything but the snapshot, with its changes from `previous`. */
function timelineItem(entry: HistoryEntry, previous: HistoryEntry | undefined) {
  const { snapshot: _snapshot, ...header } = entry;
  return {
    ...header,
    previousVersion: previous?.version ?? null,
    changes: shownChanges(diff(previous?.snapshot ?? {}, entry.snapshot)),
  };
}

function versionParam(text: string | null, what: string): number | undefined {
  if (text === null || text === '') return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new HttpError(400, `${what} must be a whole number, got ${JSON.stringify(text)}.`);
  }
  return Number(text);
}

/** The routes of the JSON API, on decoded path segments after `/api/`. */
async function api(reader: ViewerReader, where: string, segments: string[], query: URLSearchParams): Promise<unknown> {
  const [head, ...rest] = segments;
  if (head === 'store' && rest.length === 0) return { where };
  if (head === 'types' && rest.length === 0) return { types: await reader.entityTypes() };
  if (head === 'types' && rest.length === 2 && rest[1] === 'ids') {
    const type = rest[0] as string;
    const limit = versionParam(query.get('limit'), 'limit') ?? IDS_PAGE;
    const prefix = query.get('prefix') ?? '';
    const after = query.get('after');
    const ids = await reader.entityIds(type, { prefix, limit: limit + 1, ...(after === null ? {} : { after }) });
    const page = ids.slice(0, limit);
    return { entityType: type, ids: page, ...(ids.length > limit ? { next: page.at(-1) } : {}) };
  }
  if (head === 'transactions' && rest.length === 1) {
    const entries = await reader.byTransaction(rest[0] as string);
    if (entries.length === 0)
      throw new HttpError(404, `no entries with the transaction id ${JSON.stringify(rest[0])}.`);
    return {
      txId: rest[0],
      entries: entries.map((entry) => timelineItem(entry, undefined)).map(({ changes: _c, ...item }) => item),
    };
  }
  if (head === 'entities' && rest.length >= 3) {
    const [type, id, action, ...more] = rest as [string, string, string, ...string[]];
    return entity(reader, type, id, action, more, query);
  }
  throw new HttpError(404, `no such API route: /api/${segments.map(encodeURIComponent).join('/')}`);
}

async function missing(reader: ViewerReader, type: string, id: string): Promise<HttpError> {
  const types = await reader.entityTypes();
  if (types.includes(type)) return new HttpError(404, `${type} ${id} has no history.`);
  const same = types.filter((candidate) => candidate.toLowerCase() === type.toLowerCase());
  return new HttpError(
    404,
    `no history for entity type ${JSON.stringify(type)}${same.length > 0 ? `; did you mean ${same.map((t) => JSON.stringify(t)).join(' or ')}?` : '.'}`,
  );
}

async function entryAt(reader: HistoryReader, type: string, id: string, version: number): Promise<HistoryEntry> {
  const entry = await reader.at(type, id, version);
  if (entry !== undefined) return entry;
  const latest = await reader.latest(type, id);
  if (latest === undefined) throw await missing(reader as ViewerReader, type, id);
  throw new HttpError(404, `${type} ${id} has no version ${version} (its latest is ${latest.version}).`);
}

async function entity(
  reader: ViewerReader,
  type: string,
  id: string,
  action: string,
  more: string[],
  query: URLSearchParams,
): Promise<unknown> {
  if (action === 'history' && more.length === 0) {
    const before = versionParam(query.get('before'), 'before');
    const fetched = await reader.list(type, id, {
      order: 'desc',
      limit: TIMELINE_PAGE + 1,
      ...(before === undefined ? {} : { toVersion: before - 1 }),
    });
    if (fetched.length === 0 && before === undefined) throw await missing(reader, type, id);
    const shown = fetched.slice(0, TIMELINE_PAGE);
    // Each entry's changes are from the one after it in this newest-first list; the oldest shown
    // one compares with the extra row read past the page (none: it is the first version).
    const entries = shown.map((entry, i) => timelineItem(entry, fetched[i + 1]));
    const last = shown.at(-1);
    return {
      entityType: type,
      entityId: id,
      entries,
      ...(fetched.length > TIMELINE_PAGE && last !== undefined ? { next: { before: last.version } } : {}),
    };
  }
  if (action === 'versions' && more.length === 1) {
    const version = versionParam(more[0] as string, 'version') as number;
    const entry = await entryAt(reader, type, id, version);
    const [previous] = await reader.list(type, id, { toVersion: version - 1, order: 'desc', limit: 1 });
    return { entry, changes: timelineItem(entry, previous).changes, previousVersion: previous?.version ?? null };
  }
  if (action === 'diff' && more.length === 0) {
    const to = versionParam(query.get('to'), 'to');
    const from = versionParam(query.get('from'), 'from');
    if (to === undefined || from === undefined) throw new HttpError(400, 'diff needs ?from=<version>&to=<version>.');
    const [before, after] = await Promise.all([entryAt(reader, type, id, from), entryAt(reader, type, id, to)]);
    return { from: before, to: after, changes: shownChanges(diff(before.snapshot, after.snapshot)) };
  }
  if (action === 'verify' && more.length === 0) {
    const result: VerifyResult = await verifyHistory(reader, type, id);
    if (result.ok && result.entries === 0) throw await missing(reader, type, id);
    return { ...result, notes: explain(result) };
  }
  throw new HttpError(404, `no such API route for ${type} ${id}: ${action}`);
}

/**
 * The viewer as a request handler: the page and its script and style at `/`, `/viewer.js` and
 * `/viewer.css`, and the JSON API under `/api/`. Read-only: any method but GET is a 405; a Host
 * header naming another site (DNS rebinding) is refused when `hosts` is given.
 *
 * ```ts
 * createServer(viewerHandler(store, { where: 'app.db' })).listen(4321, '127.0.0.1');
 * ```
 */
export function viewerHandler(
  reader: ViewerReader,
  { where, hosts }: ViewerOptions & { readonly hosts?: () => readonly string[] },
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    void (async () => {
      if (request.method !== 'GET') {
        response.writeHead(405, { allow: 'GET', 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
        response.end('The history viewer is read-only: GET only.\n');
        return;
      }
      const host = request.headers.host ?? '';
      if (hosts !== undefined && !hosts().includes(host.toLowerCase())) {
        sendJson(response, 421, {
          error: `this viewer answers for ${hosts().join(', ')}, not ${JSON.stringify(host)}.`,
        });
        return;
      }
      const url = new URL(request.url ?? '/', 'http://viewer.invalid');
      const asset = VIEWER_ASSETS[url.pathname === '/' ? '/index.html' : url.pathname];
      if (asset !== undefined) {
        response.writeHead(200, { 'content-type': asset.type, ...SECURITY_HEADERS });
        response.end(asset.body);
        return;
      }
      if (!url.pathname.startsWith('/api/')) {
        sendJson(response, 404, { error: `not found: ${url.pathname}` });
        return;
      }
      let segments: string[];
      try {
        segments = url.pathname.slice('/api/'.length).split('/').map(decodeURIComponent);
      } catch {
        sendJson(response, 400, { error: 'the path is not valid percent-encoding.' });
        return;
      }
      try {
        sendJson(response, 200, await api(reader, where, segments, url.searchParams));
      } catch (error) {
        if (error instanceof HttpError) sendJson(response, error.status, { error: error.message });
        else sendJson(response, 500, { error: error instanceof Error ? error.message : String(error) });
      }
    })();
  };
}

/**
 * Starts the viewer on `host:port` and resolves once it listens, with its address and how to stop it.
 *
 * ```ts
 * const viewer = await startViewer(store, { where: 'app.db', port: 0 });
 * await fetch(`${viewer.url}api/types`);
 * await viewer.close();
 * ```
 */
export async function startViewer(
  reader: ViewerReader,
  options: ViewerOptions & { readonly port?: number; readonly host?: string },
): Promise<{ readonly url: string; readonly server: Server; close(): Promise<void> }> {
  const host = options.host ?? '127.0.0.1';
  let allowed: string[] = [];
  // Bound to loopback, a page elsewhere could still reach it by rebinding its own name to
  // 127.0.0.1: answering only for the loopback names keeps the history out of its reach.
  const server = createServer(
    viewerHandler(reader, { where: options.where, ...(loopback(host) ? { hosts: () => allowed } : {}) }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 4321, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port, family } = server.address() as AddressInfo;
  const shown = family === 'IPv6' || host.includes(':') ? `[${host}]` : host;
  allowed = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  const url = `http://${shown}:${port}/`;
  return {
    url,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function loopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1';
}

/**
 * The `event-history serve` command: serves the viewer until SIGINT or SIGTERM (or `signal`),
 * and resolves to its exit code.
 *
 * ```ts
 * process.exitCode = await serveCommand(['--url', 'sqlite:app.db'], process);
 * ```
 */
export async function serveCommand(argv: readonly string[], io: CliIo, signal?: AbortSignal): Promise<number> {
  let url: string | undefined;
  let store: CliStore | undefined;
  try {
    const values = parse(argv);
    if (values.help) {
      io.stdout.write(SERVE_USAGE);
      return 0;
    }
    url = values.url ?? io.env.EVENT_HISTORY_URL;
    if (url === undefined || url === '') throw new CliError(2, 'serve: no database given: pass --url <url>.');
    const port = values.port === undefined ? 4321 : positiveInteger('--port', values.port);
    if (port > 65535) throw new CliError(2, `--port must be at most 65535, got ${port}.`);
    store = await openStore(url, values.table);
    const where = store.where;
    let viewer: Awaited<ReturnType<typeof startViewer>>;
    try {
      viewer = await startViewer(store.reader, { where, port, host: values.host ?? '127.0.0.1' });
    } catch (error) {
      throw new CliError(3, `cannot listen on ${values.host ?? '127.0.0.1'}:${port}: ${(error as Error).message}`);
    }
    io.stdout.write(`event-history viewer for ${where}\n  ${viewer.url}\n(read-only; Ctrl-C stops it)\n`);
    await new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      signal?.addEventListener('abort', () => resolve(), { once: true });
      if (signal === undefined) {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      }
    });
    await viewer.close();
    return 0;
  } catch (error) {
    const code = error instanceof CliError ? error.exitCode : 1;
    let text = error instanceof Error ? error.message : String(error);
    if (url !== undefined && url !== '') text = redactMessage(text, url);
    io.stderr.write(`event-history: ${text}\n`);
    return code;
  } finally {
    await store?.close().catch(() => {});
  }
}

function parse(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      allowPositionals: false,
      strict: true,
      options: {
        url: { type: 'string' },
        table: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    throw new CliError(2, `serve: ${(error as Error).message} (event-history serve --help)`);
  }
}
