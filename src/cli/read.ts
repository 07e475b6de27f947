import { diff } from '../history/diff.js';
import type { HistoryEntry, HistoryPage, PageOptions } from '../history/entry.js';
import { CliError, type CliStore } from './connect.js';
import { formatChanges, formatHeader, jsonEntry } from './format.js';
import { type Output, shownChanges } from './output.js';

const PAGE_SIZE = 100;

/**
 * The "not found" error (exit 1) for an entity without history. When its type is not in the
 * store, it says so and names the type it most likely meant: the same name in another case
 * (`order` for `Order`), else the types the store holds.
 *
 * ```ts
 * throw await noHistory(store, 'order', '42'); // no history for entity type "order" in …; did you mean "Order"?
 * ```
 */
export async function noHistory(store: CliStore, entityType: string, entityId: string): Promise<CliError> {
  const types = await store.reader.entityTypes();
  if (types.includes(entityType)) {
    return new CliError(1, `${entityType} ${entityId} has no history in ${store.where}.`);
  }
  return new CliError(
    1,
    `no history for entity type ${JSON.stringify(entityType)} in ${store.where}${hint(entityType, types)}`,
  );
}

/** What to suggest for a type the store does not hold. */
function hint(entityType: string, types: readonly string[]): string {
  const folded = entityType.toLowerCase();
  const sameName = types.filter((type) => type.toLowerCase() === folded);
  if (sameName.length > 0) return `; did you mean ${sameName.map((type) => JSON.stringify(type)).join(' or ')}?`;
  if (types.length === 0) return ': it holds no history at all.';
  const shown = types.slice(0, 20).map((type) => JSON.stringify(type));
  return `; it holds ${shown.join(', ')}${types.length > shown.length ? `, … (${types.length} types)` : ''} (event-history types lists them).`;
}

/**
 * `log`: every version newest first, each with its changes from the one before (like
 * `git log -p`), at most `limit` of them; read one backward page at a time, so each entry is
 * printed once the one before it is known. `--limit 0` prints none (after checking the entity exists).
 *
 * ```ts
 * await log(store, 'Order', '42', { ...output, limit: 5 });
 * ```
 */
export async function log(
  store: CliStore,
  entityType: string,
  entityId: string,
  { json, limit, out, paint }: Output & { readonly limit: number | undefined },
): Promise<number> {
  if (limit === 0) {
    if ((await store.reader.latest(entityType, entityId)) === undefined) {
      throw await noHistory(store, entityType, entityId);
    }
    if (json) out('[]');
    return 0;
  }
  let held: HistoryEntry | undefined;
  let printed = 0;
  const print = (entry: HistoryEntry, previous: HistoryEntry | undefined): boolean => {
    const changes = shownChanges(diff(previous?.snapshot ?? {}, entry.snapshot));
    if (json) out(`${printed === 0 ? '[' : ','}${JSON.stringify(jsonEntry(entry, changes))}`);
    else {
      if (printed > 0) out('');
      for (const line of formatHeader(entry, paint)) out(line);
      out('');
      for (const line of formatChanges(changes, paint)) out(line);
    }
    printed += 1;
    return limit === undefined || printed < limit;
  };
  let next: PageOptions | undefined = { direction: 'backward', limit: PAGE_SIZE };
  walk: while (next !== undefined) {
    const page: HistoryPage = await store.reader.page(entityType, entityId, next);
    for (const entry of page.entries) {
      if (held !== undefined && !print(held, entry)) {
        held = undefined;
        break walk;
      }
      held = entry;
    }
    next = page.next;
  }
  if (held !== undefined) print(held, undefined);
  if (printed === 0) throw await noHistory(store, entityType, entityId);
  if (json) out(']');
  return 0;
}

/** The entry of `version`, or the "not found" error naming the latest version there is. */
async function entryAt(store: CliStore, entityType: string, entityId: string, version: number): Promise<HistoryEntry> {
  const entry = await store.reader.at(entityType, entityId, version);
  if (entry !== undefined) return entry;
  const latest = await store.reader.latest(entityType, entityId);
  if (latest === undefined) throw await noHistory(store, entityType, entityId);
  throw new CliError(1, `${entityType} ${entityId} has no version ${version} (its latest is ${latest.version}).`);
}

