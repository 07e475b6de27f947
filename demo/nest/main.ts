import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

/**
 * Starts the demo on a loopback port (0: any free one) and returns the app and its URL.
 *
 * ```ts
 * const { app, url } = await startDemo(0);
 * ```
 */
export async function startDemo(port = 3000): Promise<{ app: INestApplication; url: string }> {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(port, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  return { app, url: `http://127.0.0.1:${address.port}` };
}

if (process.argv[1]?.endsWith('main.ts') === true) {
  const { url } = await startDemo(Number(process.env.PORT ?? 3000));
  console.log(`Orders demo on ${url}: POST /orders, PUT /orders/:id, GET /orders/:id/history (x-user header = actor)`);
}
