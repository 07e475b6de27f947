import type Database from 'better-sqlite3';
import type pg from 'pg';
import {
  Column,
  DataSource,
  Entity,
  type EntityManager,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  type Repository,
  VersionColumn,
} from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type HistoryEntry,
  HistoryTracked,
  HistoryWriteError,
  registerUnitOfWork,
  TransactionStateError,
  typeormUnitOfWork,
  VersionConflictError,
  Versioned,
} from '../../src/index.js';
import { type MysqlCallbackQueryable, MysqlHistoryStore } from '../../src/mysql/index.js';
import { PostgresHistoryStore } from '../../src/postgres/index.js';
import { SqliteHistoryStore } from '../../src/sqlite/index.js';
import { REQUIRE_DATABASES } from '../integration/fixture.js';
import { connectionOptions, MYSQL_URL, uniqueTable } from '../mysql/support.js';

const DATABASE_URL = process.env.DATABASE_URL;
const suffix = uniqueTable('uow');

@Entity({ name: `articles_${suffix}` })
class ArticleEntity {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  slug!: string;

  @Column({ type: 'varchar', length: 200 })
  title!: string;

  @Column({ type: 'varchar', length: 200, default: '' })
  body!: string;

  @VersionColumn()
  version!: number;
}

@Entity({ name: `users_${suffix}` })
class UserEntity {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 64 })
  username!: string;

  @Column({ type: 'varchar', length: 200 })
  password!: string;

  @Column({ type: 'integer', nullable: true })
  version!: number | null;
}

interface UpdateArticleDto {
  title?: string;
  body?: string;
  version?: number;
}

type Store = PostgresHistoryStore | MysqlHistoryStore | SqliteHistoryStore;

/** A service as NestJS + TypeORM applications write them: injected repositories, no session anywhere. */
class ArticleService {
  constructor(
    readonly articleRepository: Repository<ArticleEntity>,
    readonly userRepository: Repository<UserEntity>,
    readonly entityManager: EntityManager,
  ) {}

  @Versioned()
  @HistoryTracked('history')
  async create(dto: { slug: string; title: string }): Promise<{ article: ArticleEntity }> {
    const article = this.articleRepository.create({ ...dto, body: '' });
    return { article: await this.articleRepository.save(article) };
  }

  @Versioned()
  @HistoryTracked('history')
  async update(slug: string, dto: UpdateArticleDto): Promise<{ article: ArticleEntity }> {
    const article = await this.articleRepository.findOneByOrFail({ slug });
    const updated = Object.assign(article, dto);
    return { article: await this.articleRepository.save(updated) };
  }

  @Versioned()
  @HistoryTracked('history')
  async updateTitle(slug: string, title: string, version?: number): Promise<void> {
    await this.articleRepository.update({ slug }, version === undefined ? { title } : { title, version });
  }

  @Versioned()
  @HistoryTracked('history')
  async updateThroughManager(slug: string, body: string): Promise<void> {
    const article = await this.entityManager.findOneByOrFail(ArticleEntity, { slug });
    article.body = body;
    await this.entityManager.save(article);
  }

  @Versioned()
  @HistoryTracked('history')
  async delete(slug: string): Promise<void> {
    const article = await this.articleRepository.findOneByOrFail({ slug });
    await this.articleRepository.remove(article);
  }

  @Versioned()
  @HistoryTracked('history')
  async deleteBySlug(slug: string): Promise<void> {
    await this.articleRepository.delete({ slug });
  }

  @Versioned()
  @HistoryTracked('history')
  async createUser(username: string, password: string): Promise<number> {
    const user = await this.userRepository.insert({ username, password });
    return (user.identifiers[0] as { id: number }).id;
  }

  @Versioned()
  @HistoryTracked('history')
  async updatePassword(id: number, password: string): Promise<void> {
    const user = await this.userRepository.findOneByOrFail({ id });
    user.password = password;
    await this.userRepository.save(user);
  }

  @Versioned()
  @HistoryTracked('history')
  async updateThroughQueryBuilder(slug: string, title: string): Promise<void> {
    await this.articleRepository.createQueryBuilder().update().set({ title }).where({ slug }).execute();
  }

  history!: Store;
}

interface Target {
  readonly name: string;
  readonly unavailable: string | undefined;
  open(): Promise<{ dataSource: DataSource; store: Store }>;
}

const historyTable = `history_${suffix}`;
const entities = [ArticleEntity, UserEntity];

