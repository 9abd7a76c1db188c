/**
 * Session notices over Redis pub/sub, one channel per identity (DESIGN §3 "Ownership"):
 * - `takeover`: the same identity arrived in another room; the newest arrival claimed the
 *   session and announces it, so the old owner's job lets go;
 * - `forget`: the identity was erased (kiosk logout, GDPR); a job still holding it in memory
 *   drops it, so nothing is written back.
 * The lease and its fencing token remain the guarantee: a lost notice (Redis down) only delays
 * the old job, whose next write fails with `lease_lost`.
 */
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import { silentLogger, type Logger } from '../logger.js';
import { KeyBuilder, type SessionKey } from './keys.js';
import { createBoundedClient, type RedisClusterTarget, type RedisSentinelTarget, type RedisTls } from './redis_connection.js';
import type { SessionStore } from './session_store.js';

const noticeSchema = z.discriminatedUnion('kind', [
  z.object({ v: z.literal(1), kind: z.literal('takeover'), agentName: z.string(), owner: z.string(), fence: z.number().int().nonnegative() }),
  z.object({ v: z.literal(1), kind: z.literal('forget') }),
]);

/** A notice about an identity's sessions. */
export type SessionNotice = z.infer<typeof noticeSchema>;

/** Options of {@link SessionNotices}. */
export interface SessionNoticesOptions {
  /** URL of the Redis to use; give this or `sentinel`. */
  url?: string;
  /** A Sentinel group to use instead of `url`; both connections follow the master through failovers. */
  sentinel?: RedisSentinelTarget;
  /** A Redis Cluster to use instead (a notice published on any node reaches every node's subscribers). */
  cluster?: RedisClusterTarget;
  /** TLS settings for a `rediss://` `url` (a private CA). */
  tls?: RedisTls;
  /** Key prefix (same as the session store's). @default 'pva:' */
  prefix?: string;
  /** Per-command bound, ms. @default 250 */
  commandTimeoutMs?: number;
  logger?: Logger;
}

/** Publishes and watches notices. Creates (and closes) its own two connections. */
export class SessionNotices {
  private readonly pub: Redis | Cluster;
  private readonly sub: Redis | Cluster;
  private readonly keys: KeyBuilder;
  private readonly log: Logger;
  private readonly handlers = new Map<string, (n: SessionNotice) => void>();

  /** @throws SessionError `config_invalid` without a `url`, a `sentinel` or a `cluster` (or with several). */
  constructor(opts: SessionNoticesOptions) {
    const bounds = { commandTimeoutMs: opts.commandTimeoutMs ?? 250 };
    this.pub = createBoundedClient(opts, bounds, { lazyConnect: true });
    // A subscriber connection waits in SUBSCRIBE: no command timeout on it.
    this.sub = createBoundedClient(opts, bounds, { commandTimeout: undefined, lazyConnect: true });
    this.keys = new KeyBuilder(opts.prefix ?? 'pva:');
    this.log = opts.logger ?? silentLogger;
    for (const c of [this.pub, this.sub]) c.on('error', () => {}); // reported through failed commands
    this.sub.on('message', (channel: string, message: string) => {
      const handler = this.handlers.get(channel);
      if (handler === undefined) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(message);
      } catch {
        parsed = undefined;
      }
      const notice = noticeSchema.safeParse(parsed);
      if (!notice.success) {
        this.log.warn({ reason: 'invalid_notice' }, 'session notice rejected');
        return;
      }
      handler(notice.data);
    });
  }

  /** Opens both connections now (e.g. in `prewarm`), so the first watch costs one round trip. */
  async connect(): Promise<void> {
    await Promise.all([this.pub, this.sub].map((c) => (c.status === 'wait' ? c.connect() : undefined)));
  }

  /**
   * Calls `onNotice` for every notice about `identity` from now on. Resolves once subscribed,
   * or rejects (the caller carries on: the lease still protects it).
   */
  async watch(identity: string, onNotice: (n: SessionNotice) => void): Promise<void> {
    const channel = this.keys.noticeChannel(identity);
    this.handlers.set(channel, onNotice);
    await this.sub.subscribe(channel);
  }

  /** Announces that `owner` (fence `fence`) now owns `key`. Best effort; false when it failed. */
  announceTakeover(key: SessionKey, owner: string, fence: number): Promise<boolean> {
    return this.publish(key.identity, { v: 1, kind: 'takeover', agentName: key.agentName, owner, fence });
  }

  /** Announces that `identity` was erased. Best effort; false when it failed. */
  announceForget(identity: string): Promise<boolean> {
    return this.publish(identity, { v: 1, kind: 'forget' });
  }

  private async publish(identity: string, notice: SessionNotice): Promise<boolean> {
    try {
      await this.pub.publish(this.keys.noticeChannel(identity), JSON.stringify(notice));
      return true;
    } catch (err) {
      this.log.warn({ kind: notice.kind, error: err instanceof Error ? err.name : 'unknown' }, 'session notice not sent');
      return false;
    }
  }

  /** Closes both connections. */
  async close(): Promise<void> {
    this.handlers.clear();
    this.pub.disconnect();
    this.sub.disconnect();
  }
}

/**
 * Erases every trace of `identity` (sessions, profiles, archive) and tells any job still
 * holding it to drop its in-memory copy, so nothing is written back. Used by the admin CLI and
 * the token service's "Forget me".
 */
export async function forgetIdentity(store: SessionStore, notices: SessionNotices | undefined, identity: string): Promise<{ sessionKeysErased: number }> {
  const erased = await store.forget(identity);
  await notices?.announceForget(identity);
  return erased;
}
