/**
 * Agent liveness: while a job serves a room, it says so in Redis every second
 * ({@link AgentLiveness.keepAlive}); the token service finds the agents whose beats stopped
 * ({@link AgentLiveness.reap}): a worker SIGKILLed, a machine gone. livekit-server itself keeps a
 * dead agent participant in the room until its ICE timeout (about 20 s, not configurable), so a
 * participant whose worker crashed would sit in silence that long; with the beats the service
 * removes the dead agent and sends a new one within a few seconds.
 *
 * A lapsed beat is only a suspicion: an agent is reported dead once it has stayed lapsed for
 * `confirmMs` after a reaper first saw it lapsed. So a Redis that was out of reach for everyone
 * (the beats could not be written either) reports nobody when it comes back: every live job
 * beats again within a second and clears its suspicion. Times are Redis's own (`TIME`), so the
 * machines' clocks do not matter.
 *
 * Redis schema (`P` = the configurable prefix, `H` = the first 128 bits of the SHA-256 of the agent
 * name, base64url; both keys share the `{l.H}` hash tag, one Cluster slot, which matches none of
 * the other stores' SCAN patterns):
 *
 * | key            | type | holds                                                                 | TTL |
 * |----------------|------|-----------------------------------------------------------------------|-----|
 * | `P{l.H}`       | zset | member `JSON [room, agent participant identity]`, score = the beat's deadline (Redis ms; once a reaper took it, when it is taken again) | {@link LIVENESS_KEEP_MS} from the last beat |
 * | `P{l.H}:susp`  | hash | member → when a reaper first saw it lapsed (Redis ms)                  | the same |
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { hashedKey } from './keys.js';
import { createBoundedClient, type ClientTarget } from './redis_connection.js';
import { REDIS_NOW_LUA } from './redis_scripts.js';

/** How long a beat holds by default, ms; a job beats every quarter of it. */
export const DEFAULT_LIVENESS_TTL_MS = 4_000;
/** How long a lapsed agent stays suspected before it counts as dead, ms (see the module comment). */
export const DEFAULT_LIVENESS_CONFIRM_MS = 3_000;
/**
 * A lapsed agent taken by a reaper is taken again after this, ms, unless the reaper took it off
 * the list (see {@link AgentLiveness.reap}).
 */
export const DEFAULT_LIVENESS_LOOK_AGAIN_MS = 15_000;
/** The keys live this long after the last beat of any agent of the name, ms. */
export const LIVENESS_KEEP_MS = 10 * 60_000;
/** At most this many lapsed agents taken per reap. */
const REAP_LIMIT = 100;
/**
 * A job leaving on purpose tries this many times, a beat apart, to take its entry off the list:
 * an entry left there lapses, and a reaper would take the agent for a crashed one and send
 * another into the room it left. All the tries end well within the beat's TTL and the
 * confirmation time, before any reaper can take the entry.
 */
export const LEAVE_ATTEMPTS = 3;

/** KEYS[1] beats, KEYS[2] suspects; ARGV[1] member, ARGV[2] beat TTL (ms), ARGV[3] keys' TTL (ms). */
const BEAT_LUA = `${REDIS_NOW_LUA}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1`;

/** KEYS[1] beats, KEYS[2] suspects; ARGV[1] member. */
const LEAVE_LUA = `redis.call('HDEL', KEYS[2], ARGV[1]) return redis.call('ZREM', KEYS[1], ARGV[1])`;

/**
 * KEYS[1] beats, KEYS[2] suspects; ARGV[1] confirm (ms), ARGV[2] limit. Marks newly lapsed
 * members suspected (keeping the first time), then takes and returns the suspects lapsed for at
 * least ARGV[1] that no beat has cleared: only one caller gets each. A taken member stays on the
 * list with its deadline moved ARGV[3] ms ahead, until the taker takes it off
 * ({@link AgentLiveness.leave}): if the taker dies first, or leaves it there, it is taken again then.
 */
