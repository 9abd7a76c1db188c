import { systemClock } from '../clock.js';
import type { Clock } from '../clock.js';
import { ConflictError } from '../errors.js';
import type { Profile, SessionRecord, Turn } from '../session/record.js';
import { PayloadCodec, forkArchiveId, keyOf, resolveStoreOptions } from './codec.js';
import type { ResolvedStoreOptions } from './codec.js';
import { ExpiryQueue } from './expiry_queue.js';
import { sessionKeyId } from './keys.js';
import type { SessionKey } from './keys.js';
import { restoreWritesSession, restoreYields } from './session_store.js';
import type {
  ArchivedSession,
  ClaimMode,
  ClaimResult,
  LeaseToken,
  RecordRead,
  RestoreOutcome,
  SessionPage,
  SessionSnapshot,
  SessionStore,
  StoreOptions,
} from './session_store.js';

/**
 * In-process {@link SessionStore} with the Redis adapter's semantics: values stored as
 * serialised (optionally sealed) strings, TTLs per part, compare-and-set on the version, a
 * claim with a strictly increasing fencing token. Expiry is lazy: every call first pops what is
 * due from an {@link ExpiryQueue} (O(expired)); there are no per-entry timers and no scans.
 */

type Slot = 'session' | 'profile' | 'archive';

interface Meta {
  version: number;
  fence: number;
  owner: string | null;
  expMs: number;
  /** Arrival of the claim that took the lease, epoch ms (0: unknown). */
  claimedAtMs: number;
}

interface Entry {
  key: SessionKey;
  rec: string | null;
  turns: string[];
  meta: Meta | null;
  profile: string | null;
  archive: Map<string, { atMs: number; payload: string }>;
  /**
   * Session id → turn payloads said after its last save, kept when its record expired (a
   * crashed owner's); null until there is one (most sessions never have one: an empty Map is
   * ~190 bytes of heap per session).
   */
  archiveTail: Map<string, string[]> | null;
  expiresAtMs: Record<Slot, number>;
  queuedAtMs: Record<Slot, number | null>;
}

/** Options of {@link MemorySessionStore}. */
export interface MemorySessionStoreOptions extends StoreOptions {
  /** Time source of the TTLs. @default systemClock */
  clock?: Clock;
}

/** See the module comment. */
export class MemorySessionStore implements SessionStore {
  private readonly entries = new Map<string, Entry>();
  private readonly byIdentity = new Map<string, Set<string>>();
  private readonly queue = new ExpiryQueue<Slot>();
  /**
   * Identity → when it was erased and until when that is remembered (sessionTtlMs): a restore
   * of an earlier claim is refused meanwhile, as `RedisSessionStore.restore` does.
   */
  private readonly gone = new Map<string, { atMs: number; untilMs: number }>();
  private readonly clock: Clock;
  private readonly opts: ResolvedStoreOptions;
  private readonly codec: PayloadCodec;

  constructor(opts: MemorySessionStoreOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.opts = resolveStoreOptions(opts);
    this.codec = new PayloadCodec(this.opts.cipher);
  }

  /** Session keys held (live or with profile / archive); expired ones are purged first. */
  get size(): number {
    this.purgeExpired();
    return this.entries.size;
  }

  /** Pops everything due; returns how many parts expired. Called by every operation. */
  purgeExpired(): number {
    const nowMs = this.clock.nowMs();
    let expired = 0;
    for (let item = this.queue.popDue(nowMs); item !== undefined; item = this.queue.popDue(nowMs)) {
      const e = this.entries.get(item.id);
      if (e === undefined || e.queuedAtMs[item.slot] !== item.atMs) continue;
      e.queuedAtMs[item.slot] = null;
      const at = e.expiresAtMs[item.slot];
      if (at > nowMs) {
        this.schedule(item.id, e, item.slot);
        continue;
      }
      expired++;
      if (item.slot === 'session') {
        this.keepTail(e);
        e.rec = null;
        e.turns = [];
        e.meta = null;
      } else if (item.slot === 'profile') e.profile = null;
      else {
        e.archive.clear();
        e.archiveTail = null;
      }
      this.dropIfEmpty(item.id, e);
    }
    return expired;
  }

