/** A method that returns a Promise (or any thenable): the only kind that can be decorated. */
export type AsyncMethodLike = (...args: never[]) => PromiseLike<unknown>;

/** The instance shape a class decorator needs: the listed methods, each returning a Promise. */
export type ServiceShape<M extends string> = [M] extends [never]
  ? DefaultServiceShape
  : string extends M
    ? DefaultServiceShape
    : { [K in M]: AsyncMethodLike };

/** The default methods a class decorator wraps, where present. */
export interface DefaultServiceShape {
  save?: AsyncMethodLike;
  update?: AsyncMethodLike;
}

/** The keys a shape requires (the listed methods), as opposed to the defaults, wrapped where present. */
type RequiredKeys<S> = { [K in keyof S]-?: Record<never, never> extends Pick<S, K> ? never : K }[keyof S];

/**
 * What is wrong with a class for a class decorator wanting `Shape`, as messages that name the
 * method: one that does not return a Promise, one listed but missing, or none of the defaults.
 * `never` when nothing is.
 */
export type ServiceProblems<Instance, Shape> =
  | {
      [K in keyof Shape & string]: K extends keyof Instance
        ? NonNullable<Instance[K]> extends AsyncMethodLike
          ? never
          : `${K} must return a Promise: make it async`
        : K extends RequiredKeys<Shape>
          ? `${K} is listed in methods, but the class has no ${K} method`
          : never;
    }[keyof Shape & string]
  | ([RequiredKeys<Shape>] extends [never]
      ? [Extract<keyof Instance, keyof Shape>] extends [never]
        ? 'the class has neither save nor update: name the methods to wrap in { methods }'
        : never
      : never);

/**
 * The class a class decorator accepts: the class itself when it fits `Shape`, else an object type
 * whose one property is the problem, so that the compiler's error names the method.
 */
export type CheckedService<C extends abstract new (...args: never[]) => unknown, Shape> = [
  ServiceProblems<InstanceType<C>, Shape>,
] extends [never]
  ? C
  : { readonly 'event-history': ServiceProblems<InstanceType<C>, Shape> };

/**
 * A decorator usable on a class or a method, compiled with `experimentalDecorators` or as a
 * TC39 standard decorator. Methods that do not return a Promise are rejected at compile time,
 * with an error that names the method.
 *
 * The order of the signatures is what makes the errors readable: TypeScript reports a class
 * decorator that fits no signature against the last one (TypeScript 7) or all of them, and
 * checks the return type of the longest, so the standard class signature comes last and the
 * legacy method signature is declared to return `void` (its wrapped descriptor is still used).
 */
export interface ClassOrMethodDecorator<Shape> {
  /** experimentalDecorators, on a class */
  <C extends abstract new (...args: never[]) => unknown>(target: CheckedService<C, Shape>): void;
  /** experimentalDecorators, on a method */
  <F extends AsyncMethodLike>(target: object, key: string | symbol, descriptor: TypedPropertyDescriptor<F>): void;
  /** standard decorators, on a method */
  <This, F extends (this: This, ...args: never[]) => PromiseLike<unknown>>(
    target: F,
    context: ClassMethodDecoratorContext<This>,
  ): F | void;
  /** standard decorators, on a class */
  <C extends abstract new (...args: never[]) => unknown>(
    target: CheckedService<C, Shape>,
    context: ClassDecoratorContext<C>,
  ): void;
}
