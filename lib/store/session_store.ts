import type { HistoryLimits } from '../session/history.js';
import type { Profile, RecordProblem, SessionRecord, Turn } from '../session/record.js';
import type { PayloadCipher } from './crypto.js';
import type { SessionKey } from './keys.js';

/**
 * The `SessionStore` port (DESIGN §4): small, async, no Redis types. Adapters:
 * `MemorySessionStore`, `RedisSessionStore`, `TieredSessionStore`.
 *
 * Semantics every adapter keeps (the contract suite checks them):
 * - values are serialised (no shared references) and optionally sealed with AES-256-GCM;
 * - a session's record, lease and pending turns live `sessionTtlMs` after their last write or
 *   claim; the profile `profileTtlMs`; archive entries `archiveTtlMs` (and at most
 *   `archiveMaxCount` per session key);
 * - ownership: a claim returns a new, strictly increasing fencing token; every write carries
 *   the lease it was given and fails with `lease_lost` once a newer claim exists;
 * - `save` is compare-and-set on the version; `appendTurn` bumps the version too.
 */

export type { SessionKey } from './keys.js';

/** What a claim hands the owner; every write must present it. */
export interface LeaseToken {
  /** The owning job's unique id. */
  owner: string;
  /** The fencing token: strictly increasing per session key. */
  fence: number;
}

/** A record read: found, missing, or refused (and why). */
export type RecordRead =
  | { status: 'found'; record: SessionRecord }
  | { status: 'missing' }
  | { status: 'invalid'; why: RecordProblem };

/** How a claim treats a live lease held by someone else. */
export type ClaimMode =
  /** The newest arrival wins: the old owner's next write fails with `lease_lost`. */
  | 'takeover'
  /** Claim only a free or lapsed lease; otherwise `busy`. */
  | 'exclusive'
  /**
   * As `takeover`, for a session whose record could not be read (tampered, or sealed with a key
   * this keyring lacks) before a new conversation replaces it: the record is set aside, so
   * nothing of it is lost. Its archive copy (every save writes one) keeps it as last saved, and
   * its pending turns move to that copy's tail, as a crashed owner's do. The claim returns the
   * record as missing.
   */
  | 'set_aside';

/** The outcome of {@link SessionStore.resumeAndClaim}. */
export type ClaimResult =
  | {
      status: 'claimed';
      lease: LeaseToken;
      /** The record as it was (pending turns merged in), before this claim. */
      record: RecordRead;
      profile: Profile | null;
      /** The owner whose live lease this claim replaced (takeover), or null. */
      previousOwner: string | null;
      /** The current version (pass it to the next `save`). */
      version: number;
      /**
       * False when a tiered store answered from its local tier because the shared store did not
       * answer within the greeting bound and the local tier had no record (`store_unavailable`).
       * @default true
       */
      storeAvailable?: boolean;
      /**
       * False when the lease's fence is this process's own (a tiered store that claimed from its
       * local tier): it cannot be compared with the fences other jobs announce.
       * @default true
       */
      sharedFence?: boolean;
    }
  | { status: 'busy'; owner: string; leaseExpiresAtMs: number };

/**
 * One archived conversation: closed, suspended, or as last saved when its owner crashed; then
 * with the turns appended after that save too, once its live record has expired. A conversation
 * whose restore was refused (another job took the session over while this one could not reach
 * the store) is kept too, under `<sessionId>~<writer>` (see `forkArchiveId`).
 */
export interface ArchivedSession {
  /** The conversation's session id (or the fork id above). */
  sessionId: string;
  /** When it was archived, epoch ms. */
  archivedAtMs: number;
  /** The record, or null when the stored payload was refused. */
  record: SessionRecord | null;
  problem?: RecordProblem;
}

/** The whole state of one session key (for replication between tiers). */
export interface SessionSnapshot {
  key: SessionKey;
  version: number;
  /**
   * The lease as stored (owner null once released). `claimedAtMs`: when the claim that took it
   * arrived, epoch ms (the caller's `nowMs`); 0 when unknown (a lease stored before claim times
   * were kept).
   */
  lease: { owner: string | null; fence: number; expiresAtMs: number; claimedAtMs: number } | null;
  /** The record with pending turns merged in, or null. */
  record: SessionRecord | null;
  /** Why a stored record is null here: it could not be read (tampered, or sealed with a key this store lacks). */
  recordProblem?: RecordProblem;
  profile: Profile | null;
  /** Why `profile` is null although one is stored: it could not be read (tampered, or sealed with a key this store lacks). */
  profileProblem?: RecordProblem;
  archive: ArchivedSession[];
}