  /**
   * Turns still pending when a session expires were said after its last save by an owner that
   * never saved again (it crashed): they stay with the newest archive entry (the last session
   * saved), as in the Redis store.
   */
  private keepTail(e: Entry): void {
    if (e.turns.length === 0) return;
    let newest: string | undefined;
    let newestAtMs = Number.NEGATIVE_INFINITY;
    for (const [sid, v] of e.archive) {
      if (v.atMs >= newestAtMs) {
        newest = sid;
        newestAtMs = v.atMs;
      }
    }
    if (newest === undefined) return;
    e.archiveTail ??= new Map();
    e.archiveTail.set(newest, [...(e.archiveTail.get(newest) ?? []), ...e.turns]);
  }

  private schedule(id: string, e: Entry, slot: Slot): void {
    const queued = e.queuedAtMs[slot];
    // A queued item due no later than the entry re-queues itself when popped; an earlier
    // expiry (a shortened TTL) needs its own item, the later one is then stale and skipped.
    if (queued !== null && queued <= e.expiresAtMs[slot]) return;
    const atMs = e.expiresAtMs[slot];
    e.queuedAtMs[slot] = atMs;
    this.queue.push({ atMs, id, slot });
  }

  private touch(id: string, e: Entry, slot: Slot, ttlMs: number): void {
    e.expiresAtMs[slot] = this.clock.nowMs() + ttlMs;
    this.schedule(id, e, slot);
  }

  private dropIfEmpty(id: string, e: Entry): void {
    if (e.meta !== null || e.rec !== null || e.profile !== null || e.archive.size > 0) return;
    this.entries.delete(id);
    const set = this.byIdentity.get(e.key.identity);
    set?.delete(id);
    if (set !== undefined && set.size === 0) this.byIdentity.delete(e.key.identity);
  }

  private get(key: SessionKey): [string, Entry | undefined] {
    this.purgeExpired();
    const id = sessionKeyId(key);
    return [id, this.entries.get(id)];
  }

  private getOrCreate(key: SessionKey): [string, Entry] {
    const [id, found] = this.get(key);
    if (found !== undefined) return [id, found];
    const e: Entry = {
      key: { agentName: key.agentName, identity: key.identity },
      rec: null,
      turns: [],
      meta: null,
      profile: null,
      archive: new Map(),
      archiveTail: null,
      expiresAtMs: { session: 0, profile: 0, archive: 0 },
      queuedAtMs: { session: null, profile: null, archive: null },
    };
    this.entries.set(id, e);
    let set = this.byIdentity.get(key.identity);
    if (set === undefined) this.byIdentity.set(key.identity, (set = new Set()));
    set.add(id);
    return [id, e];
  }

  private read(e: Entry): RecordRead {
    const meta = e.meta;
    const r = this.codec.decodeRecord(e.key, e.rec, e.turns, meta?.version ?? 0, this.opts.historyLimits);
    if (r.status !== 'found' || meta === null) return r;
    const owner = meta.owner === null ? null : { ownerId: meta.owner, fence: meta.fence, leaseExpiresAtMs: meta.expMs };
    return { status: 'found', record: { ...r.record, owner } };
  }

  private checkLease(e: Entry | undefined, lease: LeaseToken): Meta {
    const meta = e?.meta ?? null;
    if (meta === null || meta.owner !== lease.owner || meta.fence !== lease.fence) {
      throw new ConflictError('lease_lost', 'the session lease is held by a newer claim');
    }
    return meta;
  }

