import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { PrivateRedis, freePort, tlsServerArgs } from './private_redis.js';

const SLOTS = 16_384;

/**
 * A private Redis Cluster of `size` masters (no replicas) on loopback ports, formed with
 * CLUSTER ADDSLOTSRANGE + CLUSTER MEET (no redis-cli needed), its nodes protected by `password`
 * when one is given. Its node files live in a temporary folder that {@link stop} removes.
 */
export class PrivateCluster {
  private readonly nodes: PrivateRedis[] = [];
  private readonly busPorts: number[] = [];
  private dir = '';

  private readonly tlsPorts: number[] = [];

  /** With `tls`, every node also listens for TLS (the test certificates), and the cluster bus runs over TLS. */
  constructor(
    private readonly size = 3,
    private readonly password?: string,
    private readonly tls = false,
  ) {}

  /** Loopback TLS addresses of the masters (with `tls`): what a TLS client is given. */
  get tlsStartupNodes(): { host: string; port: number }[] {
    return this.tlsPorts.map((port) => ({ host: '127.0.0.1', port }));
  }

  /** Loopback addresses of the masters. */
  get startupNodes(): { host: string; port: number }[] {
    return this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  /** Starts the nodes, assigns every slot, joins them, and polls until each reports `cluster_state:ok` (deadline 30 s). */
  async start(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'pva-cluster-'));
    for (let i = 0; i < this.size; i++) {
      const port = await freePort();
      const bus = await freePort();
      const auth = this.password === undefined ? [] : ['--masterauth', this.password];
      const tls = this.tls ? [...tlsServerArgs(await freePort()), '--tls-cluster', 'yes', '--tls-replication', 'yes'] : [];
      if (this.tls) this.tlsPorts.push(Number(tls[1]));
      const node = new PrivateRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, `nodes-${port}.conf`), '--cluster-port', String(bus), '--dir', this.dir, ...auth, ...tls], {
        ...(this.password === undefined ? {} : { password: this.password }),
      });
      this.nodes.push(node);
      this.busPorts.push(bus);
      await node.start();
    }
    const admins = this.nodes.map((n) => new Redis(n.port, '127.0.0.1', { maxRetriesPerRequest: 1, password: this.password }));
    try {
      const per = Math.ceil(SLOTS / this.size);
      await Promise.all(admins.map((a, i) => a.call('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(Math.min(SLOTS, (i + 1) * per) - 1))));
      const first = admins[0] as Redis;
      for (let i = 1; i < this.size; i++) await first.call('CLUSTER', 'MEET', '127.0.0.1', String(this.nodes[i]?.port), String(this.busPorts[i]));
      const deadline = Date.now() + 30_000;
      for (;;) {
        const infos = await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO') as Promise<string>));
        if (infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${this.size}`))) break;
        if (Date.now() > deadline) throw new Error(`the private cluster did not form: ${infos.map((i) => /cluster_state:\w+/.exec(i)?.[0]).join(', ')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      for (const a of admins) a.disconnect();
    }
  }

  /** A cluster client; resolves once it is ready. */
  async client(): Promise<Cluster> {
    const c = new Cluster(this.startupNodes, { redisOptions: { maxRetriesPerRequest: 1, password: this.password } });
    c.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve());
      c.once('end', () => reject(new Error('cluster client ended before it was ready')));
    });
    return c;
  }

  /** SIGKILLs every node and removes the node files. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    if (this.dir !== '') rmSync(this.dir, { recursive: true, force: true });
  }
}
