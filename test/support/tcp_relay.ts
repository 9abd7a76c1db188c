import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay on 127.0.0.1 in front of a real server, for a network partition between one client
 * and that server while other clients still reach it directly. {@link TcpRelay.cut} stops moving
 * bytes both ways without closing anything, as a partition does: the bytes sent meanwhile are
 * held, nothing is lost or reordered, and {@link TcpRelay.heal} delivers them, then those after
 * them. Connections opened while cut are accepted and held the same way.
 */
export class TcpRelay {
  private readonly links = new Set<Link>();
  private isCut = false;
  /** How many client connections it has accepted so far. */
  accepted = 0;

  private constructor(
    private readonly server: Server,
    /** The port clients connect to. */
    readonly port: number,
  ) {}

  /** Starts a relay to `targetHost:targetPort`. */
  static async start(targetHost: string, targetPort: number): Promise<TcpRelay> {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const addr = server.address();
        if (typeof addr === 'object' && addr !== null) resolve(addr.port);
        else reject(new Error('relay: no port'));
      });
    });
    const relay = new TcpRelay(server, port);
    server.on('connection', (client) => relay.connect(client, createConnection({ host: targetHost, port: targetPort })));
    return relay;
  }

  /** A relay to the server of `url` (`redis://host:port/…`), and `url` with the relay's port in its place. */
  static async inFrontOf(url: string): Promise<{ relay: TcpRelay; url: string }> {
    const target = new URL(url);
    const relay = await TcpRelay.start(target.hostname, Number(target.port || 6379));
    target.port = String(relay.port);
    return { relay, url: target.toString() };
  }

  /** Holds every byte, both ways, on every connection, old and new, until {@link heal}. */
  cut(): void {
    this.isCut = true;
  }

  /** Delivers the held bytes, in order, and lets the later ones through. */
  heal(): void {
    this.isCut = false;
    for (const link of this.links) link.flush();
  }

  /**
   * Resets every connection open now, as a network that drops them does: the bytes held by a
   * {@link cut} are lost with them. The relay still accepts new connections.
   */
  reset(): void {
    for (const link of this.links) link.destroy();
    this.links.clear();
  }

  /** Closes the relay and every connection through it. */
  async close(): Promise<void> {
    for (const link of this.links) link.destroy();
    this.links.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private connect(client: Socket, upstream: Socket): void {
    this.accepted++;
    const link = new Link(client, upstream, () => this.isCut);
    this.links.add(link);
    link.onEnd(() => this.links.delete(link));
  }
}

/** One client connection and its upstream connection, with the bytes held while cut. */
class Link {
  private readonly held: Array<[Socket, Buffer]> = [];
  private readonly ended: Array<() => void> = [];

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly isCut: () => boolean,
  ) {
    const end = () => {
      this.destroy();
      for (const f of this.ended.splice(0)) f();
    };
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      from.on('data', (b: Buffer) => {
        if (this.isCut()) this.held.push([to, b]);
        else to.write(b);
      });
      from.on('error', end).on('close', end);
    }
  }

  onEnd(f: () => void): void {
    this.ended.push(f);
  }

  flush(): void {
    for (const [to, b] of this.held.splice(0)) to.write(b);
  }

  destroy(): void {
    this.held.length = 0;
    this.client.destroy();
    this.upstream.destroy();
  }
}
