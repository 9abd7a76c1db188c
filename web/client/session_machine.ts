/**
 * The page's session lifecycle: the six states of seed 000 (Convai's session state machine)
 * and its `ReconnectPolicy`, as a pure `transition(machine, event, nowMs, policy)` that
 * returns the next machine and the effects to run; it performs none of them (the page
 * controller does: token requests, `room.connect`, timers, storage).
 *
 * ```
 * Disconnected ─connect→ Connecting ─connected→ Connected ─disconnect→ Disconnecting ─closed→ Disconnected
 *                        Connecting ─fatal / attempts exhausted→ Error ─retry→ Connecting
 *                        Connected ─connection lost→ Reconnecting ─connected→ Connected
 *                                                    Reconnecting ─attempts exhausted→ Error
 *                        Connected / Reconnecting ─fatal→ Error
 * ```
 *
 * Every connection attempt gets an id; results of an older attempt (one that timed out) are
 * ignored. An attempt reuses the last room while the drop is within `rejoinTtlMs` (the agent
 * is still waiting there), otherwise asks for a new room. A transient failure (network, start
 * timeout) is retried until `maxReconnectAttempts` attempts failed; a refusal (the token
 * service said no, or the agent could not resume under `AlwaysResume`) goes to `Error` at once.
 */

/** The six session states (seed 000). */
export const CLIENT_STATES = ['Disconnected', 'Connecting', 'Connected', 'Reconnecting', 'Disconnecting', 'Error'] as const;
/** See {@link CLIENT_STATES}. */
export type ClientState = (typeof CLIENT_STATES)[number];

/** Seed 000's `ReconnectPolicy`, the fields a browser client uses. */
export interface ReconnectPolicy {
  /** Window after a drop in which the page rejoins the same room, ms. @default 60 000 (matches the worker's rejoin TTL) */
  rejoinTtlMs: number;
  /** Failed attempts (initial connect or reconnect) before `Error`. @default 3 */
  maxReconnectAttempts: number;
  /** Bound of one attempt (token + connect), ms. @default 5 000 */
  startWaitTimeoutMs: number;
}

/** Seed 000's `ReconnectPolicy.Default`. */
export const DEFAULT_RECONNECT_POLICY: Readonly<ReconnectPolicy> = Object.freeze({
  rejoinTtlMs: 60_000,
  maxReconnectAttempts: 3,
  startWaitTimeoutMs: 5_000,
});

/** Seed 000's `ReconnectPolicy.AlwaysCreateNew`: never rejoin a room. */
export const ALWAYS_CREATE_NEW_POLICY: Readonly<ReconnectPolicy> = Object.freeze({ ...DEFAULT_RECONNECT_POLICY, rejoinTtlMs: 0 });

/** The room the page was last in and when it was last known to be there. */
export interface LastRoom {
  name: string;
  /** Epoch ms: while connected, refreshed by heartbeats and at page hide. */
  seenAtMs: number;
}

/** A user-facing error (no personal data). */
export interface ClientError {
  code: string;
  message: string;
}

/** The machine's whole state. */
export interface ClientMachine {
  state: ClientState;
  /** Id of the attempt in flight (0 = none yet); results of other ids are ignored. */
  attemptId: number;
  /** Attempts made in the current connect / reconnect cycle. */
  attempts: number;
  lastRoom: LastRoom | null;
  error: ClientError | null;
}

/** Events from the user, the room and the timers. */
export type ClientEvent =
  /** The user pressed Connect (or the page resumes after a reload). */
  | { type: 'connect' }
  /** The user pressed Retry in `Error`. */
  | { type: 'retry' }
  /** The user pressed Disconnect. */
  | { type: 'disconnect' }
  /** The room closed after a `disconnect` effect. */
  | { type: 'closed' }
  /** Attempt `attemptId` joined `room`. */
  | { type: 'connected'; attemptId: number; room: string }
  /** Attempt `attemptId` failed; `fatal` = no point retrying (auth, configuration, refusal). */
  | { type: 'attemptFailed'; attemptId: number; error: ClientError; fatal: boolean; retryAfterMs?: number }
  /** Attempt `attemptId` did not finish within `startWaitTimeoutMs`. */
  | { type: 'startTimeout'; attemptId: number }
  /** The room dropped without the user asking (after livekit-client's own recovery gave up). */
  | { type: 'connectionLost'; reason: string }
  /** livekit-client is recovering the connection itself (same room, same session). */
  | { type: 'transportReconnecting' }
  /** livekit-client recovered. */
  | { type: 'transportReconnected' }
  /**
   * An unrecoverable error while live: the agent could not resume under `AlwaysResume`, or the
   * same identity joined from another tab (reconnecting would only take the session back and
   * forth).
   */
  | { type: 'fatal'; error: ClientError }
  /**
   * The agent ended the call (it hung up after a silence) or the room was deleted or we were
   * removed from it: the page neither reconnects nor rejoins it; the next Connect asks for a new
   * room.
   */
  | { type: 'ended' }
  /** Still connected: refresh `lastRoom.seenAtMs` (heartbeat, page hide). */
  | { type: 'heartbeat' }
  /** Forget everything (after "Forget me"): back to a clean `Disconnected`. */
  | { type: 'reset' };

