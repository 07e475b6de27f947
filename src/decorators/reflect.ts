// reflect-metadata is an optional peer: use it when the application loaded it, never import it.
interface ReflectMetadataApi {
  getMetadata(key: unknown, target: object, property?: string | symbol): unknown;
  getOwnMetadataKeys(target: object, property?: string | symbol): unknown[];
  getOwnMetadata(key: unknown, target: object, property?: string | symbol): unknown;
  defineMetadata(key: unknown, value: unknown, target: object, property?: string | symbol): void;
}

function api(): ReflectMetadataApi | undefined {
  const candidate = Reflect as unknown as Partial<ReflectMetadataApi>;
  return typeof candidate.getMetadata === 'function' && typeof candidate.defineMetadata === 'function'
    ? (candidate as ReflectMetadataApi)
    : undefined;
}

export function getMetadata(key: string, target: object, property?: string | symbol): unknown {
  return api()?.getMetadata(key, target, property);
}

export function defineMetadata(key: string, value: unknown, target: object, property?: string | symbol): void {
  api()?.defineMetadata(key, value, target, property);
}

/** Copies the metadata stored on one function object to another (Nest keeps route and guard metadata there). */
export function copyOwnMetadata(from: object, to: object): void {
  const reflect = api();
  if (!reflect) return;
  for (const key of reflect.getOwnMetadataKeys(from)) {
    reflect.defineMetadata(key, reflect.getOwnMetadata(key, from), to);
  }
}
