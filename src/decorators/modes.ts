import { DecoratorError } from '../errors.js';
import type { HistoryOp } from '../history/entry.js';
import { decorate, inheritSpec, specOf, type TrackedDecoration, type VersionedDecoration } from '../pipeline/spec.js';
import { createWrapper } from '../pipeline/wrap.js';
import { shared } from '../shared-state.js';

/** What one decorator contributes, given its level and the operation for the method at hand. */
export type DecorationFactory = (
  level: 'class' | 'method',
  op: HistoryOp | undefined,
) => { versioned: VersionedDecoration } | { tracked: TrackedDecoration };

interface StandardContext {
  readonly kind: string;
  readonly name?: string | symbol;
}

/** The two class decorators, as their messages name them. */
export type DecoratorLabel = '@Versioned' | '@HistoryTracked';

/** What one class decorator did to a class: the methods it wrapped, and those it was told to leave alone. */
interface ClassDecoration {
  readonly wrapped: readonly string[];
  readonly optedOut: readonly string[];
}

/**
 * The class-level decorations of each class, so that whichever of `@Versioned` and
 * `@HistoryTracked` runs second (both modes apply class decorators bottom-up, but users write
 * them in either order) can check that the two cover the same methods.
 */
const classDecorations = shared('class-decorations', () => new WeakMap<object, Map<DecoratorLabel, ClassDecoration>>());

const DEFAULT_METHODS: Readonly<Record<string, HistoryOp>> = Object.freeze({ save: 'create', update: 'update' });

function isStandardContext(value: unknown): value is StandardContext {
  return typeof value === 'object' && value !== null && typeof (value as StandardContext).kind === 'string';
}

/**
 * The single entry of every class-or-method decorator: detects TC39 standard decorators (a
 * context object with a string `kind`) or TypeScript's experimental ones from the arguments,
 * and routes both to the same core.
 */
export function applyDecoration(
  label: DecoratorLabel,
  methods: Readonly<Record<string, HistoryOp | false>> | undefined,
  factory: DecorationFactory,
  args: readonly unknown[],
): unknown {
  const [target, second, third] = args;
  if (isStandardContext(second)) {
    if (second.kind === 'class') return void decorateClass(label, target, methods, factory);
    if (second.kind === 'method')
      return decorate(target, String(second.name), factory('method', undefined), createWrapper);
    throw new DecoratorError(
      `${label} decorates classes and methods; it was applied to a ${second.kind} '${String(second.name)}'.`,
    );
  }
  if (args.length === 1 && typeof target === 'function') return void decorateClass(label, target, methods, factory);
  if (args.length === 3 && isDescriptor(third)) {
    const name = String(second);
    if (typeof third.value !== 'function') {
      throw new DecoratorError(`${label} decorates classes and methods; '${name}' is an accessor.`);
    }
    return { ...third, value: decorate(third.value, name, factory('method', undefined), createWrapper) };
  }
  throw new DecoratorError(
    `${label} decorates classes and methods; it was applied to ${typeof third === 'number' ? 'a parameter' : `a property '${String(second)}'`}.`,
  );
}

function isDescriptor(value: unknown): value is PropertyDescriptor {
  return typeof value === 'object' && value !== null && ('value' in value || 'get' in value || 'set' in value);
}

function decorateClass(
  label: DecoratorLabel,
  target: unknown,
  methods: Readonly<Record<string, HistoryOp | false>> | undefined,
  factory: DecorationFactory,
): void {
  const prototype = (target as { prototype?: Record<string, unknown> }).prototype;
  if (typeof target !== 'function' || prototype === undefined) {
    throw new DecoratorError(`${label} decorates classes and methods; it was applied to something else.`);
  }
  const className = target.name || 'the class';
  const wrapped: string[] = [];
  const optedOut: string[] = [];
  for (const [name, op] of Object.entries(methods ?? DEFAULT_METHODS)) {
    let current: unknown = prototype[name];
    if (typeof current !== 'function') {
      if (methods === undefined) continue;
      throw new DecoratorError(
        `${label} lists method '${name}', but ${className} has no such method. Remove it from methods or add the method.`,
      );
    }
    if (op === false) {
      optedOut.push(name);
      continue;
    }
    const inherited = specOf(current);
    if (inherited && !Object.hasOwn(prototype, name)) current = createWrapper(inheritSpec(inherited));
    const decorated = decorate(current, name, factory('class', op), createWrapper);
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
    Object.defineProperty(prototype, name, {
      value: decorated,
      writable: descriptor?.writable ?? true,
      enumerable: descriptor?.enumerable ?? false,
      configurable: true,
    });
    wrapped.push(name);
  }
  if (wrapped.length === 0) throw wrapsNothing(label, className, methods);
  let decorations = classDecorations.get(target);
  if (decorations === undefined) {
    decorations = new Map();
    classDecorations.set(target, decorations);
  }
  decorations.set(label, { wrapped, optedOut });
  const other = label === '@Versioned' ? '@HistoryTracked' : '@Versioned';
  const first = decorations.get(other);
  if (first !== undefined)
    checkSameMethods(className, prototype, { label, wrapped, optedOut }, { label: other, ...first });
}

/**
 * Only a type error guards a class decorator that finds none of its methods, and tsx, SWC and
 * esbuild never report type errors: without this, such a class would silently stay undecorated.
 */
function wrapsNothing(
  label: DecoratorLabel,
  className: string,
  methods: Readonly<Record<string, HistoryOp | false>> | undefined,
): DecoratorError {
  const example =
    label === '@Versioned'
      ? "@Versioned({ methods: { deposit: 'update' } })"
      : "@HistoryTracked(source, { methods: { deposit: 'update' } })";
  return new DecoratorError(
    methods === undefined
      ? `${label} on ${className} wraps no method: by default it wraps save (create) and update (update), and ` +
          `${className} has neither. List the methods to wrap with their operations, e.g. ${example}, or decorate ` +
          'the methods themselves.'
      : `${label} on ${className} wraps no method: its methods option lists none to wrap (only opt-outs, or none at ` +
          `all). List the methods to wrap with their operations, e.g. ${example}, or remove the decorator.`,
  );
}

/**
 * When both class decorators are on one class, a method that one wraps and the other does not
 * (neither on the class nor on the method) would be versioned without history, or the reverse,
 * without a word: a `DecoratorError` names it, unless the other decorator opted out of it
 * (`methods: { name: false }`).
 */
function checkSameMethods(
  className: string,
  prototype: Record<string, unknown>,
  ...decorations: readonly { label: DecoratorLabel; wrapped: readonly string[]; optedOut: readonly string[] }[]
): void {
  for (const decoration of decorations) {
    const other = decorations.find((d) => d !== decoration);
    if (other === undefined) continue;
    for (const name of decoration.wrapped) {
      if (other.optedOut.includes(name)) continue;
      const spec = specOf(prototype[name]);
      const covered = other.label === '@Versioned' ? spec?.versioned : spec?.tracked;
      if (covered !== undefined) continue;
      const consequence =
        other.label === '@HistoryTracked' ? 'versioned but write no history' : 'write history but not be versioned';
      throw new DecoratorError(
        `${decoration.label} on ${className} wraps '${name}', but ${other.label} on the same class does not, so ` +
          `${className}.${name} would ${consequence}. List '${name}' in the methods of both decorators ` +
          `(with the same operation), or, if that is intended, opt out explicitly in ${other.label}: ` +
          `methods: { ${name}: false, … }.`,
      );
    }
  }
}
