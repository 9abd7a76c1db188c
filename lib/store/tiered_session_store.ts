import { systemClock } from '../clock.js';
import type { Clock } from '../clock.js';
import { ConflictError, SessionError } from '../errors.js';
import { silentLogger } from '../logger.js';
import type { Logger } from '../logger.js';
import type { Profile, SessionRecord, Turn } from '../session/record.js';
import { keyOf } from './codec.js';
import { sessionKeyId } from './keys.js';
import type { SessionKey } from './keys.js';
import { bounded, isUnavailable } from './bounded.js';
import { MemorySessionStore } from './memory_session_store.js';
import { ReplayQueue, dropSharedStateOf, withCountedVisits } from './replay_queue.js';
import { StoreHealth } from './store_health.js';
import type { StoreHealthEvent } from './store_health.js';
import type { SharedState } from './replay_queue.js';
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
} from './session_store.js';

/**
 * What the agent uses (DESIGN §4): the in-process memory tier first, a shared store (Redis)
 * behind it. While the shared store fails it keeps working from memory, reports itself
 * degraded, and once a health probe succeeds replays the full state of every key it holds
 * (so a Redis that restarted empty gets everything back), then the writes made meanwhile.
 *
 * The caller's lease is the memory tier's; the store keeps the shared tier's lease and version
 * per key itself, so the two fence sequences never have to agree.
 */

/** Options of {@link TieredSessionStore}. */
export interface TieredSessionStoreOptions {
  /** The shared tier; null runs memory only (never degraded). */
  shared: SessionStore | null;
  /** The local tier. @default new MemorySessionStore({ clock }) */
  memory?: MemorySessionStore;
  /**
   * Bound of every call on the greeting path (claim, profile read); after it the answer comes
   * from memory (`storeAvailable: false` when memory has no record), ms.
   * @default 500
   */
  greetingBoundMs?: number;
  /** Bound of a shared write before it is left to replay, ms. @default 1_000 */
  writeBoundMs?: number;
  /** Health probe period while degraded, ms (timer is unref'd). @default 1_000 */
  probeIntervalMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default silentLogger */
  logger?: Logger;
}

export type { StoreHealthEvent } from './store_health.js';

/** See the module comment. */
export class TieredSessionStore implements SessionStore {
  /** The local tier. */
  readonly memory: MemorySessionStore;
  private readonly shared: SessionStore | null;
  private readonly greetingBoundMs: number;
  private readonly writeBoundMs: number;
  private readonly probeIntervalMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sharedState = new Map<string, SharedState>();
  private readonly owed = new ReplayQueue();
  private readonly health: StoreHealth;
  private probeTimer: NodeJS.Timeout | null = null;
  private replaying: Promise<void> | null = null;
  private disposed = false;

  constructor(opts: TieredSessionStoreOptions) {
    this.shared = opts.shared;
    this.clock = opts.clock ?? systemClock;
    this.memory = opts.memory ?? new MemorySessionStore({ clock: this.clock });
    this.greetingBoundMs = opts.greetingBoundMs ?? 500;
    this.writeBoundMs = opts.writeBoundMs ?? 1_000;
    this.probeIntervalMs = opts.probeIntervalMs ?? 1_000;
    this.log = opts.logger ?? silentLogger;
    this.health = new StoreHealth(this.log);
  }

  /** True while the shared tier is failing and writes wait for replay. */
  get isDegraded(): boolean {
    return this.health.isDegraded;
  }

  /** Keys with writes the shared tier has not seen yet, plus pending forgets. */
  get pendingReplayCount(): number {
    return this.owed.size;
  }

  /** Subscribes to health changes (told at once while degraded: see {@link StoreHealth}); returns the unsubscribe function. */
  onHealth(listener: (ev: StoreHealthEvent) => void): () => void {
    return this.health.subscribe(listener);
  }

  private markDegraded(reason: string): void {
    if (this.disposed) return;
    if (!this.health.isDegraded) {
      // Everything memory holds is replayed: the shared store may have lost it all.
      for (const k of this.memory.keys()) this.owed.markDirty(k);
      this.log.warn({ reason }, 'shared session store degraded');
      this.health.degraded(reason, this.clock.nowMs());
    }
    if (this.probeTimer === null) {
      this.probeTimer = setInterval(() => void this.tryRecover(), this.probeIntervalMs);
      this.probeTimer.unref();
    }
  }