/** What the controller must do. */
export type ClientEffect =
  /**
   * After `delayMs` (0 for a first attempt, a growing backoff for a retry), request a token
   * (reusing `room` when not null) and connect; the start timer covers the delay and `timeoutMs`.
   */
  | { type: 'startAttempt'; attemptId: number; attempt: number; room: string | null; timeoutMs: number; delayMs: number }
  /** Abandon the attempt in flight and leave the room quietly (no user-visible disconnect). */
  | { type: 'abandonAttempt' }
  /** Leave the room (user disconnect or error). */
  | { type: 'closeRoom' }
  /** Persist `lastRoom` (null = forget it). */
  | { type: 'persistLastRoom'; lastRoom: LastRoom | null };

/** Result of {@link transition}. */
export interface Transition {
  machine: ClientMachine;
  effects: ClientEffect[];
}

/** The initial machine; `lastRoom` from storage lets a reloaded page rejoin its room. */
export function initialMachine(lastRoom: LastRoom | null = null): ClientMachine {
  return { state: 'Disconnected', attemptId: 0, attempts: 0, lastRoom, error: null };
}

/** The room an attempt asks for: the last one while within the rejoin window, else a new one (null). */
export function chooseRoom(lastRoom: LastRoom | null, nowMs: number, policy: ReconnectPolicy): string | null {
  if (lastRoom === null || policy.rejoinTtlMs <= 0) return null;
  return nowMs - lastRoom.seenAtMs <= policy.rejoinTtlMs ? lastRoom.name : null;
}

/** Whether the machine is in or moving towards a live room. */
export function isActive(state: ClientState): boolean {
  return state === 'Connecting' || state === 'Connected' || state === 'Reconnecting';
}

/** Wait before the second attempt of a round, ms; it doubles for each later one, up to {@link RETRY_BACKOFF_MAX_MS}. */
export const RETRY_BACKOFF_BASE_MS = 1_000;
/** Longest wait between two attempts, ms. */
export const RETRY_BACKOFF_MAX_MS = 8_000;

/** The wait before attempt number `attempt` of a round (1-based): none for the first, then 1 s, 2 s, 4 s, … */
export function retryDelayMs(attempt: number): number {
  return attempt <= 1 ? 0 : Math.min(RETRY_BACKOFF_BASE_MS * 2 ** (attempt - 2), RETRY_BACKOFF_MAX_MS);
}

function attempt(m: ClientMachine, state: 'Connecting' | 'Reconnecting', nowMs: number, policy: ReconnectPolicy, extra: ClientEffect[] = [], askedWaitMs = 0): Transition {
  const attemptId = m.attemptId + 1;
  const attempts = m.attempts + 1;
  // A retry waits a little longer each time: a network still down would otherwise use up every
  // attempt within milliseconds, long before the rejoin window ends. A service that said how long
  // to wait (Retry-After) is not asked again sooner.
  const delayMs = Math.max(retryDelayMs(attempts), askedWaitMs);
  return {
    machine: { ...m, state, attemptId, attempts, error: null },
    effects: [
      ...extra,
      { type: 'startAttempt', attemptId, attempt: attempts, room: chooseRoom(m.lastRoom, nowMs + delayMs, policy), timeoutMs: policy.startWaitTimeoutMs, delayMs },
    ],
  };
}

function fail(m: ClientMachine, error: ClientError, effects: ClientEffect[]): Transition {
  return { machine: { ...m, state: 'Error', error, attempts: 0 }, effects };
}

function retryOrFail(m: ClientMachine, error: ClientError, nowMs: number, policy: ReconnectPolicy, retryAfterMs = 0): Transition {
  const state = m.state === 'Reconnecting' ? 'Reconnecting' : 'Connecting';
  if (m.attempts >= policy.maxReconnectAttempts) {
    return fail(
      m,
      { code: 'max_attempts', message: `Could not ${state === 'Reconnecting' ? 'reconnect' : 'connect'} after ${m.attempts} attempts (${error.message}).` },
      [{ type: 'abandonAttempt' }],
    );
  }
  return attempt(m, state, nowMs, policy, [{ type: 'abandonAttempt' }], retryAfterMs);
}

const same = (m: ClientMachine): Transition => ({ machine: m, effects: [] });

