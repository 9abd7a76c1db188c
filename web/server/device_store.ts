/**
 * Where the token service keeps what it issued: per identity, a device record (the hash of its
 * secret, never the secret) and the rooms it was given (so a page may reuse only its own room).
 *
 * Redis schema (`P` = configurable prefix, `I` = base64url of the identity; one hash tag per
 * identity so both keys share a Cluster slot; `{d.…}` never matches the session store's
 * `{s.…}` / `{i.…}` patterns):
 *
 * | key            | type   | holds                                          | TTL                                  |
 * |----------------|--------|------------------------------------------------|--------------------------------------|
 * | `P{d.I}:device`| string | `{"v":1,"secretHash","createdAtMs"}`           | `deviceTtlMs`, renewed on every use  |
 * | `P{d.I}:rooms` | zset   | room name → reusable until (epoch ms)          | `deviceTtlMs`, renewed on every issue|
 *
 * No read-modify-write: creation is `SET … NX PX`, the room set is changed with `ZADD` and
 * trimmed with `ZREMRANGEBYSCORE` in one `MULTI`.
 */
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import { encodeKeyPart, escapeGlob } from '../../lib/store/keys.js';
import { createBoundedClient, type RedisClusterTarget, type RedisSentinelTarget, type RedisTls } from '../../lib/store/redis_connection.js';
import type { ReplicaAcks } from '../../lib/store/redis_env.js';
import { resolveReplicaAcks, waitForReplicas } from '../../lib/store/replica_acks.js';

/** What the service stores per identity it issued. */
export interface DeviceRecord {
  v: 1;
  /** Hex SHA-256 of the device secret. */
  secretHash: string;
  /** When the identity was issued, epoch ms. */
  createdAtMs: number;
}

const deviceRecordSchema = z.object({
  v: z.literal(1),
  secretHash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAtMs: z.number().int().nonnegative(),
});

/** The device store port. */
export interface DeviceStore {
  /** Stores a new identity's record; false when the identity already exists (nothing changed). */
  create(identity: string, record: DeviceRecord, ttlMs: number): Promise<boolean>;
  /** The record, or null when unknown, expired or unreadable. */
  get(identity: string): Promise<DeviceRecord | null>;
  /**
   * Records that `room` was issued to `identity` and may be reused until `reusableUntilMs`;
   * drops rooms whose window passed; renews both keys' TTL to `ttlMs`.
   */
  addRoom(identity: string, room: string, nowMs: number, reusableUntilMs: number, ttlMs: number): Promise<void>;
  /** Whether `room` was issued to `identity` and is still reusable at `nowMs`. */
  hasRoom(identity: string, room: string, nowMs: number): Promise<boolean>;
  /** Every room issued to `identity` (reusable or not, while the key lives). */
  rooms(identity: string): Promise<string[]>;
  /** Erases the identity's record and rooms. */
  delete(identity: string): Promise<void>;
  /** Resolves when the store answers. */
  ping(): Promise<void>;
  /** Closes what the store created. */
  close(): Promise<void>;
}

