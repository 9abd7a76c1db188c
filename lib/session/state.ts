import type { ReconnectPolicy, ResumePolicy } from './policy.js';
import type { DisconnectReason, SessionStateName } from './record.js';

/**
 * The agent-side lifecycle of one participant session over the six Convai states, as a pure,
 * exhaustive `transition(state, event, nowMs) -> { state, effects }`. It performs nothing: the
 * room bridge runs the effects.
 *
 * ```
 * Disconnected --connect--> Connecting --started--> Connected --left(client)--> Disconnected (rejoinable until the window ends)
 *                                                   Disconnected --rejoined (in window)--> Connected;  --tick (window over)--> close
 *                                                   Connected --left(ended)--> Disconnecting --closed--> Disconnected
 *                           Connecting --failed / start timeout--> Error
 *                           Connected --left(other)--> Reconnecting --rejoined--> Connected
 *                           Reconnecting --window expired / attempts exhausted--> Error (AlwaysResume) | Disconnecting; a close either way
 * ```
 */

/** The limits a lifecycle runs under (taken from the policy when it starts). */
export interface LifecycleLimits {
  rejoinTtlMs: number;
  maxReconnectAttempts: number;
  startWaitTimeoutMs: number;
  resumePolicy: ResumePolicy;
}

/** The lifecycle state: its name and the bookkeeping the transitions need. */
export interface LifecycleState {
  name: SessionStateName;
  /** When this state was entered, epoch ms. */
  enteredAtMs: number;
  /** Failed reconnect attempts in the current `Reconnecting` episode. */
  reconnectAttempts: number;
  /** `Connecting`: start deadline; `Reconnecting`: end of the rejoin window (epoch ms); else null. */
  deadlineMs: number | null;
  limits: LifecycleLimits;
}

/** What can happen to a session. */
export type LifecycleEvent =
  | { type: 'connect' }
  | { type: 'started'; resumed: boolean }
  | { type: 'start_failed'; code: string; message: string }
  | { type: 'participant_left'; reason: DisconnectReason }
  | { type: 'participant_rejoined' }
  | { type: 'reconnect_failed' }
  | { type: 'tick' }
  | { type: 'disconnect'; reason: DisconnectReason }
  | { type: 'taken_over' }
  | { type: 'closed' }
  | { type: 'retry' };

/** A typed state-change event: emitted on every change of state name. */
export interface SessionStateChanged {
  type: 'session_state_changed';
  oldState: SessionStateName;
  newState: SessionStateName;
  /** When it happened, epoch ms. */
  atMs: number;
  /** The event type that caused it. */
  cause: LifecycleEvent['type'];
}

/** Work for the bridge. */
export type LifecycleEffect =
  | { type: 'emit'; event: SessionStateChanged }
  /** Load the session, decide resume, claim it (start phase). */
  | { type: 'load_session' }
  /** Start the conversation (restore history, greet once). */
  | { type: 'start_conversation'; resumed: boolean }
  /** Persist the disconnect (record state, `disconnectedAt`, reason). */
  | { type: 'suspend_session'; reason: DisconnectReason }
  /** Call back with a `tick` at this time, epoch ms (timers are the bridge's). */
  | { type: 'schedule_tick'; atMs: number }
  /** Close the agent session (the job may stay). */
  | { type: 'close_session'; reason: DisconnectReason | 'rejoin_expired' }
  /** Drop the ownership lease. */
  | { type: 'release_lease' }
  /** Tell the participant about a failure. */
  | { type: 'notify_error'; code: string; message: string };

/** Result of {@link transition}. */
export interface TransitionResult {
  state: LifecycleState;
  effects: LifecycleEffect[];
  /** Set when the event does not apply in this state; state and effects are then unchanged / empty. */
  ignored?: string;
}

/** The initial (`Disconnected`) lifecycle under `policy`. */
export function initialLifecycle(policy: Pick<ReconnectPolicy, 'rejoinTtlMs' | 'maxReconnectAttempts' | 'startWaitTimeoutMs' | 'resumePolicy'>, nowMs: number): LifecycleState {
  return {
    name: 'Disconnected',
    enteredAtMs: nowMs,
    reconnectAttempts: 0,
    deadlineMs: null,
    limits: {
      rejoinTtlMs: policy.rejoinTtlMs,
      maxReconnectAttempts: policy.maxReconnectAttempts,
      startWaitTimeoutMs: policy.startWaitTimeoutMs,
      resumePolicy: policy.resumePolicy,
    },
  };
}

