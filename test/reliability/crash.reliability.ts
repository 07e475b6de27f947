import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useFigures } from './support/figures.js';
import { entityViolations } from './support/invariants.js';
import { accountServices } from './support/services.js';
import { openPostgres, openSqlite, POSTGRES_URL, runsHere, type Target, uniqueName } from './support/targets.js';

const figures = useFigures('crash');
const CRASHES = Number(process.env.RELIABILITY_CRASHES ?? 20);
const ENTITIES = 5;
const SOURCE = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
// Bundled once (drivers left as imports), so each of the 40 restarts costs a quarter second, not tsx's second.
const CHILD = join(process.cwd(), '.tmp', 'reliability', `crash-child-${process.pid}.mjs`);

beforeAll(async () => {
  await build({
    entryPoints: [SOURCE],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: CHILD,
    packages: 'external',
    tsconfig: 'tsconfig.json',
    logLevel: 'error',
  });
});
afterAll(() => rmSync(CHILD, { force: true }));

/** Starts the child and resolves once it has committed its first update. */
function startChild(args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(child);
    });
    child.on('exit', (code, signal) =>
      reject(new Error(`the crash child exited early (${code ?? signal}): ${stderr}`)),
    );
  });
}

function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const DATABASES = [
  { name: 'postgres', available: POSTGRES_URL !== undefined, open: () => openPostgres() as Promise<Target> },
  { name: 'sqlite', available: true, open: () => openSqlite() as Promise<Target & { path: string }> },
] as const;

for (const db of DATABASES) {
  describe.runIf(runsHere(db.available ? undefined : `${db.name} URL is not set`))(
    `${db.name}${db.name === 'sqlite' ? ' (file, WAL)' : ''}: SIGKILL at random moments`,
    () => {
      let target: Target & { path?: string };
      const ids = Array.from({ length: ENTITIES }, () => uniqueName('crash'));

      beforeAll(async () => {
        target = await db.open();
        const { accounts } = accountServices(target);
        const session = await target.session();
        try {
          for (const id of ids) await accounts.save({ id, balance: 0, note: 'start' }, session);
        } finally {
          await target.release(session);
        }
      });
      afterAll(() => target?.close());

      it(`keeps every invariant after ${CRASHES} kills of a process in the middle of its updates`, async () => {
        let lastTotal = 0;
        for (let crash = 0; crash < CRASHES; crash++) {
          const child = await startChild([
            target.name,
            target.accountsTable,
            target.historyTable,
            target.path ?? '-',
            ids.join(','),
          ]);
          await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 250));
          await killHard(child);
          let violations = 0;
          let total = 0;
          for (const id of ids) {
            const problems = await entityViolations(target, 'Account', id);
            figures.add('invariants', 'checks', db.name);
            violations += problems.length;
            expect(problems).toEqual([]);
            total += (await target.readRow(id))?.version ?? 0;
          }
          figures.add('invariants', 'invariant violations', db.name, violations);
          figures.add('crash', 'crashes survived', db.name);
          // The child made progress before it died, and nothing it committed was lost.
          expect(total).toBeGreaterThan(lastTotal);
          lastTotal = total;
        }
        figures.add('crash', 'versions committed by the killed processes', db.name, lastTotal - ENTITIES);
      });
    },
  );
}
