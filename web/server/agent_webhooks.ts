/**
 * LiveKit webhooks (livekit-server's `webhook.urls` → `POST /livekit/webhook`, signed with the API
 * key): the server side of seed 000 `SpawnAgentOnRejoin`, for every client, without waiting for a
 * rejoin. The web client watches for its agent itself; a participant of the Agents Playground, a
 * phone caller or any other client does not, and before this a crashed worker left them alone in
 * the room until they rejoined.
 *
 * - `participant_left` of our agent (its `lk.agent.name`) with no leaving mark
 *   ({@link ATTR_AGENT_LEFT}: the agent sets it whenever it leaves on purpose): its worker died,
 *   or was stopped before the call ended. A new agent is dispatched at once if someone is still
 *   in the room, for the person who has been there longest (their dispatch hint, so the new job
 *   claims their conversation while it connects, and resumes it).
 * - `participant_joined` of a person: {@link JOIN_RECHECK_MS} later, if no agent is in the room
 *   and none is on its way, one is dispatched (no worker was registered when the room was
 *   created: livekit-server dropped its dispatch for good), but only into a room that had a
 *   dispatch of our agent (a named agent; see `DispatchOptions.onlyWhereDispatched`).
 * - `participant_joined` of our agent, and `room_finished`: a recheck still waiting for the room is dropped.
 *
 * The join checks wait in {@link AgentWebhooksOptions.rechecks} (in Redis when there is one: they
 * outlive a restart, and every service process sees the same ones) and are taken when due, every
 * {@link WEBHOOK_TICK_MS}.
 *
 * And, with no webhook at all, the liveness watch ({@link AgentWebhooksOptions.liveness}): every
 * {@link WEBHOOK_TICK_MS} it takes the agents whose jobs stopped beating in Redis
 * (`lib/store/agent_liveness.ts`), removes each from its room (livekit-server would keep a dead
 * agent until its ICE timeout, about 20 s) and sends a new one as for `participant_left`: the
 * participant of a crashed worker waits a few seconds instead of twenty (a removal the LiveKit API
 * fails, or does not answer within {@link REMOVAL_TIMEOUT_MS}, is tried again a tick later,
 * {@link REMOVAL_ATTEMPTS} times in all). An agent that says it
 * is alive, cut off from Redis only, is left serving and left on the list, so that it is looked
 * at again until its own beats come back.
 *
 * Every dispatch goes through {@link ensureAgentDispatched} and the service's dispatch gate, so a
 * webhook, a page asking and a rejoin never send two agents; and at most
 * {@link REPLACEMENTS_PER_ROOM} per room in {@link REPLACEMENT_WINDOW_MS}, so an agent that fails
 * the same way every time is not sent in forever.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ParticipantInfo, WebhookEvent } from 'livekit-server-sdk';
import { ATTR_AGENT_LEFT, ATTR_AGENT_NAME } from '../../lib/attributes.js';
import type { Logger } from '../../lib/logger.js';
import { bounded } from '../../lib/store/bounded.js';
import type { LapsedAgent } from '../../lib/store/agent_liveness.js';
import { DISPATCH_ARRIVAL_GRACE_MS, PARTICIPANT_KIND, hintFor, isPerson, type DispatchFor, type ensureAgentDispatched } from './agent_dispatch.js';
import type { RateLimiter } from './rate_limiter.js';
import { MemoryRoomRechecks, type RoomRechecks } from './room_rechecks.js';

/** How long after a person joins the room is checked for its agent, ms: past the dispatch grace, so a dispatch that no worker took counts as lost. */
export const JOIN_RECHECK_MS = DISPATCH_ARRIVAL_GRACE_MS + 2_000;

/** How often due join checks are taken and the liveness watch looks for agents whose beats stopped, ms. */
export const WEBHOOK_TICK_MS = 1_000;

/**
 * A lapsed agent's removal is tried this many times, a tick apart, when LiveKit's API fails (a
 * moment out of reach): a crashed agent is not left in its room until the watch's next look at it.
 */
export const REMOVAL_ATTEMPTS = 3;