const REAP_LUA = `${REDIS_NOW_LUA}
local confirm = tonumber(ARGV[1])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('HSETNX', KEYS[2], m, now)
end
local dead = {}
local s = redis.call('HGETALL', KEYS[2])
for i = 1, #s, 2 do
  if now - tonumber(s[i + 1]) >= confirm then
    redis.call('HDEL', KEYS[2], s[i])
    local score = redis.call('ZSCORE', KEYS[1], s[i])
    if score and tonumber(score) <= now then
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), s[i])
      dead[#dead + 1] = s[i]
    end
  end
end
return dead`;

type LivenessClient = (Redis | Cluster) & {
  pvaLive_beat(beats: string, suspects: string, member: string, ttlMs: string, keepMs: string): Promise<number>;
  pvaLive_leave(beats: string, suspects: string, member: string): Promise<number>;
  pvaLive_reap(beats: string, suspects: string, confirmMs: string, limit: string, lookAgainMs: string): Promise<string[]>;
};

/** The two keys of `agentName`'s beats (see the module comment). */
export function livenessKeys(prefix: string, agentName: string): { beats: string; suspects: string } {
  const tag = hashedKey(prefix, 'l', agentName);
  return { beats: tag, suspects: `${tag}:susp` };
}

/** `JSON [room, identity]`, or null for anything else. */
function parseMember(m: string): LapsedAgent | null {
  try {
    const v: unknown = JSON.parse(m);
    return Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' ? { room: v[0], identity: v[1] } : null;
  } catch {
    return null;
  }
}

/** An agent participant whose job stopped beating. */
export interface LapsedAgent {
  room: string;
  /** The agent's participant identity in the room. */
  identity: string;
}

/** A job's beats for one room, until {@link KeptAlive.stop}. */
export interface KeptAlive {
  /**
   * Stops beating and takes the agent off the list: it leaves on purpose, so there is nothing to
   * find. With `lapse` the entry is left to lapse instead, so that a reaper then looks at the
   * room: for an agent that leaves with its call still going (its worker shutting down), which
   * should be replaced even where no LiveKit webhook reports it.
   */
  stop(opts?: { lapse?: boolean }): Promise<void>;
}

export interface AgentLivenessOptions {
  /** A client to use (not closed here); else one is created for `target`. */
  client?: Redis | Cluster;
  target?: ClientTarget;
  /** @default 'pva:' */
  prefix?: string;
  logger?: Logger;
}

/** Agent beats in Redis, written by the jobs and reaped by the token service (see the module comment). */
export class AgentLiveness {
  private readonly client: LivenessClient;
  private readonly ownsClient: boolean;
  private readonly prefix: string;

  constructor(private readonly o: AgentLivenessOptions) {
    const prefix = o.prefix ?? 'pva:';
    hashedKey(prefix, 'l', ''); // checks the prefix
    if (o.client === undefined && o.target === undefined) throw new Error('AgentLiveness needs a client or a target');
    this.prefix = prefix;
    const client = o.client ?? createBoundedClient(o.target!, {}, { lazyConnect: true });
    this.ownsClient = o.client === undefined;
    if (this.ownsClient) client.on('error', () => {}); // surfaced per command as a rejection
    const c = client as LivenessClient;
    if (typeof c.pvaLive_beat !== 'function') {
      client.defineCommand('pvaLive_beat', { numberOfKeys: 2, lua: BEAT_LUA });
      client.defineCommand('pvaLive_leave', { numberOfKeys: 2, lua: LEAVE_LUA });
      client.defineCommand('pvaLive_reap', { numberOfKeys: 2, lua: REAP_LUA });
    }
    this.client = c;
  }

  /**
   * Opens the connection now (in `prewarm`), so that a job's first beat does not set one up inside
   * its command bound: one that took longer would fail that beat, and the job would say it is cut
   * off from Redis when it is only starting.
   */
  async connect(): Promise<void> {
    if (this.client.status === 'wait') await this.client.connect();
  }

  /** Says that `identity` serves `room` for `agentName` for the next `ttlMs`. */
  async beat(agentName: string, room: string, identity: string, ttlMs: number): Promise<void> {
    if (!(Number.isInteger(ttlMs) && ttlMs > 0)) throw new RangeError('ttlMs must be a positive integer');
    const { beats, suspects } = livenessKeys(this.prefix, agentName);
    await this.client.pvaLive_beat(beats, suspects, JSON.stringify([room, identity]), String(ttlMs), String(Math.max(LIVENESS_KEEP_MS, ttlMs * 10)));
  }

