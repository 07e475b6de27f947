/**
 * The behaviour suite keeps one session variable and calls `begin(session)` on it, as a driver's
 * connection allows. An ORM's transaction is a new object instead, so the ORM fixtures hand the
 * suite this stand-in: it forwards everything to the ORM's root object, or, between `begin` and
 * `commit`/`rollback`, to the real transaction object the fixture opened with the ORM's own API.
 * The library sees the real root or transaction behind it.
 */
export interface Switchable<S> {
  readonly session: S;
  /** The object the session forwards to now. */
  current(): S;
  use(target: S): void;
  reset(): void;
}

export function switchable<S extends object>(root: S): Switchable<S> {
  let target: S = root;
  const shell = (typeof root === 'function' ? () => undefined : {}) as object;
  const session = new Proxy(shell, {
    get: (_, key) => {
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
    has: (_, key) => Reflect.has(target, key),
    apply: (_, __, args) => Reflect.apply(target as (...a: unknown[]) => unknown, target, args),
    getPrototypeOf: () => Reflect.getPrototypeOf(target),
  }) as S;
  return {
    session,
    current: () => target,
    use: (next) => {
      target = next;
    },
    reset: () => {
      target = root;
    },
  };
}

/** A transaction the caller holds open: the ORM's transaction object and how to end it. */
export interface HeldTransaction<S> {
  readonly tx: S;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

const ROLLBACK = Symbol('rollback requested by the fixture');

/**
 * Holds a callback-style ORM transaction (`db.transaction(async (tx) => …)`, Drizzle, Prisma)
 * open until `commit()` or `rollback()`: the callback waits for the decision, then returns
 * (the ORM commits) or throws (the ORM rolls back).
 */
export async function holdTransaction<S>(
  start: (work: (tx: S) => Promise<void>) => Promise<unknown>,
): Promise<HeldTransaction<S>> {
  let opened: (tx: S) => void = () => {};
  const ready = new Promise<S>((resolve) => {
    opened = resolve;
  });
  let decide: (commit: boolean) => void = () => {};
  const decision = new Promise<boolean>((resolve) => {
    decide = resolve;
  });
  const ended = start(async (tx) => {
    opened(tx);
    if (!(await decision)) throw ROLLBACK;
  }).then(
    () => undefined,
    (error: unknown) => {
      if (error !== ROLLBACK) throw error;
    },
  );
  const tx = await Promise.race([
    ready,
    ended.then(() => {
      throw new Error('the transaction ended before it began');
    }),
  ]);
  return {
    tx,
    commit: async () => {
      decide(true);
      await ended;
    },
    rollback: async () => {
      decide(false);
      await ended;
    },
  };
}