/**
 * How long one removal attempt may take, ms, before it counts as failed (a LiveKit API that
 * hangs: the SDK's own timeout is 10 s per call, and a removal makes up to three calls). All the
 * attempts then end before the lapsed agent is looked at again (`CUT_OFF_ALIVE_MS`, 15 s), so no
 * other service process takes it up while this one is still on it.
 */
export const REMOVAL_TIMEOUT_MS = 4_000;

/** At most this many agents dispatched into one room by webhooks in {@link REPLACEMENT_WINDOW_MS}. */
export const REPLACEMENTS_PER_ROOM = 3;
export const REPLACEMENT_WINDOW_MS = 10 * 60_000;

/**
 * A dispatch into a room ({@link ensureAgentDispatched} with the service's server, agent name and
 * gate); `onlyWhereDispatched` for a room whose agent never came (see `DispatchOptions`).
 */
export type RoomDispatch = (room: string, forWhom: DispatchFor, onlyWhereDispatched: boolean) => ReturnType<typeof ensureAgentDispatched>;

/** Why a new agent is sent: its agent left unmarked, never came, or stopped beating. */
type ReplaceReason = 'agent_left' | 'agent_missing' | 'agent_lapsed';

/** The liveness watch's two sides: the agents whose beats stopped, and their removal from the room. */
export interface LivenessWatch {
  /**
   * The lapsed agents of the service's agent name, each returned to one service process only, and
   * returned again a while later unless {@link forget} took it off the list first (so one whose
   * service process died on the way is not lost, and one that says it is alive is looked at again).
   */
  reap(): Promise<LapsedAgent[]>;
  /** Removes the lapsed agent from its room (`removeLapsedAgent` in agent_dispatch.ts). */
  remove(agent: LapsedAgent): Promise<'removed' | 'gone' | 'left_on_purpose' | 'alive'>;
  /**
   * Takes an agent off the list: a lapsed one dealt with (removed, found gone or leaving), or
   * one that left its room (a webhook said so), as its job does when it leaves on purpose. Should
   * the job's own removal have failed (its Redis out of reach for all its tries), its lapsed entry
   * would later look like a crash and bring an agent back into that room.
   */
  forget(agent: LapsedAgent): Promise<void>;
}

/** What {@link AgentWebhooks.handle} did with an event. */
export type WebhookAction = 'replacing' | 'recheck_scheduled' | 'left_on_purpose' | 'recheck_dropped' | 'ignored';

export interface AgentWebhooksOptions {
  /** The agent name the service dispatches (`''`: the workers registered with none). */
  agentName: string;
  dispatch: RoomDispatch;
  /** Counts dispatches per room ({@link REPLACEMENTS_PER_ROOM} per {@link REPLACEMENT_WINDOW_MS}). */
  limiter: RateLimiter;
  logger: Logger;
  nowMs: () => number;
  /** @default JOIN_RECHECK_MS */
  joinRecheckMs?: number;
  /** Where the join checks wait (Redis: shared, and kept across restarts). @default in this process's memory */
  rechecks?: RoomRechecks;
  /** The liveness watch (a Redis): off when undefined. */
  liveness?: LivenessWatch;
  /** @default WEBHOOK_TICK_MS */
  tickMs?: number;
  /** @default REMOVAL_TIMEOUT_MS */
  removalTimeoutMs?: number;
}

/** The person who has been in the room longest (their agent was the one that left), or null when nobody is. */
export function longestPresent(people: ParticipantInfo[]): ParticipantInfo | null {
  let first: ParticipantInfo | null = null;
  for (const p of people) if (first === null || p.joinedAtMs < first.joinedAtMs) first = p;
  return first;
}

/** Acts on verified LiveKit webhook events (see the module comment). */
export class AgentWebhooks {
  private readonly rechecks: RoomRechecks;
  private readonly running = new Set<Promise<void>>();
  private closed = false;
  private readonly ticker: NodeJS.Timeout;
  /** The periodic reads in a stretch of failures (each logged once). */
  private readonly failing = new Set<'rechecks' | 'reap'>();

