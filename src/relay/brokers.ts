import { decodeJson, encodeJson } from '../history/codec.js';
import type { HistoryEntry } from '../history/entry.js';

/** One committed entry as the relay hands it to a publisher. */
export interface RelayMessage {
  /**
   * The deduplication id: `<entityType>/<entityId>/<version>`, each part URI-escaped, so two
   * publications of one entry carry the same id and no two entries share one.
   */
  readonly id: string;
  readonly sequence: number;
  readonly entry: HistoryEntry;
  /** The entry as JSON text (Dates as `{ "$date": … }`; `decodeEntry` reads it back). */
  readonly payload: string;
}

/** What a publisher reports for one message; `duplicate: true` when the broker dropped it as already seen. */
export interface PublishResult {
  readonly duplicate?: boolean;
}

/**
 * Sends messages to a broker and resolves once the broker has stored the message (acknowledged
 * it); rejects otherwise, and the relay sends it again later.
 */
export interface RelayPublisher {
  publish(message: RelayMessage): Promise<PublishResult | undefined>;
}

/** The deduplication id of an entry: `<entityType>/<entityId>/<version>`, parts URI-escaped. */
export function dedupId(entry: Pick<HistoryEntry, 'entityType' | 'entityId' | 'version'>): string {
  return `${encodeURIComponent(entry.entityType)}/${encodeURIComponent(entry.entityId)}/${entry.version}`;
}

/** Reads a relayed payload back into an entry, Dates restored. */
export function decodeEntry(payload: string | Uint8Array): HistoryEntry {
  const text = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
  const entry = decodeJson(text) as HistoryEntry & { timestamp: Date | string };
  return { ...entry, timestamp: entry.timestamp instanceof Date ? entry.timestamp : new Date(entry.timestamp) };
}

