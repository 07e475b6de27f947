import { parseArgs } from 'node:util';
import { CliError, type CliStore, openStore, redactMessage } from './connect.js';
import { colourWanted, painter } from './format.js';
import { type Output, positiveInteger } from './output.js';
import { diffVersions, ids, log, show, types } from './read.js';
import { verify, verifyOptions } from './verify.js';
import { VERSION } from './version.js';

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

const USAGE = `Usage: event-history <command> [arguments] --url <url> [options]

Commands:
  types                              the entity types the store holds history for
  ids <entityType>                   the ids of one entity type with history (--prefix, --limit)
  log <entityType> <id>              every version, newest first, with its changes (like git log -p)
  show <entityType> <id> <version>   one version: its header, changes and full snapshot
  diff <entityType> <id> <from> <to> the changes between two versions (one version: from the one before)
  verify <entityType> <id>           check the hash chain written with @HistoryTracked({ chain })
  serve                              a read-only history viewer in the browser (event-history serve --help)
  relay --nats <url> | --redis <url> publish committed entries to a broker (event-history relay --help)
  baseline <entityType> --from <table> baseline entries for rows without history (event-history baseline --help)

Options:
  --url <url>      postgres://…, mysql://… (or mariadb://…), sqlite:<path> or mongodb://…
                   (default: the EVENT_HISTORY_URL environment variable)
  --table <name>   the history table or collection (default: entity_history)
  --limit <n>      log: show at most n versions (0: none); ids: at most n ids
  --prefix <text>  ids: only ids that start with this text (case-sensitive)
  --json           machine-readable output (the same changes as the text)
  -V, --version    the version of event-history
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

type Values = ReturnType<typeof parse>['values'];

/** One command that reads a store: its arguments, and what it runs once the store is open. */
interface ReadCommand {
  /** Its positional arguments, as the usage names them; those in brackets are optional. */
  readonly args: readonly string[];
  /** Checks the flags before the store is opened (usage errors first), then returns the run. */
  prepare(
    args: readonly string[],
    values: Values,
    env: CliIo['env'],
  ): (store: CliStore, output: Output) => Promise<number>;
}

const version = (text: string | undefined) => (text === undefined ? undefined : positiveInteger('<version>', text));
const limitOf = (values: Values) => (values.limit === undefined ? undefined : positiveInteger('--limit', values.limit));

/** The commands that read a store, by name. A new one is one entry here (and its line in USAGE). */
const COMMANDS: Readonly<Record<string, ReadCommand>> = {
  types: { args: [], prepare: () => (store, output) => types(store, output) },
  ids: {
    args: ['<entityType>'],
    prepare: ([type], values) => {
      const limit = limitOf(values);
      return (store, output) => ids(store, type as string, { ...output, prefix: values.prefix, limit });
    },
  },
  log: {
    args: ['<entityType>', '<id>'],
    prepare: ([type, id], values) => {
      const limit = limitOf(values);
      return (store, output) => log(store, type as string, id as string, { ...output, limit });
    },
  },
  show: {
    args: ['<entityType>', '<id>', '<version>'],
    prepare: ([type, id, v]) => {
      const wanted = version(v) as number;
      return (store, output) => show(store, type as string, id as string, wanted, output);
    },
  },
  diff: {
    args: ['<entityType>', '<id>', '<from>', '[to]'],
    prepare: ([type, id, first, second]) => {
      const [from, to] = second === undefined ? [undefined, version(first)] : [version(first), version(second)];
      return (store, output) => diffVersions(store, type as string, id as string, from, to as number, output);
    },
  },
  verify: {
    args: ['<entityType>', '<id>'],
    prepare: ([type, id], values, env) => {
      const options = verifyOptions(values, env);
      return (store, output) => verify(store, type as string, id as string, options, output);
    },
  },
};

/**
 * Runs the `event-history` command line with `argv` (without `node` and the script) and
 * resolves to its exit code. Errors are reported on `io.stderr`, never thrown.
 *
 * ```ts
 * process.exitCode = await main(['log', 'Order', '42', '--url', 'sqlite:app.db'], process);
 * ```
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  // Loaded only when run, so the other commands do not pay for the broker clients or the viewer.
  if (argv[0] === 'relay') return (await import('./relay.js')).relayCommand(argv.slice(1), io);
  if (argv[0] === 'serve') return (await import('./serve.js')).serveCommand(argv.slice(1), io);
  if (argv[0] === 'baseline') return (await import('./baseline.js')).baselineCommand(argv.slice(1), io);
  let store: CliStore | undefined;
  let url: string | undefined;
  try {
    const { values, positionals } = parse(argv);
    if (values.version) {
      io.stdout.write(`event-history ${VERSION}\n`);
      return 0;
    }
    if (values.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    const [name, ...args] = positionals;
    if (name === undefined) throw new CliError(2, `no command given.\n\n${USAGE}`);
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (command === undefined) {
      throw new CliError(
        2,
        `unknown command ${JSON.stringify(name)}: use ${[...Object.keys(COMMANDS), 'serve', 'relay', 'baseline'].join(', ')} (--help for more).`,
      );
    }
    const required = command.args.filter((arg) => !arg.startsWith('['));
    if (args.length < required.length || args.length > command.args.length) {
      const example = command.args.join(' ');
      throw new CliError(
        2,
        args.length < required.length
          ? `${name} needs ${required.join(' ')}, as in: event-history ${name} ${example} --url …`
          : `${name} takes ${example || 'no arguments'}; got ${args.length} arguments.`,
      );
    }
    url = values.url ?? io.env.EVENT_HISTORY_URL;
    if (url === undefined || url === '') {
      throw new CliError(2, 'no database given: pass --url <url> (or set EVENT_HISTORY_URL).');
    }
    const run = command.prepare(args, values, io.env);
    store = await openStore(url, values.table);
    const json = values.json === true;
    return await run(store, {
      json,
      out: (line) => io.stdout.write(`${line}\n`),
      paint: painter(!json && colourWanted(io.stdout, io.env)),
    });
  } catch (error) {
    return report(error, url, io);
  } finally {
    await store?.close().catch(() => {});
  }
}

/**
 * Reports a failure on stderr as one line, its credentials masked, and returns its exit code.
 *
 * ```ts
 * return report(error, url, io);
 * ```
 */
export function report(error: unknown, url: string | undefined, io: CliIo): number {
  const code = error instanceof CliError ? error.exitCode : 1;
  let text = error instanceof Error ? error.message : String(error);
  // Whatever failed, and whoever wrote the message (a driver, a query), no credential is printed.
  if (url !== undefined && url !== '') text = redactMessage(text, url);
  io.stderr.write(`event-history: ${text}\n`);
  return code;
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
        prefix: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
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
