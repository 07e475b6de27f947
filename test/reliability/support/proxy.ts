import { createServer, type Server, Socket } from 'node:net';

/** What to do with a chunk the client sends: forward it, or cut the connection before or after forwarding it. */
export type CutDecision = 'forward' | 'cut-before' | 'cut-after';

/**
 * A loopback TCP proxy in front of a database server that cuts a connection at a chosen moment:
 * `cutWhen` sees every chunk a client sends and decides. Listens on 127.0.0.1 only.
 */
export class CuttingProxy {
  #decide: (chunk: Buffer) => CutDecision = () => 'forward';
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  /** How many connections it has cut. */
  cuts = 0;

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  async listen(): Promise<number> {
    const server = createServer((client) => this.#pipe(client));
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
    return address.port;
  }

  /** Cuts the next connection whose client sends a chunk `decide` does not forward; then forwards again. */
  cutWhen(decide: (chunk: Buffer) => CutDecision): void {
    this.#decide = decide;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  #pipe(client: Socket): void {
    const server = new Socket();
    this.#sockets.add(client);
    this.#sockets.add(server);
    const cut = (): void => {
      client.destroy();
      server.destroy();
    };
    client.on('error', cut);
    server.on('error', cut);
    client.on('close', () => {
      this.#sockets.delete(client);
      server.destroy();
    });
    server.on('close', () => {
      this.#sockets.delete(server);
      client.destroy();
    });
    server.connect(this.targetPort, this.targetHost);
    server.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('data', (chunk: Buffer) => {
      const decision = this.#decide(chunk);
      if (decision === 'forward') {
        server.write(chunk);
        return;
      }
      this.#decide = () => 'forward';
      this.cuts++;
      if (decision === 'cut-before') {
        cut();
        return;
      }
      // Hand the chunk to the server, then cut before its answer can come back.
      client.pause();
      server.write(chunk, () => {
        client.destroy();
        setTimeout(() => server.destroy(), 50);
      });
    });
  }
}