  private markDirty(key: SessionKey): void {
    this.owed.markDirty(key);
  }

  /** Handles a failed shared call: unavailability degrades (and leaves the key to replay); other errors propagate. */
  private sharedFailed(key: SessionKey | null, err: unknown): void {
    if (isUnavailable(err)) {
      if (key !== null) this.markDirty(key);
      this.markDegraded(err instanceof SessionError ? err.code : 'unknown');
      return;
    }
    if (err instanceof ConflictError && err.code === 'version_conflict' && key !== null) {
      // Our own earlier write landed after its timeout: replay rewrites the key from memory.
      this.markDirty(key);
      this.markDegraded('version_drift');
      return;
    }
    throw err;
  }

  /** Runs a shared call unless degraded; reports whether it ran. */
  private async mirror(key: SessionKey | null, boundMs: number, call: (shared: SessionStore) => Promise<void>): Promise<void> {
    if (this.shared === null) return;
    if (this.health.isDegraded) {
      if (key !== null) this.markDirty(key);
      return;
    }
    try {
      await bounded(call(this.shared), boundMs);
    } catch (err) {
      if (key !== null && err instanceof ConflictError && err.code === 'lease_lost' && (await this.sharedLostState(this.shared, key))) {
        // The shared store forgot the lease (e.g. Redis restarted empty): replay restores it.
        this.markDirty(key);
        this.markDegraded('shared_state_lost');
        return;
      }
      this.sharedFailed(key, err);
    }
  }

  /** True when the shared store holds no live lease for `key` (its state was lost), or cannot say. */
  private async sharedLostState(shared: SessionStore, key: SessionKey): Promise<boolean> {
    try {
      const snap = await bounded(shared.exportSession(key), this.writeBoundMs);
      return snap?.lease == null || snap.lease.owner === null;
    } catch {
      return true;
    }
  }

  async resumeAndClaim(key: SessionKey, owner: string, nowMs: number, leaseMs: number, mode: ClaimMode = 'takeover'): Promise<ClaimResult> {
    const id = sessionKeyId(key);
    if (this.shared !== null && !this.health.isDegraded) {
      const pending = this.shared.resumeAndClaim(key, owner, nowMs, leaseMs, mode);
      try {
        const res = await bounded(pending, this.greetingBoundMs);
        if (res.status === 'busy') return res;
        this.sharedState.set(id, { owner, lease: res.lease, version: res.version, ...countedOf(this.sharedState.get(id), owner) });
        const mirrored = await this.memory.restore(
          {
            key,
            version: res.version,
            lease: { owner, fence: res.lease.fence, expiresAtMs: nowMs + leaseMs, claimedAtMs: nowMs },
            record: res.record.status === 'found' ? res.record.record : null,
            profile: res.profile,
            archive: [],
          },
          owner,
          nowMs,
        );
        const fence = mirrored.status === 'restored' ? mirrored.fence : res.lease.fence;
        return { ...res, lease: { owner, fence }, version: mirrored.status === 'restored' ? mirrored.version : res.version, storeAvailable: true };
      } catch (err) {
        this.sharedFailed(key, err);
        // A late answer still tells us the shared lease we hold; replay uses it.
        pending.then(
          (late) => {
            if (late.status === 'claimed') this.sharedState.set(id, { owner, lease: late.lease, version: late.version, ...countedOf(this.sharedState.get(id), owner) });
          },
          () => {},
        );
      }
    }
    const res = await this.memory.resumeAndClaim(key, owner, nowMs, leaseMs, mode);
    if (res.status === 'busy') return res;
    if (this.shared !== null) {
      this.markDirty(key);
      const prev = this.sharedState.get(id);
      this.sharedState.set(id, { owner, lease: prev?.owner === owner ? prev.lease : null, version: prev?.version ?? 0, ...countedOf(prev, owner) });
    }
    return { ...res, storeAvailable: this.shared === null || res.record.status === 'found', sharedFence: this.shared === null };
  }

