// Checks the package as it would be published: publint and are-the-types-wrong on a tarball packed
// into a directory of its own (so a tarball you made with `npm pack` is left alone), and every
// source map in it self-contained: the package ships no `src/`, so each map must carry the text
// of the sources it names (`sourcesContent`), and no declaration map may point at them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const work = join(root, '.tmp', 'package');
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'unpacked'), { recursive: true });

const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (command, args, cwd = root) => execFileSync(command, args, { cwd, stdio: 'inherit' });

const packed = JSON.parse(
  execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' }),
);
const tarball = join(work, packed[0].filename);

run(bin('publint'), ['--strict', tarball]);
run(bin('attw'), [tarball]);

run('tar', ['-xzf', tarball, '-C', join(work, 'unpacked')]);
const unpacked = join(work, 'unpacked', 'package');
const problems = [];
let maps = 0;
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (entry.name.endsWith('.d.ts.map')) problems.push(`${path}: a declaration map, whose sources are not in the package`);
    else if (entry.name.endsWith('.map')) {
      maps += 1;
      const map = JSON.parse(readFileSync(path, 'utf8'));
      const contents = map.sourcesContent ?? [];
      map.sources.forEach((source, i) => {
        if (typeof contents[i] !== 'string') problems.push(`${path}: names ${source} without its content`);
      });
    }
  }
};
walk(join(unpacked, 'dist'));
if (maps === 0) problems.push('the package has no source maps at all');
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`${packed[0].filename}: publint and attw pass; ${maps} source maps, each carrying its sources`);
rmSync(work, { recursive: true, force: true });
