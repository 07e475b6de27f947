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

/**
 * A decorator usable on a class or a method, compiled with `experimentalDecorators` or as a
 * TC39 standard decorator. Methods that do not return a Promise are rejected at compile time.
 */
export interface ClassOrMethodDecorator<Shape> {
  /** experimentalDecorators, on a class */
  <C extends abstract new (...args: never[]) => Shape>(target: C): void;
  /** experimentalDecorators, on a method */
  <F extends AsyncMethodLike>(
    target: object,
    key: string | symbol,
    descriptor: TypedPropertyDescriptor<F>,
  ): TypedPropertyDescriptor<F> | void;
  /** standard decorators, on a class */
  <C extends abstract new (...args: never[]) => Shape>(target: C, context: ClassDecoratorContext<C>): void;
  /** standard decorators, on a method */
  <This, F extends (this: This, ...args: never[]) => PromiseLike<unknown>>(
    target: F,
    context: ClassMethodDecoratorContext<This>,
  ): F | void;
}
