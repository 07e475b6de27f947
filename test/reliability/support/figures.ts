import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** Where each test file of a reliability run leaves its figures for the report. */
export const FIGURES_DIR = join(process.cwd(), '.tmp', 'reliability', 'figures');

/** One figure: a count under a section, optionally for one database. */
export interface Figure {
  readonly section: string;
  readonly name: string;
  readonly database: string;
  readonly count: number;
}

/**
 * Counts what a test file did (faults injected, sequences run, …) and writes the counts to
 * {@link FIGURES_DIR} when the file ends; the global teardown turns them into RELIABILITY.md.
 */
export function useFigures(file: string) {
  const counts = new Map<string, Figure>();
  const notes: Record<string, string> = {};
  afterAll(() => {
    mkdirSync(FIGURES_DIR, { recursive: true });
    writeFileSync(
      join(FIGURES_DIR, `${file}-${process.pid}-${randomBytes(3).toString('hex')}.json`),
      JSON.stringify({ figures: [...counts.values()], notes }, null, 1),
    );
  });
  return {
    /** A fact about the run to print with the figures (a seed, a server version). */
    note(key: string, value: string): void {
      notes[key] = value;
    },
    add(section: string, name: string, database: string, count = 1): void {
      const key = `${section}\u0000${name}\u0000${database}`;
      const before = counts.get(key)?.count ?? 0;
      counts.set(key, { section, name, database, count: before + count });
    },
  };
}
