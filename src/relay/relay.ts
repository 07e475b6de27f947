import { messageOf, type RelayPublisher } from './brokers.js';
import type { RelaySource } from './source.js';

/** Options of {@link relay}. */
export interface RelayOptions {
  /** Where committed entries are read: `postgresRelaySource`, `mysqlRelaySource` or `sqliteRelaySource`. */
  readonly source: RelaySource;
  /** Where they go: `natsPublisher`, `redisPublisher`, `allPublishers(…)` or your own. */
  readonly publisher: RelayPublisher;
  /** The position's name: relays with different names keep separate positions. Default `default`. */
  readonly name?: string;
  /** Entries per read (and per numbering transaction). Default 200. */
  readonly batchSize?: number;
  /** Milliseconds between polls when there is nothing to send. Default 250. */
  readonly pollIntervalMs?: number;
  /** Stops the relay: it finishes the message in flight, saves its position and resolves. */
  readonly signal?: AbortSignal;
  /** Resolve once everything committed so far is published, instead of polling for more. */
  readonly untilCaughtUp?: boolean;
  /** Creates the relay's column, index and position table first (default true). */
  readonly ensureSchema?: boolean;
  /** Errors the relay recovers from (a broker or database down): it waits and tries again. Default `console.error`. */
  readonly onError?: (error: unknown) => void;
  /** Called after each published message. */
  readonly onPublished?: (message: {
    readonly id: string;
    readonly sequence: number;
    readonly duplicate: boolean;
  }) => void;
}

/** What a relay run did. */
export interface RelayStats {
  /** Messages the publisher acknowledged. */
  published: number;
  /** Of those, how many the broker reported as duplicates. */
  duplicates: number;
  /** The position saved last. */
  position: number;
  /** Errors recovered from. */
  errors: number;
}

/**
 * The transactional outbox relay: publishes every committed history entry to a broker, at least
 * once, each entity's versions in order, from a durable position it resumes from after a crash.
 *
 * Each pass numbers the newly committed rows (`relay_seq`, see `RelaySource`), reads the rows
 * after its position in that order, publishes them one at a time and saves the position after
 * each batch (and on shutdown). An entry whose transaction commits late is numbered when it
 * becomes visible, after everything numbered before: never skipped. A crash between a publish
 * and the next save republishes the entries since the saved position: the broker or the consumer
 * drops them by their dedup id (see `dedupId`, `Deduplicator`).
 *
 * ```ts
 * const controller = new AbortController();
 * process.once('SIGTERM', () => controller.abort());
 * await relay({ source: postgresRelaySource(pool), publisher: natsPublisher(nc.jetstream()), signal: controller.signal });
 * ```
 */
export async function relay(options: RelayOptions): Promise<RelayStats> {
  const { source, publisher, signal } = options;
  const name = options.name ?? 'default';
  const batchSize = Math.max(1, Math.trunc(options.batchSize ?? 200));
  const poll = Math.max(1, options.pollIntervalMs ?? 250);
  const onError =
    options.onError ?? ((error: unknown) => console.error('event-history relay: will retry after', error));
  const stats: RelayStats = { published: 0, duplicates: 0, position: 0, errors: 0 };
  if (options.ensureSchema !== false) await source.ensureSchema();
  let position = await source.position(name);
  let saved = position;
  stats.position = position;
  let failures = 0;
  const save = async (): Promise<void> => {
    if (position === saved) return;
    await source.savePosition(name, position);
    saved = position;
    stats.position = position;
  };
  const stopped = (): boolean => signal?.aborted === true;
  while (!stopped()) {
    let busy = false;
    try {
      const numbered = await source.assign(batchSize);
      const batch = await source.read(position, batchSize);
      for (const { sequence, entry } of batch) {
        if (stopped()) break;
        const message = messageOf(sequence, entry);
        const result = await publisher.publish(message);
        const duplicate = result?.duplicate === true;
        position = sequence;
        stats.published += 1;
        if (duplicate) stats.duplicates += 1;
        options.onPublished?.({ id: message.id, sequence, duplicate });
      }
      await save();
      busy = numbered === batchSize || batch.length === batchSize;
      failures = 0;
      if (!busy && options.untilCaughtUp) {
        const { unassigned } = await source.backlog();
        if (unassigned === 0) break;
      }
    } catch (error) {
      stats.errors += 1;
      failures += 1;
      onError(error);
      // What was acknowledged before the failure is kept; the rest is sent again.
      await save().catch(() => undefined);
    }
    if (!busy && !stopped()) {
      await sleep(failures === 0 ? poll : Math.min(poll * 2 ** failures, 5000), signal);
    }
  }
  await save();
  return stats;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
