import { fork } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * A loopback TCP proxy, run as its own process (so its work never shares the bench's event loop),
 * that counts round trips exactly and delays each direction by a fixed time.
 *
 * A round trip is a client→server burst followed by a server→client burst: per connection the
 * proxy remembers which way the last bytes went, and counts one whenever bytes from the server
 * follow bytes from the client. A reply split over several TCP segments, or a request written in
 * several, is still one round trip; a request written while the previous reply is still on its way
 * (pipelining) shares that round trip. Each chunk is forwarded `delayMs` after it arrived, in order.
 *
 * Run: `node proxy.js <targetHost> <targetPort> <delayMs>`; it sends `{ port }` over IPC once it
 * listens, and answers `{ type: 'count', id, ports }` with `{ id, roundTrips }` (the sum over the
 * connections whose client-side ports are listed, or over all of them when `ports` is empty).
 */
interface Counted {
  roundTrips: number;
  last: 'up' | 'down' | undefined;
}

function forwarder(to: Socket, delayMs: number): (chunk: Buffer) => void {
  if (delayMs <= 0) return (chunk) => void to.write(chunk);
  return (chunk) => {
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, delayMs);
  };
}

function serve(targetHost: string, targetPort: number, delayMs: number): void {
  const counts = new Map<number, Counted>();
  const server = createServer({ noDelay: true }, (client) => {
    const port = client.remotePort ?? 0;
    const counted: Counted = { roundTrips: 0, last: undefined };
    counts.set(port, counted);
    const upstream = createConnection({ host: targetHost, port: targetPort, noDelay: true });
    const up = forwarder(upstream, delayMs);
    const down = forwarder(client, delayMs);
    client.on('data', (chunk) => {
      counted.last = 'up';
      up(chunk);
    });
    upstream.on('data', (chunk) => {
      if (counted.last === 'up') counted.roundTrips++;
      counted.last = 'down';
      down(chunk);
    });
    const close = (): void => {
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, delayMs);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ port: typeof address === 'object' && address !== null ? address.port : 0 });
  });
  process.on('message', (message: { type: string; id: number; ports: number[] }) => {
    if (message.type !== 'count') return;
    let roundTrips = 0;
    if (message.ports.length === 0) for (const c of counts.values()) roundTrips += c.roundTrips;
    else for (const port of message.ports) roundTrips += counts.get(port)?.roundTrips ?? 0;
    process.send?.({ id: message.id, roundTrips });
  });
  process.on('disconnect', () => process.exit(0));
}

/** A proxy process started by {@link startProxy}. */
export interface ProxyProcess {
  readonly port: number;
  readonly delayMs: number;
  /** Round trips so far on the connections whose client-side (local) ports are given. */
  roundTrips(ports: readonly number[]): Promise<number>;
  close(): Promise<void>;
}

/** Starts the proxy in a child process in front of `host:port`, delaying each direction by `delayMs`. */
export async function startProxy(host: string, port: number, delayMs: number): Promise<ProxyProcess> {
  const child = fork(fileURLToPath(import.meta.url), [host, String(port), String(delayMs)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const listening = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the proxy exited with ${code} before listening`)));
  });
  let next = 0;
  const waiting = new Map<number, (n: number) => void>();
  child.on('message', (m: { id?: number; roundTrips?: number }) => {
    if (m.id === undefined) return;
    waiting.get(m.id)?.(m.roundTrips ?? 0);
    waiting.delete(m.id);
  });
  return {
    port: listening,
    delayMs,
    roundTrips: (ports) =>
      new Promise((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        child.send({ type: 'count', id, ports: [...ports] });
      }),
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.disconnect();
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) {
  const [host = '127.0.0.1', port = '5432', delay = '0'] = process.argv.slice(2);
  serve(host, Number(port), Number(delay));
}
