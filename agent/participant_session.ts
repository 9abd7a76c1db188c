/**
 * One participant's session inside one job: the lifecycle (pure `transition`), the resume
 * decision and greeting (pure), and the write-through to the store. No LiveKit types here: the
 * room bridge feeds it events and performs what it returns (speech, status messages, closing).
 *
 * Every store write goes through one queue ({@link StoreWriteQueue}), in order, so turns, context
 * and state land in the order they happened, and the version/lease bookkeeping stays consistent.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { ConflictError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { ContextSnapshot } from '../lib/context/snapshot.js';
import { condenseDue, DEFAULT_CONDENSE_OPTIONS, withCondensedSummary, type CondenseOptions, type Condenser } from '../lib/session/condense.js';
import { chooseGreeting, DEFAULT_MIN_REGREET_GAP_MS, renderGreeting, shortDropRuleApplies, type GreetingChoice } from '../lib/session/greeting.js';
import { lastTopic, recordWithTurn } from '../lib/session/history.js';
import { arrivalLanguage, type ArrivalLanguage } from '../lib/session/language.js';
import type { SessionPolicy } from '../lib/session/policy.js';
import {
  newSessionRecord,
  profileFromRecord,
  resumedRecord,
  suspendedRecord,
  type DisconnectReason,
  type Profile,
  type SessionRecord,
  type SessionStateName,
  type Turn,
} from '../lib/session/record.js';
import { decideResume, gapSinceLastSeenMs, rejectMessage, type ResumeDecision } from '../lib/session/resume_policy.js';
import { initialLifecycle, transition, type LifecycleEvent, type LifecycleState, type SessionStateChanged } from '../lib/session/state.js';
import type { SessionKey } from '../lib/store/keys.js';
import type { ClaimMode, LeaseToken, SessionStore } from '../lib/store/session_store.js';
import type { SessionNotice } from '../lib/store/session_notices.js';
import type { JobMetrics } from './metrics.js';
import { StoreWriteQueue, type WriteHold } from './write_queue.js';

/** How long a claim holds without renewal; renewed every third of it. @default 30 000 ms */
export const DEFAULT_LEASE_MS = 30_000;

/** What the token of a rejoining connection says about its participant. */
export interface RejoinToken {
  language: string | null;
  chosen: boolean;
  /** The participant's display name, if the token has one. */
  participantName?: string | null;
}

/** A rejoin within the room, as {@link ParticipantSession.rejoined} decided it. */
export interface Rejoin {
  decision: ResumeDecision;
  greeting: GreetingChoice;
  speech: string | null;
  /** The conversation's language is not what it was before the rejoin. */
  languageChanged: boolean;
  /**
   * The conversation started over (AlwaysFresh): the previous one is archived, and the caller
   * must clear what the model holds of it (its turns, the dynamic context).
   */
  startedOver: boolean;
}

/** A profile with nothing that reveals the last visitor (AlwaysFresh: a kiosk): only the visit count and first visit stay. */
function withoutMemory(profile: Profile | null): Profile | null {
  return profile === null ? null : { ...profile, participantName: null, language: null, languageHeard: undefined, languageChosen: undefined };
}

/**
 * `record` as a conversation that was live until `nowMs` when it recorded no leave (a new
 * connection replaced the old one first, or another job still held it): gaps are timed from now.
 */
function liveUntil(record: SessionRecord, nowMs: number): SessionRecord {
  return record.disconnectedAt === null ? { ...record, disconnectedAt: nowMs } : record;
}

