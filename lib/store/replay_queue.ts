import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { bounded } from './bounded.js';
import { encodeKeyPart, sessionKeyId } from './keys.js';
import type { SessionKey } from './keys.js';
import type { MemorySessionStore } from './memory_session_store.js';
import type { Profile } from '../session/record.js';
import type { LeaseToken, SessionSnapshot, SessionStore } from './session_store.js';
import { endedSinceClaim } from './session_store.js';

/**
 * What a {@link TieredSessionStore} owes its shared tier while it is degraded: the keys whose
 * memory state the shared tier has not seen, and the forgets it has not received. Replay sends
 * the forgets first, then each key's full memory state (`exportSession` → `restore`), so a shared
 * store that restarted empty gets everything back; a key whose identity the shared store erased
 * after the job claimed it (`forgotten`) is dropped from memory instead of written back.
 */

/** The shared tier's lease and version of one key, as the tiered store last saw them. */
export interface SharedState {
  /** The job the key's writes come from. */
  owner: string;
  /** The shared-tier lease held for that job, or null (writes then wait for replay). */
  lease: LeaseToken | null;
  version: number;
  /**
   * Another owner claimed the session in the shared tier while this store could not reach it
   * (its replay was refused): the job's writes fail with `lease_lost`, as after any takeover.
   */
  lost?: true;
  /** The visits the replay counted on top of the shared profile ({@link countedOnShared}), for the writes after it. */
  counted?: CountedVisits;
}

/**
 * A count that started afresh while the shared tier was out of reach (first seen at
 * `localFirstSeenAt`), set on top of the shared profile's `visitsBefore` visits since `firstSeenAt`.
 */
export interface CountedVisits {
  localFirstSeenAt: number;
  firstSeenAt: number;
  visitsBefore: number;
}

/** `record` with its visits counted as `counted` says (the job keeps the count it started with); `record` when it has another count. */
export function withCountedVisits<R extends { firstSeenAt: number; visitCount: number }>(record: R, counted: CountedVisits | undefined): R {
  if (counted === undefined || record.firstSeenAt !== counted.localFirstSeenAt) return record;
  return { ...record, firstSeenAt: counted.firstSeenAt, visitCount: counted.visitsBefore + record.visitCount };
}

/**
 * `snap` with its visits counted on top of `shared`'s profile. An arrival while the shared tier
 * was out of reach started its count afresh (visit 1, first seen then), while the shared profile
 * still holds every visit before it: written back as it is, it would reset them. A count that
 * started from the shared profile (the same first visit, or an earlier one) is left as it is.
 */
export function countedOnShared(snap: SessionSnapshot, shared: Profile | null): { snap: SessionSnapshot; counted?: CountedVisits } {
  const mine = snap.profile;
  if (mine === null || shared === null || shared.firstSeenAt >= mine.firstSeenAt) return { snap };
  const counted = { localFirstSeenAt: mine.firstSeenAt, firstSeenAt: shared.firstSeenAt, visitsBefore: shared.visitCount };
  return { snap: withCountedSnapshot(snap, counted), counted };
}

/** `snap`'s profile and record with their visits counted as `counted` says. */
function withCountedSnapshot(snap: SessionSnapshot, counted: CountedVisits): SessionSnapshot {
  return { ...snap, profile: snap.profile === null ? null : withCountedVisits(snap.profile, counted), record: snap.record === null ? null : withCountedVisits(snap.record, counted) };
}

/** Drops every entry of `identity`'s session keys from `sharedState` (keyed by `sessionKeyId`). */
export function dropSharedStateOf(sharedState: Map<string, SharedState>, identity: string): void {
  const suffix = `.${encodeKeyPart(identity)}`;
  for (const id of [...sharedState.keys()]) if (id.endsWith(suffix)) sharedState.delete(id);
}

/** What {@link ReplayQueue.replay} works with. */
export interface ReplayTiers {
  memory: MemorySessionStore;
  shared: SessionStore;
  /** Per key (`sessionKeyId`): updated with each replayed key's new shared lease and version. */
  sharedState: Map<string, SharedState>;
  /** Bound of each shared call, ms. */
  writeBoundMs: number;
  clock: Clock;
  log: Logger;
}

/** See the module comment. */
export class ReplayQueue {
  private readonly dirty = new Map<string, SessionKey>();
  private readonly forgets = new Set<string>();

  /** Keys and forgets waiting for replay. */
  get size(): number {
    return this.dirty.size + this.forgets.size;
  }

