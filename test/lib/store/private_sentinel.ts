import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { infoField } from '../../../lib/store/eviction.js';
import type { RedisSentinelTarget, SentinelAddress } from '../../../lib/store/redis_connection.js';
import { PrivateRedis, TEST_TLS_DIR, freePort, tlsServerArgs } from './private_redis.js';

/** Options of {@link PrivateSentinel}. */
export interface PrivateSentinelOptions {
  /** Number of sentinels (quorum: a majority of them). @default 3 */
  sentinelCount?: 1 | 2 | 3;
  /** The master group name. @default 'pva-test' */
  masterName?: string;
  /** `requirepass` of the master and the replica (and `masterauth` of the replica). @default none */
  password?: string;
  /** `requirepass` of the sentinels. @default none */
  sentinelPassword?: string;
  /** A sentinel deems an unanswering master down after this long, ms. @default 1_000 */
  downAfterMs?: number;
  /** Sentinel `failover-timeout`: a stalled failover is retried after twice this, ms. @default 2_000 */
  failoverTimeoutMs?: number;
  /**
   * Every process also listens for TLS (the test certificates); replication and the sentinels'
   * links run over TLS, and the sentinels monitor and announce the TLS ports, so a client must
   * use TLS throughout ({@link target} carries the test CA). The plaintext ports stay for the
   * test's own checks. @default false
   */
  tls?: boolean;
}

const READY_DEADLINE_MS = 20_000;
const POLL_STEP_MS = 50;

/** Polls `cond` until it returns true; throws `what` (with the last state seen) after `deadlineMs`. */
async function pollUntil(what: string, deadlineMs: number, cond: () => Promise<boolean | string>): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last = '';
  for (;;) {
    try {
      const r = await cond();
      if (r === true) return;
      last = r === false ? '' : r;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > end) throw new Error(`${what} before the deadline${last === '' ? '' : ` (last: ${last})`}`);
    await new Promise((r) => setTimeout(r, POLL_STEP_MS));
  }
}

/** Sends one command on a short-lived connection (no retries: a dead server fails at once). */
async function ask(port: number, password: string | undefined, ...args: string[]): Promise<unknown> {
  const c = new Redis(port, '127.0.0.1', { lazyConnect: true, enableReadyCheck: false, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 500, commandTimeout: 1_000, ...(password === undefined ? {} : { password }) });
  c.on('error', () => {});
  try {
    await c.connect();
    return await c.call(args[0] as string, ...args.slice(1));
  } finally {
    c.disconnect();
  }
}

/**
 * Command bound, ms, for the stores a test opens through the sentinels only to write or read its
 * data: generous, as it covers the Sentinel look-up and the connection of a new store on a machine
 * busy with the whole suite (2 s was exceeded once on a 2-core VM with heavy steal time). A test
 * about timeouts sets its own.
 */
export const SENTINEL_FIXTURE_TIMEOUT_MS = 10_000;

