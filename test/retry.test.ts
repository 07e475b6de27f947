import { describe, expect, it } from 'vitest';
import { HistoryWriteError, RetryExhaustedError, retryOnConflict, VersionConflictError } from '../src/index.js';

const conflict = () => new VersionConflictError('Order', 'o1', 3);

describe('retryOnConflict', () => {
  it('returns the result of the first attempt that does not lose a race', async () => {
    let calls = 0;
    const result = await retryOnConflict(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw conflict();
        return 'done';
      },
      { attempts: 5, baseDelayMs: 1 },
    );
    expect(result).toBe('done');
    expect(calls).toBe(3);
  });

  it('retries a conflict that arrives as the cause of another error', async () => {
    let calls = 0;
    await retryOnConflict(
      async () => {
        calls++;
        if (calls === 1) throw new Error('wrapped', { cause: conflict() });
      },
      { attempts: 2, baseDelayMs: 1 },
    );
    expect(calls).toBe(2);
  });

  it('throws any other error at once, without retrying', async () => {
    let calls = 0;
    const failure = new HistoryWriteError('Order', 'o1', 2, new Error('disk full'));
    await expect(
      retryOnConflict(
        async () => {
          calls++;
          throw failure;
        },
        { attempts: 5 },
      ),
    ).rejects.toBe(failure);
    expect(calls).toBe(1);
  });

  it('gives up after the given attempts with a RetryExhaustedError whose cause is the last conflict', async () => {
    const conflicts: VersionConflictError[] = [];
    const seen: number[] = [];
    const error = await retryOnConflict(
      async () => {
        const lost = conflict();
        conflicts.push(lost);
        throw lost;
      },
      { attempts: 3, baseDelayMs: 1, onConflict: (_, attempt) => seen.push(attempt) },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect((error as RetryExhaustedError).code).toBe('RETRY_EXHAUSTED');
    expect((error as RetryExhaustedError).attempts).toBe(3);
    expect((error as RetryExhaustedError).cause).toBe(conflicts[2]);
    expect(seen).toEqual([1, 2]);
  });

  it('waits no longer than maxDelayMs between attempts', async () => {
    const started = Date.now();
    await retryOnConflict(
      async (attempt) => {
        if (attempt < 4) throw conflict();
      },
      { attempts: 4, baseDelayMs: 1_000, maxDelayMs: 20 },
    );
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('stops waiting and throws the abort reason when the signal aborts', async () => {
    const controller = new AbortController();
    const reason = new Error('request cancelled');
    const pending = retryOnConflict(
      async () => {
        throw conflict();
      },
      { attempts: 10, baseDelayMs: 10_000, maxDelayMs: 10_000, signal: controller.signal },
    );
    setTimeout(() => controller.abort(reason), 10);
    await expect(pending).rejects.toBe(reason);
  });

  it('refuses attempts that are not a positive integer', async () => {
    await expect(retryOnConflict(async () => 1, { attempts: 0 })).rejects.toThrow(TypeError);
    await expect(retryOnConflict(async () => 1, { attempts: 1.5 })).rejects.toThrow(/at least 1/);
  });
});
