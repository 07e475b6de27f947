/**
 * What kind of object an entity is, for the two things the pipeline derives from it: the entity
 * type history records it under, and the data its snapshot is taken from. Mongoose documents are
 * recognised structurally (the library never imports mongoose): an own `$__` state, a `toObject`
 * method and a constructor with a string `modelName`.
 */

/** The parts of a hydrated Mongoose document this module reads. */
interface MongooseDocumentLike {
  readonly $__: unknown;
  toObject(): unknown;
  readonly constructor: { readonly modelName: string };
}

/**
 * Whether `entity` is a hydrated Mongoose document (or anything shaped like one).
 *
 * ```ts
 * isMongooseDocument(new OrderModel({ total: 1 })); // true
 * ```
 */
export function isMongooseDocument(entity: unknown): entity is MongooseDocumentLike {
  if (entity === null || typeof entity !== 'object') return false;
  const candidate = entity as Partial<Record<'$__' | 'toObject' | 'constructor', unknown>>;
  if (!('$__' in entity) || typeof candidate.toObject !== 'function') return false;
  const model = candidate.constructor as { modelName?: unknown } | undefined;
  return typeof model?.modelName === 'string' && model.modelName !== '';
}

/**
 * The entity type an entity names itself: a Mongoose document's model name, otherwise its
 * constructor's name; `undefined` for a plain (or null-prototype) object, whose type must come
 * from elsewhere (the decorator's `entityType`, the parameter's design type, the service name).
 *
 * ```ts
 * entityTypeName(new Order());           // 'Order'
 * entityTypeName(await OrderModel.findOne()); // 'Order' (the model name, not 'model')
 * entityTypeName({ id: 1 });             // undefined
 * ```
 */
export function entityTypeName(entity: object): string | undefined {
  if (isMongooseDocument(entity)) return entity.constructor.modelName;
  const name = (entity as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? name : undefined;
}

/**
 * The object a snapshot of `entity` is copied from: a Mongoose document's data, as its
 * `toObject()` gives it under the schema's rules (not the document's internals), otherwise the
 * entity itself.
 *
 * ```ts
 * snapshotSource(orderDocument); // { _id: ObjectId(…), total: 1, __v: 0 }
 * ```
 */
export function snapshotSource(entity: object): object {
  if (!isMongooseDocument(entity)) return entity;
  const data = entity.toObject();
  return data !== null && typeof data === 'object' ? data : entity;
}