  async appendTurn(key: SessionKey, turn: Turn, lease: LeaseToken): Promise<number> {
    const version = await this.memory.appendTurn(key, turn, lease);
    const held = this.heldSharedLease(key);
    if (held === null) return version;
    const { st, sharedLease } = held;
    await this.mirror(key, this.writeBoundMs, async (shared) => {
      st.version = await shared.appendTurn(key, turn, sharedLease);
    });
    return version;
  }

  /**
   * The shared-tier lease this store holds for `key`, or null — then the write stays in memory
   * and the key is left for replay. Throws `lease_lost` when another owner took the session over
   * while the shared tier was unreachable (the write is in memory only, and nothing is owed).
   */
  private heldSharedLease(key: SessionKey): { st: SharedState; sharedLease: LeaseToken } | null {
    const st = this.sharedState.get(sessionKeyId(key));
    if (st?.lost === true) throw new ConflictError('lease_lost', 'the session was claimed elsewhere while the shared store was unreachable');
    if (st?.lease == null) {
      if (this.shared !== null) this.markDirty(key);
      return null;
    }
    return { st, sharedLease: st.lease };
  }

  private async writeThrough(
    record: SessionRecord,
    expectedVersion: number,
    lease: LeaseToken,
    nowMs: number,
    op: 'save' | 'suspend' | 'end',
  ): Promise<number> {
    const key = keyOf(record);
    // A count the replay set on top of the shared profile stays counted (in memory too).
    record = withCountedVisits(record, this.sharedState.get(sessionKeyId(key))?.counted);
    const version =
      op === 'save'
        ? await this.memory.save(record, expectedVersion, lease)
        : op === 'suspend'
          ? await this.memory.suspend(record, expectedVersion, lease, nowMs)
          : await this.memory.end(record, expectedVersion, lease, nowMs);
    const held = this.heldSharedLease(key);
    if (held === null) return version;
    const { st, sharedLease } = held;
    await this.mirror(key, this.writeBoundMs, async (shared) => {
      st.version =
        op === 'save'
          ? await shared.save(record, st.version, sharedLease)
          : op === 'suspend'
            ? await shared.suspend(record, st.version, sharedLease, nowMs)
            : await shared.end(record, st.version, sharedLease, nowMs);
      if (op !== 'save') st.lease = null;
    });
    return version;
  }

  async save(record: SessionRecord, expectedVersion: number, lease: LeaseToken): Promise<number> {
    return this.writeThrough(record, expectedVersion, lease, 0, 'save');
  }

