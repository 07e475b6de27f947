import { defineConfig } from 'vitest/config';
import { typescript } from './vitest.config.js';

/**
 * The reliability suite (`npm run test:reliability`): fault injection, model-based sequences,
 * SIGKILL crashes, concurrency storms, bad input and isolation against PostgreSQL, MariaDB and
 * SQLite. It takes minutes, so `npm test` leaves it out; its reporter writes RELIABILITY.md.
 */
export default defineConfig({
  oxc: false,
  plugins: [typescript('./tsconfig.json')],
  test: {
    name: 'reliability',
    include: ['test/reliability/**/*.reliability.ts'],
    setupFiles: ['reflect-metadata'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    reporters: ['default', './test/reliability/support/report.ts'],
  },
});