/** @internal */
export function messageOf(sequence: number, entry: HistoryEntry): RelayMessage {
  return { id: dedupId(entry), sequence, entry, payload: encodeJson(entry) };
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream

/** What the relay uses of a `nats` JetStream client (`nc.jetstream()`). */
export interface JetStreamLike {
  publish(
    subject: string,
    data: Uint8Array,
    options: { msgID: string; timeout?: number },
  ): Promise<{ duplicate: boolean; seq: number }>;
}

/** Options of {@link natsPublisher}. */
export interface NatsPublisherOptions {
  /** The subject of an entry. Default `event-history.<EntityType>` (characters NATS reserves replaced by `_`). */
  readonly subject?: (entry: HistoryEntry) => string;
  /** Milliseconds to wait for JetStream's acknowledgement. Default 5000. */
  readonly timeout?: number;
}

/** A NATS subject token from any text: `.`, `*`, `>` and whitespace become `_`. */
export function subjectToken(text: string): string {
  return text.replace(/[.*>\s]/g, '_') || '_';
}

/**
 * Publishes to NATS JetStream with the `Nats-Msg-Id` header set to the entry's dedup id, so the
 * stream drops a second publication within its `duplicate_window` (default 2 minutes) and
 * reports it as a duplicate. Create the stream (covering the subjects) beforehand, as
 * `ensureNatsStream` does.
 *
 * ```ts
 * const nc = await connect({ servers: 'nats://127.0.0.1:4222' });
 * const publisher = natsPublisher(nc.jetstream());
 * ```
 */
export function natsPublisher(js: JetStreamLike, options: NatsPublisherOptions = {}): RelayPublisher {
  const subject = options.subject ?? ((entry: HistoryEntry) => `event-history.${subjectToken(entry.entityType)}`);
  const encoder = new TextEncoder();
  return {
    async publish(message) {
      const ack = await js.publish(subject(message.entry), encoder.encode(message.payload), {
        msgID: message.id,
        timeout: options.timeout ?? 5000,
      });
      return { duplicate: ack.duplicate };
    },
  };
}

/** What `ensureNatsStream` uses of a JetStream manager (`await nc.jetstreamManager()`). */
export interface JetStreamManagerLike {
  streams: {
    info(name: string): Promise<unknown>;
    add(config: { name: string; subjects: string[]; duplicate_window?: number }): Promise<unknown>;
  };
}

/**
 * Creates the JetStream stream `name` for `subjects` when it does not exist (file storage, the
 * server's defaults), with a duplicate window of `duplicateWindowMs` (default 2 minutes).
 *
 * ```ts
 * await ensureNatsStream(await nc.jetstreamManager(), 'EVENT_HISTORY', ['event-history.>']);
 * ```
 */
export async function ensureNatsStream(
  jsm: JetStreamManagerLike,
  name: string,
  subjects: string[] = ['event-history.>'],
  duplicateWindowMs = 120_000,
): Promise<void> {
  try {
    await jsm.streams.info(name);
  } catch {
    // duplicate_window is in nanoseconds.
    await jsm.streams.add({ name, subjects, duplicate_window: duplicateWindowMs * 1_000_000 });
  }
}

// ---------------------------------------------------------------------------------------------
// Redis Streams

/** What the relay uses of an ioredis client. */
export interface RedisStreamsLike {
  xadd(key: string, ...args: string[]): Promise<string | null>;
}

/** Options of {@link redisPublisher}. */
export interface RedisPublisherOptions {
  /** The stream key. Default `event-history`. */
  readonly stream?: string;
  /** Trim to about this many entries (`MAXLEN ~`). Default: no trimming. */
  readonly maxLength?: number;
}

/**
 * Appends each entry to a Redis stream (`XADD`) with the fields `id` (the dedup id), `type`,
 * `entity`, `version`, `sequence` and `entry` (the JSON payload). Redis does not deduplicate:
 * after a relay restart an entry may be appended twice, always after its first copy; read with
 * `consumeDeduplicated` (or a `Deduplicator`) to see each once.
 *
 * ```ts
 * const publisher = redisPublisher(new Redis(process.env.REDIS_URL), { stream: 'orders-history' });
 * ```
 */
export function redisPublisher(redis: RedisStreamsLike, options: RedisPublisherOptions = {}): RelayPublisher {
  const stream = options.stream ?? 'event-history';
  const trim = options.maxLength === undefined ? [] : ['MAXLEN', '~', String(options.maxLength)];
  return {
    async publish(message) {
      const { entry } = message;
      const added = await redis.xadd(
        stream,
        ...trim,
        '*',
        'id',
        message.id,
        'type',
        entry.entityType,
        'entity',
        entry.entityId,
        'version',
        String(entry.version),
        'sequence',
        String(message.sequence),
        'entry',
        message.payload,
      );
      if (added === null) throw new Error(`XADD to ${stream} returned nothing`);
      return {};
    },
  };
}

/**
 * Consumer-side deduplication by per-entity version watermark: the relay publishes each entity's
 * versions in order and a re-publication only ever repeats versions already sent, so a message
 * whose version is not above the highest seen for its entity is a duplicate. Keep the watermarks
 * with your consumer's state (`snapshot()` / the constructor) to deduplicate across restarts.
 *
 * ```ts
 * const dedup = new Deduplicator();
 * if (dedup.accept(entry)) await handle(entry);
 * ```
 */
export class Deduplicator {
  readonly #seen: Map<string, number>;
  /** How many messages `accept` refused. */
  dropped = 0;

  constructor(watermarks?: Iterable<readonly [string, number]>) {
    this.#seen = new Map(watermarks);
  }

  /** Whether the entry is new (and records it); `false` for a duplicate. */
  accept(entry: Pick<HistoryEntry, 'entityType' | 'entityId' | 'version'>): boolean {
    const key = `${encodeURIComponent(entry.entityType)}/${encodeURIComponent(entry.entityId)}`;
    const last = this.#seen.get(key);
    if (last !== undefined && entry.version <= last) {
      this.dropped += 1;
      return false;
    }
    this.#seen.set(key, entry.version);
    return true;
  }

  /** The watermarks, to persist and pass to the constructor later. */
  snapshot(): [string, number][] {
    return [...this.#seen];
  }
}

/** What `consumeDeduplicated` uses of an ioredis client. */
export interface RedisReaderLike {
  xread(...args: (string | number)[]): Promise<[string, [string, string[]][]][] | null>;
}

/** Options of {@link consumeDeduplicated}. */
export interface ConsumeOptions {
  readonly stream?: string;
  /** The stream id to read after. Default `0` (the beginning). */
  readonly after?: string;
  /** Stops reading; the promise resolves after the message being handled. */
  readonly signal?: AbortSignal;
  /** Milliseconds an XREAD waits for new messages. Default 200. */
  readonly blockMs?: number;
  /** Resolve once the stream has nothing more to read, instead of waiting for new messages. */
  readonly untilEmpty?: boolean;
  /** The deduplicator (with watermarks from an earlier run). Default a fresh one. */
  readonly deduplicator?: Deduplicator;
}

/**
 * Reads a stream written by `redisPublisher` and calls `handle` once per entry, in stream order,
 * dropping re-publications (see `Deduplicator`). Resolves with the last stream id read and the
 * number of duplicates dropped.
 *
 * ```ts
 * await consumeDeduplicated(redis, async (entry) => project(entry), { stream: 'orders-history', signal });
 * ```
 */
export async function consumeDeduplicated(
  redis: RedisReaderLike,
  handle: (entry: HistoryEntry, streamId: string) => unknown,
  options: ConsumeOptions = {},
): Promise<{ lastId: string; duplicatesDropped: number; delivered: number }> {
  const stream = options.stream ?? 'event-history';
  const dedup = options.deduplicator ?? new Deduplicator();
  const droppedBefore = dedup.dropped;
  let lastId = options.after ?? '0';
  let delivered = 0;
  while (options.signal?.aborted !== true) {
    const result = options.untilEmpty
      ? await redis.xread('COUNT', 500, 'STREAMS', stream, lastId)
      : await redis.xread('COUNT', 500, 'BLOCK', options.blockMs ?? 200, 'STREAMS', stream, lastId);
    const messages = result?.[0]?.[1] ?? [];
    if (messages.length === 0 && options.untilEmpty) break;
    for (const [id, fields] of messages) {
      lastId = id;
      const payload = fieldOf(fields, 'entry');
      if (payload === undefined) continue;
      const entry = decodeEntry(payload);
      if (!dedup.accept(entry)) continue;
      delivered += 1;
      await handle(entry, id);
    }
  }
  return { lastId, duplicatesDropped: dedup.dropped - droppedBefore, delivered };
}

function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Publishes each message to every publisher in turn; acknowledged when all acknowledged. */
export function allPublishers(...publishers: RelayPublisher[]): RelayPublisher {
  return {
    async publish(message) {
      let duplicate = true;
      for (const publisher of publishers) {
        const result = await publisher.publish(message);
        if (result?.duplicate !== true) duplicate = false;
      }
      return { duplicate };
    },
  };
}
