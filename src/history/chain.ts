import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { shared } from '../shared-state.js';
import type { ChainHead, EntityTypeOf, EntityTypes, HistoryEntry, HistoryReader } from './entry.js';

/**
 * The text an entry's hash is computed over: JSON with object keys sorted, Dates as
 * `{ "$date": "<ISO>" }` (`"Invalid Date"` for an invalid one), `undefined` fields left out, and
 * the entry's own `hash` excluded (its `prevHash` included). Equal content gives equal text
 * whatever order a database returns keys in. An object whose only key is `$date` or `$escape` is
 * written as `{ "$escape": <it> }`, so that it cannot pass for a Date; `__proto__` is hashed as
 * the ordinary key it is. Lone surrogates are kept as JSON escapes (`\ud800`), so the text is
 * ASCII there and hashes as itself. As in JSON, `NaN` and `±Infinity` hash as `null` and `-0` as `0`.
 *
 * ```ts
 * canonicalJson({ b: 1, a: new Date(0) }); // '{"a":{"$date":"1970-01-01T00:00:00.000Z"},"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonical(value)) ?? 'null';
}

function canonical(value: unknown): unknown {
  if (value instanceof Date) {
    return { $date: Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString() };
  }
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : canonical(item)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    const keys = Object.keys(value)
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .sort();
    for (const key of keys) {
      // defineProperty: an assignment to `__proto__` would set the prototype and drop the field.
      const item = canonical((value as Record<string, unknown>)[key]);
      Object.defineProperty(out, key, { value: item, writable: true, enumerable: true, configurable: true });
    }
    if (keys.length === 1 && (keys[0] === '$date' || keys[0] === '$escape')) return { $escape: out };
    return out;
  }
  return value;
}

/**
 * An HMAC secret: text (UTF-8) or bytes, at least 16 bytes long.
 *
 * ```ts
 * const secret: ChainSecret = process.env.HISTORY_CHAIN_KEY ?? '';
 * ```
 */
export type ChainSecret = string | Uint8Array;

/**
 * A keyring for a keyed chain: the id new entries are signed with, and every secret still needed
 * to verify entries signed before a rotation. Key ids are 1–12 letters, digits, `_` or `-`.
 *
 * ```ts
 * const keys: ChainKeys = { current: 'k2', keys: { k1: oldSecret, k2: newSecret } };
 * ```
 */
export interface ChainKeys {
  readonly current: string;
  readonly keys: Readonly<Record<string, ChainSecret>>;
}

/**
 * A single secret (signed as key id `keyId`, default `'default'`) or a keyring.
 *
 * ```ts
 * const key: ChainKey = { current: 'k1', keys: { k1: secret } };
 * ```
 */
export type ChainKey = ChainSecret | ChainKeys;

/**
 * `@HistoryTracked({ chain: { … } })`: a keyed chain. Each entry's `hash` is then an
 * HMAC-SHA-256 under the current key, stored as `hmac:<keyId>:<base64url>` (it fits the existing
 * `hash` column), and so is the entity's head; without the key nobody can recompute the chain.
 *
 * ```ts
 * @HistoryTracked(store, { chain: { key: () => ({ current: 'k2', keys: loadKeys() }) } })
 * ```
 */
export interface ChainOptions {
  /** The secret or keyring, or a function returning one, called at each write (e.g. from your config). */
  readonly key?: ChainKey | (() => ChainKey);
  /** The key id recorded with entries when `key` is a single secret. Default `'default'`. */
  readonly keyId?: string;
}

/** @internal A validated keyring: the current key id and every secret by id. */
export interface Keyring {
  readonly current: string;
  readonly secrets: ReadonlyMap<string, Buffer>;
}

const DEFAULT_KEY_ID = 'default';
const KEY_ID = /^[A-Za-z0-9_-]{1,12}$/;
const MIN_SECRET_BYTES = 16;
const PLAIN_HASH = /^[0-9a-f]{64}$/;
const KEYED_HASH = /^hmac:([A-Za-z0-9_-]{1,12}):([A-Za-z0-9_-]{43})$/;

/**
 * @internal Checks and normalises a key given to the decorator or to `verifyHistory`; throws a
 * `TypeError` naming what is wrong (never the secret).
 */
