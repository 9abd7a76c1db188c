/**
 * The rooms to check for a missing agent, and when (`agent_webhooks.ts`: a person joined; if no
 * agent has arrived by then, one is sent). In this process's memory ({@link MemoryRoomRechecks}),
 * or in Redis ({@link RedisRoomRechecks}), where they outlive a restart of the service process
 * that scheduled them, and where every service process sees the same ones: a webhook that drops
 * a room's check (our agent arrived, the room finished) may reach another process than the one
 * that scheduled it, and each due check is taken by one process only.
 *
 * Redis schema (`P` = the configurable prefix, `H` = the first 128 bits of the SHA-256 of the agent
 * name, base64url; the `{j.…}` hash tag matches none of the other stores' SCAN patterns):
 *
 * | key      | type | holds                                             | TTL |
 * |----------|------|---------------------------------------------------|-----|
 * | `P{j.H}` | zset | room name, score = when to check it (Redis ms)    | {@link RECHECKS_KEEP_MS} from the last scheduled |
 */
import type { Cluster, Redis } from 'ioredis';
import { hashedKey } from '../../lib/store/keys.js';
import { REDIS_NOW_LUA } from '../../lib/store/redis_scripts.js';

/** The checks of an agent name live this long after the last one was scheduled, ms. */
export const RECHECKS_KEEP_MS = 60 * 60_000;
/** At most this many due checks taken at a time. */
const TAKE_LIMIT = 100;

/** Rooms to check for their agent, per agent name. */
export interface RoomRechecks {
  /** Checks `room` in `delayMs` (again from now if it was already waiting). */
  schedule(room: string, delayMs: number): Promise<void>;
  /** Drops `room`'s waiting check; true when there was one. */
  drop(room: string): Promise<boolean>;
  /** The rooms whose check is due, each returned once (to one service process), no longer waiting. */
  takeDue(): Promise<string[]>;
  /** Drops what this process holds (the memory form; Redis keeps its checks for the other processes). */
  close(): void;
}

/** {@link RoomRechecks} in this process's memory (one service process, or no Redis). */
export class MemoryRoomRechecks implements RoomRechecks {
  private readonly due = new Map<string, number>();

  constructor(private readonly nowMs: () => number) {}

  schedule(room: string, delayMs: number): Promise<void> {
    this.due.set(room, this.nowMs() + delayMs);
    return Promise.resolve();
  }

  drop(room: string): Promise<boolean> {
    return Promise.resolve(this.due.delete(room));
  }

  takeDue(): Promise<string[]> {
    const now = this.nowMs();
    const rooms: string[] = [];
    for (const [room, at] of this.due) {
      if (at > now) continue;
      this.due.delete(room);
      rooms.push(room);
    }
    return Promise.resolve(rooms);
  }

  close(): void {
    this.due.clear();
  }
}

/** KEYS[1] the checks; ARGV[1] room, ARGV[2] delay (ms), ARGV[3] the key's TTL (ms). */
const SCHEDULE_LUA = `${REDIS_NOW_LUA}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

/** KEYS[1] the checks; ARGV[1] limit. Takes and returns the due rooms. */
const TAKE_LUA = `${REDIS_NOW_LUA}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, room in ipairs(due) do redis.call('ZREM', KEYS[1], room) end
return due`;

type RecheckClient = (Redis | Cluster) & {
  pvaRecheck_schedule(key: string, room: string, delayMs: string, keepMs: string): Promise<number>;
  pvaRecheck_take(key: string, limit: string): Promise<string[]>;
};

/** The checks key of `agentName` (see the module comment). */
export function recheckKey(prefix: string, agentName: string): string {
  return hashedKey(prefix, 'j', agentName);
}

/** {@link RoomRechecks} in Redis, shared by every service process (see the module comment). */
export class RedisRoomRechecks implements RoomRechecks {
  private readonly client: RecheckClient;
  private readonly key: string;

  /** @param client a client of the service's Redis (not closed here) */
  constructor(client: Redis | Cluster, prefix: string, agentName: string) {
    this.key = recheckKey(prefix, agentName); // checks the prefix
    const c = client as RecheckClient;
    if (typeof c.pvaRecheck_schedule !== 'function') {
      client.defineCommand('pvaRecheck_schedule', { numberOfKeys: 1, lua: SCHEDULE_LUA });
      client.defineCommand('pvaRecheck_take', { numberOfKeys: 1, lua: TAKE_LUA });
    }
    this.client = c;
  }

  async schedule(room: string, delayMs: number): Promise<void> {
    await this.client.pvaRecheck_schedule(this.key, room, String(Math.max(0, Math.round(delayMs))), String(RECHECKS_KEEP_MS));
  }

  async drop(room: string): Promise<boolean> {
    return (await this.client.zrem(this.key, room)) > 0;
  }

  takeDue(): Promise<string[]> {
    return this.client.pvaRecheck_take(this.key, String(TAKE_LIMIT));
  }

  close(): void {}
}
