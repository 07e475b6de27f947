import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { appModule, type DatabaseOptions } from './app.module.js';

/**
 * Starts the app on a loopback port (0: any free one) and returns it with its URL.
 *
 * ```ts
 * const { app, url } = await startRealworld({ type: 'postgres', url: process.env.DATABASE_URL });
 * ```
 */
export async function startRealworld(
  database: DatabaseOptions,
  options: { port?: number; historyTable?: string } = {},
): Promise<{ app: INestApplication; url: string }> {
  const app = await NestFactory.create(appModule(database, options.historyTable), { logger: ['error'] });
  await app.listen(options.port ?? 0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  return { app, url: `http://127.0.0.1:${address.port}` };
}

if (process.argv[1]?.endsWith('main.ts') === true) {
  const { url } = await startRealworld(
    { type: 'better-sqlite3', database: ':memory:', synchronize: true },
    { port: 3000 },
  );
  console.log(`realworld demo on ${url}`);
}
