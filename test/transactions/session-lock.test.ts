import { describe, expect, it } from 'vitest';
import { exclusively, heldByAnotherCall } from '../../src/transactions/session-lock.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('exclusively: one library-owned transaction per session at a time', () => {
  it('runs concurrent calls on one session one after the other, in arrival order, and others in parallel', async () => {
    const session = {};
    const other = {};
    const log: string[] = [];
    let inside = 0;
    let most = 0;
    const call = (name: string, on: object) =>
      exclusively(on, async () => {
        if (on === session) most = Math.max(most, ++inside);
        log.push(`${name} in`);
        await tick();
        log.push(`${name} out`);
        if (on === session) inside--;
      });

    await Promise.all([call('a', session), call('b', session), call('x', other), call('c', session)]);

    expect(most).toBe(1);
    expect(log.filter((line) => !line.startsWith('x'))).toEqual(['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
    // The other session's call did not wait for the first session's queue.
    expect(log.indexOf('x in')).toBeLessThan(log.indexOf('a out'));
  });

  it('hands the session on when a call fails, and frees it when the last one ends', async () => {
    const session = {};
    const failing = exclusively(session, async () => {
      await tick();
      throw new Error('boom');
    });
    const next = exclusively(session, async () => 'ran');

    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ran');
    expect(heldByAnotherCall(session)).toBe(false);
    await expect(exclusively(session, async () => 'free')).resolves.toBe('free');
  });

  it('tells the holding call (and what it awaits) from another call on the same session', async () => {
    const session = {};
    let release = (): void => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: boolean[] = [];
    const holder = exclusively(session, async () => {
      await tick();
      seen.push(heldByAnotherCall(session));
      await gate;
    });
    await tick();

    expect(heldByAnotherCall(session)).toBe(true);
    release();
    await holder;
    expect(seen).toEqual([false]);
    expect(heldByAnotherCall(session)).toBe(false);
  });
});
