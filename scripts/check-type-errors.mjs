// The compile errors a misused decorator gives must name the problem: one error per misuse that
// names the method, under both decorator modes and both TypeScript lines (5.x and 7), and no
// unrelated TS1270. `test/types` proves that each misuse is an error (@ts-expect-error); this
// compiles the misuses without it and reads the diagnostics. Part of `npm run typecheck`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const work = join(root, '.tmp', 'type-errors');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// Each misuse: its decorator's line, and what its one error must say.
const misuses = [
  { line: 7, says: /save must return a Promise/ },
  { line: 12, says: /upsert is listed in methods, but the class has no upsert method/ },
  { line: 17, says: /neither save nor update/ },
  { line: 22, says: /update must return a Promise/ },
];
const fixture = `import { HistoryTracked, MemoryHistoryStore, Versioned } from '../../src/index.js';
interface Order { id: string }
const store = new MemoryHistoryStore();
export class Fine { async save(_order: Order): Promise<void> {} }


@Versioned()
export class SyncSave {
  save(_order: Order): boolean { return true; }
}

@Versioned({ methods: { upsert: 'create' } })
export class NoUpsert {
  async save(_order: Order): Promise<void> {}
}

@HistoryTracked(store)
export class NoMethods {
  async find(_id: string): Promise<void> {}
}

@HistoryTracked(store)
export class SyncUpdate {
  update(_order: Order): void {}
}
`;
writeFileSync(join(work, 'misuse.ts'), fixture);

const compilers = {
  'TypeScript 5': join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
  'TypeScript 7': join(root, 'node_modules', 'typescript-7', 'bin', 'tsc'),
};
const modes = { standard: {}, legacy: { experimentalDecorators: true, emitDecoratorMetadata: true } };
const failures = [];
for (const [mode, options] of Object.entries(modes)) {
  const config = join(work, `tsconfig.${mode}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      extends: '../../tsconfig.base.json',
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: true, ...options },
      files: ['misuse.ts'],
    }),
  );
  for (const [compiler, tsc] of Object.entries(compilers)) {
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, '-p', config], { encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      output = String(error.stdout ?? '');
    }
    // Diagnostics start at the beginning of a line with file(line,col); the lines after belong to them.
    const diagnostics = output.split(/\n(?=\S)/).filter((text) => /misuse\.ts\(\d+,\d+\)/.test(text));
    const where = `${compiler}, ${mode} decorators`;
    for (const { line, says } of misuses) {
      const here = diagnostics.filter((text) => text.includes(`misuse.ts(${line},`));
      if (here.length !== 1) failures.push(`${where}: line ${line} has ${here.length} errors, expected one:\n${here.join('\n')}`);
      else if (!says.test(here[0])) failures.push(`${where}: line ${line}'s error does not say ${says}:\n${here[0]}`);
    }
    const stray = diagnostics.filter((text) => !misuses.some(({ line }) => text.includes(`misuse.ts(${line},`)));
    if (stray.length > 0) failures.push(`${where}: errors where there is no misuse:\n${stray.join('\n')}`);
    if (/TS1270/.test(output)) failures.push(`${where}: an unrelated TS1270:\n${output}`);
    console.log(`${where}: each misuse is one error that names the method`);
  }
}
if (failures.length > 0) {
  console.error(failures.join('\n\n'));
  process.exit(1);
}
