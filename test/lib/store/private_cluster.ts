import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { PrivateRedis, freePort, tlsServerArgs } from './private_redis.js';

const SLOTS = 16_384;

/** Polls `cond` every 100 ms until it holds; throws `what` after 30 s. */
async function pollUntil(what: string, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A private Redis Cluster of `size` masters, each with `replicas` (0 or 1) replicas, on loopback
 * ports, formed with CLUSTER ADDSLOTSRANGE + CLUSTER MEET + CLUSTER REPLICATE (no redis-cli
 * needed), its nodes protected by `password` when one is given. Its node files live in a
 * temporary folder that {@link stop} removes.
 */
export class PrivateCluster {
  private readonly nodes: PrivateRedis[] = [];
  private readonly busPorts: number[] = [];
  /** The replica of each master, by the master's port. */
  private readonly replicaNodes = new Map<number, PrivateRedis>();
  private dir = '';

  private readonly tlsPorts: number[] = [];

  /** With `tls`, every node also listens for TLS (the test certificates), and the cluster bus runs over TLS. */
  constructor(
    private readonly size = 3,
    private readonly password?: string,
    private readonly tls = false,
    private readonly replicas: 0 | 1 = 0,
  ) {}

  /** The replica of the master listening on `masterPort` (with `replicas` 1). */
  replicaOf(masterPort: number): PrivateRedis {
    const r = this.replicaNodes.get(masterPort);
    if (r === undefined) throw new Error(`no replica of the master on ${masterPort}`);
    return r;
  }

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
      const { node, bus, tlsPort } = await this.startNode();
      if (tlsPort !== undefined) this.tlsPorts.push(tlsPort);
      this.nodes.push(node);
      this.busPorts.push(bus);
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
      if (this.replicas === 1) await this.addReplicas(admins);
    } finally {
      for (const a of admins) a.disconnect();
    }
  }

  /** Starts one cluster-enabled node (not yet part of the cluster). */
  private async startNode(): Promise<{ node: PrivateRedis; bus: number; tlsPort: number | undefined }> {
    const port = await freePort();
    const bus = await freePort();
    const auth = this.password === undefined ? [] : ['--masterauth', this.password];
    const tls = this.tls ? [...tlsServerArgs(await freePort()), '--tls-cluster', 'yes', '--tls-replication', 'yes'] : [];
    // A replica's full sync goes to the temporary folder, at once (no wait for more replicas).
    const args = ['--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, `nodes-${port}.conf`), '--cluster-port', String(bus), '--dir', this.dir, '--repl-diskless-sync-delay', '0', ...auth, ...tls];
    const node = new PrivateRedis(port, args, { ...(this.password === undefined ? {} : { password: this.password }) });
    await node.start();
    return { node, bus, tlsPort: this.tls ? Number(tls[1]) : undefined };
  }

  /**
   * Starts one replica per master, joins it to the cluster and makes it replicate its master;
   * polls until every master counts its replica online (deadline 30 s).
   */
  private async addReplicas(admins: Redis[]): Promise<void> {
    const first = admins[0] as Redis;
    const started: { replica: PrivateRedis; admin: Redis; masterId: string; master: Redis }[] = [];
    try {
      for (let i = 0; i < this.size; i++) {
        const { node, bus } = await this.startNode();
        const master = this.nodes[i] as PrivateRedis;
        this.replicaNodes.set(master.port, node);
        const admin = new Redis(node.port, '127.0.0.1', { maxRetriesPerRequest: 1, password: this.password });
        started.push({ replica: node, admin, masterId: String(await admins[i]?.call('CLUSTER', 'MYID')), master: admins[i] as Redis });
        await first.call('CLUSTER', 'MEET', '127.0.0.1', String(node.port), String(bus));
      }
      // A node can replicate a master only once it knows it (the gossip after MEET).
      await pollUntil('the replicas did not join the cluster', async () => {
        const known = await Promise.all(started.map((s) => s.admin.call('CLUSTER', 'NODES') as Promise<string>));
        return known.every((nodes, i) => nodes.includes(started[i]?.masterId ?? '?'));
      });
      for (const s of started) await s.admin.call('CLUSTER', 'REPLICATE', s.masterId);
      await pollUntil('the replicas did not link to their masters', async () => {
        const infos = await Promise.all(started.map((s) => s.master.info('replication')));
        return infos.every((info) => /slave0:.*state=online/.test(info));
      });
      // Every node, replicas included, must see the whole cluster up before it is used (a node
      // still learning of the new ones can answer CLUSTERDOWN for a moment).
      await pollUntil('the cluster did not settle with its replicas', async () => {
        const infos = await Promise.all([...admins, ...started.map((s) => s.admin)].map((a) => a.call('CLUSTER', 'INFO') as Promise<string>));
        return infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${this.size * 2}`));
      });
    } finally {
      for (const s of started) s.admin.disconnect();
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
    for (const r of this.replicaNodes.values()) r.resume();
    await Promise.all([...this.nodes, ...this.replicaNodes.values()].map((n) => n.kill()));
    if (this.dir !== '') rmSync(this.dir, { recursive: true, force: true });
  }
}
