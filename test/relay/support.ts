import { createConnection } from 'node:net';
import type { HistoryEntry } from '../../src/index.js';
import type { PublishResult, RelayMessage, RelayPublisher } from '../../src/relay/index.js';

export const REQUIRE_DATABASES = process.env.REQUIRE_DATABASES === '1';
export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Whether a TCP server answers at the URL's host and port (within a second). */
export function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A broker in memory that deduplicates by message id, as JetStream does. */
export class MemoryBroker implements RelayPublisher {
  readonly messages: RelayMessage[] = [];
  readonly #ids = new Set<string>();
  failNext = 0;

  async publish(message: RelayMessage): Promise<PublishResult> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('broker unavailable');
    }
    if (this.#ids.has(message.id)) return { duplicate: true };
    this.#ids.add(message.id);
    this.messages.push(message);
    return { duplicate: false };
  }

  keys(): string[] {
    return this.messages.map((m) => m.id);
  }
}

let clock = Date.UTC(2026, 0, 1);
export function entry(entityType: string, entityId: string, version: number, txId?: string): HistoryEntry {
  clock += 1000;
  return {
    entityType,
    entityId,
    version,
    op: version === 1 ? 'create' : 'update',
    timestamp: new Date(clock),
    snapshot: { id: entityId, version, note: 'x' },
    ...(txId === undefined ? {} : { txId }),
  };
}