/** A lease as {@link restoreYields} compares it. */
export interface LeaseOrder {
  fence: number;
  /** Arrival of the claim that took the lease, epoch ms; 0 when unknown. */
  claimedAtMs: number;
}

/**
 * True when a restore must leave the session to another owner's lease `held` (see
 * {@link SessionStore.restore}). A live lease (`live`: not released, not lapsed) keeps the session
 * when it was claimed at or after the snapshot's lease (the newest arrival wins; a tie keeps the
 * holder); a released or lapsed one only when it was claimed strictly after it (a newer
 * conversation that has ended or paused is still newer than the snapshot: a tie is the snapshot's
 * own claim, released before the outage). When either claim time is unknown, fences compare the
 * same way. `restore-7.lua` applies the same rule. Arrival times come from the workers' clocks, as
 * lease expiry does: hosts must keep them synchronised (NTP); a skew larger than the gap between
 * two arrivals of one identity orders those two wrongly.
 */
export function restoreYields(held: LeaseOrder, snapshot: LeaseOrder, live: boolean): boolean {
  const [h, s] = held.claimedAtMs > 0 && snapshot.claimedAtMs > 0 ? [held.claimedAtMs, snapshot.claimedAtMs] : [held.fence, snapshot.fence];
  return live ? h >= s : h > s;
}

/**
 * Whether a restore of `s` writes its session (record, lease and pending turns) or only its
 * profile and archive. A snapshot with no record and a released lease carries no conversation of
 * its own unless it ended one (archived at or after its claim, when the record is deleted): a
 * claim dropped before anything was said, such as a dispatch hint's speculation whose participant
 * never came, must not delete the conversation stored meanwhile. Both stores apply it.
 */
export function restoreWritesSession(s: Pick<SessionSnapshot, 'lease' | 'record' | 'archive'>): boolean {
  if (s.record !== null) return true;
  if (s.lease === null) return false;
  return s.lease.owner !== null || endedSinceClaim(s);
}

/** True when `s` archived a conversation at or after its lease's claim (the claim ended one). */
export function endedSinceClaim(s: Pick<SessionSnapshot, 'lease' | 'archive'>): boolean {
  const claimedAtMs = s.lease?.claimedAtMs ?? 0;
  return s.archive.some((a) => a.archivedAtMs >= claimedAtMs);
}

/**
 * The outcome of {@link SessionStore.restore}: `skipped` `newer_arrival` kept another owner's
 * session (the snapshot's conversations went to the archive); `skipped` `forgotten` wrote nothing
 * at all (the identity was erased after the snapshot's claim).
 */
export type RestoreOutcome = { status: 'restored'; version: number; fence: number } | { status: 'skipped'; why: 'newer_arrival' | 'forgotten' };

/** A page of {@link SessionStore.listSessions}. */
export interface SessionPage {
  items: SessionKey[];
  /** Pass back to get the next page; null when done. */
  cursor: string | null;
}

