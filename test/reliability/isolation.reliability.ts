import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  currentCall,
  currentSession,
  type HistoryEntry,
  HistoryTracked,
  type HistoryWriter,
  MemoryHistoryStore,
  runInSession,
  Versioned,
  withHistoryContext,
} from '../../src/index.js';
import { useFigures } from './support/figures.js';
import { type Account, runsHere, TARGETS, type Target, uniqueName } from './support/targets.js';

const figures = useFigures('isolation');
const REQUESTS = 200;

const pause = () => new Promise((resolve) => setTimeout(resolve, Math.random() * 8));

/** What a request expects its calls to see, keyed by the entity it writes. */
const expected = new WeakMap<object, { session: unknown; actor: string }>();
const seen: string[] = [];

/** A service whose save takes no session argument: it writes through `currentSession()`. */
function ambientService(target: Target) {
  const methods = { save: 'create' } as const;

  @Versioned({ methods })
  @HistoryTracked('history', { methods, entityType: 'Account', redact: ['secret', 'card.number', 'contacts.phone'] })
  class AmbientAccounts {
    constructor(readonly history: HistoryWriter) {}

    async save(account: Account): Promise<unknown> {
      await pause();
      const mine = expected.get(account);
      const session = currentSession();
      if (session !== mine?.session) seen.push(`${account.id} saw another request's session`);
      if (currentCall()?.entity !== account) seen.push(`${account.id} saw another request's call`);
      return target.insert(session, account);
    }
  }

  return new AmbientAccounts(target.store as HistoryWriter);
}

const SECRETS = (i: number) => ({
  secret: `s3cret-${i}-${uniqueName('x')}`,
  card: { number: `4111-${i}-${uniqueName('c')}`, brand: 'visa' },
  contacts: [{ phone: `+41-${i}-${uniqueName('p')}`, kind: 'home' }],
});

for (const entry of TARGETS) {
  describe.runIf(runsHere(entry.unavailable))(`${entry.name}: isolation of concurrent requests`, () => {
    let target: Target;

    beforeAll(async () => {
      target = await entry.open();
    });
    afterAll(() => target?.close());

    it(`gives each of ${REQUESTS} concurrent requests its own actor and session, and stores no redacted value`, async () => {
      const service = ambientService(target);
      // SQLite has one writer at a time: its requests share one Database, whose calls the library serialises.
      const shared = entry.name === 'sqlite' ? await target.session() : undefined;
      const secrets: string[] = [];
      const ids: string[] = [];
      seen.length = 0;
      await Promise.all(
        Array.from({ length: REQUESTS }, (_, i) =>
          withHistoryContext({ actor: `actor-${i}`, metadata: { request: i } }, async () => {
            await pause();
            const session = shared ?? (await target.session());
            try {
              await runInSession(session, async () => {
                const extra = SECRETS(i);
                secrets.push(extra.secret, extra.card.number, extra.contacts[0]?.phone ?? '');
                const account = { id: uniqueName(`iso${i}`), balance: i, note: `request ${i}`, ...extra } as Account;
                ids[i] = account.id;
                expected.set(account, { session, actor: `actor-${i}` });
                await pause();
                await service.save(account);
              });
            } finally {
              if (shared === undefined) await target.release(session);
            }
          }),
        ),
      );
      if (shared !== undefined) await target.release(shared);
      expect(seen).toEqual([]);
      for (let i = 0; i < REQUESTS; i++) {
        const history = await target.readHistory('Account', ids[i] as string);
        expect(history.map((h) => h.actor)).toEqual([`actor-${i}`]);
      }
      const raw = JSON.stringify(await target.rawHistoryRows());
      const leaked = secrets.filter((secret) => raw.includes(secret));
      expect(leaked).toEqual([]);
      expect(raw).toContain('[redacted]');
      figures.add('isolation', 'concurrent requests with distinct actors', target.name, REQUESTS);
      figures.add('isolation', 'requests that saw another actor or session', target.name, seen.length);
      figures.add('isolation', 'redacted values found in raw history rows', target.name, leaked.length);
    });
  });
}

describe('memory store: isolation of concurrent requests', () => {
  it(`gives each of ${REQUESTS} concurrent requests its own actor and keeps redacted values out of the store`, async () => {
    const store = new MemoryHistoryStore();

    @Versioned()
    @HistoryTracked(store, { entityType: 'Account', redact: ['secret', 'card.number', 'contacts.phone'] })
    class MemoryAccounts {
      async save(_account: Account): Promise<void> {
        await pause();
      }
    }

    const service = new MemoryAccounts();
    const secrets: string[] = [];
    await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) =>
        withHistoryContext({ actor: `actor-${i}` }, async () => {
          await pause();
          const extra = SECRETS(i);
          secrets.push(extra.secret, extra.card.number);
          await service.save({ id: `m${i}`, balance: i, note: '', ...extra } as Account);
        }),
      ),
    );
    const entries: HistoryEntry[] = [];
    for (let i = 0; i < REQUESTS; i++) entries.push(...(await store.list('Account', `m${i}`)));
    expect(entries.map((e) => e.actor)).toEqual(Array.from({ length: REQUESTS }, (_, i) => `actor-${i}`));
    const raw = JSON.stringify(entries);
    expect(secrets.filter((secret) => raw.includes(secret))).toEqual([]);
    figures.add('isolation', 'concurrent requests with distinct actors', 'memory', REQUESTS);
    figures.add('isolation', 'redacted values found in raw history rows', 'memory', 0);
  });
});