  constructor(private readonly o: AgentWebhooksOptions) {
    this.rechecks = o.rechecks ?? new MemoryRoomRechecks(o.nowMs);
    const liveness = o.liveness;
    let busy = false;
    // One tick for both: the due join checks, and the agents whose beats stopped.
    this.ticker = setInterval(() => {
      if (busy || this.closed) return;
      busy = true;
      void Promise.all([this.takeDueRechecks(), liveness === undefined ? undefined : this.reap(liveness)]).finally(() => {
        busy = false;
      });
    }, o.tickMs ?? WEBHOOK_TICK_MS);
    this.ticker.unref();
  }

  /** Handles one verified event: what needs the server runs in the background (see {@link idle}). */
  async handle(event: WebhookEvent): Promise<WebhookAction> {
    if (this.closed) return 'ignored';
    const room = event.room?.name ?? '';
    const p = event.participant;
    if (room === '') return 'ignored';
    if (event.event === 'room_finished') return (await this.dropRecheck(room)) ? 'recheck_dropped' : 'ignored';
    if (p === undefined) return 'ignored';
    const ours = (p.kind as number) === PARTICIPANT_KIND.agent && (p.attributes[ATTR_AGENT_NAME] ?? '') === this.o.agentName;
    // The agent arrived: no check for a missing one (it may leave on purpose before the check).
    if (event.event === 'participant_joined' && ours) return (await this.dropRecheck(room)) ? 'recheck_dropped' : 'ignored';
    if (event.event === 'participant_left' && ours) {
      await Promise.all([this.dropRecheck(room), this.forget({ room, identity: p.identity })]);
      const onPurpose = p.attributes[ATTR_AGENT_LEFT];
      if (onPurpose !== undefined && onPurpose !== '') {
        this.o.logger.info({ room, reason: onPurpose }, 'agent left on purpose: not replaced');
        return 'left_on_purpose';
      }
      this.run(room, 'agent_left');
      return 'replacing';
    }
    if (event.event === 'participant_joined' && isPerson(p)) {
      try {
        await this.rechecks.schedule(room, this.o.joinRecheckMs ?? JOIN_RECHECK_MS);
      } catch (err) {
        // The web client's own watch still asks for its agent; other clients wait for a rejoin.
        this.o.logger.warn({ room, err: err instanceof Error ? err.message : String(err) }, 'join check not scheduled: the store does not answer');
        return 'ignored';
      }
      return 'recheck_scheduled';
    }
    return 'ignored';
  }

  /** Resolves once every dispatch started so far has finished. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  /**
   * Stops the ticks (the liveness watch, the due checks; checks kept in Redis stay for the other
   * service processes) and waits for dispatches in flight.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.ticker);
    this.rechecks.close();
    await this.idle();
  }

  /** Takes `agent` off the liveness list (see {@link LivenessWatch.forget}); a failure is logged. */
  private async forget(agent: LapsedAgent): Promise<void> {
    await this.o.liveness?.forget(agent).catch((err: unknown) => {
      // Its entry is taken again later; the watch then finds it gone (a dispatch finds any agent already there).
      this.o.logger.warn({ room: agent.room, err: err instanceof Error ? err.message : String(err) }, 'agent not taken off the liveness list');
    });
  }

  private async dropRecheck(room: string): Promise<boolean> {
    // A check that could not be dropped only finds the agent there (or sends one to nobody).
    return this.rechecks.drop(room).catch(() => false);
  }

  /**
   * `read()`, or undefined when it fails: the first failure of a stretch is logged as `failed`,
   * the first success after one as `back`.
   */
  private async readLogged<T>(read: () => Promise<T>, which: 'rechecks' | 'reap', failed: string, back: string): Promise<T | undefined> {
    try {
      const value = await read();
      if (this.failing.delete(which)) this.o.logger.info({}, back);
      return value;
    } catch (err) {
      if (!this.failing.has(which)) this.o.logger.warn({ err: err instanceof Error ? err.message : String(err) }, failed);
      this.failing.add(which);
      return undefined;
    }
  }