export function keyringOf(key: ChainKey, keyId: string | undefined): Keyring {
  const ring: ChainKeys =
    typeof key === 'string' || key instanceof Uint8Array
      ? { current: keyId ?? DEFAULT_KEY_ID, keys: { [keyId ?? DEFAULT_KEY_ID]: key } }
      : key;
  if (ring === null || typeof ring !== 'object' || typeof ring.keys !== 'object' || ring.keys === null) {
    throw new TypeError(
      'A chain key must be a secret (string or bytes) or a keyring { current, keys: { id: secret } }.',
    );
  }
  const secrets = new Map<string, Buffer>();
  for (const [id, secret] of Object.entries(ring.keys)) {
    if (!KEY_ID.test(id)) {
      throw new TypeError(
        `The chain key id ${JSON.stringify(id)} is not valid: use 1 to 12 letters, digits, '_' or '-' (it is stored with each hash).`,
      );
    }
    const bytes =
      typeof secret === 'string'
        ? Buffer.from(secret, 'utf8')
        : secret instanceof Uint8Array
          ? Buffer.from(secret)
          : undefined;
    if (bytes === undefined || bytes.length < MIN_SECRET_BYTES) {
      throw new TypeError(
        `The chain key ${JSON.stringify(id)} must be a string or bytes of at least ${MIN_SECRET_BYTES} bytes ` +
          '(32 random bytes recommended, e.g. openssl rand -base64 32).',
      );
    }
    secrets.set(id, bytes);
  }
  if (!secrets.has(ring.current)) {
    throw new TypeError(
      `The chain keyring's current key ${JSON.stringify(ring.current)} is not among its keys (${[...secrets.keys()].join(', ') || 'none'}).`,
    );
  }
  return { current: ring.current, secrets };
}

function mac(secret: Buffer, keyId: string, text: string): string {
  return `hmac:${keyId}:${createHmac('sha256', secret).update(text).digest('base64url')}`;
}

function currentSecret(keys: Keyring): Buffer {
  return keys.secrets.get(keys.current) as Buffer;
}

/**
 * The hash of an entry for the history chain, over its canonical content (every field but
 * `hash`) and so over `prevHash`, which links it to the entity's previous entry: a SHA-256 (hex),
 * or with a key (a secret or a {@link ChainKeys} keyring) an HMAC-SHA-256 under its current key,
 * as `hmac:<keyId>:<base64url>`.
 *
 * ```ts
 * entry.hash = hashEntry({ ...entry, prevHash: previous?.hash });
 * entry.hash = hashEntry(entry, { current: 'k2', keys: { k2: secret } }); // 'hmac:k2:…'
 * ```
 */
export function hashEntry(entry: HistoryEntry, key?: ChainKey, keyId?: string): string {
  const keys = key === undefined ? undefined : keyringOf(key, keyId);
  return hashWith(entry, keys);
}

function hashWith(entry: HistoryEntry, keys: Keyring | undefined, keyId = keys?.current): string {
  const { hash: _ignored, ...content } = entry;
  const text = canonicalJson(content);
  if (keys === undefined || keyId === undefined) return createHash('sha256').update(text).digest('hex');
  return mac(keys.secrets.get(keyId) as Buffer, keyId, text);
}

function headText(head: ChainHead): string {
  return canonicalJson({
    chainHead: { entityType: head.entityType, entityId: head.entityId, version: head.version, hash: head.hash },
  });
}

const madeHeads = shared('chain-heads', () => new WeakMap<HistoryEntry, ChainHead>());

/**
 * Links an entry into its entity's chain: sets `prevHash` to the previous entry's hash (when it
 * has one) and `hash` over the result, keyed when a key is given. The head the store writes with
 * it (see {@link ChainHead}) is kept beside the returned entry.
 *
 * ```ts
 * const chained = chainEntry(entry, await store.latest(type, id, { session }));
 * ```
 */
export function chainEntry(
  entry: HistoryEntry,
  previous: HistoryEntry | undefined,
  key?: ChainKey | Keyring,
): HistoryEntry {
  const keys = key === undefined ? undefined : isKeyring(key) ? key : keyringOf(key, undefined);
  const linked: HistoryEntry = { ...entry };
  delete linked.hash;
  delete linked.prevHash;
  if (previous?.hash !== undefined) linked.prevHash = previous.hash;
  const hash = hashWith(linked, keys);
  linked.hash = hash;
  const head: ChainHead = { entityType: linked.entityType, entityId: linked.entityId, version: linked.version, hash };
  madeHeads.set(
    linked,
    keys === undefined ? head : { ...head, mac: mac(currentSecret(keys), keys.current, headText(head)) },
  );
  return linked;
}

