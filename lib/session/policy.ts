import { ConfigError } from '../errors.js';
import { MAX_TIMER_MS, tooLongForATimer } from '../env_vars.js';

/**
 * Reconnect and resume policy (seed 000 `ReconnectPolicy`, durations in milliseconds), plus the
 * two shared-store windows of DESIGN §2.
 */

/** How a returning participant's previous conversation is treated. */
export const RESUME_POLICIES = ['AlwaysFresh', 'ResumeIfPossible', 'AlwaysResume'] as const;

/**
 * - `AlwaysFresh`: never resume (kiosk); the previous session is closed.
 * - `ResumeIfPossible`: resume a valid record, else start fresh.
 * - `AlwaysResume`: resume or fail with a clear error; nothing is silently reset.
 */
export type ResumePolicy = (typeof RESUME_POLICIES)[number];

/** True when `value` names a {@link ResumePolicy}. */
export function isResumePolicy(value: unknown): value is ResumePolicy {
  return typeof value === 'string' && (RESUME_POLICIES as readonly string[]).includes(value);
}

/** The seed's reconnect policy, with every duration in ms. */
export interface ReconnectPolicy {
  /**
   * Window in which a dropped participant can rejoin the same room and job. The room's
   * `departure_timeout` (livekit.yaml / token `roomConfig.departureTimeout`, seconds) must be ≥ this.
   * @default 60_000
   */
  rejoinTtlMs: number;
  /** @default 'ResumeIfPossible' */
  resumePolicy: ResumePolicy;
  /**
   * Automatic reconnect attempts before the session gives up: `Error` under `AlwaysResume`,
   * closed otherwise (the conversation stays resumable for `sessionTtlMs`).
   * @default 3
   */
  maxReconnectAttempts: number;
  /**
   * Bound of the start phase (`Connecting`) before the attempt counts as failed.
   * @default 5_000
   */
  startWaitTimeoutMs: number;
  /**
   * Delay after connecting before the client opens its microphone.
   * @default 500
   */
  autoMicStartDelayMs: number;
  /** Whether the agent is re-spawned when a participant rejoins an existing room. @default true */
  spawnAgentOnRejoin: boolean;
}

/** A {@link ReconnectPolicy} plus the windows of the shared store. */
export interface SessionPolicy extends ReconnectPolicy {
  /**
   * Keep-alive of a suspended conversation in the shared store (≥ `rejoinTtlMs`).
   * @default 1_800_000 (30 min)
   */
  sessionTtlMs: number;
  /**
   * How long an identity stays known after its last activity (≥ `sessionTtlMs`).
   * @default 2_592_000_000 (30 days)
   */
  profileTtlMs: number;
}

/** Default rejoin window, ms. */
export const DEFAULT_REJOIN_TTL_MS = 60_000;
/** Default keep-alive of a suspended conversation, ms (30 minutes). */
export const DEFAULT_SESSION_TTL_MS = 1_800_000;
/** Default profile retention, ms (30 days). */
export const DEFAULT_PROFILE_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** Seed presets (`ReconnectPolicy.Default`, `ReconnectPolicy.AlwaysCreateNew`), with our store windows. */
export const ReconnectPolicies: { readonly Default: Readonly<SessionPolicy>; readonly AlwaysCreateNew: Readonly<SessionPolicy> } =
  Object.freeze({
    /** 60 s rejoin, `ResumeIfPossible`, 3 attempts, 5 s start wait, 0.5 s mic delay. */
    Default: Object.freeze({
      rejoinTtlMs: DEFAULT_REJOIN_TTL_MS,
      resumePolicy: 'ResumeIfPossible',
      maxReconnectAttempts: 3,
      startWaitTimeoutMs: 5_000,
      autoMicStartDelayMs: 500,
      spawnAgentOnRejoin: true,
      sessionTtlMs: DEFAULT_SESSION_TTL_MS,
      profileTtlMs: DEFAULT_PROFILE_TTL_MS,
    }),
    /** No rejoin attempt; always a new room and a fresh session (`AlwaysFresh`). */
    AlwaysCreateNew: Object.freeze({
      rejoinTtlMs: 0,
      resumePolicy: 'AlwaysFresh',
      maxReconnectAttempts: 0,
      startWaitTimeoutMs: 5_000,
      autoMicStartDelayMs: 500,
      spawnAgentOnRejoin: true,
      sessionTtlMs: DEFAULT_SESSION_TTL_MS,
      profileTtlMs: DEFAULT_PROFILE_TTL_MS,
    }),
  });