/** Dependencies of {@link ParticipantSession}. */
export interface ParticipantSessionOptions {
  store: SessionStore;
  key: SessionKey;
  /** Unique id of this job (the lease owner). */
  ownerId: string;
  policy: SessionPolicy;
  clock: Clock;
  logger: Logger;
  metrics: JobMetrics;
  /** @default DEFAULT_LEASE_MS */
  leaseMs?: number;
  /** A return sooner than this after a drop the participant did not choose gets no greeting. @default DEFAULT_MIN_REGREET_GAP_MS (5 000 ms) */
  minRegreetGapMs?: number;
  participantName?: string | null;
  /**
   * The participant's language (a canonical BCP 47 tag from their token, see
   * `lib/session/language.ts`); kept in the record and profile. Null or unset: the language the
   * record or profile remembers, if any.
   */
  language?: string | null;
  /** True when the participant chose `language` themselves (the web client's menu), not their browser: it then outranks one they were heard speaking (`arrivalLanguage`). */
  languageChosen?: boolean;
  /** Called for every state change (status messages, logs). */
  onStateChanged?: (ev: SessionStateChanged) => void;
  /** Called when the lifecycle closes the conversation (rejoin window over, taken over). */
  onClose?: (reason: DisconnectReason | 'rejoin_expired') => void;
  /**
   * Condenses the summary of older turns once it is due (see `lib/session/condense.ts`), in the
   * background: no turn waits for it. Unset: the summary keeps its clipped lines only.
   */
  condense?: Condenser;
  /** @default DEFAULT_CONDENSE_OPTIONS */
  condenseOptions?: CondenseOptions;
}

/** What a takeover notice says: which job claimed the conversation, with which fence. */
export type TakeoverNotice = Pick<Extract<SessionNotice, { kind: 'takeover' }>, 'owner' | 'fence'>;

/** What an arrival resolved to. */
export interface Arrival {
  decision: ResumeDecision;
  greeting: GreetingChoice;
  /** Text to say: the greeting, the reject message, or null (short drop). */
  speech: string | null;
  /** The record in force (null after a reject). */
  record: SessionRecord | null;
  /** True when history and context come from an earlier conversation. */
  resumed: boolean;
  /** The shared store did not answer in time; the agent works from memory. */
  degraded: boolean;
  /** The job whose live lease this arrival took over (another tab or device), or null. */
  previousOwner: string | null;
  /** This job's fencing token. */
  fence: number;
}

/** See the module comment. */
export class ParticipantSession {
  private lifecycle: LifecycleState;
  private record: SessionRecord | null = null;
  private version = 0;
  private lease: LeaseToken | null = null;
  private lost = false;
  private forgottenHere = false;
  private closed = false;
  /** Dropped before its participant linked (see {@link abandon}). */
  private abandoned = false;
  /**
   * While this job's claim is on its way: the takeover notices that came meanwhile (null
   * otherwise). Decided when the claim answers (see {@link takenOver}).
   */
  private noticedWhileClaiming: TakeoverNotice[] | null = null;
  /** The job this job's claim took the conversation from (its later notice is not news). */
  private tookOverFrom: string | null = null;
  /** This job's fence when other jobs' fences compare with it (the shared store's), else null. */
  private sharedFence: number | null = null;
  private readonly writes: StoreWriteQueue;
  /** Ends a {@link holdWrites} hold early: a turn never waits. */
  private releaseHeldWrites = () => {};
  private saveQueued = false;
  /** Ends of a replaced conversation queued and not yet run ({@link endPrevious}). */
  private endsPending = 0;
  /** Turns appended since the last save (folded into the record, and its archive copy, at the next renewal). */
  private unsavedTurns = 0;
  private tickTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private readonly leaseMs: number;
  /** A condensing request is in flight (at most one at a time). */
  private condensing = false;
  /** After a failed condensing, the `summarizedTurnCount` at which the next attempt may start. */
  private condenseRetryAtTurnCount = 0;

  constructor(private readonly o: ParticipantSessionOptions) {
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    this.writes = new StoreWriteQueue({
      clock: o.clock,
      logger: o.logger,
      metrics: o.metrics,
      isStopped: () => this.lost,
      onLeaseLost: () => this.takenOver(),
    });
    this.lifecycle = initialLifecycle(o.policy, o.clock.nowMs());
  }

  /** The lifecycle state name. */
  get state(): SessionStateName {
    return this.lifecycle.name;
  }

