import type { CallInfo } from '../context.js';
import type { ChainOptions } from '../history/chain.js';
import type { HistoryEntry, HistoryOp, HistoryWriter } from '../history/entry.js';

/**
 * Options both decorators accept. When both decorate one method they are merged, and
 * `@Versioned`'s value wins where both set one.
 */
export interface CallOptions<M extends string = string> {
  /** The operation of a decorated method; inferred from its name when left out. */
  op?: HistoryOp;
  /**
   * On a class: the methods to wrap and their operation. Default `{ save: 'create', update: 'update' }`,
   * wrapped where present. A `DecoratorError` when the class is defined: a method listed here
   * that the class lacks; a class decorator that wraps no method; and, with both `@Versioned` and
   * `@HistoryTracked` on the class, a method one of them wraps and the other does not (neither on
   * the class nor on the method). `false` opts a method out explicitly, for a method the other
   * decorator wraps on purpose alone: `@HistoryTracked(source, { methods: { save: 'create', deposit: false } })`.
   */
  methods?: Readonly<Record<M, HistoryOp | false>>;
  /** Default `'version'`. */
  versionField?: string;
  /** Default `'timestamp'`. */
  timestampField?: string;
  /** Default `'id'`, falling back to `'_id'` when the entity has no `id`. */
  idField?: string;
  /** Position of the session argument. Default 1 (or the `@SessionArg()` parameter). */
  sessionIndex?: number;
  /** Position of the entity argument. Default 0 (or the `@EntityArg()` parameter). */
  entityIndex?: number;
  /** Default `true`: a call without a session is a `MissingSessionError` unless the writer is not transactional. */
  requireSession?: boolean;
  /**
   * Decides from the method's result that nothing matched (a lost race). The default treats
   * `{ matchedCount: 0 }`, `{ rowCount: 0 }`, `{ affectedRows: 0 }`, `{ affected: 0 }`,
   * `{ count: 0 }`, `{ deletedCount: 0 }`, `{ changes: 0 }` and `false` from an update or delete as a conflict.
   */
  conflict?: (result: unknown, call: CallInfo) => boolean;
  /** Retries after a transient failure when the call owns the transaction. Default 3. */
  retries?: number;
}

/**
 * Options of `@Versioned`.
 *
 * ```ts
 * @Versioned({ versionField: 'rev', clock: () => fixedNow })
 * ```
 */
export interface VersionedOptions<M extends string = string> extends CallOptions<M> {
  /** The version a created entity gets. Default 1. */
  initialVersion?: number;
  /** Where timestamps come from. Default `() => new Date()`. */
  clock?: () => Date;
}

/**
 * Options of `@HistoryTracked`.
 *
 * ```ts
 * @HistoryTracked('history', { ignore: ['cache'], redact: ['card.number'] })
 * ```
 */
export interface HistoryTrackedOptions<M extends string = string> extends CallOptions<M> {
  /** Default: the entity's class name, else the entity parameter's design type, else the service name without `Service`. */
  entityType?: string;
  /** Dotted paths never written to history. */
  ignore?: readonly string[];
  /** Dotted paths written as `"[redacted]"`. */
  redact?: readonly string[];
  /** Extra metadata for each entry, merged over `withHistoryContext`'s. */
  metadata?: (call: CallInfo) => Record<string, unknown>;
  /** Turns the entry into the shape an existing history service expects. */
  map?: (entry: HistoryEntry) => unknown;
  /**
   * The largest snapshot written, counted as characters of its JSON text; a larger entity is an
   * `InvalidEntityError` and nothing is written. Default 4 MiB; `Infinity` turns the check off.
   */
  maxSnapshotBytes?: number;
  /** Where timestamps come from when `@Versioned` does not stamp one. Default `() => new Date()`. */
  clock?: () => Date;
  /**
   * What an update that changes no tracked field does. `'record'` (default) writes an entry as
   * for any update. `'skip'` reads the entity's latest entry through the writer, with the call's
   * session, before anything is stamped; when the entity's snapshot (ignore applied, version and
   * timestamp left out) equals it, neither the method nor the history write runs, the entity keeps
   * its version and timestamp, and the call resolves to `undefined`. Changes to ignored fields
   * alone are therefore not saved either; an entity with a redacted field present is always
   * recorded (history holds only the mask). Needs a writer with `latest(type, id, { session })`.
   */
  onUnchanged?: 'record' | 'skip';
  /**
   * Tamper evidence: each entry gets `prevHash` (the hash of the entity's previous entry, read
   * in the same transaction) and `hash`, a SHA-256 over its canonical content and `prevHash`; the
   * built-in stores also upsert the entity's head (`<table>_heads`) in the same transaction, so
   * deleting the newest entries is detected. With `{ key }` (a secret or a keyring
   * `{ current, keys }`, or a function returning one) the hashes and the head are HMAC-SHA-256
   * under the current key, which nobody without the key can recompute. Check with
   * `verifyHistory`. Needs a writer with `latest(type, id, { session })`.
   */
  chain?: boolean | ChainOptions;
  /** The shape of this entity's snapshots, stored with each entry; readers upcast older ones (`upcastReader`). */
  schemaVersion?: number;
}

/** A class whose instances write history. */
export type HistoryWriterClass = abstract new (...args: never[]) => HistoryWriter<never>;

/**
 * Where `@HistoryTracked` gets its writer: a property name of the service, a function of the
 * service, a class (resolved through Nest DI or the one property holding an instance of it), or
 * a writer object itself.
 */
export type HistorySource =
  | string
  | HistoryWriterClass
  | ((service: never) => HistoryWriter<never>)
  | HistoryWriter<never>;