  /** The join checks now due: each room with no agent and none on its way gets one. */
  private async takeDueRechecks(): Promise<void> {
    const due = await this.readLogged(() => this.rechecks.takeDue(), 'rechecks', 'join checks cannot be read: retrying', 'join checks read again');
    for (const room of due ?? []) if (!this.closed) this.run(room, 'agent_missing');
  }

  /** One look for lapsed agents: each found is removed from its room and replaced. */
  private async reap(liveness: LivenessWatch): Promise<void> {
    const lapsed = (await this.readLogged(() => liveness.reap(), 'reap', 'agent liveness watch cannot read Redis: retrying', 'agent liveness watch reads Redis again')) ?? [];
    for (const agent of lapsed) {
      if (this.closed) return;
      void this.dropRecheck(agent.room);
      this.run(agent.room, 'agent_lapsed', async () => {
        const removed = await this.removeLapsed(liveness, agent);
        this.o.logger.info({ room: agent.room, removed }, 'agent stopped beating');
        // Alive (cut off from Redis only): left serving, and left on the list to be looked at
        // again (should its job die before it reaches Redis, it is still found). Else dealt with.
        if (removed !== 'alive') await this.forget(agent);
        // Gone already: replaced all the same (no webhook may have told anyone); the dispatch
        // finds any agent present or on its way.
        return removed === 'removed' || removed === 'gone';
      });
    }
  }

  /**
   * `liveness.remove(agent)`, tried again a tick later when it fails or takes longer than
   * {@link REMOVAL_TIMEOUT_MS}, up to {@link REMOVAL_ATTEMPTS} times; the last failure is thrown
   * (the agent stays on the list, and is looked at again later).
   */
  private async removeLapsed(liveness: LivenessWatch, agent: LapsedAgent): ReturnType<LivenessWatch['remove']> {
    const ms = this.o.removalTimeoutMs ?? REMOVAL_TIMEOUT_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        // A call abandoned at the bound ends on its own: should it still remove the agent, the next attempt finds it gone.
        return await bounded(liveness.remove(agent), ms, () => new Error(`the LiveKit API did not answer within ${ms} ms`));
      } catch (err) {
        if (attempt >= REMOVAL_ATTEMPTS || this.closed) throw err;
        this.o.logger.warn({ room: agent.room, attempt, err: err instanceof Error ? err.message : String(err) }, 'lapsed agent not checked: the LiveKit API failed; trying again');
        await delay(this.o.tickMs ?? WEBHOOK_TICK_MS);
      }
    }
  }

  private run(room: string, why: ReplaceReason, first?: () => Promise<boolean>): void {
    const job = (async () => {
      if (first !== undefined && !(await first())) return;
      await this.replace(room, why);
    })().catch((err: unknown) => {
      this.o.logger.warn({ room, why, err: err instanceof Error ? err.message : String(err) }, 'agent replacement failed');
    });
    this.running.add(job);
    void job.finally(() => this.running.delete(job));
  }

  private async replace(room: string, why: ReplaceReason): Promise<void> {
    const countedAtMs = this.o.nowMs();
    if (!(await this.o.limiter.allow(room, countedAtMs))) {
      this.o.logger.warn({ room, why, limit: REPLACEMENTS_PER_ROOM, windowMs: REPLACEMENT_WINDOW_MS }, 'agent not replaced: too many dispatches into this room');
      return;
    }
    let result: Awaited<ReturnType<RoomDispatch>> | undefined;
    try {
      // A room our agent was never dispatched into is not ours to fill (another application's,
      // or a call with no agent); one our agent left certainly is.
      result = await this.o.dispatch(
        room,
        (people) => {
          const first = longestPresent(people);
          return first === null ? null : hintFor(first);
        },
        why === 'agent_missing',
      );
    } finally {
      // Only an agent actually sent counts against the room's limit.
      if (result !== 'dispatched') await this.o.limiter.refund(room, countedAtMs);
    }
    this.o.logger.info({ room, why, result }, result === 'dispatched' ? 'agent dispatched to replace a missing one' : 'no agent dispatched');
  }
}
