// Compiles every ```ts block of README.md against the built package (run `npm run build` first),
// as a user's project would, under strict and both decorator modes, then runs the Quick start as
// written and checks what it prints. Examples that no longer compile fail the check, so they
// cannot rot.
//
// The convention. Each block is its own ES module: what it imports, it imports itself. What a
// block takes from the text around it (an `order` loaded earlier, the `OrderService` of the
// section) it declares in a hidden preamble, an HTML comment on the line right before the fence:
//
//   <!-- docs: declare const order: Order; declare const session: PoolClient; -->
//   ```ts
//
// The comment's text after `docs:` is TypeScript put before the block (several lines are fine).
// The common preamble below is put before every block that does not declare an `Order` of its
// own: the order the README talks about.
// Words at the start of the preamble, before any code, are flags:
//   `legacy`  compiled with experimentalDecorators only (parameter decorators, NestJS DI);
//   `run`     also run (compiled as the ESM project) and its output compared with the
//             `// prints: …` comment it ends with.
// A preamble declares only what the prose has already introduced; it never hides a mistake in the
// block (no `any`, no `@ts-ignore`).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const work = join(root, '.tmp', 'docs');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

const common = `interface Order { id: string; total: number; version?: number; timestamp?: Date }
`;

/** The ```ts blocks of the README, with their line and hidden preamble. */
function blocks(text) {
  const lines = text.split('\n');
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```ts') continue;
    const start = i;
    const body = [];
    for (i++; i < lines.length && lines[i].trim() !== '```'; i++) body.push(lines[i]);
    // The hidden preamble: an HTML comment ending on the line before the fence.
    let preamble = '';
    if (lines[start - 1]?.trim().endsWith('-->')) {
      let j = start - 1;
      while (j >= 0 && !lines[j].includes('<!--')) j--;
      const comment = lines.slice(j, start).join('\n');
      const match = /<!--\s*docs:([\s\S]*?)-->/.exec(comment);
      if (match) preamble = match[1].trim();
    }
    const flags = new Set();
    for (let flag = /^(legacy|run)\b\s*/.exec(preamble); flag; flag = /^(legacy|run)\b\s*/.exec(preamble)) {
      flags.add(flag[1]);
      preamble = preamble.slice(flag[0].length);
    }
    found.push({ line: start + 1, preamble, flags, body: body.join('\n') });
  }
  return found;
}

const found = blocks(readme);
if (found.length === 0) throw new Error('README.md has no ```ts blocks');
for (const block of found) {
  if (/\bany\b|@ts-ignore|@ts-nocheck|@ts-expect-error/.test(block.preamble)) {
    throw new Error(`README.md:${block.line}: a docs preamble must not use any or silence the compiler`);
  }
}

const projects = {
  // What a NestJS project compiles with.
  legacy: { experimentalDecorators: true, emitDecoratorMetadata: true },
  // TC39 decorators: TypeScript without the flag.
  standard: {},
};

rmSync(work, { recursive: true, force: true });
const failures = [];
for (const [name, decoratorOptions] of Object.entries(projects)) {
  const dir = join(work, name);
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  // The package as users get it (its exports map and dist); every other dependency resolves from
  // the repository's node_modules, above this directory.
  symlinkSync(root, join(dir, 'node_modules', 'event-history'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `docs-${name}`, private: true, type: 'module' }));
  const files = [];
  for (const block of found) {
    if (name === 'standard' && block.flags.has('legacy')) continue;
    const file = `readme-${String(block.line).padStart(4, '0')}.ts`;
    // Line numbers of errors map back to the README: the block starts at its fence's next line.
    const ownOrder = /\b(interface|class|type)\s+Order\b/.test(`${block.preamble}\n${block.body}`);
    const head = `export {};\n${ownOrder ? '' : common}${block.preamble}\n`;
    const padding = '\n'.repeat(Math.max(0, block.line + 1 - head.split('\n').length));
    writeFileSync(join(dir, file), `${head}${padding}${block.body}\n`);
    files.push(file);
  }
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2023', 'DOM'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        esModuleInterop: true,
        skipLibCheck: true,
        types: ['node'],
        outDir: 'out',
        ...decoratorOptions,
      },
      files,
    }),
  );
  try {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
      encoding: 'utf8',
      stdio: 'pipe',
    });
    console.log(`README: ${files.length} TypeScript blocks compile (${name} decorators)`);
  } catch (error) {
    // tsc's paths are the temporary files: name the README's lines instead.
    const text = String(error.stdout ?? error).replace(/(?:\S*\/)?readme-0*(\d+)\.ts\((\d+),(\d+)\)/g, 'README.md:$2:$3');
    failures.push(`${name} decorators:\n${text}`);
  }
}
if (failures.length > 0) {
  console.error(failures.join('\n'));
  process.exit(1);
}

// Run the blocks marked `run` (the Quick start): they must work as written, on what they embed.
for (const block of found.filter((b) => b.flags.has('run'))) {
  const expected = /\/\/ prints: (.*)\s*$/.exec(block.body)?.[1];
  if (expected === undefined) throw new Error(`README.md:${block.line}: a run block ends with // prints: <output>`);
  const file = join(work, 'standard', 'out', `readme-${String(block.line).padStart(4, '0')}.js`);
  const output = execFileSync(process.execPath, [file], { encoding: 'utf8', cwd: join(work, 'standard') }).trim();
  if (output !== expected.trim()) {
    throw new Error(`README.md:${block.line} printed ${JSON.stringify(output)}, its comment says ${JSON.stringify(expected)}`);
  }
  console.log(`README.md:${block.line} runs as written and prints what it says: ${output}`);
}