  async resumeAndClaim(key: SessionKey, owner: string, nowMs: number, leaseMs: number, mode: ClaimMode = 'takeover'): Promise<ClaimResult> {
    const [id, e] = this.getOrCreate(key);
    const live = e.meta !== null && e.meta.owner !== null && e.meta.expMs > nowMs ? e.meta : null;
    if (mode === 'exclusive' && live !== null && live.owner !== owner) {
      this.dropIfEmpty(id, e);
      return { status: 'busy', owner: live.owner ?? '', leaseExpiresAtMs: live.expMs };
    }
    const previousOwner = live !== null && live.owner !== owner ? live.owner : null;
    const meta: Meta = e.meta ?? { version: 0, fence: 0, owner: null, expMs: 0, claimedAtMs: 0 };
    meta.fence += 1;
    meta.owner = owner;
    meta.expMs = nowMs + leaseMs;
    meta.claimedAtMs = nowMs;
    e.meta = meta;
    if (mode === 'set_aside' && e.rec !== null) {
      // The record could not be read: its archive copy keeps it, the pending turns join that copy's tail.
      this.keepTail(e);
      e.rec = null;
      e.turns = [];
    }
    const record = this.read(e);
    this.touch(id, e, 'session', Math.max(this.opts.sessionTtlMs, leaseMs));
    return {
      status: 'claimed',
      lease: { owner, fence: meta.fence },
      record,
      profile: this.codec.decodeProfile(e.key, e.profile),
      previousOwner,
      version: meta.version,
    };
  }

  async appendTurn(key: SessionKey, turn: Turn, lease: LeaseToken): Promise<number> {
    const [id, e] = this.get(key);
    const meta = this.checkLease(e, lease);
    const entry = e as Entry;
    entry.turns.push(this.codec.encodeTurn(key, turn));
    if (entry.turns.length > this.opts.maxPendingTurns) entry.turns.splice(0, entry.turns.length - this.opts.maxPendingTurns);
    meta.version += 1;
    this.touch(id, entry, 'session', this.opts.sessionTtlMs);
    return meta.version;
  }

  private write(record: SessionRecord, expectedVersion: number, lease: LeaseToken, mode: 'save' | 'suspend' | 'end', nowMs: number): number {
    const key = keyOf(record);
    const [id, e] = this.get(key);
    const meta = this.checkLease(e, lease);
    const entry = e as Entry;
    if (meta.version !== expectedVersion) throw new ConflictError('version_conflict', `expected version ${expectedVersion}, store has ${meta.version}`);
    const version = expectedVersion + 1;
    const payload = this.codec.encodeRecord({ ...record, version, owner: null });
    meta.version = version;
    entry.turns = [];
    entry.rec = mode === 'end' ? null : payload;
    if (mode !== 'save') {
      meta.owner = null;
      meta.expMs = 0;
    }
    // Every write refreshes the archive copy: a session whose owner crashed is still archived.
    this.archive(id, entry, record.sessionId, nowMs, payload);
    this.touch(id, entry, 'session', this.opts.sessionTtlMs);
    entry.profile = this.codec.profilePayloadFor(record);
    this.touch(id, entry, 'profile', this.opts.profileTtlMs);
    return version;
  }

  private archive(id: string, e: Entry, sessionId: string, nowMs: number, payload: string): void {
    e.archive.delete(sessionId);
    e.archive.set(sessionId, { atMs: nowMs, payload });
    this.pruneArchive(e, nowMs);
    this.touch(id, e, 'archive', this.opts.archiveTtlMs);
  }

  /** Drops archived sessions past retention at `nowMs`, then the oldest beyond `archiveMaxCount` (as `prune_archive.lua`). */
  private pruneArchive(e: Entry, nowMs: number): void {
    const cutoffMs = nowMs - this.opts.archiveTtlMs;
    const byAge = [...e.archive.entries()].sort((a, b) => a[1].atMs - b[1].atMs);
    let excess = e.archive.size - this.opts.archiveMaxCount;
    for (const [sid, v] of byAge) {
      if (v.atMs < cutoffMs || excess > 0) {
        e.archive.delete(sid);
        e.archiveTail?.delete(sid);
        excess--;
      }
    }
  }

  async save(record: SessionRecord, expectedVersion: number, lease: LeaseToken): Promise<number> {
    return this.write(record, expectedVersion, lease, 'save', record.lastSeenAt);
  }