const targets: Target[] = [
  {
    name: 'PostgreSQL',
    unavailable: DATABASE_URL ? undefined : 'DATABASE_URL is not set',
    async open() {
      const dataSource = new DataSource({ type: 'postgres', url: DATABASE_URL, entities, poolSize: 6 });
      await dataSource.initialize();
      await dataSource.synchronize();
      const pool = (dataSource.driver as unknown as { master: pg.Pool }).master;
      return { dataSource, store: new PostgresHistoryStore(pool, { table: historyTable }) };
    },
  },
  {
    name: 'MariaDB (TypeORM mysql driver, mysql2)',
    unavailable: MYSQL_URL ? undefined : 'MYSQL_URL is not set',
    async open() {
      const { user, ...rest } = connectionOptions();
      const dataSource = new DataSource({ type: 'mysql', ...rest, username: user, entities, poolSize: 6 });
      await dataSource.initialize();
      await dataSource.synchronize();
      const pool = (dataSource.driver as unknown as { pool: MysqlCallbackQueryable }).pool;
      return { dataSource, store: new MysqlHistoryStore(pool, { table: historyTable }) };
    },
  },
  {
    name: 'SQLite (better-sqlite3)',
    unavailable: undefined,
    async open() {
      const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:', entities });
      await dataSource.initialize();
      await dataSource.synchronize();
      const db = (dataSource.driver as unknown as { databaseConnection: Database.Database }).databaseConnection;
      return { dataSource, store: new SqliteHistoryStore(db, { table: historyTable }) };
    },
  },
];

