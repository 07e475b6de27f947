import { DecoratorError } from '../errors.js';
import type { HistoryOp } from '../history/entry.js';
import { decorate, inheritSpec, specOf, type TrackedDecoration, type VersionedDecoration } from '../pipeline/spec.js';
import { createWrapper } from '../pipeline/wrap.js';

/** What one decorator contributes, given its level and the operation for the method at hand. */
export type DecorationFactory = (
  level: 'class' | 'method',
  op: HistoryOp | undefined,
) => { versioned: VersionedDecoration } | { tracked: TrackedDecoration };

interface StandardContext {
  readonly kind: string;
  readonly name?: string | symbol;
}

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
  label: string,
  methods: Readonly<Record<string, HistoryOp>> | undefined,
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
  label: string,
  target: unknown,
  methods: Readonly<Record<string, HistoryOp>> | undefined,
  factory: DecorationFactory,
): void {
  const prototype = (target as { prototype?: Record<string, unknown> }).prototype;
  if (typeof target !== 'function' || prototype === undefined) {
    throw new DecoratorError(`${label} decorates classes and methods; it was applied to something else.`);
  }
  const className = target.name || 'the class';
  for (const [name, op] of Object.entries(methods ?? DEFAULT_METHODS)) {
    let current: unknown = prototype[name];
    if (typeof current !== 'function') {
      if (methods === undefined) continue;
      throw new DecoratorError(
        `${label} lists method '${name}', but ${className} has no such method. Remove it from methods or add the method.`,
      );
    }
    const inherited = specOf(current);
    if (inherited && !Object.hasOwn(prototype, name)) current = createWrapper(inheritSpec(inherited));
    const wrapped = decorate(current, name, factory('class', op), createWrapper);
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
    Object.defineProperty(prototype, name, {
      value: wrapped,
      writable: descriptor?.writable ?? true,
      enumerable: descriptor?.enumerable ?? false,
      configurable: true,
    });
  }
}
