import type { CallInfo } from '../context.js';
import type { HistorySource, HistoryTrackedOptions } from '../decorators/options.js';
import { markedParameters } from '../decorators/params.js';
import { getMetadata } from '../decorators/reflect.js';
import { DecoratorError } from '../errors.js';
import { type ChainOptions, type Keyring, keyringOf } from '../history/chain.js';
import type { HistoryEntry, HistoryOp } from '../history/entry.js';
import { defaultConflict } from './conflict.js';
import { type MethodSpec, opOf } from './spec.js';

/** A method's decorations resolved into the settings one call needs; built once per class. */
export interface CallPlan {
  readonly method: string;
  readonly serviceName: string;
  readonly op: HistoryOp;
  readonly versioned: boolean;
  readonly source: HistorySource | undefined;
  readonly entityIndex: number;
  readonly sessionIndex: number;
  readonly versionField: string;
  readonly timestampField: string;
  readonly idField: string;
  readonly initialVersion: number;
  readonly clock: () => Date;
  readonly requireSession: boolean;
  readonly conflict: (result: unknown, call: CallInfo) => boolean;
  readonly checksDefaultConflict: boolean;
  readonly retries: number;
  readonly entityType: string | undefined;
  /** The entity parameter's `design:paramtypes` name, when reflect-metadata recorded one. */
  readonly designEntityType: string | undefined;
  readonly ignore: readonly string[];
  readonly redact: readonly string[];
  readonly metadata: ((call: CallInfo) => Record<string, unknown>) | undefined;
  readonly map: ((entry: HistoryEntry) => unknown) | undefined;
  readonly maxSnapshotBytes: number;
  readonly onUnchanged: 'record' | 'skip';
  readonly chain: boolean;
  /** With `chain: { key }`: the keyring entries are signed with, read at each write. */
  readonly chainKey: (() => Keyring) | undefined;
  readonly schemaVersion: number | undefined;
}

/** Default of `maxSnapshotBytes`: far above an ordinary entity, below the packet limits of the SQL servers. */
const DEFAULT_MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024;

const systemClock = (): Date => new Date();

/** The options that read the previous entry (`onUnchanged`, `chain`) and `schemaVersion`, checked. */
function readingOptions(
  serviceName: string,
  method: string,
  t: HistoryTrackedOptions,
): Pick<CallPlan, 'onUnchanged' | 'chain' | 'chainKey' | 'schemaVersion'> {
  const where = `@HistoryTracked on ${serviceName}.${method}`;
  const onUnchanged = t.onUnchanged ?? 'record';
  if (onUnchanged !== 'record' && onUnchanged !== 'skip') {
    throw new DecoratorError(`${where}: onUnchanged must be 'record' or 'skip', got ${String(onUnchanged)}.`);
  }
  const chain = t.chain === true || (t.chain !== null && typeof t.chain === 'object');
  if (t.chain !== undefined && t.chain !== false && !chain) {
    throw new DecoratorError(`${where}: chain must be true, false or { key, keyId }, got ${String(t.chain)}.`);
  }
  const chainKey = chain && t.chain !== true ? keyOption(where, t.chain as ChainOptions) : undefined;
  if (t.map !== undefined && (chain || onUnchanged === 'skip')) {
    throw new DecoratorError(
      `${where}: chain and onUnchanged: 'skip' read back the entries the store wrote, which map changes. ` +
        'Drop map (use a built-in store) or drop those options.',
    );
  }
  const schemaVersion = t.schemaVersion;
  if (schemaVersion !== undefined && (!Number.isInteger(schemaVersion) || schemaVersion < 1)) {
    throw new DecoratorError(`${where}: schemaVersion must be an integer of at least 1, got ${String(schemaVersion)}.`);
  }
  return { onUnchanged, chain, chainKey, schemaVersion };
}

/** `chain: { key, keyId }` checked: a fixed key once, here; a key function at each write. */
function keyOption(where: string, options: ChainOptions): (() => Keyring) | undefined {
  const { key, keyId } = options;
  if (key === undefined) {
    if (keyId !== undefined) throw new DecoratorError(`${where}: chain.keyId was given without chain.key.`);
    return undefined;
  }
  const checked = (given: unknown): Keyring => {
    try {
      return keyringOf(given as Parameters<typeof keyringOf>[0], keyId);
    } catch (error) {
      throw new DecoratorError(`${where}: chain.key: ${(error as Error).message}`);
    }
  };
  if (typeof key === 'function') return () => checked(key());
  const fixed = checked(key);
  return () => fixed;
}

export function planFor(spec: MethodSpec, service: object): CallPlan {
  const cached = spec.cache as { ctor: unknown; plan: CallPlan } | undefined;
  const ctor = (service as { constructor?: unknown }).constructor;
  if (cached !== undefined && cached.ctor === ctor) return cached.plan;
  const plan = compile(spec, service);
  spec.cache = { ctor, plan };
  return plan;
}

function compile(spec: MethodSpec, service: object): CallPlan {
  const v = spec.versioned?.options ?? {};
  const t = spec.tracked?.options ?? {};
  const marked = markedParameters(service, spec.name);
  const entityIndex = marked.entity ?? v.entityIndex ?? t.entityIndex ?? 0;
  const conflict = v.conflict ?? t.conflict;
  const paramTypes = getMetadata('design:paramtypes', service, spec.name);
  const designType = Array.isArray(paramTypes)
    ? (paramTypes[entityIndex] as { name?: unknown } | undefined)
    : undefined;
  const serviceName = typeof service === 'function' ? service.name : service.constructor.name;
  return Object.freeze({
    method: `${serviceName}.${spec.name}`,
    serviceName,
    op: opOf(spec),
    versioned: spec.versioned !== undefined,
    source: spec.tracked?.source,
    entityIndex,
    sessionIndex: marked.session ?? v.sessionIndex ?? t.sessionIndex ?? 1,
    versionField: v.versionField ?? t.versionField ?? 'version',
    timestampField: v.timestampField ?? t.timestampField ?? 'timestamp',
    idField: v.idField ?? t.idField ?? 'id',
    initialVersion: v.initialVersion ?? 1,
    clock: v.clock ?? t.clock ?? systemClock,
    requireSession: v.requireSession ?? t.requireSession ?? true,
    conflict: conflict ?? defaultConflict,
    checksDefaultConflict: conflict === undefined,
    retries: v.retries ?? t.retries ?? 3,
    entityType: t.entityType,
    designEntityType:
      typeof designType?.name === 'string' && designType.name !== 'Object' ? designType.name : undefined,
    ignore: t.ignore ?? [],
    redact: t.redact ?? [],
    metadata: t.metadata,
    map: t.map,
    maxSnapshotBytes: t.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES,
    ...readingOptions(serviceName, spec.name, t),
  });
}
