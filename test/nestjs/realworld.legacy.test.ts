import type { INestApplication } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseOptions } from '../../demo/realworld/app/app.module.js';
import { ArticleEntity } from '../../demo/realworld/app/article.entity.js';
import { startRealworld } from '../../demo/realworld/app/main.js';
import { UserEntity } from '../../demo/realworld/app/user.entity.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { connectionOptions, MYSQL_URL, uniqueTable } from '../mysql/support.js';

const DATABASE_URL = process.env.DATABASE_URL;

interface Target {
  readonly name: string;
  readonly unavailable: string | undefined;
  readonly options: () => DatabaseOptions;
  /** Takes the history table away (and back), so that every history write fails meanwhile. */
  readonly rename: (from: string, to: string) => string;
}

const targets: Target[] = [
  {
    name: 'PostgreSQL',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    options: () => ({ type: 'postgres', url: DATABASE_URL, synchronize: true }),
    rename: (from, to) => `ALTER TABLE "${from}" RENAME TO "${to}"`,
  },
  {
    name: 'MariaDB (TypeORM mysql driver, mysql2)',
    unavailable: MYSQL_URL ? undefined : 'MYSQL_URL is not set',
    options: () => {
      const { user, ...rest } = connectionOptions();
      return { type: 'mysql', ...rest, username: user, synchronize: true };
    },
    rename: (from, to) => `RENAME TABLE \`${from}\` TO \`${to}\``,
  },
];

type Json = Record<string, unknown>;