  async suspend(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number> {
    return this.writeThrough(record, expectedVersion, lease, nowMs, 'suspend');
  }

  async end(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number> {
    return this.writeThrough(record, expectedVersion, lease, nowMs, 'end');
  }

  async release(key: SessionKey, lease: LeaseToken): Promise<boolean> {
    const ok = await this.memory.release(key, lease);
    const st = this.sharedState.get(sessionKeyId(key));
    const sharedLease = st?.lease ?? null;
    if (ok && st !== undefined && sharedLease !== null) {
      await this.mirror(key, this.writeBoundMs, async (shared) => {
        await shared.release(key, sharedLease);
        st.lease = null;
      });
    }
    return ok;
  }

  async renewLease(key: SessionKey, lease: LeaseToken, nowMs: number, leaseMs: number): Promise<boolean> {
    const ok = await this.memory.renewLease(key, lease, nowMs, leaseMs);
    const st = this.sharedState.get(sessionKeyId(key));
    if (st?.lost === true) return false;
    const sharedLease = st?.lease ?? null;
    if (ok && sharedLease !== null) {
      await this.mirror(key, this.writeBoundMs, async (shared) => {
        if (!(await shared.renewLease(key, sharedLease, nowMs, leaseMs))) throw new ConflictError('lease_lost', 'the shared lease moved');
      });
    }
    return ok;
  }

  /** Reads from the shared tier within the greeting bound, else from memory. */
  private async read<T>(key: SessionKey | null, fromShared: (s: SessionStore) => Promise<T>, fromMemory: () => Promise<T>): Promise<T> {
    if (this.shared !== null && !this.health.isDegraded) {
      try {
        return await bounded(fromShared(this.shared), this.greetingBoundMs);
      } catch (err) {
        this.sharedFailed(key, err);
      }
    }
    return fromMemory();
  }

  async readRecord(key: SessionKey): Promise<RecordRead> {
    return this.read(null, (s) => s.readRecord(key), () => this.memory.readRecord(key));
  }

  async readProfile(key: SessionKey): Promise<Profile | null> {
    return this.read(null, (s) => s.readProfile(key), () => this.memory.readProfile(key));
  }

  async readArchive(key: SessionKey, nowMs: number): Promise<ArchivedSession[]> {
    return this.read(null, (s) => s.readArchive(key, nowMs), () => this.memory.readArchive(key, nowMs));
  }

  async listSessions(opts: { cursor?: string | null; count?: number } = {}): Promise<SessionPage> {
    return this.read(null, (s) => s.listSessions(opts), () => this.memory.listSessions(opts));
  }

  async exportSession(key: SessionKey): Promise<SessionSnapshot | null> {
    return this.memory.exportSession(key);
  }

  async exportIdentity(identity: string): Promise<SessionSnapshot[]> {
    return this.read(null, (s) => s.exportIdentity(identity), () => this.memory.exportIdentity(identity));
  }

  async restore(snapshot: SessionSnapshot, writer: string, nowMs: number): Promise<RestoreOutcome> {
    const out = await this.memory.restore(snapshot, writer, nowMs);
    if (out.status === 'restored') this.markDirty(snapshot.key);
    return out;
  }

  async forget(identity: string): Promise<{ sessionKeysErased: number }> {
    const local = await this.forgetLocal(identity);
    if (this.shared === null) return local;
    if (this.health.isDegraded) {
      this.owed.addForget(identity);
      return local;
    }
    try {
      return await bounded(this.shared.forget(identity), this.writeBoundMs);
    } catch (err) {
      this.owed.addForget(identity);
      this.sharedFailed(null, err);
      return local;
    }
  }

  /**
   * Erases this store's own copy of `identity` (memory, writes owed to the shared tier, leases
   * held there) and nothing in the shared tier: for a job told that the identity was erased
   * elsewhere. Erasing the shared tier again would also erase a conversation started there since
   * (a new arrival after the "Forget me"), and move the erasure mark past it.
   */
  async forgetLocal(identity: string): Promise<{ sessionKeysErased: number }> {
    const local = await this.memory.forget(identity);
    this.owed.forget(identity);
    dropSharedStateOf(this.sharedState, identity);
    return local;
  }

  async ping(): Promise<void> {
    if (this.shared !== null) await bounded(this.shared.ping(), this.greetingBoundMs);
  }

  /** Probes the shared tier and, when it answers, replays; resolves when done (or still degraded). */
  async tryRecover(): Promise<void> {
    if (!this.health.isDegraded || this.shared === null || this.disposed) return;
    this.replaying ??= this.replay(this.shared).finally(() => {
      this.replaying = null;
    });
    return this.replaying;
  }

  private async replay(shared: SessionStore): Promise<void> {
    let replayed: number;
    try {
      await bounded(shared.ping(), this.greetingBoundMs);
      replayed = await this.owed.replay({ memory: this.memory, shared, sharedState: this.sharedState, writeBoundMs: this.writeBoundMs, clock: this.clock, log: this.log });
    } catch (err) {
      this.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'replay postponed');
      return;
    }
    // No await between the replay's last check of its queue and here: no write can slip in.
    if (this.probeTimer !== null) clearInterval(this.probeTimer);
    this.probeTimer = null;
    this.log.info({ replayedKeys: replayed }, 'shared session store recovered');
    this.health.recovered(replayed, this.clock.nowMs());
  }

  /** Stops the probe and disposes both tiers (the shared store closes only clients it created). */
  async dispose(): Promise<void> {
    this.disposed = true;
    if (this.probeTimer !== null) clearInterval(this.probeTimer);
    this.probeTimer = null;
    await this.memory.dispose();
    await this.shared?.dispose();
  }
}

/**
 * The visits a replay counted for `owner`'s job ({@link SharedState.counted}), kept when the same
 * job claims the key again (a new conversation in the room): its records still carry the count
 * it started with.
 */
function countedOf(prev: SharedState | undefined, owner: string): Pick<SharedState, 'counted'> {
  return prev?.owner === owner && prev.counted !== undefined ? { counted: prev.counted } : {};
}