function go(
  from: LifecycleState,
  name: SessionStateName,
  cause: LifecycleEvent['type'],
  nowMs: number,
  effects: LifecycleEffect[],
  patch: Partial<Pick<LifecycleState, 'reconnectAttempts' | 'deadlineMs'>> = {},
): TransitionResult {
  const state: LifecycleState = {
    ...from,
    name,
    enteredAtMs: name === from.name ? from.enteredAtMs : nowMs,
    deadlineMs: patch.deadlineMs ?? null,
    reconnectAttempts: patch.reconnectAttempts ?? (name === 'Reconnecting' ? from.reconnectAttempts : 0),
  };
  const out: LifecycleEffect[] =
    name === from.name ? [] : [{ type: 'emit', event: { type: 'session_state_changed', oldState: from.name, newState: name, atMs: nowMs, cause } }];
  return { state, effects: [...out, ...effects] };
}

function ignore(state: LifecycleState, event: LifecycleEvent): TransitionResult {
  return { state, effects: [], ignored: `${event.type} in ${state.name}` };
}

/**
 * The end of a `Reconnecting` episode that did not come back: `Error` under `AlwaysResume`, else
 * `Disconnecting`; a close either way. The close puts the conversation away (suspended: it lets
 * go of the lease itself), so a later return resumes it from the store.
 */
function giveUp(state: LifecycleState, event: LifecycleEvent, nowMs: number, why: 'rejoin_expired' | 'attempts_exhausted'): TransitionResult {
  if (state.limits.resumePolicy === 'AlwaysResume') {
    return go(state, 'Error', event.type, nowMs, [
      { type: 'notify_error', code: why, message: 'The connection was lost and could not be restored.' },
      { type: 'close_session', reason: 'rejoin_expired' },
    ]);
  }
  return go(state, 'Disconnecting', event.type, nowMs, [{ type: 'close_session', reason: 'rejoin_expired' }]);
}

