/**
 * Takeover notices over Redis pub/sub (DESIGN §3 "Ownership"): when the same identity arrives
 * in a second room, the newest arrival claims the session and announces it; the old owner's
 * job hears it and lets go. The lease and its fencing token remain the guarantee — a notice
 * that is lost (Redis down) only delays the old job: its next write fails with `lease_lost`.
 */
import { Redis } from 'ioredis';
import { silentLogger, type Logger } from '../logger.js';
import { KeyBuilder, type SessionKey } from './keys.js';
import { boundedRedisOptions } from './redis_session_store.js';
import { z } from 'zod';

const noticeSchema = z.object({ v: z.literal(1), owner: z.string(), fence: z.number().int().nonnegative() });

/** A takeover notice: who owns the session now, with which fencing token. */
export type TakeoverNotice = z.infer<typeof noticeSchema>;

/** Options of {@link TakeoverChannel}. */
export interface TakeoverChannelOptions {
  url: string;
  /** Key prefix (same as the session store's). @default 'pva:' */
  prefix?: string;
  /** Per-command bound, ms. @default 250 */
  commandTimeoutMs?: number;
  logger?: Logger;
}

/** Publishes and watches takeover notices. Creates (and closes) its own two connections. */
export class TakeoverChannel {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly keys: KeyBuilder;
  private readonly log: Logger;
  private readonly handlers = new Map<string, (n: TakeoverNotice) => void>();

  constructor(opts: TakeoverChannelOptions) {
    const base = boundedRedisOptions({ commandTimeoutMs: opts.commandTimeoutMs ?? 250 });
    this.pub = new Redis(opts.url, { ...base, lazyConnect: true });
    // A subscriber connection blocks in SUBSCRIBE: no command timeout on it.
    this.sub = new Redis(opts.url, { ...base, commandTimeout: undefined, lazyConnect: true });
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
        this.log.warn({ reason: 'invalid_notice' }, 'takeover notice rejected');
        return;
      }
      handler(notice.data);
    });
  }

  /**
   * Calls `onNotice` for every takeover announced on `key` from now on. Resolves once the
   * subscription is active, or rejects (the caller carries on: the lease still protects it).
   */
  async watch(key: SessionKey, onNotice: (n: TakeoverNotice) => void): Promise<void> {
    const channel = this.keys.takeoverChannel(key);
    this.handlers.set(channel, onNotice);
    await this.sub.subscribe(channel);
  }

  /** Announces that `owner` (fence `fence`) now owns `key`. Best effort; false when it failed. */
  async announce(key: SessionKey, owner: string, fence: number): Promise<boolean> {
    try {
      const notice: TakeoverNotice = { v: 1, owner, fence };
      await this.pub.publish(this.keys.takeoverChannel(key), JSON.stringify(notice));
      return true;
    } catch (err) {
      this.log.warn({ error: err instanceof Error ? err.name : 'unknown' }, 'takeover notice not sent');
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
