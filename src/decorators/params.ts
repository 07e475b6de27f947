import { DecoratorError } from '../errors.js';
import { defineMetadata } from './reflect.js';

type ParamRole = 'session' | 'entity';
type RoleIndexes = Partial<Record<ParamRole, number>>;

// Keyed by the prototype (or constructor, for static methods) that declares the method.
const store = new WeakMap<object, Map<string, RoleIndexes>>();

export const SESSION_ARG_METADATA = 'event-history:session-arg';
export const ENTITY_ARG_METADATA = 'event-history:entity-arg';

function parameterDecorator(role: ParamRole, metadataKey: string) {
  return (target: object, key: string | symbol | undefined, index: number): void => {
    if (key === undefined || typeof index !== 'number') {
      throw new DecoratorError(
        `@${role === 'session' ? 'SessionArg' : 'EntityArg'}() marks a parameter of a decorated method; it was applied elsewhere.`,
      );
    }
    const name = String(key);
    const methods = store.get(target) ?? new Map<string, RoleIndexes>();
    store.set(target, methods);
    methods.set(name, { ...methods.get(name), [role]: index });
    defineMetadata(metadataKey, index, target, key);
  };
}

/**
 * Marks the parameter that receives the session (legacy `experimentalDecorators` only; with
 * standard decorators use the `sessionIndex` option).
 *
 * ```ts
 * async save(@EntityArg() order: Order, tenant: string, @SessionArg() session?: ClientSession) {}
 * ```
 */
export function SessionArg(): (target: object, key: string | symbol | undefined, index: number) => void {
  return parameterDecorator('session', SESSION_ARG_METADATA);
}

/**
 * Marks the parameter that receives the entity (legacy `experimentalDecorators` only; with
 * standard decorators use the `entityIndex` option).
 *
 * ```ts
 * async update(tenant: string, @EntityArg() order: Order, @SessionArg() session: PoolClient) {}
 * ```
 */
export function EntityArg(): (target: object, key: string | symbol | undefined, index: number) => void {
  return parameterDecorator('entity', ENTITY_ARG_METADATA);
}

/** The marked parameter positions of `name`, looked up along the prototype chain of `holder`. */
export function markedParameters(holder: object, name: string): RoleIndexes {
  for (let proto: object | null = holder; proto !== null; proto = Object.getPrototypeOf(proto)) {
    const found = store.get(proto)?.get(name);
    if (found) return found;
  }
  return {};
}
