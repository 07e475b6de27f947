import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { connect } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { consumeDeduplicated, decodeEntry } from '../../src/relay/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { suiteNeeding } from '../support/skip.js';
import { entry, NATS_URL, REDIS_URL, reachable } from './support.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) }, env: {} },
  };
}

const dir = mkdtempSync(join(tmpdir(), 'relay-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('event-history relay (usage)', () => {
  it('explains a missing broker, database or bad --batch with exit code 2', async () => {
    const a = io();
    expect(await main(['relay', '--url', 'sqlite:x.db'], a.io)).toBe(2);
    expect(a.err.join('')).toContain('no broker given');
    const b = io();
    expect(await main(['relay', '--redis', REDIS_URL], b.io)).toBe(2);
    expect(b.err.join('')).toContain('no database given');
    const c = io();
    expect(await main(['relay', '--url', 'sqlite:x.db', '--redis', REDIS_URL, '--batch', '0'], c.io)).toBe(2);
    const d = io();
    expect(await main(['relay', '--help'], d.io)).toBe(0);
    expect(d.out.join('')).toContain('JetStream');
  });
});

const up = (await reachable(NATS_URL)) && (await reachable(REDIS_URL));
suiteNeeding(up ? undefined : `NATS (${NATS_URL}) or Redis (${REDIS_URL}) does not answer (NATS_URL, REDIS_URL)`)(
  'event-history relay (NATS_URL, REDIS_URL)',
  () => {
    it('--once publishes a SQLite history to JetStream and a Redis stream, and a second run sends nothing more', async () => {
      if (!up) throw new Error(`REQUIRE_DATABASES=1, but NATS (${NATS_URL}) or Redis (${REDIS_URL}) does not answer.`);
      const file = join(dir, 'app.db');
      const db = new Database(file);
      const store = new SqliteHistoryStore(db);
      await store.ensureSchema();
      for (let v = 1; v <= 3; v++) await store.save(entry('Order', 'c1', v));
      db.close();
      const tag = randomBytes(4).toString('hex');
      const stream = `EH_CLI_${tag}`;
      const subject = `eh-cli-${tag}`;
      const redisStream = `eh-cli-${tag}`;
      const args = ['relay', '--url', `sqlite:${file}`, '--nats', NATS_URL, '--stream', stream, '--subject', subject];
      const run = io();
      const code = await main([...args, '--redis', REDIS_URL, '--redis-stream', redisStream, '--once'], run.io);
      expect(run.err.join('')).not.toContain('event-history: ');
      expect(code).toBe(0);
      expect(JSON.parse(run.out.join(''))).toMatchObject({ published: 3, position: 3 });
      const again = io();
      expect(await main([...args, '--redis', REDIS_URL, '--redis-stream', redisStream, '--once'], again.io)).toBe(0);
      expect(JSON.parse(again.out.join(''))).toMatchObject({ published: 0, position: 3 });

      const nc = await connect({ servers: NATS_URL });
      const redis = new Redis(REDIS_URL);
      try {
        const jsm = await nc.jetstreamManager();
        const info = await jsm.streams.info(stream);
        expect(info.state.messages).toBe(3);
        const last = await jsm.streams.getMessage(stream, { seq: info.state.last_seq });
        expect(last.subject).toBe(`${subject}.Order`);
        expect(decodeEntry(last.data)).toMatchObject({ entityId: 'c1', version: 3 });
        const seen: number[] = [];
        await consumeDeduplicated(redis, (e) => void seen.push(e.version), { stream: redisStream, untilEmpty: true });
        expect(seen).toEqual([1, 2, 3]);
      } finally {
        await (await nc.jetstreamManager()).streams.delete(stream).catch(() => undefined);
        await redis.del(redisStream);
        redis.disconnect();
        await nc.close();
      }
    });
  },
);
