import type { HistorySource, HistoryTrackedOptions, VersionedOptions } from '../decorators/options.js';
import { DecoratorError } from '../errors.js';
import type { HistoryOp } from '../history/entry.js';

/**
 * Where a decoration was written: on the method itself, on the class (for several methods),
 * or on a parent class whose wrapped method a subclass inherits. Higher levels win.
 */
export type DecorationLevel = 'inherited' | 'class' | 'method';

const RANK: Readonly<Record<DecorationLevel, number>> = { inherited: 0, class: 1, method: 2 };

export interface VersionedDecoration {
  readonly level: DecorationLevel;
  readonly op: HistoryOp | undefined;
  readonly options: VersionedOptions;
}

export interface TrackedDecoration {
  readonly level: DecorationLevel;
  readonly op: HistoryOp | undefined;
  readonly source: HistorySource;
  readonly options: HistoryTrackedOptions;
}

export type AsyncMethod = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Everything known about one wrapped method. Both decorators add to the same spec, so that
 * any order of application yields one wrapper, one transaction and one history entry.
 */
export interface MethodSpec {
  readonly name: string;
  readonly original: AsyncMethod;
  versioned?: VersionedDecoration;
  tracked?: TrackedDecoration;
  /** Filled at the first call; see `pipeline/plan.ts`. */
  cache?: unknown;
}

const SPEC = Symbol.for('event-history:method-spec');

export type WrappedMethod = AsyncMethod & { readonly [SPEC]: MethodSpec };

export function specOf(value: unknown): MethodSpec | undefined {
  return typeof value === 'function' ? (value as Partial<WrappedMethod>)[SPEC] : undefined;
}

const OP_PREFIXES: readonly (readonly [RegExp, HistoryOp])[] = [
  [/^(save|create|insert|add)/i, 'create'],
  [/^(update|patch|replace)/i, 'update'],
  [/^(delete|remove|destroy)/i, 'delete'],
];

export function inferOp(methodName: string): HistoryOp | undefined {
  for (const [pattern, op] of OP_PREFIXES) if (pattern.test(methodName)) return op;
  return undefined;
}

/**
 * The operation a call performs: the decorators' explicit one (either may carry it), else the
 * name's. Asked when the method is first called, once every decorator has been applied.
 */
export function opOf(spec: MethodSpec): HistoryOp {
  const op = explicitOp(spec) ?? inferOp(spec.name);
  if (op === undefined) throw unknownOp(spec);
  return op;
}

/** The op the decorators give, or `undefined`; two that disagree are a `DecoratorError`. */
function explicitOp(spec: MethodSpec): HistoryOp | undefined {
  const explicit = [spec.versioned?.op, spec.tracked?.op].filter((op): op is HistoryOp => op !== undefined);
  const [first] = explicit;
  if (first !== undefined && explicit.some((op) => op !== first)) {
    throw new DecoratorError(
      `${spec.name} is declared as '${explicit.join("' and '")}' by its two decorators. Give both the same op.`,
    );
  }
  return first;
}

function unknownOp(spec: MethodSpec): DecoratorError {
  const labels = [spec.versioned && '@Versioned', spec.tracked && '@HistoryTracked'].filter(Boolean).join(' or ');
  return new DecoratorError(
    `${labels} cannot tell whether ${spec.name} creates, updates or deletes: the name starts with none of save/create/insert/add, ` +
      `update/patch/replace, delete/remove/destroy. Pass { op: 'create' | 'update' | 'delete' } to ${labels} ` +
      '(one decorator carrying it is enough).',
  );
}

/**
 * Whether the method's operation is settled as far as the decorators applied so far can tell. One
 * decorator without an op on a name that says nothing may still get it from the other decorator,
 * applied after it (decorators apply bottom-up), so that case waits for the first call; with both
 * applied, a missing op is an error at once.
 */
function checkOp(spec: MethodSpec): void {
  const op = explicitOp(spec) ?? inferOp(spec.name);
  if (op === undefined && spec.versioned !== undefined && spec.tracked !== undefined) throw unknownOp(spec);
}

/**
 * Adds a decoration to the method, wrapping it the first time. A method-level decoration
 * takes precedence over a class-level one of the same kind; two of one kind at one level is
 * a mistake.
 */
export function decorate(
  fn: unknown,
  name: string,
  addition: { versioned: VersionedDecoration } | { tracked: TrackedDecoration },
  createWrapper: (spec: MethodSpec) => WrappedMethod,
): WrappedMethod {
  if (typeof fn !== 'function') {
    throw new DecoratorError(
      `${name} is not a method, so it cannot be versioned or tracked. Decorate methods or classes only.`,
    );
  }
  const existing = specOf(fn);
  const spec: MethodSpec = existing ?? { name, original: fn as AsyncMethod };
  if ('versioned' in addition) {
    spec.versioned = merge(spec.versioned, addition.versioned, '@Versioned', name);
  } else {
    spec.tracked = merge(spec.tracked, addition.tracked, '@HistoryTracked', name);
  }
  checkOp(spec);
  return existing ? (fn as WrappedMethod) : createWrapper(spec);
}

/** A copy of an inherited wrapper's spec, so a subclass can add to it without changing its parent. */
export function inheritSpec(spec: MethodSpec): MethodSpec {
  const inherited: MethodSpec = { name: spec.name, original: spec.original };
  if (spec.versioned) inherited.versioned = { ...spec.versioned, level: 'inherited' };
  if (spec.tracked) inherited.tracked = { ...spec.tracked, level: 'inherited' };
  return inherited;
}

function merge<D extends { level: DecorationLevel }>(current: D | undefined, next: D, label: string, name: string): D {
  if (current === undefined) return next;
  if (current.level === next.level && current.level !== 'inherited') {
    throw new DecoratorError(`${label} is applied twice to ${name}. Apply it once, with all its options.`);
  }
  return RANK[current.level] > RANK[next.level] ? current : next;
}

export { SPEC as SPEC_KEY };
