import { copyOwnMetadata } from '../decorators/reflect.js';
import { invoke } from './invoke.js';
import { type MethodSpec, SPEC_KEY, type WrappedMethod } from './spec.js';

/**
 * The one wrapper a decorated method gets. It keeps the original's `name` and `length` and the
 * reflect-metadata stored on it, so Nest's own method decorators keep working.
 */
export function createWrapper(spec: MethodSpec): WrappedMethod {
  const wrapper = function (this: object, ...args: unknown[]): Promise<unknown> {
    return invoke(spec, this, args);
  };
  Object.defineProperty(wrapper, 'name', { value: spec.original.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: spec.original.length, configurable: true });
  Object.defineProperty(wrapper, SPEC_KEY, { value: spec });
  copyOwnMetadata(spec.original, wrapper);
  return wrapper as unknown as WrappedMethod;
}