/** The pure transition function. Events that do not apply in a state change nothing. */
export function transition(m: ClientMachine, ev: ClientEvent, nowMs: number, policy: ReconnectPolicy = DEFAULT_RECONNECT_POLICY): Transition {
  switch (ev.type) {
    case 'connect':
    case 'retry':
      if (m.state !== 'Disconnected' && m.state !== 'Error') return same(m);
      return attempt({ ...m, attempts: 0 }, 'Connecting', nowMs, policy);

    case 'connected': {
      if ((m.state !== 'Connecting' && m.state !== 'Reconnecting') || ev.attemptId !== m.attemptId) return same(m);
      const lastRoom = { name: ev.room, seenAtMs: nowMs };
      return { machine: { ...m, state: 'Connected', attempts: 0, lastRoom, error: null }, effects: [{ type: 'persistLastRoom', lastRoom }] };
    }

    case 'attemptFailed':
      if ((m.state !== 'Connecting' && m.state !== 'Reconnecting') || ev.attemptId !== m.attemptId) return same(m);
      if (ev.fatal) return fail(m, ev.error, [{ type: 'abandonAttempt' }]);
      return retryOrFail(m, ev.error, nowMs, policy, ev.retryAfterMs);

    case 'startTimeout':
      if ((m.state !== 'Connecting' && m.state !== 'Reconnecting') || ev.attemptId !== m.attemptId) return same(m);
      return retryOrFail(m, { code: 'start_timeout', message: `no connection within ${policy.startWaitTimeoutMs} ms` }, nowMs, policy);

    case 'transportReconnecting':
      return m.state === 'Connected' ? { machine: { ...m, state: 'Reconnecting', attempts: 0 }, effects: [] } : same(m);

    case 'transportReconnected':
      // Only while livekit-client itself is recovering (no attempt of ours in flight).
      return m.state === 'Reconnecting' && m.attempts === 0 ? { machine: { ...m, state: 'Connected' }, effects: [] } : same(m);

    case 'connectionLost': {
      if (m.state === 'Disconnecting') return { machine: { ...m, state: 'Disconnected' }, effects: [] };
      // During an attempt of ours its failure arrives as `attemptFailed` / `startTimeout`.
      const recovering = m.state === 'Connected' || (m.state === 'Reconnecting' && m.attempts === 0);
      if (!recovering) return same(m);
      // The drop time anchors the rejoin window.
      const lastRoom = m.lastRoom === null ? null : { ...m.lastRoom, seenAtMs: nowMs };
      const t = attempt({ ...m, lastRoom, attempts: 0 }, 'Reconnecting', nowMs, policy);
      return { machine: t.machine, effects: [{ type: 'persistLastRoom', lastRoom }, ...t.effects] };
    }

    case 'fatal':
      if (!isActive(m.state)) return same(m);
      return fail(m, ev.error, [{ type: 'closeRoom' }]);

    case 'disconnect':
      if (isActive(m.state)) {
        const lastRoom = m.state === 'Connected' && m.lastRoom !== null ? { ...m.lastRoom, seenAtMs: nowMs } : m.lastRoom;
        return {
          machine: { ...m, state: 'Disconnecting', attempts: 0, lastRoom, attemptId: m.attemptId + 1 },
          effects: [{ type: 'persistLastRoom', lastRoom }, { type: 'closeRoom' }],
        };
      }
      if (m.state === 'Error') return { machine: { ...m, state: 'Disconnected', error: null }, effects: [] };
      return same(m);

    case 'ended': {
      if (!isActive(m.state) && m.state !== 'Disconnecting') return same(m);
      // A live room is left; an attempt of ours in flight is abandoned (its result is ignored).
      const live = m.state === 'Connected' || (m.state === 'Reconnecting' && m.attempts === 0);
      const leave: ClientEffect = m.state === 'Disconnecting' || live ? { type: 'closeRoom' } : { type: 'abandonAttempt' };
      return {
        machine: { ...m, state: 'Disconnected', attempts: 0, lastRoom: null, attemptId: m.attemptId + 1, error: null },
        effects: [{ type: 'persistLastRoom', lastRoom: null }, leave],
      };
    }

    case 'closed':
      return m.state === 'Disconnecting' ? { machine: { ...m, state: 'Disconnected' }, effects: [] } : same(m);

    case 'heartbeat': {
      if (m.state !== 'Connected' || m.lastRoom === null) return same(m);
      const lastRoom = { ...m.lastRoom, seenAtMs: nowMs };
      return { machine: { ...m, lastRoom }, effects: [{ type: 'persistLastRoom', lastRoom }] };
    }

    case 'reset':
      return {
        machine: { ...initialMachine(null), attemptId: m.attemptId + 1 },
        effects: [...(isActive(m.state) || m.state === 'Disconnecting' ? [{ type: 'closeRoom' } as const] : []), { type: 'persistLastRoom', lastRoom: null }],
      };
  }
}
