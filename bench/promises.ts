import { createHook } from 'node:async_hooks';
import { execFileSync } from 'node:child_process';
import type { InProcessPair } from './in-process.js';

/**
 * Promises created per call on each side of the in-process pair, counted with an async hook: a
 * figure the machine's load cannot blur, and on Node 20 the main driver of the overhead (below).
 */
export async function promisesPerCall(
  pair: InProcessPair,
  pairs: number,
): Promise<{ decorated: number; hand: number }> {
  let created = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') created += 1;
    },
  });
  const count = async (run: () => Promise<void>): Promise<number> => {
    created = 0;
    hook.enable();
    try {
      for (let i = 0; i < pairs; i++) await run();
    } finally {
      hook.disable();
    }
    // Two calls (save, update) per pair.
    return created / pairs / 2;
  };
  return { decorated: await count(pair.decorated), hand: await count(pair.handWritten) };
}

/**
 * What one `await` of an async function costs in a fresh Node process, before and after an
 * `AsyncLocalStorage` is first entered (which, on Node 20, turns on the promise hooks every later
 * promise in the process pays for). Measured in a child process, since the hooks cannot be turned
 * off again once the library (or anything else) has used AsyncLocalStorage.
 */
export function asyncCallCost(iterations: number): { withoutAlsUs: number; withAlsUs: number } {
  const script = `
    import { AsyncLocalStorage } from 'node:async_hooks';
    const n = ${iterations};
    const target = { v: 0 };
    const noop = async (o) => { o.v++; };
    const time = async () => {
      let best = Infinity;
      for (let round = 0; round < 5; round++) {
        const start = performance.now();
        for (let i = 0; i < n; i++) await noop(target);
        best = Math.min(best, ((performance.now() - start) * 1000) / n);
      }
      return best;
    };
    const withoutAlsUs = await time();
    new AsyncLocalStorage().enterWith({});
    const withAlsUs = await time();
    console.log(JSON.stringify({ withoutAlsUs, withAlsUs }));
  `;
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(output) as { withoutAlsUs: number; withAlsUs: number };
}
