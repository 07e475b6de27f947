import { readFileSync } from 'node:fs';
import { type ChainKey, keyringOf, type VerifyOptions, type VerifyResult, verifyHistory } from '../history/chain.js';
import { CliError, type CliStore } from './connect.js';
import type { CliIo } from './main.js';
import { type Output, positiveInteger } from './output.js';
import { noHistory } from './read.js';

/** The flags `verify` reads; the parsed values of the command line. */
export interface VerifyFlags {
  readonly 'key-file'?: string;
  readonly 'key-id'?: string;
  readonly 'require-chain'?: boolean;
  readonly 'allow-unanchored'?: boolean;
  readonly 'latest-version'?: string;
}

/**
 * verify's options from its flags; a key from `--key-file` or `EVENT_HISTORY_CHAIN_KEY`, checked.
 *
 * ```ts
 * const options = verifyOptions({ 'require-chain': true }, process.env);
 * ```
 */
export function verifyOptions(values: VerifyFlags, env: CliIo['env']): VerifyOptions {
  const keyFile = values['key-file'];
  let text: string | undefined;
  let from: string;
  if (keyFile !== undefined) {
    from = `the key file ${JSON.stringify(keyFile)}`;
    try {
      text = readFileSync(keyFile, 'utf8');
    } catch (error) {
      throw new CliError(2, `cannot read ${from}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}.`);
    }
  } else {
    from = 'EVENT_HISTORY_CHAIN_KEY';
    text = env.EVENT_HISTORY_CHAIN_KEY === '' ? undefined : env.EVENT_HISTORY_CHAIN_KEY;
  }
  const keyId = values['key-id'];
  if (keyId !== undefined && text === undefined) {
    throw new CliError(2, '--key-id names the key of --key-file (or EVENT_HISTORY_CHAIN_KEY), and neither was given.');
  }
  const key = text === undefined ? undefined : parseKey(text, from);
  if (key !== undefined) {
    try {
      keyringOf(key, keyId);
    } catch (error) {
      throw new CliError(2, `${from}: ${(error as Error).message}`);
    }
  }
  const latest = values['latest-version'];
  return {
    ...(key === undefined ? {} : { key }),
    ...(keyId === undefined ? {} : { keyId }),
    ...(latest === undefined ? {} : { latestVersion: positiveInteger('--latest-version', latest) }),
    requireChain: values['require-chain'] === true,
    allowUnanchored: values['allow-unanchored'] === true,
  };
}

/** A secret on one line, or a JSON keyring; the message never quotes the content. */
function parseKey(text: string, from: string): ChainKey {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return trimmed;
  try {
    return JSON.parse(trimmed) as ChainKey;
  } catch {
    throw new CliError(
      2,
      `${from} starts with "{" but is not valid JSON: give a keyring {"current": id, "keys": {id: secret}}, or the secret alone.`,
    );
  }
}

const TAMPERING: ReadonlySet<string> = new Set(['altered', 'removed', 'inserted', 'stripped']);

/**
 * The `verify` command: the chain's verdict on one line, then what it proves and does not.
 *
 * ```ts
 * const code = await verify(store, 'Order', '42', verifyOptions({}, process.env), output);
 * ```
 */
export async function verify(
  store: CliStore,
  entityType: string,
  entityId: string,
  options: VerifyOptions,
  { json, out, paint }: Output,
): Promise<number> {
  const result = await verifyHistory(store.reader, entityType, entityId, options);
  if (result.ok && result.entries === 0) throw await noHistory(store, entityType, entityId);
  if (json) {
    out(JSON.stringify(result));
    return result.ok ? 0 : 1;
  }
  const name = `${entityType} ${entityId}`;
  if (!result.ok) {
    out(
      TAMPERING.has(result.kind)
        ? `${paint.red('TAMPERED')} ${name}: version ${result.version} was ${result.kind}: ${result.detail}`
        : `${paint.red('NOT VERIFIED')} ${name}: ${result.kind}${result.version > 0 ? ` at version ${result.version}` : ''}: ${result.detail}`,
    );
  } else if (!result.chained) {
    out(
      `${paint.yellow('not chained')} ${name}: ${result.entries} entries, none with a hash, and no head: nothing proves ` +
        'this history unaltered (written without @HistoryTracked({ chain }), or its hashes and head were removed; --require-chain makes this fail)',
    );
  } else {
    out(`${paint.green('ok')} ${name}: ${result.entries} entries, hash chain intact`);
  }
  for (const line of explain(result)) out(`  ${line}`);
  return result.ok ? 0 : 1;
}

/**
 * What the result proves and does not, one line each, after the verdict (the viewer shows them too).
 *
 * ```ts
 * explain(await verifyHistory(store, 'Order', '42')); // ['anchored: …', 'unkeyed: …']
 * ```
 */
export function explain(result: VerifyResult): string[] {
  const lines = result.findings
    .filter((finding) => !finding.fatal)
    .map((finding) => `note: ${finding.kind}: ${finding.detail}`);
  if (!result.ok || !result.chained) return lines;
  lines.push(
    result.anchored
      ? 'anchored: its head matches the newest entry, so deleting newest entries or stripping hashes would be detected'
      : 'not anchored: deleting the newest entries would not be detected',
    result.keyed
      ? 'keyed: the newest entry and the head carry MACs that verified with the given key; recomputing needs the key'
      : 'unkeyed: someone who can write the history and heads tables could recompute the chain (sign it with a key, verify with --key-file)',
  );
  return lines;
}
