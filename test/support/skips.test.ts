import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return testFiles(path);
    return /\.(ts|tsx)$/.test(entry.name) ? [path] : [];
  });
}

describe('skipped suites', () => {
  it('say why: every skip names what is missing (no bare describe.skip, skipIf or ctx.skip())', () => {
    const bare: string[] = [];
    for (const file of testFiles(root)) {
      if (file === import.meta.filename) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const where = `${relative(root, file)}:${i + 1}`;
          if (/\.skipIf\(|\bit\.skip\(|\btest\.skip\(/.test(line)) bare.push(where);
          if (/describe\.skip\b/.test(line) && !/skipped because/.test(line)) bare.push(where);
          if (/\bctx\.skip\(\)/.test(line)) bare.push(where);
        });
    }
    expect(bare).toEqual([]);
  });
});