/** The entry before `version` (the highest below it), or `undefined` for the first. */
async function entryBefore(
  store: CliStore,
  entityType: string,
  entityId: string,
  version: number,
): Promise<HistoryEntry | undefined> {
  const [previous] = await store.reader.list(entityType, entityId, { toVersion: version - 1, order: 'desc', limit: 1 });
  return previous;
}

/**
 * `show`: one version, its header, its changes from the version before and its full snapshot.
 *
 * ```ts
 * await show(store, 'Order', '42', 3, output);
 * ```
 */
export async function show(
  store: CliStore,
  entityType: string,
  entityId: string,
  version: number,
  { json, out, paint }: Output,
): Promise<number> {
  const entry = await entryAt(store, entityType, entityId, version);
  const previous = await entryBefore(store, entityType, entityId, version);
  const changes = shownChanges(diff(previous?.snapshot ?? {}, entry.snapshot));
  if (json) {
    out(JSON.stringify(jsonEntry(entry, changes), null, 2));
    return 0;
  }
  for (const line of formatHeader(entry, paint)) out(line);
  out('');
  for (const line of formatChanges(changes, paint)) out(line);
  out('');
  out(paint.bold('Snapshot:'));
  for (const line of JSON.stringify(entry.snapshot, null, 2).split('\n')) out(`    ${line}`);
  return 0;
}

/**
 * `diff`: the field-level changes between two versions of one entity (any two, in either
 * order); with one version, between it and the version before.
 *
 * ```ts
 * await diffVersions(store, 'Order', '42', 1, 3, output);
 * ```
 */
export async function diffVersions(
  store: CliStore,
  entityType: string,
  entityId: string,
  from: number | undefined,
  to: number,
  { json, out, paint }: Output,
): Promise<number> {
  const after = await entryAt(store, entityType, entityId, to);
  const before =
    from === undefined
      ? await entryBefore(store, entityType, entityId, to)
      : await entryAt(store, entityType, entityId, from);
  const changes = shownChanges(diff(before?.snapshot ?? {}, after.snapshot));
  if (json) {
    out(
      JSON.stringify({ entityType, entityId, fromVersion: before?.version ?? null, toVersion: after.version, changes }),
    );
    return 0;
  }
  out(
    paint.bold(
      `${entityType} ${entityId}: ${before === undefined ? 'nothing' : `version ${before.version}`} → version ${after.version}`,
    ),
  );
  out('');
  for (const line of formatChanges(changes, paint)) out(line);
  return 0;
}

/**
 * `types`: the entity types the store holds history for, one a line.
 *
 * ```ts
 * await types(store, output); // Order\nInvoice
 * ```
 */
export async function types(store: CliStore, { json, out }: Output): Promise<number> {
  const found = await store.reader.entityTypes();
  if (found.length === 0) throw new CliError(1, `${store.where} holds no history.`);
  if (json) out(JSON.stringify(found));
  else for (const type of found) out(type);
  return 0;
}

/**
 * `ids`: the ids of one entity type that have history, one a line, in code point order; only
 * those starting with `prefix`, at most `limit`. Read a page at a time.
 *
 * ```ts
 * await ids(store, 'Order', { ...output, prefix: 'A-', limit: 20 });
 * ```
 */
export async function ids(
  store: CliStore,
  entityType: string,
  { json, out, prefix, limit }: Output & { readonly prefix: string | undefined; readonly limit: number | undefined },
): Promise<number> {
  const found: string[] = [];
  let after: string | undefined;
  for (;;) {
    const want = limit === undefined ? PAGE_SIZE : Math.min(PAGE_SIZE, limit - found.length);
    if (want <= 0) break;
    const page = await store.reader.entityIds(entityType, {
      limit: want,
      ...(prefix === undefined ? {} : { prefix }),
      ...(after === undefined ? {} : { after }),
    });
    if (!json) for (const id of page) out(id);
    found.push(...page);
    after = page.at(-1);
    if (page.length < want) break;
  }
  if (found.length === 0 && !(await store.reader.entityTypes()).includes(entityType)) {
    throw await noHistory(store, entityType, '');
  }
  if (json) out(JSON.stringify(found));
  return 0;
}