function isKeyring(key: ChainKey | Keyring): key is Keyring {
  return typeof key === 'object' && !(key instanceof Uint8Array) && (key as Keyring).secrets instanceof Map;
}

/**
 * @internal The head a store upserts with `entry`: the one {@link chainEntry} made (with its MAC
 * when keyed), else one from the entry's own hash; `undefined` for an entry without a hash.
 */
export function headOf(entry: HistoryEntry): ChainHead | undefined {
  if (entry.hash === undefined) return undefined;
  const made = madeHeads.get(entry);
  if (made !== undefined && made.hash === entry.hash && made.version === entry.version) return made;
  return { entityType: entry.entityType, entityId: entry.entityId, version: entry.version, hash: entry.hash };
}

/**
 * What {@link verifyHistory} found, by kind:
 *
 * - `altered`: an entry's content (or the head) no longer matches its hash or MAC.
 * - `removed`: versions are missing: a gap, a first entry chained to something before it, or
 *   newest entries behind the head (or `latestVersion`).
 * - `inserted`: an entry that is not the one its successor was chained to, one without a hash
 *   amid chained ones, or entries after the head.
 * - `stripped`: the head anchors a chained version whose entry now carries no hash.
 * - `unanchored`: a chained entity without a head (deleted, or written before heads existed), or
 *   a reader that keeps none: deleting its newest entries cannot be detected.
 * - `unkeyed`: a key was given, but the newest entries (or the head) carry no MAC: a chain
 *   recomputed without the key, or written before it was configured.
 * - `unknown-key`: signed with a key id the given keyring lacks (or no key was given).
 * - `unchained`: entries without any hash; fatal with `requireChain` (or a key).
 *
 * ```ts
 * const kind: TamperKind = 'altered';
 * ```
 */
export type TamperKind =
  | 'altered'
  | 'removed'
  | 'inserted'
  | 'stripped'
  | 'unanchored'
  | 'unkeyed'
  | 'unknown-key'
  | 'unchained';

/**
 * One thing {@link verifyHistory} found. `fatal` findings make the result not ok; the others say
 * what could not be proven (entries from before chaining, a reader without heads).
 *
 * ```ts
 * for (const f of result.findings) report(f.fatal ? 'FAIL' : 'note', f.kind, f.detail);
 * ```
 */
export interface VerifyFinding {
  readonly kind: TamperKind;
  /** The version concerned; 0 when the finding concerns no single version (e.g. an empty history). */
  readonly version: number;
  readonly detail: string;
  readonly fatal: boolean;
}

/** What every {@link VerifyResult} says about the entity. */
export interface VerifyReport {
  /** How many entries were read. */
  readonly entries: number;
  /** How many of them, written before `chain` was turned on, carry no hash. */
  readonly unchained: number;
  /** Whether the entity is chained: an entry carries a hash, or the store holds a head for it. */
  readonly chained: boolean;
  /** Whether a head was found and matched the newest entry: truncation and stripping are then detected. */
  readonly anchored: boolean;
  /** Whether a key was given and the newest entry (and the head) carry MACs that verified with it. */
  readonly keyed: boolean;
  /** Everything found, fatal or not, oldest version first. */
  readonly findings: readonly VerifyFinding[];
}

/**
 * What {@link verifyHistory} found. When not ok, `version`, `kind` and `detail` are those of the
 * first fatal finding.
 *
 * ```ts
 * const result = await verifyHistory(store, 'Order', '42');
 * if (!result.ok) console.error(`v${result.version} was ${result.kind}: ${result.detail}`);
 * ```
 */
export type VerifyResult =
  | (VerifyReport & { readonly ok: true })
  | (VerifyReport & {
      readonly ok: false;
      /** The first version found altered, removed, inserted… (0 when no single version). */
      readonly version: number;
      readonly kind: TamperKind;
      readonly detail: string;
    });

/**
 * Options of {@link verifyHistory}.
 *
 * ```ts
 * await verifyHistory(store, 'Order', '42', { key: { current: 'k2', keys: { k1, k2 } } });
 * ```
 */