for (const target of targets) {
  if (target.unavailable !== undefined) {
    describe(`TypeORM unit of work on ${target.name}`, () => {
      if (REQUIRE_DATABASES) it(`needs ${target.name}`, () => expect.fail(target.unavailable));
      else
        describe.skip(`${target.name}: skipped because ${target.unavailable}`, () => it('needs the server', () => {}));
    });
    continue;
  }

  describe(`TypeORM unit of work on ${target.name}: decorated methods without entity or session arguments`, () => {
    let dataSource: DataSource;
    let store: Store;
    let service: ArticleService;
    let unregister: () => void;

    beforeAll(async () => {
      ({ dataSource, store } = await target.open());
      await store.ensureSchema();
      unregister = registerUnitOfWork(
        typeormUnitOfWork(dataSource, { track: [ArticleEntity, { entity: UserEntity, redact: ['password'] }] }),
      );
      service = new ArticleService(
        dataSource.getRepository(ArticleEntity),
        dataSource.getRepository(UserEntity),
        dataSource.manager,
      );
      service.history = store;
    });

    afterAll(async () => {
      unregister?.();
      if (dataSource?.isInitialized) {
        await dataSource.query(`DROP TABLE IF EXISTS ${historyTable}`);
        await dataSource.dropDatabase().catch(() => undefined);
        await dataSource.destroy();
      }
    });

    const history = (type: string, id: string): Promise<HistoryEntry[]> => store.list(type, id);
    const row = (slug: string) => dataSource.getRepository(ArticleEntity).findOneBy({ slug });

    it('records a create and an update through the injected repository, each at the version @VersionColumn wrote', async () => {
      const { article } = await service.create({ slug: 'a-1', title: 'First' });
      expect(article.version).toBe(1);
      const updated = await service.update('a-1', { title: 'Second' });
      expect(updated.article).toMatchObject({ title: 'Second', version: 2 });
      const entries = await history('ArticleEntity', 'a-1');
      expect(entries.map((e) => [e.version, e.op, e.snapshot])).toEqual([
        [1, 'create', { slug: 'a-1', title: 'First', body: '', version: 1 }],
        [2, 'update', { slug: 'a-1', title: 'Second', body: '', version: 2 }],
      ]);
      expect(entries[0]?.txId).toBeDefined();
      expect(entries[0]?.txId).not.toBe(entries[1]?.txId);
    });

    it('answers a stale update (the version the client read) with VersionConflictError and keeps nothing of it', async () => {
      await service.create({ slug: 'a-2', title: 'v1' });
      await service.update('a-2', { title: 'v2', version: 1 });
      await expect(service.update('a-2', { title: 'stale', version: 1 })).rejects.toBeInstanceOf(VersionConflictError);
      expect(await row('a-2')).toMatchObject({ title: 'v2', version: 2 });
      expect((await history('ArticleEntity', 'a-2')).map((e) => e.version)).toEqual([1, 2]);
    });

    it('lets exactly one of two concurrent updates from the same version win', async () => {
      await service.create({ slug: 'a-3', title: 'v1' });
      const results = await Promise.allSettled([
        service.update('a-3', { title: 'left', version: 1 }),
        service.update('a-3', { title: 'right', version: 1 }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(VersionConflictError);
      const entries = await history('ArticleEntity', 'a-3');
      expect(entries.map((e) => e.version)).toEqual([1, 2]);
      expect((await row('a-3'))?.title).toBe((entries[1]?.snapshot as { title?: string } | undefined)?.title);
    });

    it('versions and records repository.update(criteria, partial), and checks a version given in the partial', async () => {
      await service.create({ slug: 'a-4', title: 'v1' });
      await service.updateTitle('a-4', 'renamed');
      expect(await row('a-4')).toMatchObject({ title: 'renamed', version: 2 });
      await expect(service.updateTitle('a-4', 'stale', 1)).rejects.toBeInstanceOf(VersionConflictError);
      expect(await row('a-4')).toMatchObject({ title: 'renamed', version: 2 });
      const entries = await history('ArticleEntity', 'a-4');
      expect(entries.map((e) => [e.version, e.op, (e.snapshot as { title: string }).title])).toEqual([
        [1, 'create', 'v1'],
        [2, 'update', 'renamed'],
      ]);
    });

    it('routes the injected EntityManager into the transaction too', async () => {
      await service.create({ slug: 'a-5', title: 'v1' });
      await service.updateThroughManager('a-5', 'text');
      expect(
        (await history('ArticleEntity', 'a-5')).map((e) => [e.version, (e.snapshot as { body: string }).body]),
      ).toEqual([
        [1, ''],
        [2, 'text'],
      ]);
    });

    it('records remove() and delete(criteria) as delete entries, the row gone', async () => {
      await service.create({ slug: 'a-6', title: 'v1' });
      await service.delete('a-6');
      await service.create({ slug: 'a-7', title: 'v1' });
      await service.deleteBySlug('a-7');
      expect(await row('a-6')).toBeNull();
      expect(await row('a-7')).toBeNull();
      for (const slug of ['a-6', 'a-7']) {
        expect((await history('ArticleEntity', slug)).map((e) => [e.version, e.op])).toEqual([
          [1, 'create'],
          [2, 'delete'],
        ]);
      }
    });

    it('keeps nothing when the history write fails: the entity write rolls back with it', async () => {
      await service.create({ slug: 'a-8', title: 'v1' });
      const failing = Object.create(store) as Store;
      failing.save = async () => {
        throw new Error('history is down');
      };
      service.history = failing;
      try {
        await expect(service.update('a-8', { title: 'lost' })).rejects.toBeInstanceOf(HistoryWriteError);
      } finally {
        service.history = store;
      }
      expect(await row('a-8')).toMatchObject({ title: 'v1', version: 1 });
    });

    it('keeps the library’s version on a plain version column, and redacts the tracked type’s password', async () => {
      const id = await service.createUser('jane', 'secret-1');
      await service.updatePassword(id, 'secret-2');
      const user = await dataSource.getRepository(UserEntity).findOneByOrFail({ id });
      expect(user.version).toBe(2);
      const entries = await history('UserEntity', String(id));
      expect(entries.map((e) => [e.version, e.op, e.snapshot])).toEqual([
        [1, 'create', { id, username: 'jane', password: '[redacted]', version: 1 }],
        [2, 'update', { id, username: 'jane', password: '[redacted]', version: 2 }],
      ]);
    });

    it('adopts a row that predates adoption (version 0 or null): its state becomes a baseline entry', async () => {
      await dataSource.getRepository(ArticleEntity).insert({ slug: 'old', title: 'from before', body: '', version: 0 });
      await dataSource.getRepository(UserEntity).insert({ username: 'old', password: 'x', version: null });
      const old = await dataSource.getRepository(UserEntity).findOneByOrFail({ username: 'old' });
      await service.update('old', { title: 'adopted' });
      await service.updatePassword(old.id, 'y');
      expect(
        (await history('ArticleEntity', 'old')).map((e) => [
          e.version,
          e.op,
          e.metadata,
          (e.snapshot as { title: string }).title,
        ]),
      ).toEqual([
        [0, 'create', { baseline: true }, 'from before'],
        [1, 'update', undefined, 'adopted'],
      ]);
      expect((await history('UserEntity', String(old.id))).map((e) => [e.version, e.metadata?.baseline])).toEqual([
        [0, true],
        [1, undefined],
      ]);
      expect(await row('old')).toMatchObject({ version: 1 });
    });

    it('refuses a query-builder update of a tracked entity, whose rows it cannot record', async () => {
      await service.create({ slug: 'a-9', title: 'v1' });
      const error = await service.updateThroughQueryBuilder('a-9', 'qb').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionStateError);
      expect((error as TransactionStateError).code).toBe('OUTSIDE_TRANSACTION');
      expect(await row('a-9')).toMatchObject({ title: 'v1', version: 1 });
    });

    it('leaves the repository as it was outside a decorated call: no history, no version check', async () => {
      const repository = dataSource.getRepository(ArticleEntity);
      await repository.save(repository.create({ slug: 'plain', title: 'p', body: '' }));
      await repository.update({ slug: 'plain' }, { title: 'q' });
      expect(await row('plain')).toMatchObject({ title: 'q' });
      expect(await history('ArticleEntity', 'plain')).toEqual([]);
    });
  });
}