for (const target of targets) {
  describe(`the realworld demo (NestJS + TypeORM, adopted with decorators) over HTTP on ${target.name}`, () => {
    if (target.unavailable !== undefined) {
      if (REQUIRE_DATABASES) it(`needs ${target.name}`, () => expect.fail(target.unavailable));
      else
        describe.skip(`${target.name}: skipped because ${target.unavailable}`, () => it('needs the server', () => {}));
      return;
    }
    const historyTable = uniqueTable('rw_history');
    let app: INestApplication;
    let url: string;
    let dataSource: DataSource;

    beforeAll(async () => {
      ({ app, url } = await startRealworld(target.options(), { historyTable }));
      dataSource = app.get(DataSource);
      await dataSource.createQueryBuilder().delete().from(ArticleEntity).execute();
      await dataSource.createQueryBuilder().delete().from(UserEntity).execute();
    });

    afterAll(async () => {
      await dataSource?.query(`DROP TABLE IF EXISTS ${historyTable}`);
      await app?.close();
    });

    const send = async (method: string, path: string, body?: unknown, user = 'jane') => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { 'content-type': 'application/json', 'x-user': user },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: (text === '' ? {} : JSON.parse(text)) as Json };
    };
    const article = async (slug: string) => (await send('GET', `/articles/${slug}`)).body.article as Json;

    let slug = '';
    let userId = 0;

    it('creates a user and an article, versioned 1, the DTOs answered as the service returns them', async () => {
      const user = await send('POST', '/users', { user: { username: 'jane', email: 'j@x.io', password: 'pw-1' } });
      expect(user.status).toBe(201);
      expect(user.body.user).toMatchObject({ username: 'jane', version: 1 });
      expect(user.body.user).not.toHaveProperty('password');
      userId = (user.body.user as { id: number }).id;
      const created = await send('POST', '/articles', { article: { title: 'Hello', description: 'd', body: 'b' } });
      expect(created.status).toBe(201);
      expect(created.body.article).toMatchObject({ title: 'Hello', author: 'jane', version: 1 });
      slug = (created.body.article as { slug: string }).slug;
    });

    it('updates the article through update(slug, dto), at version 2', async () => {
      const updated = await send('PUT', `/articles/${slug}`, { article: { title: 'Hello again', version: 1 } }, 'bob');
      expect(updated.status).toBe(200);
      expect(updated.body.article).toMatchObject({ title: 'Hello again', version: 2 });
    });

    it('answers a stale update with 409 and keeps the row as it was', async () => {
      const stale = await send('PUT', `/articles/${slug}`, { article: { title: 'stale', version: 1 } }, 'carol');
      expect(stale.status).toBe(409);
      expect(stale.body).toMatchObject({ code: 'VERSION_CONFLICT', entityType: 'ArticleEntity', expectedVersion: 1 });
      expect(await article(slug)).toMatchObject({ title: 'Hello again', version: 2 });
    });

    it('lets one of two concurrent updates from the same version win; the other is a 409', async () => {
      const [left, right] = await Promise.all([
        send('PUT', `/articles/${slug}`, { article: { body: 'left', version: 2 } }, 'left'),
        send('PUT', `/articles/${slug}`, { article: { body: 'right', version: 2 } }, 'right'),
      ]);
      expect([left.status, right.status].sort()).toEqual([200, 409]);
      const winner = left.status === 200 ? 'left' : 'right';
      expect(await article(slug)).toMatchObject({ body: winner, version: 3 });
    });

    it('keeps nothing of an update whose history write fails (500), and works again afterwards', async () => {
      await dataSource.query(target.rename(historyTable, `${historyTable}_off`));
      let failed: { status: number };
      try {
        failed = await send('PUT', `/articles/${slug}`, { article: { title: 'lost' } }, 'dave');
      } finally {
        await dataSource.query(target.rename(`${historyTable}_off`, historyTable));
      }
      expect(failed.status).toBe(500);
      expect(await article(slug)).toMatchObject({ title: 'Hello again', version: 3 });
    });

    it('versions and records repository.update(criteria, partial) in favorite(slug)', async () => {
      const favored = await send('POST', `/articles/${slug}/favorite`, undefined, 'erin');
      expect(favored.status).toBe(201);
      expect(favored.body.article).toMatchObject({ version: 4 });
    });

    it('reads the history back with each request’s actor', async () => {
      const history = await send('GET', `/history/articles/${slug}`);
      const entries = history.body as unknown as { version: number; op: string; actor?: string; snapshot: Json }[];
      expect(entries.map((e) => [e.version, e.op, e.actor])).toEqual([
        [1, 'create', 'jane'],
        [2, 'update', 'bob'],
        [3, 'update', (entries[2]?.snapshot as { body?: string } | undefined)?.body],
        [4, 'update', 'erin'],
      ]);
      expect(entries[1]?.snapshot).toMatchObject({ title: 'Hello again', version: 2 });
      expect(entries[3]?.snapshot).toMatchObject({ favoriteCount: 1, version: 4 });
    });

    it('records a user’s password change with the password redacted', async () => {
      const changed = await send('PUT', `/users/${userId}`, { user: { password: 'pw-2', bio: 'hi' } }, 'jane');
      expect(changed.status).toBe(200);
      expect(changed.body.user).toMatchObject({ bio: 'hi', version: 2 });
      const history = await send('GET', `/history/users/${userId}`);
      const entries = history.body as unknown as { version: number; snapshot: Json }[];
      expect(entries.map((e) => [e.version, e.snapshot.password, e.snapshot.bio])).toEqual([
        [1, '[redacted]', ''],
        [2, '[redacted]', 'hi'],
      ]);
    });

    it('deletes the article through delete(criteria), recorded as a delete', async () => {
      const { body } = await send('GET', `/history/articles/${slug}`);
      expect((body as unknown as unknown[]).length).toBe(4);
      const id = (await dataSource.getRepository(ArticleEntity).findOneByOrFail({ slug })).id;
      expect((await send('DELETE', `/articles/${slug}`, undefined, 'jane')).status).toBe(200);
      expect((await send('GET', `/articles/${slug}`)).status).toBe(404);
      const store = app.get<{ list(t: string, id: string): Promise<{ version: number; op: string }[]> }>(
        Symbol.for('event-history:nestjs-store'),
      );
      expect((await store.list('ArticleEntity', String(id))).map((e) => [e.version, e.op]).at(-1)).toEqual([
        5,
        'delete',
      ]);
    });
  });
}
