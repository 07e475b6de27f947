import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const TSX = pathToFileURL(createRequire(join(ROOT, 'package.json')).resolve('tsx')).href;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    const { NO_COLOR: _n, FORCE_COLOR: _f, DATABASE_URL: _d, ...env } = process.env;
    execFile(file, args, { cwd, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

/** Runs the demo as `npm run demo` does (through tsx), in `cwd`. */
function demo(cwd: string): Promise<Run> {
  return exec(process.execPath, ['--import', TSX, join(ROOT, 'demo/index.ts')], cwd);
}

/** The command lines the demo printed for the user to paste. */
function printedCommands(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('  npm run cli -- '))
    .map((line) => line.trim());
}

/** Starts a printed `serve` command and resolves with the address it prints. */
function startServe(command: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn('sh', ['-c', command.replace('serve ', 'serve --port 0 ')], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(out)?.[0];
      if (url !== undefined) resolve({ child, url });
    });
    let err = '';
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}${err}`)));
  });
}

describe('npm run demo leaves its history in a file and prints the commands that explore it', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'event-history-demo-'));
  let first: Run;
  let second: Run;

  beforeAll(async () => {
    first = await demo(cwd);
    // Run again in the same place: the demo starts its file afresh.
    second = await demo(cwd);
  }, 120_000);

  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it('writes demo-history.db in the directory it runs in, again on a second run, and the repository ignores that file', async () => {
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(second.code).toBe(0);
    expect(existsSync(join(cwd, 'demo-history.db'))).toBe(true);
    expect(second.stdout).toContain(`The history is in ${join(cwd, 'demo-history.db')}`);
    expect(second.stdout).toMatch(/2 {8}update .* ada .*\+items\[1\]: "cup"; \+items\[2\]: "cup"/);
    expect(second.stdout).toMatch(
      /3 {8}update .* bob {4}customer called {2}address: "1 Analytical Way" → "12 Difference Engine Rd"/,
    );
    const ignored = await exec('git', ['check-ignore', 'demo-history.db', 'artifacts/viewer.png'], ROOT);
    expect(ignored.stdout.split('\n')).toEqual(['demo-history.db', 'artifacts/viewer.png', '']);
  });

  it('every printed log, show, diff, types and verify command runs as printed, from the repository, on that file', async () => {
    const commands = printedCommands(second.stdout);
    const verbs = commands.map((command) => command.split(' ')[4]);
    expect(verbs).toEqual(['types', 'log', 'show', 'diff', 'verify', 'serve']);
    const expected: Record<string, string[]> = {
      types: ['Order'],
      log: ['version 3 update', 'Actor:    bob', 'Reason:   customer called', '    + items[1]: "cup"'],
      show: ['version 2 update', 'Snapshot:', '"customer": "Ada"'],
      diff: ['Order A-1001: version 1 → version 3', '    ~ address: "1 Analytical Way" → "12 Difference Engine Rd"'],
      verify: ['ok Order A-1001: 3 entries, hash chain intact'],
    };
    for (const command of commands.filter((line) => !line.includes(' serve '))) {
      const result = await exec('sh', ['-c', command], ROOT);
      expect(result.code, `${command}\n${result.stderr}`).toBe(0);
      for (const text of expected[command.split(' ')[4] as string] ?? [])
        expect(result.stdout, command).toContain(text);
    }
  }, 120_000);

  it('the printed serve command starts the viewer on that file', async () => {
    const command = printedCommands(second.stdout).find((line) => line.includes(' serve '));
    expect(command).toBeDefined();
    const { child, url } = await startServe(command as string);
    try {
      const types = await fetch(`${url}api/types`);
      const page = await fetch(url);
      expect(await types.json()).toEqual({ types: ['Order'] });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<title>event-history viewer</title>');
    } finally {
      process.kill(-(child.pid as number), 'SIGTERM');
    }
  }, 60_000);
});