  async suspend(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number> {
    return this.write(record, expectedVersion, lease, 'suspend', nowMs);
  }

  async end(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number> {
    return this.write(record, expectedVersion, lease, 'end', nowMs);
  }

  async release(key: SessionKey, lease: LeaseToken): Promise<boolean> {
    const [, e] = this.get(key);
    const meta = e?.meta ?? null;
    if (meta === null || meta.owner !== lease.owner || meta.fence !== lease.fence) return false;
    meta.owner = null;
    meta.expMs = 0;
    return true;
  }

  async renewLease(key: SessionKey, lease: LeaseToken, nowMs: number, leaseMs: number): Promise<boolean> {
    const [id, e] = this.get(key);
    const meta = e?.meta ?? null;
    if (e === undefined || meta === null || meta.owner !== lease.owner || meta.fence !== lease.fence) return false;
    meta.expMs = nowMs + leaseMs;
    this.touch(id, e, 'session', Math.max(this.opts.sessionTtlMs, leaseMs));
    return true;
  }

  async readRecord(key: SessionKey): Promise<RecordRead> {
    const [, e] = this.get(key);
    return e === undefined ? { status: 'missing' } : this.read(e);
  }

  async readProfile(key: SessionKey): Promise<Profile | null> {
    const [, e] = this.get(key);
    return e === undefined ? null : this.codec.decodeProfile(e.key, e.profile);
  }

  async readArchive(key: SessionKey, nowMs: number): Promise<ArchivedSession[]> {
    const [, e] = this.get(key);
    if (e === undefined) return [];
    const cutoffMs = nowMs - this.opts.archiveTtlMs;
    return this.archived(e).filter((a) => a.archivedAtMs >= cutoffMs);
  }

  /** The archive of `e`, newest first, tails merged in. */
  private archived(e: Entry): ArchivedSession[] {
    return [...e.archive.entries()]
      .sort((a, b) => b[1].atMs - a[1].atMs)
      .map(([sid, v]) => this.codec.decodeArchived(e.key, sid, v.atMs, v.payload, e.archiveTail?.get(sid), this.opts.historyLimits));
  }

  async listSessions(opts: { cursor?: string | null; count?: number } = {}): Promise<SessionPage> {
    this.purgeExpired();
    const start = Number(opts.cursor ?? '0') || 0;
    const count = Math.max(1, opts.count ?? 100);
    const live = [...this.entries.values()].filter((e) => e.meta !== null);
    const page = live.slice(start, start + count).map((e) => ({ ...e.key }));
    return { items: page, cursor: start + count < live.length ? String(start + count) : null };
  }

  async forget(identity: string): Promise<{ sessionKeysErased: number }> {
    this.purgeExpired();
    const ids = [...(this.byIdentity.get(identity) ?? [])];
    const nowMs = this.clock.nowMs();
    for (const [who, g] of this.gone) if (g.untilMs <= nowMs) this.gone.delete(who);
    this.gone.set(identity, { atMs: nowMs, untilMs: nowMs + this.opts.sessionTtlMs });
    for (const id of ids) this.entries.delete(id);
    this.byIdentity.delete(identity);
    return { sessionKeysErased: ids.length };
  }

  async exportIdentity(identity: string): Promise<SessionSnapshot[]> {
    this.purgeExpired();
    const keys = [...(this.byIdentity.get(identity) ?? [])].map((id) => this.entries.get(id)?.key).filter((k): k is SessionKey => k !== undefined);
    const snapshots = await Promise.all(keys.map((k) => this.exportSession(k)));
    return snapshots.filter((s): s is SessionSnapshot => s !== null);
  }

  async exportSession(key: SessionKey): Promise<SessionSnapshot | null> {
    const [, e] = this.get(key);
    if (e === undefined) return null;
    const read = this.read(e);
    const meta = e.meta;
    const { profile, problem: profileProblem } = this.codec.readProfile(e.key, e.profile);
    return {
      key: { ...e.key },
      version: meta?.version ?? 0,
      lease: meta === null ? null : { owner: meta.owner, fence: meta.fence, expiresAtMs: meta.expMs, claimedAtMs: meta.claimedAtMs },
      record: read.status === 'found' ? { ...read.record, owner: null } : null,
      ...(read.status === 'invalid' ? { recordProblem: read.why } : {}),
      profile,
      ...(profileProblem === undefined ? {} : { profileProblem }),
      archive: this.archived(e),
    };
  }

  async restore(snapshot: SessionSnapshot, writer: string, nowMs: number): Promise<RestoreOutcome> {
    const claimedAtMs = snapshot.lease?.claimedAtMs ?? 0;
    const gone = this.gone.get(snapshot.key.identity);
    if (gone !== undefined && gone.untilMs > this.clock.nowMs() && claimedAtMs < gone.atMs) return { status: 'skipped', why: 'forgotten' };
    const [id, e] = this.getOrCreate(snapshot.key);
    let fence = snapshot.lease?.fence ?? 0;
    let version = snapshot.version;
    const mine = e.meta !== null && writer !== '' && e.meta.owner === writer;
    if (e.meta !== null) {
      const live = e.meta.owner !== null && e.meta.expMs > nowMs;
      if (!mine && restoreYields(e.meta, { fence, claimedAtMs }, live)) {
        // The session stays the newer arrival's; the snapshot's conversations are kept in the archive.
        const refused = snapshot.record === null ? [] : [{ sessionId: forkArchiveId(snapshot.record.sessionId, writer), archivedAtMs: nowMs, record: snapshot.record }];
        this.mergeArchive(id, e, [...snapshot.archive, ...refused], nowMs);
        this.dropIfEmpty(id, e);
        return { status: 'skipped', why: 'newer_arrival' };
      }
      fence = Math.max(fence, e.meta.fence);
      if (e.meta.version >= version) version = e.meta.version + 1;
    }
    if (restoreWritesSession(snapshot)) {
      // Pending turns that are not the writer's own were said after another owner's last save
      // (a crashed or cut-off job's): kept with the newest archived session, as on expiry.
      if (!mine || e.rec === null) this.keepTail(e);
      e.meta = { version, fence, owner: snapshot.lease?.owner ?? null, expMs: snapshot.lease?.expiresAtMs ?? 0, claimedAtMs };
      e.rec = snapshot.record === null ? null : this.codec.encodeRecord({ ...snapshot.record, version, owner: null });
      e.turns = [];
      this.touch(id, e, 'session', this.opts.sessionTtlMs);
    }
    if (snapshot.profile !== null) {
      e.profile = this.codec.encodeProfile(snapshot.profile);
      this.touch(id, e, 'profile', this.opts.profileTtlMs);
    }
    this.mergeArchive(id, e, snapshot.archive, nowMs);
    this.dropIfEmpty(id, e);
    return { status: 'restored', version, fence };
  }

  /** Merges archive entries into `e` (the newest copy of each session id wins), then bounds the archive as a save does. */
  private mergeArchive(id: string, e: Entry, entries: readonly ArchivedSession[], nowMs: number): void {
    let merged = 0;
    for (const a of entries) {
      if (a.record === null) continue;
      const have = e.archive.get(a.sessionId);
      if (have !== undefined && have.atMs >= a.archivedAtMs) continue;
      e.archive.set(a.sessionId, { atMs: a.archivedAtMs, payload: this.codec.encodeRecord(a.record) });
      merged++;
    }
    if (merged === 0) return;
    this.pruneArchive(e, nowMs);
    this.touch(id, e, 'archive', this.opts.archiveTtlMs);
  }

  /** Every session key held (live, profile-only or archive-only), for tier replay. */
  keys(): SessionKey[] {
    this.purgeExpired();
    return [...this.entries.values()].map((e) => ({ ...e.key }));
  }

  async ping(): Promise<void> {}

  async dispose(): Promise<void> {}

  /**
   * Test hook: replaces the stored record payload of `key` with `mutate(payload)` (to show that
   * tampered data is refused). Not for production use.
   * @internal
   */
  unsafeMutateStoredRecord(key: SessionKey, mutate: (payload: string) => string): boolean {
    const [, e] = this.get(key);
    if (e?.rec === null || e === undefined) return false;
    e.rec = mutate(e.rec as string);
    return true;
  }
}