/** Pure and exhaustive: the next state and the effects for `event` at `nowMs`. */
export function transition(state: LifecycleState, event: LifecycleEvent, nowMs: number): TransitionResult {
  switch (state.name) {
    case 'Disconnected':
      switch (event.type) {
        case 'connect': {
          const deadlineMs = nowMs + state.limits.startWaitTimeoutMs;
          return go(state, 'Connecting', event.type, nowMs, [{ type: 'load_session' }, { type: 'schedule_tick', atMs: deadlineMs }], { deadlineMs });
        }
        // After a client-initiated leave (a refresh) the conversation stays rejoinable until the deadline.
        case 'participant_rejoined':
          if (state.deadlineMs !== null && nowMs <= state.deadlineMs) {
            return go(state, 'Connected', event.type, nowMs, [{ type: 'start_conversation', resumed: true }]);
          }
          return ignore(state, event);
        case 'tick':
          if (state.deadlineMs !== null && nowMs >= state.deadlineMs) {
            return go(state, 'Disconnected', event.type, nowMs, [{ type: 'close_session', reason: 'rejoin_expired' }]);
          }
          return ignore(state, event);
        // Taken over while waiting for a rejoin (the participant went on in another room): the
        // wait is over, and this job lets go as from Connected.
        case 'taken_over':
          if (state.deadlineMs !== null) return go(state, 'Disconnecting', event.type, nowMs, [{ type: 'close_session', reason: 'taken_over' }]);
          return ignore(state, event);
        default:
          return ignore(state, event);
      }
    case 'Connecting':
      switch (event.type) {
        case 'started':
          return go(state, 'Connected', event.type, nowMs, [{ type: 'start_conversation', resumed: event.resumed }]);
        case 'start_failed':
          return go(state, 'Error', event.type, nowMs, [{ type: 'notify_error', code: event.code, message: event.message }, { type: 'release_lease' }]);
        case 'tick':
          if (state.deadlineMs !== null && nowMs >= state.deadlineMs) {
            return go(state, 'Error', event.type, nowMs, [
              { type: 'notify_error', code: 'start_timeout', message: 'The session did not start in time.' },
              { type: 'release_lease' },
            ]);
          }
          return ignore(state, event);
        case 'disconnect':
        case 'participant_left':
          return go(state, 'Disconnecting', event.type, nowMs, [{ type: 'close_session', reason: event.reason }]);
        // Claimed by a newer arrival elsewhere before this one started: it never starts here.
        case 'taken_over':
          return go(state, 'Disconnecting', event.type, nowMs, [{ type: 'close_session', reason: 'taken_over' }]);
        default:
          return ignore(state, event);
      }
    case 'Connected':
      switch (event.type) {
        case 'participant_left':
          if (event.reason === 'ended') {
            return go(state, 'Disconnecting', event.type, nowMs, [
              { type: 'suspend_session', reason: event.reason },
              { type: 'close_session', reason: event.reason },
            ]);
          }
          // A client-initiated leave (tab closed, page refresh) is a clean disconnect, but the
          // conversation stays rejoinable for the rejoin window: a refresh must not end it.
          if (event.reason === 'client_initiated' && state.limits.rejoinTtlMs > 0) {
            const deadlineMs = nowMs + state.limits.rejoinTtlMs;
            return go(state, 'Disconnected', event.type, nowMs, [{ type: 'suspend_session', reason: event.reason }, { type: 'schedule_tick', atMs: deadlineMs }], {
              deadlineMs,
            });
          }
          if (state.limits.rejoinTtlMs <= 0 || state.limits.maxReconnectAttempts <= 0) {
            return go(state, 'Disconnecting', event.type, nowMs, [
              { type: 'suspend_session', reason: event.reason },
              { type: 'close_session', reason: event.reason },
            ]);
          }
          {
            const deadlineMs = nowMs + state.limits.rejoinTtlMs;
            return go(state, 'Reconnecting', event.type, nowMs, [{ type: 'suspend_session', reason: event.reason }, { type: 'schedule_tick', atMs: deadlineMs }], {
              deadlineMs,
              reconnectAttempts: 0,
            });
          }
        case 'disconnect':
          return go(state, 'Disconnecting', event.type, nowMs, [
            { type: 'suspend_session', reason: event.reason },
            { type: 'close_session', reason: event.reason },
          ]);
        case 'taken_over':
          return go(state, 'Disconnecting', event.type, nowMs, [{ type: 'close_session', reason: 'taken_over' }]);
        default:
          return ignore(state, event);
      }
    case 'Reconnecting':
      switch (event.type) {
        case 'participant_rejoined':
          if (state.deadlineMs !== null && nowMs > state.deadlineMs) return giveUp(state, event, nowMs, 'rejoin_expired');
          return go(state, 'Connected', event.type, nowMs, [{ type: 'start_conversation', resumed: true }]);
        case 'reconnect_failed': {
          const attempts = state.reconnectAttempts + 1;
          if (attempts >= state.limits.maxReconnectAttempts) return giveUp(state, event, nowMs, 'attempts_exhausted');
          return go(state, 'Reconnecting', event.type, nowMs, [], { reconnectAttempts: attempts, deadlineMs: state.deadlineMs ?? nowMs });
        }
        case 'tick':
          if (state.deadlineMs !== null && nowMs >= state.deadlineMs) return giveUp(state, event, nowMs, 'rejoin_expired');
          return ignore(state, event);
        case 'disconnect':
          return go(state, 'Disconnecting', event.type, nowMs, [{ type: 'close_session', reason: event.reason }]);
        case 'taken_over':
          return go(state, 'Disconnecting', event.type, nowMs, [{ type: 'close_session', reason: 'taken_over' }]);
        default:
          return ignore(state, event);
      }
    case 'Disconnecting':
      if (event.type === 'closed') return go(state, 'Disconnected', event.type, nowMs, [{ type: 'release_lease' }]);
      return ignore(state, event);
    case 'Error':
      switch (event.type) {
        case 'retry':
          return go(state, 'Connecting', event.type, nowMs, [{ type: 'load_session' }, { type: 'schedule_tick', atMs: nowMs + state.limits.startWaitTimeoutMs }], {
            deadlineMs: nowMs + state.limits.startWaitTimeoutMs,
          });
        case 'closed':
        case 'disconnect':
          return go(state, 'Disconnected', event.type, nowMs, []);
        default:
          return ignore(state, event);
      }
  }
}