/** A flat `[k1, v1, k2, v2 …]` Sentinel reply as a record. */
function fields(reply: unknown): Record<string, string> {
  const flat = Array.isArray(reply) ? (reply as unknown[]) : [];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

/**
 * A private Sentinel deployment on loopback ports: a non-persistent master, one replica
 * (`--replicaof`) and 1–3 sentinels (`redis-server <conf> --sentinel`) with short timeouts, so
 * a failover takes seconds. The sentinels' config files live in a temporary folder that
 * {@link stop} removes.
 */
export class PrivateSentinel {
  /** The master group name the sentinels monitor. */
  readonly masterName: string;
  private readonly count: number;
  private readonly opts: PrivateSentinelOptions;
  private master: PrivateRedis | null = null;
  private replica: PrivateRedis | null = null;
  private readonly sentinels: PrivateRedis[] = [];
  /** With `tls`: the TLS port of each process, by its plaintext port. */
  private readonly tlsPorts = new Map<number, number>();
  private dir = '';

  constructor(opts: PrivateSentinelOptions = {}) {
    this.opts = opts;
    this.count = opts.sentinelCount ?? 3;
    this.masterName = opts.masterName ?? 'pva-test';
  }

  /** Port of the master the deployment started with. */
  get masterPort(): number {
    if (this.master === null) throw new Error('not started');
    return this.master.port;
  }

  /** Port of the replica the deployment started with (the master after a failover). */
  get replicaPort(): number {
    if (this.replica === null) throw new Error('not started');
    return this.replica.port;
  }

  /** The port clients reach the process on plaintext `port` at: its TLS port with `tls`. */
  private clientPort(port: number): number {
    return this.tlsPorts.get(port) ?? port;
  }

  /** Loopback addresses of the sentinels (their TLS ports with `tls`). */
  get sentinelAddresses(): SentinelAddress[] {
    return this.sentinels.map((s) => ({ host: '127.0.0.1', port: this.clientPort(s.port) }));
  }

  /** What a client needs to reach this deployment's master (passwords included). */
  get target(): RedisSentinelTarget {
    return {
      sentinels: this.sentinelAddresses,
      name: this.masterName,
      ...(this.opts.password === undefined ? {} : { password: this.opts.password }),
      ...(this.opts.sentinelPassword === undefined ? {} : { sentinelPassword: this.opts.sentinelPassword }),
      ...(this.opts.tls === true ? { tls: { ca: readFileSync(join(TEST_TLS_DIR, 'ca.crt'), 'utf8') } } : {}),
    };
  }

  /** Starts a process on a new port, listening for TLS too with `tls` (`tlsArgs` then apply). */
  private async startProcess(args: (tlsPort: number | undefined) => string[], opts: { leadingArgs?: string[]; password?: string | undefined }): Promise<PrivateRedis> {
    const port = await freePort();
    const tlsPort = this.opts.tls === true ? await freePort() : undefined;
    if (tlsPort !== undefined) this.tlsPorts.set(port, tlsPort);
    const p = new PrivateRedis(port, args(tlsPort), { ...(opts.leadingArgs === undefined ? {} : { leadingArgs: opts.leadingArgs }), ...(opts.password === undefined ? {} : { password: opts.password }) });
    await p.start();
    return p;
  }

  /**
   * Starts master, replica, then the sentinels, and polls until the replica is linked and every
   * sentinel reports the master, the replica and all the other sentinels (deadline 20 s).
   * On failure everything started so far is stopped.
   */
  async start(): Promise<void> {
    try {
      await this.startAll();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startAll(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'pva-sentinel-'));
    const pw = this.opts.password;
    // On both data nodes (either may be the master): a replica writes the master's snapshot to
    // its --dir (the temporary folder, not the working directory); the master sends it at once
    // (Redis waits 5 s for more replicas by default); masterauth, as the old master may come
    // back as a replica.
    const dataArgs = ['--dir', this.dir, '--repl-diskless-sync-delay', '0', ...(pw === undefined ? [] : ['--masterauth', pw])];
    // Over TLS a data node replicates over TLS, and a replica announces its TLS port (to its
    // master, whose INFO the sentinels read), so the sentinels name TLS ports only.
    const tlsData = (tlsPort: number | undefined) => (tlsPort === undefined ? [] : [...tlsServerArgs(tlsPort), '--tls-replication', 'yes', '--replica-announce-port', String(tlsPort)]);
    this.master = await this.startProcess((t) => [...dataArgs, ...tlsData(t)], { password: pw });
    const masterAt = String(this.clientPort(this.master.port));
    this.replica = await this.startProcess((t) => [...dataArgs, ...tlsData(t), '--replicaof', '127.0.0.1', masterAt], { password: pw });
    // Sentinels find the replica in the master's INFO: link it first, so the first INFO lists it.
    await pollUntil('the replica did not link to the master', READY_DEADLINE_MS, async () => {
      const info = String(await ask(this.replicaPort, pw, 'INFO', 'replication'));
      return infoField(info, 'master_link_status') === 'up' || `master_link_status:${infoField(info, 'master_link_status')}`;
    });
    for (let i = 0; i < this.count; i++) {
      const conf = join(this.dir, `sentinel-${i}.conf`);
      const sentinel = await this.startProcess(
        (tlsPort) => {
          writeFileSync(conf, this.sentinelConfig(tlsPort), { mode: 0o600 });
          return ['--dir', this.dir];
        },
        { leadingArgs: [conf, '--sentinel'], password: this.opts.sentinelPassword },
      );
      this.sentinels.push(sentinel);
    }
    await pollUntil('the sentinels did not see the whole deployment', READY_DEADLINE_MS, async () => {
      for (const s of this.sentinels) {
        const m = fields(await ask(s.port, this.opts.sentinelPassword, 'SENTINEL', 'MASTER', this.masterName));
        const replicas = (await ask(s.port, this.opts.sentinelPassword, 'SENTINEL', 'REPLICAS', this.masterName)) as unknown[];
        const linked = replicas.map(fields).some((r) => r.port === String(this.clientPort(this.replicaPort)) && r.flags === 'slave' && r['master-link-status'] === 'ok');
        const ok = m.flags === 'master' && m.port === String(this.clientPort(this.masterPort)) && linked && m['num-other-sentinels'] === String(this.count - 1);
        if (!ok) return `sentinel ${s.port}: flags=${m.flags} replicaLinked=${linked} others=${m['num-other-sentinels']}`;
      }
      return true;
    });
  }

  /** A sentinel's configuration; with `tlsPort` it listens, monitors and announces over TLS. */
  private sentinelConfig(tlsPort: number | undefined): string {
    const name = this.masterName;
    const quorum = Math.floor(this.count / 2) + 1;
    const tls =
      tlsPort === undefined
        ? []
        : [
            `tls-port ${tlsPort}`,
            `tls-cert-file ${join(TEST_TLS_DIR, 'server.crt')}`,
            `tls-key-file ${join(TEST_TLS_DIR, 'server.key')}`,
            `tls-ca-cert-file ${join(TEST_TLS_DIR, 'ca.crt')}`,
            'tls-auth-clients no',
            'tls-replication yes',
            'sentinel announce-ip 127.0.0.1',
            `sentinel announce-port ${tlsPort}`,
          ];
    const lines = [
      ...tls,
      `sentinel monitor ${name} 127.0.0.1 ${this.clientPort(this.masterPort)} ${quorum}`,
      `sentinel down-after-milliseconds ${name} ${this.opts.downAfterMs ?? 1_000}`,
      `sentinel failover-timeout ${name} ${this.opts.failoverTimeoutMs ?? 2_000}`,
      `sentinel parallel-syncs ${name} 1`,
    ];
    if (this.opts.password !== undefined) lines.push(`sentinel auth-pass ${name} ${this.opts.password}`);
    return `${lines.join('\n')}\n`;
  }

  /**
   * Polls until the replica has every write the master had acknowledged when this was called
   * (its replication offset caught up), so killing the master loses none of them.
   */
  async awaitReplicated(deadlineMs = 5_000): Promise<void> {
    const pw = this.opts.password;
    const target = Number(infoField(String(await ask(this.masterPort, pw, 'INFO', 'replication')), 'master_repl_offset'));
    await pollUntil('the replica did not catch up', deadlineMs, async () => {
      const info = String(await ask(this.replicaPort, pw, 'INFO', 'replication'));
      return Number(infoField(info, 'slave_repl_offset')) >= target || `offset ${infoField(info, 'slave_repl_offset')} < ${target}`;
    });
  }

  /** SIGKILLs the master (no shutdown, no goodbye to the sentinels) and waits for it to exit. */
  async killMaster(): Promise<void> {
    await this.master?.kill();
  }

  /** Polls until every sentinel names the replica as the master and the replica says it is one. */
  async awaitPromotion(deadlineMs = 20_000): Promise<void> {
    await pollUntil('Sentinel did not promote the replica', deadlineMs, async () => {
      for (const s of this.sentinels) {
        const addr = (await ask(s.port, this.opts.sentinelPassword, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.masterName)) as string[];
        if (addr[1] !== String(this.clientPort(this.replicaPort))) return `sentinel ${s.port} names ${addr.join(':')}`;
      }
      const role = (await ask(this.replicaPort, this.opts.password, 'ROLE')) as unknown[];
      return role[0] === 'master' || `replica role ${String(role[0])}`;
    });
  }

  /** SIGKILLs every process, waits for them to exit, and removes the config files. */
  async stop(): Promise<void> {
    await Promise.all([this.master, this.replica, ...this.sentinels].map((p) => p?.kill()));
    if (this.dir !== '') rmSync(this.dir, { recursive: true, force: true });
    this.dir = '';
  }
}