  /** Takes `identity` in `room` off the list: it leaves on purpose, or was replaced. */
  async leave(agentName: string, room: string, identity: string): Promise<void> {
    const { beats, suspects } = livenessKeys(this.prefix, agentName);
    await this.client.pvaLive_leave(beats, suspects, JSON.stringify([room, identity]));
  }

  /**
   * Beats now and every `ttlMs / 4` until stopped. A beat that fails is logged once per failing
   * stretch and tried again at the next tick (a Redis out of reach for a while is not a death:
   * see the module comment); `onFailing(true)` after each failed beat, `onFailing(false)` once
   * one succeeds again (the agent says it is alive another way: `ATTR_AGENT_ALIVE`).
   */
  keepAlive(agentName: string, room: string, identity: string, ttlMs: number, onFailing?: (failing: boolean) => void): KeptAlive {
    let failing = false;
    let stopped = false;
    const tick = () => {
      if (stopped) return;
      this.beat(agentName, room, identity, ttlMs).then(
        () => {
          if (failing) {
            this.o.logger?.info({}, 'agent liveness beats written again');
            onFailing?.(false);
          }
          failing = false;
        },
        (err: unknown) => {
          if (!failing) this.o.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'agent liveness beat failed: retrying every beat');
          failing = true;
          if (!stopped) onFailing?.(true);
        },
      );
    };
    tick();
    const beatEveryMs = Math.max(100, Math.floor(ttlMs / 4));
    const timer = setInterval(tick, beatEveryMs);
    timer.unref();
    return {
      stop: async ({ lapse = false } = {}) => {
        if (stopped) return;
        stopped = true;
        clearInterval(timer);
        if (lapse) return;
        await this.leaveRetrying(agentName, room, identity, beatEveryMs);
      },
    };
  }

  /**
   * {@link leave}, tried again `everyMs` later when it fails (a dropped connection, a Redis
   * restarting), {@link LEAVE_ATTEMPTS} times in all; never throws. Should every try fail, the
   * entry lapses and a reaper finds the agent gone from its room (and sends another to whoever is
   * still there: the one case where leaving on purpose can bring an agent back).
   */
  private async leaveRetrying(agentName: string, room: string, identity: string, everyMs: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.leave(agentName, room, identity);
        if (attempt > 1) this.o.logger?.info({ attempt }, 'agent liveness entry removed');
        return;
      } catch (err) {
        const last = attempt >= LEAVE_ATTEMPTS;
        this.o.logger?.warn({ attempt, err: err instanceof Error ? err.message : String(err) }, last ? 'agent liveness entry not removed' : 'agent liveness entry not removed: trying again');
        if (last) return;
        await delay(everyMs);
      }
    }
  }

  /**
   * The agents of `agentName` whose beats lapsed at least `confirmMs` ago, each returned to one
   * caller only (see the module comment). Each stays on the list, taken for `lookAgainMs`: the
   * caller takes it off with {@link leave} once it has dealt with it (removed, found gone), or
   * leaves it there to be taken again then (an agent that says it is alive); a caller that dies
   * first leaves it to another. Entries that are not `[room, identity]` are dropped.
   */
  async reap(agentName: string, confirmMs: number = DEFAULT_LIVENESS_CONFIRM_MS, lookAgainMs: number = DEFAULT_LIVENESS_LOOK_AGAIN_MS): Promise<LapsedAgent[]> {
    if (!(Number.isInteger(lookAgainMs) && lookAgainMs > 0)) throw new RangeError('lookAgainMs must be a positive integer');
    const { beats, suspects } = livenessKeys(this.prefix, agentName);
    const members = await this.client.pvaLive_reap(beats, suspects, String(confirmMs), String(REAP_LIMIT), String(lookAgainMs));
    const lapsed: LapsedAgent[] = [];
    for (const m of members) {
      const agent = parseMember(m);
      if (agent !== null) lapsed.push(agent);
      else await this.client.pvaLive_leave(beats, suspects, m); // not one of ours: dropped
    }
    return lapsed;
  }

  /** Closes the client if it was created here. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.client.quit().catch(() => this.client.disconnect());
  }
}