/** The port. */
export interface SessionStore {
  /**
   * Resume lookup + claim in one step (one round trip on Redis): takes the lease, returns the
   * record (pending turns merged), the profile and the new fencing token.
   * @param nowMs Now, epoch ms (lease arithmetic).
   * @param leaseMs How long the lease holds without renewal.
   */
  resumeAndClaim(key: SessionKey, owner: string, nowMs: number, leaseMs: number, mode?: ClaimMode): Promise<ClaimResult>;
  /** Appends one turn (one round trip on Redis). Returns the new version. Throws ConflictError `lease_lost`. */
  appendTurn(key: SessionKey, turn: Turn, lease: LeaseToken): Promise<number>;
  /**
   * Compare-and-set save of the whole record (its pending turns are folded in by the caller:
   * the record must contain every turn appended so far). Also writes the profile it implies
   * and refreshes the session's archive copy (scored at `record.lastSeenAt`), so a conversation
   * whose owner crashed is archived as last saved; turns appended after a session's last save
   * belong to it (a conversation's first write is its save), and if its live record expires
   * before another save they are kept with that archive copy. Returns the new version. Throws ConflictError `version_conflict` / `lease_lost`.
   */
  save(record: SessionRecord, expectedVersion: number, lease: LeaseToken): Promise<number>;
  /** Like {@link save} for a disconnected record, with the lease released. */
  suspend(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number>;
  /** Ends the conversation: archives it, deletes the live record, keeps the profile, releases the lease. */
  end(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number>;
  /** Drops the lease if `lease` still holds it; false when it had moved. */
  release(key: SessionKey, lease: LeaseToken): Promise<boolean>;
  /** Extends a held lease to `nowMs + leaseMs`; false when it had moved. */
  renewLease(key: SessionKey, lease: LeaseToken, nowMs: number, leaseMs: number): Promise<boolean>;
  /** Reads a record without claiming it (admin, tests). */
  readRecord(key: SessionKey): Promise<RecordRead>;
  /** Reads the identity's profile for this agent. */
  readProfile(key: SessionKey): Promise<Profile | null>;
  /** Archived conversations of a session key, newest first, within retention at `nowMs`. */
  readArchive(key: SessionKey, nowMs: number): Promise<ArchivedSession[]>;
  /** Pages through live sessions (admin). */
  listSessions(opts?: { cursor?: string | null; count?: number }): Promise<SessionPage>;
  /** Erases every trace of `identity` under every agent: sessions, pending turns, profiles, archive. */
  forget(identity: string): Promise<{ sessionKeysErased: number }>;
  /** The full state of a key, or null when nothing is stored. */
  exportSession(key: SessionKey): Promise<SessionSnapshot | null>;
  /**
   * Everything stored for `identity` under every agent (a participant's right of access), one
   * {@link exportSession} per session key, in no particular order; the keys are found as
   * {@link forget} finds them.
   */
  exportIdentity(identity: string): Promise<SessionSnapshot[]>;
  /**
   * Writes a snapshot (tier replay). The session and profile are skipped (`newer_arrival`) only
   * when another owner's lease orders after the snapshot's ({@link restoreYields}): a live lease
   * (`exp > nowMs`) claimed at or after it, or a released or lapsed one claimed strictly after it
   * (`claimedAtMs`: the newest arrival wins, as in a takeover, even once its conversation has
   * paused or ended); when either claim time is unknown, by fence the same way. Otherwise written
   * (after a partition, the job whose participant arrived last wins). Claim times, not fences, order the two because fences are
   * only comparable within one store's sequence: a Redis that restarted empty counts again from 1,
   * below the fences the replaying job's memory tier carried over. Archive entries are
   * merged either way (the newest copy of each wins), and a skipped record is archived as
   * `forkArchiveId(sessionId, writer)`, so no conversation is lost. A written session's pending
   * turns that are not the writer's own (said after another owner's last save) stay with the
   * newest archived session, whose entry that save wrote; a snapshot that carries no conversation
   * ({@link restoreWritesSession}) leaves the session alone. Version and fence never go
   * backwards: the outcome carries the ones now stored (when the session is not written, the version a write would have taken). Nothing at all is kept (`forgotten`)
   * when {@link forget} erased the identity after the snapshot's claim (or the claim time is
   * unknown), for `sessionTtlMs` after the erasure, even when the forget runs during the restore:
   * a job cut off at that moment cannot write the identity back.
   * @param writer The job the snapshot comes from (its claims' owner id).
   * @param nowMs Now, epoch ms (lease liveness).
   */
  restore(snapshot: SessionSnapshot, writer: string, nowMs: number): Promise<RestoreOutcome>;
  /** Resolves when the store answers; rejects with StoreUnavailableError otherwise. */
  ping(): Promise<void>;
  /** Releases resources the store created (not clients handed in). */
  dispose(): Promise<void>;
}

/** Limits and options shared by the adapters. */
export interface StoreOptions {
  /** @default 1_800_000 (30 min): live record, lease and pending turns. */
  sessionTtlMs?: number;
  /** @default 2_592_000_000 (30 days) */
  profileTtlMs?: number;
  /** @default 604_800_000 (7 days): audit archive retention. */
  archiveTtlMs?: number;
  /** @default 20: archived conversations kept per session key (oldest dropped first). */
  archiveMaxCount?: number;
  /** @default 1000: pending turns kept between saves (oldest dropped first). */
  maxPendingTurns?: number;
  /** @default DEFAULT_HISTORY_LIMITS: how pending turns are merged into a record on read. */
  historyLimits?: HistoryLimits;
  /** Seals every payload when set. */
  cipher?: PayloadCipher;
}

/** Default audit archive retention, ms (7 days). */
export const DEFAULT_ARCHIVE_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Default archived conversations per session key. */
export const DEFAULT_ARCHIVE_MAX_COUNT = 20;
/** Default pending turns kept between saves. */
export const DEFAULT_MAX_PENDING_TURNS = 1000;