/** Environment variables read by {@link loadPolicyFromEnv}. */
export const POLICY_ENV = {
  resumePolicy: 'RESUME_POLICY',
  rejoinTtlMs: 'REJOIN_TTL_MS',
  sessionTtlMs: 'SESSION_TTL_MS',
  profileTtlMs: 'PROFILE_TTL_MS',
  maxReconnectAttempts: 'MAX_RECONNECT_ATTEMPTS',
} as const;

/**
 * The whole number `env[name]`, or `fallback` when unset or empty.
 * @throws ConfigError naming the variable when it is not a whole number >= `min`.
 */
export function readInt(env: Readonly<Record<string, string | undefined>>, name: string, fallback: number, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  const value = Number(raw.trim());
  if (value < min) throw new ConfigError(`${name} must be an integer >= ${min}, got ${raw}`);
  if (!Number.isSafeInteger(value) || value > max) throw new ConfigError(`${name} ${max === MAX_TIMER_MS ? tooLongForATimer(raw) : `must be at most ${max}, got ${raw}`}`);
  return value;
}

/**
 * Builds the worker's policy from the environment (`RESUME_POLICY`, `REJOIN_TTL_MS`,
 * `SESSION_TTL_MS`, `PROFILE_TTL_MS`, `MAX_RECONNECT_ATTEMPTS`), on top of `base`. Unset or empty
 * variables keep the base value.
 * @throws ConfigError naming the variable when a value is malformed or the windows are out of order.
 */
export function loadPolicyFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  base: Readonly<SessionPolicy> = ReconnectPolicies.Default,
): SessionPolicy {
  const rawPolicy = env[POLICY_ENV.resumePolicy]?.trim();
  let resumePolicy = base.resumePolicy;
  if (rawPolicy !== undefined && rawPolicy !== '') {
    if (!isResumePolicy(rawPolicy)) {
      throw new ConfigError(`${POLICY_ENV.resumePolicy} must be one of ${RESUME_POLICIES.join(', ')}, got ${JSON.stringify(rawPolicy)}`);
    }
    resumePolicy = rawPolicy;
  }
  const policy: SessionPolicy = {
    ...base,
    resumePolicy,
    // The rejoin window is a timer in the job.
    rejoinTtlMs: readInt(env, POLICY_ENV.rejoinTtlMs, base.rejoinTtlMs, 0, MAX_TIMER_MS),
    sessionTtlMs: readInt(env, POLICY_ENV.sessionTtlMs, base.sessionTtlMs, 1),
    profileTtlMs: readInt(env, POLICY_ENV.profileTtlMs, base.profileTtlMs, 1),
    maxReconnectAttempts: readInt(env, POLICY_ENV.maxReconnectAttempts, base.maxReconnectAttempts, 0),
  };
  if (policy.sessionTtlMs < policy.rejoinTtlMs) {
    throw new ConfigError(`${POLICY_ENV.sessionTtlMs} (${policy.sessionTtlMs}) must be >= ${POLICY_ENV.rejoinTtlMs} (${policy.rejoinTtlMs})`);
  }
  if (policy.profileTtlMs < policy.sessionTtlMs) {
    throw new ConfigError(`${POLICY_ENV.profileTtlMs} (${policy.profileTtlMs}) must be >= ${POLICY_ENV.sessionTtlMs} (${policy.sessionTtlMs})`);
  }
  return policy;
}

/**
 * The policy for one participant: the worker's, with the resume policy overridden by the
 * trusted token attribute `attrValue` (see `ATTR_RESUME_POLICY`) when it names a valid policy.
 * An unknown value is ignored (the worker default holds) and reported as `ignoredOverride`.
 */
export function policyForParticipant(
  workerPolicy: Readonly<SessionPolicy>,
  attrValue: string | undefined,
): { policy: SessionPolicy; overridden: boolean; ignoredOverride: boolean } {
  if (attrValue === undefined || attrValue === '') return { policy: { ...workerPolicy }, overridden: false, ignoredOverride: false };
  if (!isResumePolicy(attrValue)) return { policy: { ...workerPolicy }, overridden: false, ignoredOverride: true };
  return { policy: { ...workerPolicy, resumePolicy: attrValue }, overridden: true, ignoredOverride: false };
}