export interface VerifyOptions {
  /**
   * The version the entity is known to be at (e.g. its current `version`): missing newest
   * entries are then `removed` even when the head is gone too.
   */
  readonly latestVersion?: number;
  /** Entries read per query; default 500. */
  readonly batchSize?: number;
  /**
   * The chain's key (a secret, or a keyring holding every key id entries were signed with).
   * Given a key, keyed entries are checked, and an entity whose newest entries or head carry no
   * MAC fails (`unkeyed`); it implies `requireChain`.
   */
  readonly key?: ChainKey;
  /** The key id of `key` when it is a single secret. Default `'default'`. */
  readonly keyId?: string;
  /**
   * The entity must be chained and anchored: no hash at all (`unchained`) or no head
   * (`unanchored`) fails. Catches a history whose hashes and head were both removed.
   */
  readonly requireChain?: boolean;
  /**
   * A chained entity without a head is a non-fatal `unanchored` finding instead of a failure: for
   * entities not written since heads were introduced (their next chained write anchors them).
   */
  readonly allowUnanchored?: boolean;
}

/**
 * Checks an entity's hash chain (written with `@HistoryTracked({ chain })`), reading it in
 * ascending batches: every chained entry must match its own hash (or MAC, with a key), link to
 * the entry just before it, and versions must have no gaps; the newest must be the one the
 * store's head anchors. Entries before the first chained one (written before the option was
 * turned on) are counted as `unchained`, not checked. Read from the store itself, not through
 * `upcastReader`: upcast snapshots no longer match their hashes.
 *
 * Without a key it detects edits, deletions, truncation and stripping made without recomputing
 * the chain; someone who can write the table and the heads can recompute an unkeyed chain. With a
 * key they cannot, but they can still replay an older state of both tables (see the README's
 * Security section).
 *
 * ```ts
 * const result = await verifyHistory(store, 'Order', '42', { requireChain: true });
 * // { ok: true, entries: 3, unchained: 0, chained: true, anchored: true, keyed: false, findings: [] }
 * // or { ok: false, version: 2, kind: 'altered', detail: '…', … }
 * ```
 */
export async function verifyHistory<M extends EntityTypes = Record<string, unknown>>(
  typedReader: HistoryReader<M>,
  entityType: NoInfer<EntityTypeOf<M>>,
  entityId: string,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  // The chain is checked on stored entries whatever their snapshots' types.
  const reader = typedReader as unknown as HistoryReader;
  const keys = options.key === undefined ? undefined : keyringOf(options.key, options.keyId);
  const requireChain = options.requireChain === true || keys !== undefined;
  const heads = typeof reader.head === 'function' ? (reader as Required<Pick<HistoryReader, 'head'>>) : undefined;
  // The head first: a write committing meanwhile adds entries after it, which a second read settles.
  let head = heads === undefined ? undefined : await heads.head(entityType, entityId);
  const walk = new Walk(keys);
  const batch = Math.max(1, Math.trunc(options.batchSize ?? 500));
  let from: number | undefined;
  for (;;) {
    const page = await reader.list(
      entityType,
      entityId,
      from === undefined ? { limit: batch } : { fromVersion: from, limit: batch },
    );
    for (const entry of page) {
      if (!walk.step(entry)) return walk.result(false);
    }
    if (page.length < batch || walk.previous === undefined) break;
    from = walk.previous.version + 1;
  }
  walk.finish(options.latestVersion);
  if (
    heads !== undefined &&
    walk.previous !== undefined &&
    (head === undefined ? walk.chained : walk.previous.version > head.version)
  ) {
    head = await heads.head(entityType, entityId);
  }
  if (heads !== undefined) walk.anchor(head, options.allowUnanchored === true);
  else if (walk.chained) {
    walk.add(
      'unanchored',
      walk.previous?.version ?? 0,
      'this reader keeps no chain heads, so deleting the newest entries cannot be detected (pass latestVersion, or verify on a built-in store)',
      requireChain,
    );
  }
  if (requireChain && !walk.chained) {
    walk.add(
      'unchained',
      0,
      walk.entries === 0
        ? 'there is no history and no head: a chained entity cannot be told from one whose history was deleted'
        : 'no entry carries a hash and there is no head: never chained, or its hashes and head were both removed',
      true,
    );
  }
  return walk.result(true);
}