  /** `key`'s memory state must reach the shared tier. */
  markDirty(key: SessionKey): void {
    this.dirty.set(sessionKeyId(key), { ...key });
  }

  /** `identity` was erased: none of its keys is replayed, and the shared tier must erase it too. */
  forget(identity: string): void {
    for (const [id, k] of this.dirty) if (k.identity === identity) this.dirty.delete(id);
  }

  /** The shared tier has not received the forget of `identity`. */
  addForget(identity: string): void {
    this.forgets.add(identity);
  }

  /**
   * Sends everything queued; throws at the first failing shared call, and what is left stays
   * queued. Resolves with the number of keys replayed once nothing is left (no await between the
   * last check of the queue and the return, so no write can slip in between).
   */
  async replay(t: ReplayTiers): Promise<number> {
    let replayed = 0;
    /** Keys whose claim has said nothing yet: replayed once it has, or was dropped. */
    const postponed = new Map<string, SessionKey>();
    // A forget made while a key was being replayed is sent before the loop ends: it erases
    // whatever that replay wrote.
    while (this.dirty.size > 0 || this.forgets.size > 0) {
      for (const identity of [...this.forgets]) {
        await bounded(t.shared.forget(identity), t.writeBoundMs);
        this.forgets.delete(identity);
        dropSharedStateOf(t.sharedState, identity);
      }
      for (const [id, key] of [...this.dirty.entries()]) {
        this.dirty.delete(id);
        try {
          const held = await t.memory.exportSession(key);
          if (held === null) continue;
          if (saidNothingYet(held)) {
            postponed.set(id, key);
            continue;
          }
          // Counted on the shared profile once; a later replay of the same job counts as that one did.
          let counted = t.sharedState.get(id)?.counted;
          let snap = held;
          if (counted !== undefined) snap = withCountedSnapshot(held, counted);
          else if (held.profile !== null) ({ snap, counted } = countedOnShared(held, await bounded(t.shared.readProfile(key), t.writeBoundMs)));
          const writer = t.sharedState.get(id)?.owner ?? snap.lease?.owner ?? '';
          const out = await bounded(t.shared.restore(snap, writer, t.clock.nowMs()), t.writeBoundMs);
          replayed++;
          if (out.status === 'skipped' && out.why === 'forgotten') {
            // Erased elsewhere (an admin or the participant) while this job held it: its memory
            // copy goes too, and its writes fail from now on as after a takeover.
            t.log.warn({ why: out.why }, 'replay skipped: the identity was erased meanwhile (the memory copy is dropped)');
            await t.memory.forget(key.identity);
            this.forget(key.identity);
            t.sharedState.set(id, { owner: writer, lease: null, version: 0, lost: true });
            continue;
          }
          if (out.status === 'skipped') {
            t.log.warn({ why: out.why }, 'replay skipped: another owner holds the session (this conversation is kept in its archive)');
            t.sharedState.set(id, { owner: writer, lease: null, version: 0, lost: true });
            continue;
          }
          const owner = snap.lease?.owner ?? null;
          // The job's later writes carry the count it started with: the tiered store counts them
          // the same way (withCountedVisits), so they do not reset the shared count.
          t.sharedState.set(id, { owner: writer, lease: owner === null ? null : { owner, fence: out.fence }, version: out.version, ...(counted === undefined ? {} : { counted }) });
        } catch (err) {
          this.dirty.set(id, key);
          for (const [pid, pkey] of postponed) this.dirty.set(pid, pkey);
          throw err;
        }
      }
    }
    if (postponed.size > 0) {
      for (const [id, key] of postponed) this.dirty.set(id, key);
      throw new Error(`replay postponed: ${postponed.size} claim(s) made while the shared store was out of reach have said nothing yet`);
    }
    return replayed;
  }
}

/**
 * True for the memory state of a claim still held that has no conversation yet: no record, and
 * none ended since the claim (a dispatch hint's speculation waiting for its participant, an
 * arrival before its first save, an AlwaysResume refusal being spoken). Written now, it would
 * replace whatever the shared tier holds for the identity, and a speculation that is then
 * dropped would have deleted a resumable conversation for nothing; so it waits until the claim
 * has saved (then it is the newest arrival's conversation) or was released (then it carries
 * nothing: {@link restoreWritesSession}).
 */
function saidNothingYet(s: SessionSnapshot): boolean {
  return s.record === null && s.lease !== null && s.lease.owner !== null && !endedSinceClaim(s);
}
