import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

/**
 * Runs one of the bench's profiling scripts (`profile-in-process.js`, `profile-sqlite.js`) in a
 * child process under `--cpu-prof` and returns the functions with the most self time, as
 * "share of samples, function, file:line" rows: where the time went, in BENCHMARKS.md.
 */
export async function profileSummary(script: string, args: readonly string[], top = 15): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'event-history-profile-'));
  try {
    const path = fileURLToPath(new URL(script, import.meta.url));
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, path, ...args], (error) =>
        error ? reject(error) : resolve(),
      );
    });
    const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
    if (file === undefined) return ['(no profile was written)'];
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      nodes: ProfileNode[];
      samples: number[];
    };
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const self = new Map<string, number>();
    for (const sample of profile.samples) {
      const frame = byId.get(sample)?.callFrame;
      if (frame === undefined) continue;
      const where = frame.url === '' ? '' : ` ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;
      const key = `${frame.functionName || '(anonymous)'}${where}`;
      self.set(key, (self.get(key) ?? 0) + 1);
    }
    const total = profile.samples.length;
    return [...self]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, count]) => `${((100 * count) / total).toFixed(1).padStart(5)} %  ${key}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