/** The state of one verification: the entries seen so far and what was found. */
class Walk {
  previous: HistoryEntry | undefined;
  entries = 0;
  unchained = 0;
  chained = false;
  anchored = false;
  /** The newest chained entry carries a MAC that verified with the given key. */
  lastKeyed = false;
  readonly findings: VerifyFinding[] = [];
  #firstUnchained: number | undefined;
  #keyedSeen = false;

  constructor(readonly keys: Keyring | undefined) {}

  add(kind: TamperKind, version: number, detail: string, fatal: boolean): void {
    this.findings.push({ kind, version, detail, fatal });
  }

  /** Checks one entry; `false` when it breaks the chain (the walk stops there). */
  step(read: HistoryEntry): boolean {
    const entry = withoutNullHashes(read);
    const broken = this.#check(entry);
    if (broken !== undefined) {
      this.add(broken.kind, broken.version, broken.detail, true);
      return false;
    }
    if (entry.hash === undefined) {
      this.unchained += 1;
      this.#firstUnchained ??= entry.version;
    } else this.chained = true;
    this.entries += 1;
    this.previous = entry;
    return true;
  }

  #check(entry: HistoryEntry): Omit<VerifyFinding, 'fatal'> | undefined {
    const previous = this.previous;
    const v = entry.version;
    if (entry.hash === undefined) {
      if (previous?.hash === undefined) return undefined;
      return { kind: 'inserted', version: v, detail: `version ${v} has no hash, but follows chained entries` };
    }
    const content = this.#content(entry);
    if (content !== undefined) return content;
    if (entry.prevHash === (previous?.hash ?? undefined)) {
      if (previous === undefined || v === previous.version + 1) return undefined;
    }
    if (previous === undefined) {
      return {
        kind: 'removed',
        version: v - 1,
        detail: `version ${v} is chained to an entry before it that is missing`,
      };
    }
    if (v > previous.version + 1) {
      return {
        kind: 'removed',
        version: previous.version + 1,
        detail: `versions ${previous.version + 1} to ${v - 1} are missing`,
      };
    }
    if (entry.prevHash === undefined && previous.hash === undefined) return undefined;
    return {
      kind: 'inserted',
      version: previous.version,
      detail: `version ${v} was chained to another entry than the version ${previous.version} now stored`,
    };
  }

  /** Whether the entry's own hash holds: its format, its key and its content. */
  #content(entry: HistoryEntry): Omit<VerifyFinding, 'fatal'> | undefined {
    const v = entry.version;
    const hash = entry.hash as string;
    if (PLAIN_HASH.test(hash)) {
      if (this.keys !== undefined && this.#keyedSeen) {
        return {
          kind: 'unkeyed',
          version: v,
          detail: `version ${v} carries a plain SHA-256 after entries signed with a key: written or recomputed without the key`,
        };
      }
      this.lastKeyed = false;
      if (hashWith(entry, undefined) === hash) return undefined;
      return { kind: 'altered', version: v, detail: `the content of version ${v} does not match its hash` };
    }
    const keyed = KEYED_HASH.exec(hash);
    if (keyed === null) {
      return {
        kind: 'altered',
        version: v,
        detail: `version ${v} carries a hash that is neither a SHA-256 nor an HMAC`,
      };
    }
    const keyId = keyed[1] as string;
    if (this.keys === undefined || !this.keys.secrets.has(keyId)) {
      return {
        kind: 'unknown-key',
        version: v,
        detail:
          this.keys === undefined
            ? `version ${v} is signed with key ${JSON.stringify(keyId)}, and no key was given: pass the keyring to check it`
            : `version ${v} is signed with key ${JSON.stringify(keyId)}, which the given keyring lacks (it has ${[...this.keys.secrets.keys()].join(', ')}): add it to verify entries signed before a rotation`,
      };
    }
    this.#keyedSeen = true;
    this.lastKeyed = true;
    if (equal(hashWith(entry, this.keys, keyId), hash)) return undefined;
    return {
      kind: 'altered',
      version: v,
      detail: `the content of version ${v} does not match its MAC under key ${JSON.stringify(keyId)}`,
    };
  }

  /** After the last entry: notes the unchained prefix and checks `latestVersion` and the key. */
  finish(latest: number | undefined): void {
    const last = this.previous;
    if (this.#firstUnchained !== undefined && this.chained) {
      const upTo = this.#firstUnchained + this.unchained - 1;
      this.add(
        'unchained',
        this.#firstUnchained,
        `${this.unchained === 1 ? `version ${upTo} was` : `versions ${this.#firstUnchained} to ${upTo} were`} written before chaining: not checked`,
        false,
      );
    }
    if (latest !== undefined && (last === undefined || last.version < latest)) {
      this.add(
        'removed',
        last === undefined ? latest : last.version + 1,
        `the entity is at version ${latest}, but history ends at ${last === undefined ? 'nothing' : `version ${last.version}`}`,
        true,
      );
    }
    if (this.keys !== undefined && this.chained && !this.lastKeyed && last !== undefined) {
      this.add(
        'unkeyed',
        last.version,
        `version ${last.version}, the newest, carries a plain SHA-256, not a MAC under the given key: anyone who can write the table could have recomputed the chain`,
        true,
      );
    }
  }

  /** Compares the newest entry with the store's head. */
  anchor(head: ChainHead | undefined, allowUnanchored: boolean): void {
    const last = this.previous;
    if (head === undefined) {
      if (!this.chained) return;
      this.add(
        'unanchored',
        last?.version ?? 0,
        'the entity is chained but the store holds no head for it: its newest entries may have been deleted ' +
          '(or it was not written since heads were introduced; its next chained write anchors it, or run ensureSchema if the heads table is missing)',
        !allowUnanchored,
      );
      return;
    }
    this.chained = true;
    const at = head.version;
    if (!this.#headSigned(head)) return;
    if (last === undefined || last.version < at) {
      this.add(
        'removed',
        last === undefined ? at : last.version + 1,
        `the head anchors version ${at}, but history ends at ${last === undefined ? 'nothing' : `version ${last.version}`}: the newest entries were deleted`,
        true,
      );
    } else if (last.version > at) {
      this.add(
        'inserted',
        at + 1,
        `versions ${at + 1} to ${last.version} were added after the anchored version ${at}`,
        true,
      );
    } else if (last.hash === undefined) {
      this.add(
        'stripped',
        at,
        `the head anchors a chained version ${at}, but its entry carries no hash: the hashes were removed`,
        true,
      );
    } else if (last.hash !== head.hash) {
      this.add(
        'altered',
        at,
        `version ${at} is not the entry the head anchors: it was rewritten (the chain recomputed)`,
        true,
      );
    } else this.anchored = true;
  }

  /** With a key, the head must carry a MAC that verifies; `false` after a fatal finding. */
  #headSigned(head: ChainHead): boolean {
    if (this.keys === undefined) return true;
    const keyed = head.mac === undefined ? null : KEYED_HASH.exec(head.mac);
    if (keyed === null) {
      this.add(
        'unkeyed',
        head.version,
        'the head carries no MAC under the given key: it was written or replaced without the key',
        true,
      );
      this.lastKeyed = false;
      return false;
    }
    const keyId = keyed[1] as string;
    const secret = this.keys.secrets.get(keyId);
    if (secret === undefined) {
      this.add(
        'unknown-key',
        head.version,
        `the head is signed with key ${JSON.stringify(keyId)}, which the given keyring lacks`,
        true,
      );
      return false;
    }
    if (!equal(mac(secret, keyId, headText(head)), head.mac as string)) {
      this.add('altered', head.version, 'the head does not match its MAC: it was forged', true);
      return false;
    }
    return true;
  }

  result(complete: boolean): VerifyResult {
    const report: VerifyReport = {
      entries: this.entries,
      unchained: this.unchained,
      chained: this.chained,
      anchored: complete && this.anchored,
      keyed: false,
      findings: this.findings,
    };
    const fatal = this.findings.find((finding) => finding.fatal);
    if (fatal !== undefined) {
      return { ...report, ok: false, version: fatal.version, kind: fatal.kind, detail: fatal.detail };
    }
    return { ...report, keyed: this.keys !== undefined && this.chained && this.lastKeyed, ok: true };
  }
}

/** A `hash` or `prevHash` set to `null` (by hand, in a document store) counts as absent. */
function withoutNullHashes(entry: HistoryEntry): HistoryEntry {
  if (entry.hash !== null && entry.prevHash !== null) return entry;
  const copy = { ...entry };
  if (copy.hash === null) delete copy.hash;
  if (copy.prevHash === null) delete copy.prevHash;
  return copy;
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
