/**
 * The token service's rate limits: a fixed window per key (a client address, or an identity),
 * starting at the key's first event, with a refund for a request that failed before doing
 * anything. In this process's memory ({@link MemoryRateLimiter}), or in Redis
 * ({@link RedisRateLimiter}), where every service process behind a load balancer shares one count
 * instead of each granting the whole limit.
 *
 * Redis schema (`P` = the configurable prefix, `N` = the limit's name, `H` = the first 128 bits of
 * the SHA-256 of the key, base64url: no address or identity appears in a key name; the `{r.…}`
 * hash tag matches none of the session store's or device store's SCAN patterns):
 *
 * | key              | type | holds                                                      | TTL                 |
 * |------------------|------|------------------------------------------------------------|---------------------|
 * | `P{r.N.H}`       | hash | `start` (window start, epoch ms), `n` (events counted in it) | the window, from its start |
 */
import type { Cluster, Redis } from 'ioredis';
import { hashedKey } from '../../lib/store/keys.js';
import { WindowLimiter } from './window_limiter.js';

/** A rate limit. */
export interface RateLimiter {
  /**
   * Counts one event for `key` at `nowMs` (epoch ms); false once the key is over the limit in
   * this window.
   * @throws when the shared store does not answer (nothing was counted)
   */
  allow(key: string, nowMs: number): Promise<boolean>;
  /**
   * Gives back the event {@link allow} counted for `key` at `countedAtMs`, when the request it
   * allowed failed before doing anything; nothing happens once that event's window is over.
   * Never throws: a refund that cannot be made leaves the count as it is.
   */
  refund(key: string, countedAtMs: number): Promise<void>;
}

/** {@link RateLimiter} in this process's memory (a single service process, or no Redis). */
export class MemoryRateLimiter implements RateLimiter {
  private readonly window: WindowLimiter;

  constructor(perWindow: number, windowMs: number, maxKeys?: number) {
    this.window = new WindowLimiter(perWindow, windowMs, maxKeys);
  }

  allow(key: string, nowMs: number): Promise<boolean> {
    return Promise.resolve(this.window.allow(key, nowMs));
  }

  refund(key: string, countedAtMs: number): Promise<void> {
    this.window.refund(key, countedAtMs);
    return Promise.resolve();
  }
}

/**
 * Counts one event. KEYS[1] the counter hash; ARGV[1] now (epoch ms); ARGV[2] the window (ms).
 * A key with no window, or whose window ended, starts a new one at now; returns the events counted
 * in the window, this one included.
 */
const COUNT_LUA = `
local now = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local start = tonumber(redis.call('HGET', KEYS[1], 'start') or '-1')
if start < 0 or now - start >= win then
  redis.call('HSET', KEYS[1], 'start', ARGV[1], 'n', 1)
  redis.call('PEXPIRE', KEYS[1], win)
  return 1
end
return redis.call('HINCRBY', KEYS[1], 'n', 1)
`;

/**
 * Gives one event back. KEYS[1] the counter hash; ARGV[1] when it was counted (epoch ms); ARGV[2]
 * the window (ms). Only when that moment is in the key's current window and its count is above 0;
 * returns the count after.
 */
const REFUND_LUA = `
local counted = tonumber(ARGV[1])
local start = tonumber(redis.call('HGET', KEYS[1], 'start') or '-1')
if start < 0 or counted < start or counted - start >= tonumber(ARGV[2]) then return -1 end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n <= 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], 'n', -1)
`;

/** The client with the two scripts defined (namespaced: a shared client cannot clash). */
type RateClient = (Redis | Cluster) & {
  pvaRate_count(key: string, nowMs: string, windowMs: string): Promise<number>;
  pvaRate_refund(key: string, countedAtMs: string, windowMs: string): Promise<number>;
};

function withScripts(client: Redis | Cluster): RateClient {
  const c = client as RateClient;
  if (typeof c.pvaRate_count !== 'function') {
    client.defineCommand('pvaRate_count', { numberOfKeys: 1, lua: COUNT_LUA });
    client.defineCommand('pvaRate_refund', { numberOfKeys: 1, lua: REFUND_LUA });
  }
  return c;
}

/** The counter key of `key` under the limit `name` (see the module comment). */
export function rateKey(prefix: string, name: string, key: string): string {
  if (!/^[a-z_]+$/.test(name)) throw new Error('a rate limit name is lower-case letters and _');
  return hashedKey(prefix, `r.${name}`, key);
}

/** {@link RateLimiter} in Redis, shared by every service process (see the module comment). */
export class RedisRateLimiter implements RateLimiter {
  private readonly client: RateClient;

  /**
   * @param client a client of the service's Redis (not closed here)
   * @param prefix the key prefix
   * @param name the limit's name, in its keys (`identity`, `room`, `export`)
   */
  constructor(
    client: Redis | Cluster,
    private readonly prefix: string,
    private readonly name: string,
    private readonly perWindow: number,
    private readonly windowMs: number,
  ) {
    rateKey(prefix, name, ''); // checks the name and the prefix
    this.client = withScripts(client);
  }

  async allow(key: string, nowMs: number): Promise<boolean> {
    const n = await this.client.pvaRate_count(rateKey(this.prefix, this.name, key), String(nowMs), String(this.windowMs));
    return n <= this.perWindow;
  }

  async refund(key: string, countedAtMs: number): Promise<void> {
    await this.client.pvaRate_refund(rateKey(this.prefix, this.name, key), String(countedAtMs), String(this.windowMs)).catch(() => undefined);
  }
}
