import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll } from 'vitest';

export const PROCESSES = Number(process.env.RELIABILITY_PROCESSES ?? 4);
export const PROCESS_CALLS = Number(process.env.RELIABILITY_PROCESS_CALLS ?? 30);
const SOURCE = fileURLToPath(new URL('../processes-child.ts', import.meta.url));
const run = promisify(execFile);

/** What one app process reports (see processes-child.ts). */
export interface ChildReport {
  acknowledged: Record<string, number>;
  lost: number;
  attempts: number;
  calls: number;
  errors: string[];
}

/** Bundles processes-child.ts for this test file (drivers left as imports) and removes it after. */
export function useAppProcesses(): (argsOf: (index: number) => string[]) => Promise<ChildReport[]> {
  const child = join(
    process.cwd(),
    '.tmp',
    'reliability',
    `processes-child-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`,
  );
  beforeAll(async () => {
    await build({
      entryPoints: [SOURCE],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: child,
      packages: 'external',
      tsconfig: 'tsconfig.json',
      logLevel: 'error',
    });
  });
  afterAll(() => rmSync(child, { force: true }));
  return (argsOf) =>
    Promise.all(
      Array.from({ length: PROCESSES }, async (_, index) => {
        const { stdout } = await run(process.execPath, [child, ...argsOf(index)], {
          timeout: 120_000,
          env: process.env,
        });
        return JSON.parse(stdout.trim().split('\n').at(-1) as string) as ChildReport;
      }),
    );
}

/** The acknowledged updates of all processes, per entity. */
export function totals(reports: readonly ChildReport[]): Map<string, number> {
  const sums = new Map<string, number>();
  for (const report of reports) {
    for (const [id, n] of Object.entries(report.acknowledged)) sums.set(id, (sums.get(id) ?? 0) + n);
  }
  return sums;
}