  /** The current record (a copy is not made: read only). */
  get currentRecord(): SessionRecord | null {
    return this.record;
  }

  /** True once a newer owner took the session over, or it was forgotten (this job writes nothing more). */
  get isTakenOver(): boolean {
    return this.lost;
  }

  /** True once the identity was erased elsewhere (`forget`). */
  get isForgotten(): boolean {
    return this.forgottenHere;
  }

  private fire(event: LifecycleEvent): void {
    const now = this.o.clock.nowMs();
    const r = transition(this.lifecycle, event, now);
    if (r.ignored !== undefined) {
      this.o.logger.debug({ ignored: r.ignored }, 'lifecycle event ignored');
      return;
    }
    this.lifecycle = r.state;
    for (const e of r.effects) {
      switch (e.type) {
        case 'emit':
          this.o.onStateChanged?.(e.event);
          break;
        case 'schedule_tick':
          this.scheduleTick(e.atMs - now);
          break;
        case 'close_session':
          this.o.onClose?.(e.reason);
          break;
        case 'release_lease':
          this.releaseLease();
          break;
        // load_session / start_conversation / suspend_session / notify_error are performed by
        // the methods that fired the event (they need its inputs and outputs).
        default:
          break;
      }
    }
  }

  private scheduleTick(inMs: number): void {
    clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => this.fire({ type: 'tick' }), Math.max(0, inMs));
    this.tickTimer.unref();
  }

  /**
   * The participant arrived (first link in this job): claim, decide, prepare the greeting and
   * persist the new state. Bounded by the store's greeting bound.
   */
  async arrive(): Promise<Arrival> {
    const arrival = await this.claimAndDecide('takeover');
    if (arrival === null) throw new Error('claim in takeover mode returned busy'); // cannot happen
    return arrival;
  }

  /**
   * As {@link arrive}, but only when no other job holds a live lease on the session: otherwise
   * nothing is claimed, this session is closed (as by {@link abandon}) and the result is null.
   * For a speculation (a dispatch hint's claim before its participant is in the room), which
   * must never take over a conversation that is live elsewhere: the participant, once here,
   * is claimed with {@link arrive} instead.
   */
  async arriveIfFree(): Promise<Arrival | null> {
    const arrival = await this.claimAndDecide('exclusive');
    if (arrival === null) await this.abandon();
    return arrival;
  }

  /**
   * Queues the end of `previous` (archived, lease released) and a new claim for the conversation
   * that replaces it; the new record's save, queued after, runs with that claim's lease and version.
   */
  private endPrevious(previous: SessionRecord, nowMs: number): void {
    this.endsPending++;
    void this.writes.run('end_previous', async () => {
      try {
        if (this.abandoned) return;
        // Archived a millisecond before the new conversation starts (its first save is archived
        // at nowMs): never a tie, so the new one is the newest archived session, to which turns
        // a crashed job said after its last save are attached, in Redis as in memory.
        await this.o.store.end(suspendedRecord(previous, nowMs, 'ended'), this.version, this.lease!, nowMs - 1);
        // `end` releases the lease: claim the (now empty) session again for the new conversation.
        await this.claimAgain('takeover');
      } finally {
        this.endsPending--;
      }
    });
    // A save queued before this runs before it, and skips (the new record must not be written
    // over the conversation it replaces): the new record gets its own save, after the new claim.
    this.saveQueued = false;
  }

  /**
   * Claims the session again (queued after a write that released it, or to set an unreadable
   * record aside) and keeps the new lease and version for the writes queued after it.
   */
  private async claimAgain(mode: ClaimMode): Promise<void> {
    const again = await this.o.store.resumeAndClaim(this.o.key, this.o.ownerId, this.o.clock.nowMs(), this.leaseMs, mode);
    if (again.status === 'claimed') {
      this.lease = again.lease;
      this.version = again.version;
    }
  }

  private async claimAndDecide(mode: ClaimMode): Promise<Arrival | null> {
    this.fire({ type: 'connect' });
    let noticed: TakeoverNotice[] = [];
    const { store, key, clock, policy } = this.o;
    const startedMs = clock.nowMs();
    this.noticedWhileClaiming = [];
    const claim = await store.resumeAndClaim(key, this.o.ownerId, startedMs, this.leaseMs, mode).finally(() => {
      noticed = this.noticedWhileClaiming ?? [];
      this.noticedWhileClaiming = null;
    });
    this.o.metrics.observe('pva_store_latency_seconds', (clock.nowMs() - startedMs) / 1000, { op: 'resume_claim' });
    if (claim.status === 'busy') return null;
    const nowMs = clock.nowMs();
    const storeAvailable = claim.storeAvailable ?? true;
    const stored = claim.record.status === 'found' ? claim.record.record : null;
    const profile: Profile | null = claim.profile;
    this.lease = claim.lease;
    this.version = claim.version;
    this.tookOverFrom = claim.previousOwner;
    this.sharedFence = claim.sharedFence === false ? null : claim.lease.fence;
    // Taken from a job that still held it (another tab, window or device, or a worker that died
    // with its lease running): the conversation never recorded a leave, so it was live there
    // until now (timing it from the last turn greeted a quiet minute as "your 2nd visit", and a
    // tab opened right after the last words not at all). The new connection is greeted once.
    const takenFromLive = stored !== null && stored.disconnectedAt === null && claim.previousOwner !== null;
    const decidedOn = takenFromLive ? liveUntil(stored, nowMs) : stored;
    const decision = decideResume({
      record: claim.record.status === 'invalid' ? { rejected: claim.record.why } : decidedOn,
      profile,
      policy,
      reason: null,
      nowMs,
      storeAvailable,
    });
    this.o.metrics.inc('pva_resume_decisions_total', { kind: decision.kind, why: decision.why });
    const degraded = !storeAvailable;

    if (decision.kind === 'reject') {
      // AlwaysResume could not resume: tell the participant, go to Error, change nothing stored.
      const message = rejectMessage(decision, arrivalLanguage(this.o.language ?? null, profile, true, this.o.languageChosen).language);
      this.fire({ type: 'start_failed', code: 'resume_failed', message });
      return { decision, greeting: { kind: 'none', why: 'rejected' }, speech: message, record: null, resumed: false, degraded, previousOwner: null, fence: claim.lease.fence };
    }

    const storedWithTopic = stored && { ...stored, lastTopic: lastTopic(stored.history) ?? stored.lastTopic };
    // Only a drop the participant did not choose goes unannounced within the re-greet gap.
    const greeting = chooseGreeting(decision, storedWithTopic, profile, nowMs, takenFromLive ? { minRegreetGapMs: 0 } : this.greetingOpts(stored?.disconnectReason ?? null, false));
    let record: SessionRecord;
    if (decision.kind === 'resume' && storedWithTopic) {
      // A visit is a greeted return: a resume after a drop too short to announce (a worker
      // restarted under the call) is the same visit, and the next return says so.
      record = resumedRecord(storedWithTopic, nowMs, greeting.kind === 'returning');
    } else {
      if (stored) {
        // The previous conversation is over (expired, or AlwaysFresh): archive it, start anew.
        // Queued, not awaited: the greeting needs neither round trip, and the arrival's writes
        // may be held until it is on its way (holdWrites). The new record's save is queued
        // after this, so it runs with the lease and version of the second claim.
        this.endPrevious(stored, nowMs);
      } else if (claim.record.status === 'invalid') {
        // The stored conversation could not be read (tampered, or sealed with a key this worker
        // lacks): set it aside before the new one replaces it, so none of it is lost (its archive
        // copy keeps it, its unsaved turns join that copy). Queued like the case above.
        this.o.logger.warn({ why: claim.record.why }, 'the stored conversation could not be read: set aside in the archive, starting afresh');
        void this.writes.run('set_aside_unreadable', async () => {
          if (!this.abandoned) await this.claimAgain('set_aside');
        });
      }
      record = newSessionRecord({
        agentName: key.agentName,
        identity: key.identity,
        sessionId: randomUUID(),
        nowMs,
        profile: policy.resumePolicy === 'AlwaysFresh' ? withoutMemory(profile) : profile,
        participantName: this.o.participantName ?? null,
      });
    }
    // AlwaysFresh reveals no memory (a kiosk): only the token's language, never a remembered one.
    this.record = { ...record, state: 'Connected', owner: { ownerId: this.o.ownerId, fence: this.lease.fence, leaseExpiresAtMs: nowMs + this.leaseMs } };
    this.applyLanguage(arrivalLanguage(this.o.language ?? null, record, policy.resumePolicy !== 'AlwaysFresh', this.o.languageChosen));
    this.queueSave();
    this.fire({ type: 'started', resumed: decision.kind === 'resume' });
    this.startRenewal();
    // A resumed summary may already be due (its last job ended before an answer, or had no model).
    this.condenseIfDue();
    // A claim made after this one was announced before it answered: this job lost the session
    // before it started (the caller sees `isTakenOver`, and the close follows).
    if (noticed.some((n) => !this.isOlderClaim(n))) this.takenOver();
    if (greeting.kind !== 'none' && !this.lost) this.o.metrics.inc('pva_sessions_started_total', { greeting: greeting.kind });
    return {
      decision,
      greeting,
      speech: renderGreeting(greeting, this.record.participantName, this.record.language),
      record: this.record,
      resumed: decision.kind === 'resume',
      degraded,
      previousOwner: claim.previousOwner,
      fence: this.lease.fence,
    };
  }

  /** True when `notice` is of a claim made before this job's own (it announces nothing new). */
  private isOlderClaim(notice: TakeoverNotice): boolean {
    if (this.lease === null) return false;
    if (notice.owner === this.tookOverFrom) return true;
    return this.sharedFence !== null && notice.fence <= this.sharedFence;
  }

  /** The participant's connection ended (`reason` mapped from LiveKit's disconnect reason). */
  left(reason: DisconnectReason): void {
    if (this.lost || this.closed || this.record === null) return;
    const before = this.lifecycle.name;
    this.fire({ type: 'participant_left', reason });
    if (this.lifecycle.name === before) return;
    const nowMs = this.o.clock.nowMs();
    // Persisted with the lease kept: the job waits for a rejoin until the window ends.
    this.record = { ...this.record, state: this.lifecycle.name, lastSeenAt: Math.max(this.record.lastSeenAt, nowMs), disconnectedAt: nowMs, disconnectReason: reason };
    this.queueSave();
  }

  /**
   * The same identity is back in this room. Returns the greeting to say (or null), or
   * `undefined` when the rejoin came too late (the lifecycle has closed the conversation).
   */
  rejoined(token?: RejoinToken): Rejoin | undefined {
    if (this.lost || this.closed || this.record === null) return undefined;
    const before = this.record;
    this.fire({ type: 'participant_rejoined' });
    if (this.lifecycle.name !== 'Connected') return undefined;
    const nowMs = this.o.clock.nowMs();
    // A new connection that replaced the old one before its leave was seen: the conversation was
    // live here until now (timing it from the last turn made a reload "your 2nd visit", or first-time).
    const left = liveUntil(before, nowMs);
    const gapMs = gapSinceLastSeenMs(left, nowMs);
    const greetingOpts = this.greetingOpts(before.disconnectReason, true);
    // AlwaysFresh starts over here too (a kiosk's next visitor must not meet the last one's
    // conversation), except after a network drop within the re-greet gap: the same person, whose
    // connection came back.
    const blip = (greetingOpts.minRegreetGapMs ?? DEFAULT_MIN_REGREET_GAP_MS) > gapMs;
    const decision: ResumeDecision =
      this.o.policy.resumePolicy === 'AlwaysFresh' && blip
        ? { kind: 'resume', why: 'within_rejoin_ttl', gapMs }
        : decideResume({ record: left, profile: null, policy: this.o.policy, reason: before.disconnectReason, nowMs, storeAvailable: true });
    // A new connection of the same identity (a page reload, a reopened tab) is a new arrival
    // and is greeted once; only a network drop within the re-greet gap goes unannounced (short
    // blips never even reach here: the client resumes its connection).
    const greeting = chooseGreeting(decision, before, null, nowMs, greetingOpts);
    this.o.metrics.inc('pva_reconnects_total');
    this.o.metrics.inc('pva_resume_decisions_total', { kind: decision.kind, why: decision.why });
    if (greeting.kind !== 'none') this.o.metrics.inc('pva_sessions_started_total', { greeting: greeting.kind });
    const startedOver = decision.kind !== 'resume';
    if (startedOver) {
      this.condenseRetryAtTurnCount = 0;
      // The conversation so far is archived; the new one knows only what this connection's token says.
      this.endPrevious(before, nowMs);
      const fresh = newSessionRecord({
        agentName: before.agentName,
        identity: before.identity,
        sessionId: randomUUID(),
        nowMs,
        profile: withoutMemory(profileFromRecord(before)),
        participantName: token?.participantName ?? null,
      });
      this.record = { ...fresh, state: 'Connected', owner: before.owner };
      this.applyLanguage(arrivalLanguage(token?.language ?? null, this.record, false, token?.chosen ?? false));
    } else {
      this.record = { ...resumedRecord(before, nowMs, false), state: 'Connected' };
    }
    // The new connection's token may carry another language (a pick from the web client's menu,
    // another browser): ranked as at an arrival, against what this conversation already knows.
    const languageChanged = startedOver
      ? this.record.language !== before.language
      : token !== undefined && this.applyLanguage(arrivalLanguage(token.language, this.record, true, token.chosen));
    this.queueSave();
    return { decision, greeting, speech: renderGreeting(greeting, this.record.participantName, this.record.language), languageChanged, startedOver };
  }

  /** Makes the arrival's language the conversation's (with where it came from); true when anything changed. */
  private applyLanguage({ language, heard, chosen }: ArrivalLanguage): boolean {
    const r = this.record!;
    if (r.language === language && (r.languageHeard === true) === heard && (r.languageChosen === true) === chosen) return false;
    const { languageHeard: _wasHeard, languageChosen: _wasChosen, ...rest } = r;
    this.record = { ...rest, language, ...(heard ? { languageHeard: true } : {}), ...(chosen ? { languageChosen: true } : {}) };
    return true;
  }

  /** A turn was said (user or assistant): kept in the record and appended to the store at once. */
  persistTurn(turn: Turn): void {
    if (this.lost || this.closed || this.record === null) return;
    const next = recordWithTurn(this.record, turn);
    if (next === this.record) return; // duplicate turn id
    this.record = next;
    this.unsavedTurns++;
    this.releaseHeldWrites();
    void this.writes.run('append_turn', async () => {
      this.version = await this.o.store.appendTurn(this.o.key, turn, this.lease!);
    });
    this.condenseIfDue();
  }

  /**
   * The participant was heard speaking `tag` (a canonical BCP 47 tag, learned by
   * `SpokenLanguage`): the conversation's language from now on, kept in the record and profile
   * as heard (a later arrival is greeted in it, whatever its token says: `arrivalLanguage`) and saved.
   */
  useLanguage(tag: string): void {
    if (this.lost || this.closed || this.record === null) return;
    // What they speak now is better evidence than an earlier pick: the pick is no longer theirs to keep.
    if (this.applyLanguage({ language: tag, heard: true, chosen: false })) this.queueSave();
  }

  /**
   * Starts condensing the summary when it is due and nothing else is condensing it. The answer
   * replaces the text the model was given and keeps the lines folded in meanwhile; it is saved
   * like any change. A failure, a late answer or one that no longer fits changes nothing: the
   * lines stay, and the next attempt waits for `retryAfterTurns` more folded turns.
   */
  private condenseIfDue(): void {
    const condense = this.o.condense;
    const opts = this.o.condenseOptions ?? DEFAULT_CONDENSE_OPTIONS;
    const history = this.record?.history;
    if (condense === undefined || this.condensing || history === undefined) return;
    if (!condenseDue(history, opts) || history.summarizedTurnCount < this.condenseRetryAtTurnCount) return;
    this.condensing = true;
    const basis = history.summary;
    const retryAt = history.summarizedTurnCount + opts.retryAfterTurns;
    const startedMs = this.o.clock.nowMs();
    const sessionId = this.record!.sessionId;
    // An answer for a conversation that has since started over (AlwaysFresh) is not this one's.
    const current = () => !this.lost && !this.closed && this.record !== null && this.record.sessionId === sessionId;
    void condense(basis)
      .then(
        (text) => {
          if (!current() || this.record === null) return;
          const next = withCondensedSummary(this.record.history, basis, text, opts);
          this.o.metrics.inc('pva_summary_condensed_total', { result: next === null ? 'unusable' : 'ok' });
          if (next === null) {
            this.condenseRetryAtTurnCount = retryAt;
            return;
          }
          this.condenseRetryAtTurnCount = 0;
          this.o.logger.info({ fromChars: basis.length, toChars: next.summary.length, ms: this.o.clock.nowMs() - startedMs }, 'summary condensed');
          this.record = { ...this.record, history: next };
          this.queueSave();
        },
        (err: unknown) => {
          if (current()) this.condenseRetryAtTurnCount = retryAt;
          this.o.metrics.inc('pva_summary_condensed_total', { result: 'failed' });
          this.o.logger.warn({ err: err instanceof Error ? err.name : 'unknown', ms: this.o.clock.nowMs() - startedMs }, 'summary condensing failed: the summary keeps its lines');
        },
      )
      .finally(() => {
        this.condensing = false;
      });
  }

  /** The dynamic context changed: kept in the record and saved. */
  updateContext(snapshot: ContextSnapshot): void {
    if (this.lost || this.closed || this.record === null) return;
    this.record = { ...this.record, context: snapshot };
    this.queueSave();
  }

  /**
   * Another job took the session over: stop writing, close. `notice` is the takeover notice that
   * says so (none when this job's own write found the lease moved). A notice is announced once
   * its job links its participant, so it may come after a later claim, this one, took the
   * conversation from that job: a notice of an older claim (the job this one took over from, or
   * a lower fence) is ignored, and one that comes while this job's claim is on its way is
   * decided when the claim answers.
   */
  takenOver(notice?: TakeoverNotice): void {
    if (this.lost || this.abandoned) return;
    if (notice !== undefined) {
      if (this.noticedWhileClaiming !== null) {
        this.noticedWhileClaiming.push(notice);
        return;
      }
      if (this.isOlderClaim(notice)) {
        this.o.logger.info({ noticeFence: notice.fence, fence: this.sharedFence }, 'a takeover notice of an older claim: ignored');
        return;
      }
    }
    this.lost = true;
    this.stopTimers();
    this.o.metrics.inc('pva_takeovers_total');
    this.fire({ type: 'taken_over' });
  }

  /** The identity was erased elsewhere: stop writing at once (the caller erases the local copy). */
  forgotten(): void {
    this.forgottenHere = true;
    this.lost = true;
    this.closed = true;
    this.stopTimers();
    // Held writes (a dispatch hint's claim whose participant has not linked) are skipped now,
    // not waited for: `drain` must not wait for a participant who may never come.
    this.releaseHeldWrites();
  }

  /**
   * Ends this job's hold: suspends the record (archive copy, lease released) so any job can
   * resume it within the session TTL. Waits for every queued write first.
   */
  async suspend(reason: DisconnectReason): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimers();
    const record = this.record;
    if (this.lost || record === null || this.lease === null) {
      await this.writes.drain();
      return;
    }
    const nowMs = this.o.clock.nowMs();
    const keepReason = record.disconnectReason ?? reason;
    const suspended = suspendedRecord(record, record.disconnectedAt ?? nowMs, keepReason);
    this.record = suspended;
    await this.writes.run('suspend', async () => {
      this.version = await this.o.store.suspend(suspended, this.version, this.lease!, nowMs);
    });
    await this.writes.drain();
  }

  /** Waits for every queued write (tests, shutdown). */
  drain(): Promise<void> {
    return this.writes.drain();
  }

  /**
   * Holds every write queued from now on until released, the hold's bound passes or a turn is
   * said, whichever is first; the writes then run in their order. The bound is `maxMs` from now,
   * or with `null` starts at {@link WriteHold.bound}. The job holds the arrival's writes until
   * the greeting is on its way, so encoding and sending them does not compete with the greeting
   * for the CPU; a turn is never held (it must survive a crash). Nothing is dropped: `drain` and
   * `suspend` wait for the held writes too; only {@link abandon} and {@link forgotten} skip them.
   */
  holdWrites(maxMs: number | null): WriteHold {
    const hold = this.writes.hold(maxMs);
    this.releaseHeldWrites = hold.release;
    return hold;
  }

  /**
   * Drops an arrival whose participant never linked (a dispatch hint that did not come true):
   * nothing of the arrival is written (held writes are skipped), the lease is released, and no
   * callback fires from now on. Call it after {@link arrive} settled.
   */
  async abandon(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.abandoned = true;
      this.stopTimers();
      this.releaseLease();
    }
    // Also when closed otherwise first (forgotten, taken over): the held writes are skipped.
    this.releaseHeldWrites();
    await this.writes.drain();
  }

  /** The greeting options for a return after a leave recorded as `reason` (see {@link shortDropRuleApplies}). */
  private greetingOpts(reason: DisconnectReason | null, withinJob: boolean): { minRegreetGapMs?: number } {
    if (!shortDropRuleApplies(reason, withinJob)) return { minRegreetGapMs: 0 };
    return this.o.minRegreetGapMs === undefined ? {} : { minRegreetGapMs: this.o.minRegreetGapMs };
  }

  private queueSave(): void {
    if (this.saveQueued) return;
    this.saveQueued = true;
    void this.writes.run('save', async () => {
      this.saveQueued = false;
      if (this.record === null || this.closed || this.endsPending > 0) return;
      this.unsavedTurns = 0;
      this.version = await this.o.store.save(this.record, this.version, this.lease!);
    });
  }

  private startRenewal(): void {
    // Renewal also keeps the stored session alive (its TTL restarts), so it must come well
    // within both the lease and the session TTL.
    const everyMs = Math.max(250, Math.floor(Math.min(this.leaseMs, this.o.policy.sessionTtlMs) / 3));
    this.renewTimer = setInterval(() => {
      // Turns appended since the last save are folded in, which also refreshes the archive
      // copy and keeps the pending list short (if this job crashes, the store keeps the turns
      // appended after this save with the archive copy).
      if (this.unsavedTurns > 0) this.queueSave();
      void this.writes.run('renew_lease', async () => {
        const ok = await this.o.store.renewLease(this.o.key, this.lease!, this.o.clock.nowMs(), this.leaseMs);
        if (!ok) throw new ConflictError('lease_lost', 'lease moved');
      });
    }, everyMs);
    this.renewTimer.unref();
  }

  private releaseLease(): void {
    const lease = this.lease;
    if (lease === null || this.lost) return;
    void this.writes.run('release', async () => {
      await this.o.store.release(this.o.key, lease);
    });
  }

  private stopTimers(): void {
    clearTimeout(this.tickTimer);
    clearInterval(this.renewTimer);
  }

  /** Stops timers without writing (the job is going away after a crash-like end). */
  dispose(): void {
    this.stopTimers();
  }
}
