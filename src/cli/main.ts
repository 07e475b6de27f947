import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type ChainKey, keyringOf, type VerifyOptions, type VerifyResult, verifyHistory } from '../history/chain.js';
import { diff } from '../history/diff.js';
import type { Difference, HistoryEntry } from '../history/entry.js';
import { baselineCommand } from './baseline.js';
import { CliError, type CliStore, openStore, redactMessage } from './connect.js';
import { colourWanted, formatChanges, formatHeader, jsonEntry, painter } from './format.js';
import { relayCommand } from './relay.js';

/**
 * Where the command line writes, and its environment; `process` in the real `bin`.
 *
 * ```ts
 * const io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };
 * ```
 */
export interface CliIo {
  readonly stdout: { write(text: string): unknown; isTTY?: boolean };
  readonly stderr: { write(text: string): unknown; isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
}

const USAGE = `Usage: event-history <command> <entityType> <id> [version] --url <url> [options]

Commands:
  log <entityType> <id>              every version, newest first, with its changes (like git log -p)
  show <entityType> <id> <version>   one version: its header, changes and full snapshot
  verify <entityType> <id>           check the hash chain written with @HistoryTracked({ chain })
  relay --nats <url> | --redis <url> publish committed entries to a broker (event-history relay --help)
  baseline <entityType> --from <table> baseline entries for rows without history (event-history baseline --help)

Options:
  --url <url>      postgres://…, mysql://… (or mariadb://…), sqlite:<path> or mongodb://…
                   (default: the EVENT_HISTORY_URL environment variable)
  --table <name>   the history table or collection (default: entity_history)
  --limit <n>      log: show at most n versions
  --json           machine-readable output
  -h, --help       this help

Options of verify:
  --key-file <path>       the chain's key: a secret (one line), or a JSON keyring
                          {"current":"k2","keys":{"k1":"…","k2":"…"}} (default: the
                          EVENT_HISTORY_CHAIN_KEY environment variable, same format);
                          implies --require-chain. The key is never printed.
  --key-id <id>           the key id of a single secret (default: default)
  --require-chain         fail when the entity has no hash or no head at all
  --allow-unanchored      a chained entity without a head is a note, not a failure
  --latest-version <n>    the version the entity is at: missing newest entries fail

Colour on a terminal only; NO_COLOR turns it off, FORCE_COLOR=1 on.
Exit codes: 0 ok, 1 not found, tampered or not verifiable (verify), 2 usage error (or a bad key),
3 cannot connect, 4 no such table.
`;

const PAGE_SIZE = 100;

/**
 * Runs the `event-history` command line with `argv` (without `node` and the script) and
 * resolves to its exit code. Errors are reported on `io.stderr`, never thrown.
 *
 * ```ts
 * process.exitCode = await main(['log', 'Order', '42', '--url', 'sqlite:app.db'], process);
 * ```
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv[0] === 'relay') return relayCommand(argv.slice(1), io); // src/cli/relay.ts
  if (argv[0] === 'baseline') return baselineCommand(argv.slice(1), io); // src/cli/baseline.ts
  let store: CliStore | undefined;
  let url: string | undefined;
  try {
    const { values, positionals } = parse(argv);
    if (values.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    const [command, entityType, entityId, version] = positionals;
    if (command === undefined) throw new CliError(2, `no command given.\n\n${USAGE}`);
    if (!['log', 'show', 'verify'].includes(command)) {
      throw new CliError(2, `unknown command ${JSON.stringify(command)}: use log, show or verify (--help for more).`);
    }
    if (entityType === undefined || entityId === undefined) {
      throw new CliError(2, `${command} needs <entityType> <id>, as in: event-history ${command} Order 42 --url …`);
    }
    const expected = command === 'show' ? 3 : 2;
    if (positionals.length - 1 !== expected) {
      throw new CliError(
        2,
        command === 'show'
          ? 'show needs <entityType> <id> <version>, as in: event-history show Order 42 3 --url …'
          : `${command} takes <entityType> <id> only; got ${positionals.length - 1} arguments.`,
      );
    }
    url = values.url ?? io.env.EVENT_HISTORY_URL;
    if (url === undefined || url === '') {
      throw new CliError(2, 'no database given: pass --url <url> (or set EVENT_HISTORY_URL).');
    }
    const limit = values.limit === undefined ? undefined : positiveInteger('--limit', values.limit);
    const wanted = version === undefined ? undefined : positiveInteger('<version>', version);
    const options = command === 'verify' ? verifyOptions(values, io.env) : {};
    store = await openStore(url, values.table);
    const paint = painter(!values.json && colourWanted(io.stdout, io.env));
    const out = (line: string) => io.stdout.write(`${line}\n`);
    switch (command) {
      case 'log':
        return await log(store, entityType, entityId, { json: values.json === true, limit, out, paint });
      case 'show':
        return await show(store, entityType, entityId, wanted as number, { json: values.json === true, out, paint });
      default:
        return await verify(store, entityType, entityId, options, { json: values.json === true, out, paint });
    }
  } catch (error) {
    const code = error instanceof CliError ? error.exitCode : 1;
    let text = error instanceof Error ? error.message : String(error);
    // Whatever failed, and whoever wrote the message (a driver, a query), no credential is printed.
    if (url !== undefined && url !== '') text = redactMessage(text, url);
    io.stderr.write(`event-history: ${text}\n`);
    return code;
  } finally {
    await store?.close().catch(() => {});
  }
}

function parse(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: 'string' },
        table: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        'key-file': { type: 'string' },
        'key-id': { type: 'string' },
        'require-chain': { type: 'boolean' },
        'allow-unanchored': { type: 'boolean' },
        'latest-version': { type: 'string' },
      },
    });
  } catch (error) {
    throw new CliError(2, `${(error as Error).message} (--help for usage)`);
  }
}

function positiveInteger(what: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw new CliError(2, `${what} must be a whole number, got ${JSON.stringify(text)}.`);
  }
  return value;
}

interface Output {
  readonly json: boolean;
  readonly out: (line: string) => void;
  readonly paint: ReturnType<typeof painter>;
}

/** The header already shows version and time; the text output leaves their stamp fields out of the changes. */
function withoutStamp(changes: readonly Difference[]): Difference[] {
  return changes.filter((change) => change.path !== 'version' && change.path !== 'timestamp');
}

function noHistory(store: CliStore, entityType: string, entityId: string): CliError {
  return new CliError(1, `${entityType} ${entityId} has no history in ${store.where}.`);
}

/** Newest first, one backward page at a time; each entry is printed once the one before it is known. */
async function log(
  store: CliStore,
  entityType: string,
  entityId: string,
  { json, limit, out, paint }: Output & { readonly limit: number | undefined },
): Promise<number> {
  let held: HistoryEntry | undefined;
  let printed = 0;
  const print = (entry: HistoryEntry, previous: HistoryEntry | undefined): boolean => {
    const changes = diff(previous?.snapshot ?? {}, entry.snapshot);
    if (json) out(`${printed === 0 ? '[' : ','}${JSON.stringify(jsonEntry(entry, changes))}`);
    else {
      if (printed > 0) out('');
      for (const line of formatHeader(entry, paint)) out(line);
      out('');
      for (const line of formatChanges(withoutStamp(changes), paint)) out(line);
    }
    printed += 1;
    return limit === undefined || printed < limit;
  };
  let next: Parameters<CliStore['reader']['page']>[2] = { direction: 'backward', limit: PAGE_SIZE };
  walk: while (next !== undefined) {
    const page = await store.reader.page(entityType, entityId, next);
    for (const entry of page.entries) {
      if (held !== undefined && !print(held, entry)) {
        held = undefined;
        break walk;
      }
      held = entry;
    }
    next = page.next;
  }
  if (held !== undefined) print(held, undefined);
  if (printed === 0) throw noHistory(store, entityType, entityId);
  if (json) out(']');
  return 0;
}

async function show(
  store: CliStore,
  entityType: string,
  entityId: string,
  version: number,
  { json, out, paint }: Output,
): Promise<number> {
  const entry = await store.reader.at(entityType, entityId, version);
  if (entry === undefined) {
    const latest = await store.reader.latest(entityType, entityId);
    throw new CliError(
      1,
      latest === undefined
        ? `${entityType} ${entityId} has no history in ${store.where}.`
        : `${entityType} ${entityId} has no version ${version} (its latest is ${latest.version}).`,
    );
  }
  const [previous] = await store.reader.list(entityType, entityId, { toVersion: version - 1, order: 'desc', limit: 1 });
  const changes = diff(previous?.snapshot ?? {}, entry.snapshot);
  if (json) {
    out(JSON.stringify(jsonEntry(entry, changes), null, 2));
    return 0;
  }
  for (const line of formatHeader(entry, paint)) out(line);
  out('');
  for (const line of formatChanges(withoutStamp(changes), paint)) out(line);
  out('');
  out(paint.bold('Snapshot:'));
  for (const line of JSON.stringify(entry.snapshot, null, 2).split('\n')) out(`    ${line}`);
  return 0;
}

type Values = ReturnType<typeof parse>['values'];

/** verify's options from its flags; a key from `--key-file` or `EVENT_HISTORY_CHAIN_KEY`, checked. */
function verifyOptions(values: Values, env: CliIo['env']): VerifyOptions {
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

async function verify(
  store: CliStore,
  entityType: string,
  entityId: string,
  options: VerifyOptions,
  { json, out, paint }: Output,
): Promise<number> {
  const result = await verifyHistory(store.reader, entityType, entityId, options);
  if (result.ok && result.entries === 0) throw noHistory(store, entityType, entityId);
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

/** What the result proves and does not, one line each, after the verdict. */
function explain(result: VerifyResult): string[] {
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