function parseRecord(raw: string | null): DeviceRecord | null {
  if (raw === null) return null;
  try {
    const r = deviceRecordSchema.safeParse(JSON.parse(raw));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Keys of the device store. */
export class DeviceKeys {
  constructor(readonly prefix: string) {
    if (/[{}]/.test(prefix)) throw new Error('key prefix must not contain { or }');
  }
  /** The device record key. */
  device(identity: string): string {
    return `${this.prefix}{d.${encodeKeyPart(identity)}}:device`;
  }
  /** The issued-rooms key. */
  rooms(identity: string): string {
    return `${this.prefix}{d.${encodeKeyPart(identity)}}:rooms`;
  }
  /** SCAN pattern of every device-store key under the prefix. */
  scanPattern(): string {
    return `${escapeGlob(this.prefix)}{d.*}:*`;
  }
}

/** Options of {@link RedisDeviceStore}. */
export interface RedisDeviceStoreOptions {
  /** A client to use (not closed by {@link RedisDeviceStore.close}). */
  client?: Redis | Cluster;
  /** Or a URL to connect to (the store owns that client). */
  url?: string;
  /** Or a Sentinel group whose master to use, instead of `url` (the store owns that client; it follows failovers). */
  sentinel?: RedisSentinelTarget;
  /** Or a Redis Cluster (the store owns that client; a device's keys share one slot). */
  cluster?: RedisClusterTarget;
  /** TLS settings for a `rediss://` `url` (a private CA). */
  tls?: RedisTls;
  /** @default 'pva:' */
  prefix?: string;
  /**
   * Replicas that must acknowledge each write (a new identity, its rooms, its deletion) before
   * it counts as done, and the longest wait for them, ms (`REDIS_REPLICA_ACKS`,
   * `REDIS_REPLICA_ACK_TIMEOUT_MS`; see `lib/store/replica_acks.ts`): an unacknowledged write
   * rejects (`store_unavailable`). @default 0 (off)
   */
  replicaAcks?: number;
  /** @default 100 */
  replicaAckTimeoutMs?: number;
}

/** {@link DeviceStore} on Redis. */
export class RedisDeviceStore implements DeviceStore {
  readonly client: Redis | Cluster;
  readonly keys: DeviceKeys;
  private readonly ownsClient: boolean;
  private readonly acks: ReplicaAcks;

  constructor(opts: RedisDeviceStoreOptions) {
    if (opts.client === undefined && opts.url === undefined && opts.sentinel === undefined && opts.cluster === undefined) {
      throw new Error('RedisDeviceStore needs a client, a url, a Sentinel target or a Cluster target');
    }
    this.acks = resolveReplicaAcks(opts);
    this.client = opts.client ?? createBoundedClient(opts, { commandTimeoutMs: 1_000 }, { lazyConnect: false });
    this.ownsClient = opts.client === undefined;
    if (this.ownsClient) this.client.on('error', () => {}); // surfaced per command as a rejection
    this.keys = new DeviceKeys(opts.prefix ?? 'pva:');
  }

  async create(identity: string, record: DeviceRecord, ttlMs: number): Promise<boolean> {
    const key = this.keys.device(identity);
    const r = await this.client.set(key, JSON.stringify(record), 'PX', ttlMs, 'NX');
    if (r !== 'OK') return false;
    try {
      await waitForReplicas(this.client, this.acks, [key]);
    } catch (err) {
      // Not handed out: nobody will ever hold its secret, so it is not left behind either.
      await this.client.unlink(key).catch(() => {});
      throw err;
    }
    return true;
  }

  async get(identity: string): Promise<DeviceRecord | null> {
    return parseRecord(await this.client.get(this.keys.device(identity)));
  }

  async addRoom(identity: string, room: string, nowMs: number, reusableUntilMs: number, ttlMs: number): Promise<void> {
    const rooms = this.keys.rooms(identity);
    const res = await this.client
      .multi()
      .zadd(rooms, String(reusableUntilMs), room)
      .zremrangebyscore(rooms, '-inf', `(${nowMs}`)
      .pexpire(rooms, ttlMs)
      .pexpire(this.keys.device(identity), ttlMs)
      .exec();
    const failed = res?.find(([err]) => err !== null);
    if (res === null || failed !== undefined) throw failed?.[0] ?? new Error('device store transaction aborted');
    await waitForReplicas(this.client, this.acks, [rooms]);
  }

  async hasRoom(identity: string, room: string, nowMs: number): Promise<boolean> {
    const score = await this.client.zscore(this.keys.rooms(identity), room);
    return score !== null && Number(score) >= nowMs;
  }

  async rooms(identity: string): Promise<string[]> {
    return this.client.zrange(this.keys.rooms(identity), '0', '-1');
  }

  async delete(identity: string): Promise<void> {
    await this.client.unlink(this.keys.device(identity), this.keys.rooms(identity));
    await waitForReplicas(this.client, this.acks, [this.keys.device(identity)]);
  }

  async ping(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.disconnect();
  }
}

interface MemoryEntry {
  record: DeviceRecord;
  expiresAtMs: number;
  rooms: Map<string, number>;
}

/**
 * {@link DeviceStore} in memory, for a single service process without Redis. Expired entries
 * are dropped when touched and by a sweep on creation (bounded work: `maxSweep` per call).
 */
export class MemoryDeviceStore implements DeviceStore {
  private readonly entries = new Map<string, MemoryEntry>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  private live(identity: string): MemoryEntry | undefined {
    const e = this.entries.get(identity);
    if (e !== undefined && e.expiresAtMs <= this.nowMs()) {
      this.entries.delete(identity);
      return undefined;
    }
    return e;
  }

  private sweep(maxSweep = 16): void {
    const now = this.nowMs();
    let n = 0;
    // Map iteration is insertion order: the oldest entries come first.
    for (const [id, e] of this.entries) {
      if (n++ >= maxSweep) break;
      if (e.expiresAtMs <= now) this.entries.delete(id);
    }
  }

  async create(identity: string, record: DeviceRecord, ttlMs: number): Promise<boolean> {
    this.sweep();
    if (this.live(identity) !== undefined) return false;
    this.entries.set(identity, { record: { ...record }, expiresAtMs: this.nowMs() + ttlMs, rooms: new Map() });
    return true;
  }

  async get(identity: string): Promise<DeviceRecord | null> {
    const e = this.live(identity);
    return e === undefined ? null : { ...e.record };
  }

  async addRoom(identity: string, room: string, nowMs: number, reusableUntilMs: number, ttlMs: number): Promise<void> {
    const e = this.live(identity);
    if (e === undefined) return;
    e.rooms.set(room, reusableUntilMs);
    for (const [r, until] of e.rooms) if (until < nowMs) e.rooms.delete(r);
    e.expiresAtMs = this.nowMs() + ttlMs;
    // Keep insertion order ≈ expiry order for the sweep.
    this.entries.delete(identity);
    this.entries.set(identity, e);
  }

  async hasRoom(identity: string, room: string, nowMs: number): Promise<boolean> {
    const until = this.live(identity)?.rooms.get(room);
    return until !== undefined && until >= nowMs;
  }

  async rooms(identity: string): Promise<string[]> {
    return [...(this.live(identity)?.rooms.keys() ?? [])];
  }

  async delete(identity: string): Promise<void> {
    this.entries.delete(identity);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.entries.clear();
  }
}
