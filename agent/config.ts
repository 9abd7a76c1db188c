/**
 * The only reader of `process.env`. Loads `.env` (dotenv), validates with zod, and returns a
 * typed {@link Config}. A missing or invalid variable gives one {@link ConfigError} whose
 * message names it.
 */
import dotenv from 'dotenv';
import { z } from 'zod';
import { booleanVar, enumOr, optionalString, pastTimerLimit, stringOr } from '../lib/env_vars.js';
import { ConfigError } from '../lib/errors.js';
import { DEFAULT_CONDENSE_OPTIONS, MAX_CONDENSE_AT_CHARS, MIN_CONDENSE_AT_CHARS } from '../lib/session/condense.js';
import { DEFAULT_IDLE_LIMITS, type IdleLimits } from '../lib/session/idle.js';
import { loadPolicyFromEnv, type SessionPolicy } from '../lib/session/policy.js';
import { DEFAULT_LIVENESS_TTL_MS } from '../lib/store/agent_liveness.js';
import { archiveOptionsFromEnv, type ArchiveOptions } from '../lib/store/archive_env.js';
import { parseKeyring, type Keyring } from '../lib/store/crypto.js';
import type { RedisTarget } from '../lib/store/redis_connection.js';
import { redisEnvProblems, redisEnvShape, redisTargetOf, replicaAcksOf, type ReplicaAcks } from '../lib/store/redis_env.js';

const positiveInt = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) {
        ctx.addIssue({ code: 'custom', message: `must be a positive integer, got "${v}"` });
        return z.NEVER;
      }
      if (pastTimerLimit(n, v, ctx)) return z.NEVER;
      return n;
    });

/**
 * How long a job process may take to start (load the agent, prewarm its stores) before its job
 * fails, ms. agents-js waits 10 s; a host short of CPU (seen: a 2-core VM with heavy steal time,
 * loading the agent cold) can take longer, and a job that fails here leaves its participant with
 * no agent at all, so a slow start is the better outcome.
 */
export const DEFAULT_WORKER_INIT_TIMEOUT_MS = 30_000;

/** An optional non-negative integer variable; unset or empty gives `undefined`. */
const optionalNonNegativeInt = () =>
  z
    .string()
    .optional()
    .transform((v, ctx): number | undefined => {
      if (v === undefined || v.trim() === '') return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) {
        ctx.addIssue({ code: 'custom', message: `must be a non-negative integer, got "${v}"` });
        return z.NEVER;
      }
      if (pastTimerLimit(n, v, ctx)) return z.NEVER;
      return n;
    });

/** A TCP port, 0 for "off" or "the default" as the variable says; blank is 0. */
const portNumber = () =>
  z
    .string()
    .optional()
    .transform((v, ctx): number => {
      if (v === undefined || v.trim() === '') return 0;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65_535) {
        ctx.addIssue({ code: 'custom', message: `must be a port number (0-65535), got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

/** Shortest liveness beat TTL, ms: a job beats every quarter of it, and a shorter one would let a busy moment look like a death. */
export const MIN_LIVENESS_TTL_MS = 2_000;

const envSchema = z.object({
  LIVEKIT_URL: z
    .string({ error: 'is required (the LiveKit server URL, e.g. ws://127.0.0.1:7880)' })
    .trim()
    .regex(/^(wss?|https?):\/\/[^\s]+$/, 'must be a ws://, wss://, http:// or https:// URL'),
  LIVEKIT_API_KEY: z.string({ error: 'is required' }).trim().min(1, 'must not be empty'),
  LIVEKIT_API_SECRET: z.string({ error: 'is required' }).trim().min(1, 'must not be empty'),
  LIVEKIT_AGENT_NAME: optionalString,
  ...redisEnvShape,
  REDIS_KEY_PREFIX: stringOr('pva:'),
  MODEL_MODE: enumOr(['auto', 'inference', 'openai', 'offline'], 'auto'),
  AGENT_IO: enumOr(['auto', 'voice', 'text'], 'auto'),
  OPENAI_API_KEY: optionalString,
  OPENAI_BASE_URL: optionalString.refine((v) => v === undefined || /^https?:\/\//.test(v), {
    message: 'must be an http:// or https:// URL',
  }),
  OPENAI_MODEL: stringOr('gpt-4.1-mini'),
  OPENAI_STT_DETECT_LANGUAGE: booleanVar(),
  LIVEKIT_INFERENCE_API_KEY: optionalString,
  LIVEKIT_INFERENCE_API_SECRET: optionalString,
  INFERENCE_LLM: stringOr('openai/gpt-4.1-mini'),
  INFERENCE_STT: stringOr('deepgram/nova-3:en'),
  INFERENCE_TTS: stringOr('cartesia/sonic-3'),
  WORKER_LOAD_THRESHOLD: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return undefined;
      const n = Number(v);
      if (!(n > 0 && n <= 1)) {
        ctx.addIssue({ code: 'custom', message: `must be a number in (0, 1], got "${v}"` });
        return z.NEVER;
      }
      return n;
    }),
  WORKER_IDLE_PROCESSES: optionalNonNegativeInt(),
  WORKER_MAX_JOBS: optionalNonNegativeInt(),
  WORKER_HTTP_PORT: portNumber(),
  WORKER_INIT_TIMEOUT_MS: positiveInt(DEFAULT_WORKER_INIT_TIMEOUT_MS),
  METRICS_PORT: portNumber(),
  METRICS_HOST: stringOr('0.0.0.0'),
  STORE_ENCRYPTION_KEYS: optionalString,
  STORE_GREETING_BOUND_MS: positiveInt(500).optional(),
  MIN_REGREET_GAP_MS: positiveInt(5_000).optional(),
  IDLE_CHECK_IN_MS: optionalNonNegativeInt(),
  IDLE_HANG_UP_MS: optionalNonNegativeInt(),
  AGENT_LIVENESS_TTL_MS: optionalNonNegativeInt().refine((v) => v === undefined || v === 0 || v >= MIN_LIVENESS_TTL_MS, {
    message: `must be 0 (off) or at least ${MIN_LIVENESS_TTL_MS}`,
  }),
  HISTORY_CONDENSE_AT_CHARS: optionalNonNegativeInt().refine((v) => v === undefined || v === 0 || (v >= MIN_CONDENSE_AT_CHARS && v <= MAX_CONDENSE_AT_CHARS), {
    message: `must be 0 (off) or between ${MIN_CONDENSE_AT_CHARS} and ${MAX_CONDENSE_AT_CHARS}`,
  }),
});

/** How the agent gets its models. */
export type ModelMode = 'inference' | 'openai' | 'offline';

/** Validated worker configuration. */
export interface Config {
  livekit: { url: string; apiKey: string; apiSecret: string };
  /** Agent name for explicit dispatch; `''` means automatic dispatch (the Playground case). */
  agentName: string;
  /**
   * Shared store: one Redis (`url`), a Sentinel group (`sentinel`) or a Cluster (`cluster`); `undefined` means memory
   * only (one job's memory).
   */
  redis: (RedisTarget & { keyPrefix: string }) | undefined;
  /**
   * Replicas that must acknowledge every session write (`WAIT`), and the longest wait for them,
   * ms; `replicaAcks` 0 = asynchronous replication (see `RedisSessionStoreOptions.replicaAcks`).
   */
  replicaAcks: ReplicaAcks;
  /** How often the worker reads Redis's memory policy and measures its clock against Redis's again, ms; 0 = only at start (`lib/store/redis_watch.ts`). */
  redisPolicyCheckMs: number;
  /** Resolved model mode (`auto` already decided). */
  modelMode: ModelMode;
  /** `text`: text in on `lk.chat`, text out on `lk.transcription`; `voice`: audio too. */
  io: 'voice' | 'text';
  /**
   * OpenAI plugin settings. `sttDetectsLanguage`: the speech-to-text is never told a language and
   * detects the one spoken; what it hears then becomes the conversation's (`SpokenLanguage`).
   */
  openai: { apiKey: string; baseURL: string | undefined; model: string; sttDetectsLanguage: boolean } | undefined;
  /** LiveKit Inference models; `apiKey`/`apiSecret` set only in `inference` mode. */
  inference: { llm: string; stt: string; tts: string; apiKey?: string; apiSecret?: string };
  /**
   * Worker pool settings. `maxJobs` > 0 reports load as running jobs / `maxJobs` instead of
   * machine CPU (LiveKit stops dispatching to a worker whose load reaches its target, 0.7 by
   * default, so CPU load from other processes on a shared machine would starve the worker).
   */
  worker: { loadThreshold: number | undefined; idleProcesses: number | undefined; maxJobs: number; httpPort: number | undefined; initTimeoutMs: number };
  /** Prometheus `/metrics` endpoint of the worker process; port `0` = disabled. */
  metrics: { port: number; host: string };
  /** The worker's session policy (windows + resume policy); tokens may override the resume policy. */
  policy: SessionPolicy;
  /** AES-256-GCM keyring for stored payloads (first key encrypts); undefined = plaintext. */
  encryptionKeys: Keyring | undefined;
  /** The audit archive's retention (`ARCHIVE_TTL_MS`, `ARCHIVE_MAX_COUNT`). */
  archive: ArchiveOptions;
  /** Bound of every store call on the greeting path, ms. @default 500 */
  greetingBoundMs: number;
  /** A participant back within this long after leaving is not greeted again, ms. @default 5 000 */
  minRegreetGapMs: number;
  /**
   * The idle rule (`lib/session/idle.ts`): after `IDLE_CHECK_IN_MS` of silence the agent asks if the
   * participant is still there, and `IDLE_HANG_UP_MS` later says goodbye and ends the call; 0
   * turns a step off. @default 120 000 / 30 000 ms
   */
  idle: IdleLimits;
  /**
   * How long each liveness beat of a job serving a room holds, ms (`lib/store/agent_liveness.ts`:
   * the token service replaces an agent whose beats stopped); 0 = no beats. Only with a Redis.
   * @default 4 000
   */
  livenessTtlMs: number;
  /**
   * The summary of older turns is condensed by the model once it is this long, characters;
   * 0 = never (always 0 offline: there is no model). @default 3 000
   */
  condenseAtChars: number;
}

/** Environment variables as read (strings). */
export type Env = Record<string, string | undefined>;

/** The shared store's target, once {@link redisEnvProblems} found none. */
function redisConfig(e: z.infer<typeof envSchema>): Config['redis'] {
  const target = redisTargetOf(e);
  return target === undefined ? undefined : { ...target, keyPrefix: e.REDIS_KEY_PREFIX };
}

/**
 * Parses `env` into a {@link Config}.
 * @throws ConfigError naming every missing or invalid variable.
 */
export function parseConfig(env: Env): Config {
  const parsed = envSchema.safeParse(env);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${String(i.path[0] ?? '?')} ${i.message}`);
  let policy: SessionPolicy | undefined;
  let encryptionKeys: Keyring | undefined;
  let archive: ArchiveOptions | undefined;
  try {
    policy = loadPolicyFromEnv(env);
  } catch (err) {
    problems.push(err instanceof Error ? err.message : String(err));
  }
  try {
    archive = archiveOptionsFromEnv(env);
  } catch (err) {
    problems.push(err instanceof Error ? err.message : String(err));
  }
  try {
    if (env.STORE_ENCRYPTION_KEYS?.trim()) encryptionKeys = parseKeyring(env.STORE_ENCRYPTION_KEYS, 'STORE_ENCRYPTION_KEYS');
  } catch (err) {
    problems.push(err instanceof Error ? err.message : String(err));
  }
  problems.push(...redisEnvProblems(env));
  if (!parsed.success || policy === undefined || archive === undefined || problems.length > 0) {
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const hasInference = e.LIVEKIT_INFERENCE_API_KEY !== undefined && e.LIVEKIT_INFERENCE_API_SECRET !== undefined;
  let modelMode: ModelMode;
  if (e.MODEL_MODE === 'auto') {
    modelMode = hasInference ? 'inference' : e.OPENAI_API_KEY ? 'openai' : 'offline';
  } else {
    modelMode = e.MODEL_MODE;
  }
  if (modelMode === 'openai' && !e.OPENAI_API_KEY) {
    throw new ConfigError('invalid configuration: OPENAI_API_KEY is required when MODEL_MODE=openai');
  }
  if (modelMode === 'inference' && !hasInference) {
    throw new ConfigError(
      'invalid configuration: LIVEKIT_INFERENCE_API_KEY and LIVEKIT_INFERENCE_API_SECRET are required when MODEL_MODE=inference',
    );
  }
  if (modelMode === 'offline' && e.AGENT_IO === 'voice') {
    throw new ConfigError('invalid configuration: AGENT_IO=voice needs models (OPENAI_API_KEY or LiveKit inference credentials)');
  }
  if (e.OPENAI_STT_DETECT_LANGUAGE && modelMode !== 'openai') {
    throw new ConfigError(
      `invalid configuration: OPENAI_STT_DETECT_LANGUAGE is only used with the OpenAI models (the model mode is ${modelMode}; LiveKit Inference detects the language with an INFERENCE_STT ending in :multi)`,
    );
  }
  const io = e.AGENT_IO === 'auto' ? (modelMode === 'offline' ? 'text' : 'voice') : e.AGENT_IO;
  return {
    livekit: { url: e.LIVEKIT_URL, apiKey: e.LIVEKIT_API_KEY, apiSecret: e.LIVEKIT_API_SECRET },
    agentName: e.LIVEKIT_AGENT_NAME ?? '',
    redis: redisConfig(e),
    replicaAcks: replicaAcksOf(e),
    redisPolicyCheckMs: e.REDIS_POLICY_CHECK_MS,
    modelMode,
    io,
    openai: e.OPENAI_API_KEY ? { apiKey: e.OPENAI_API_KEY, baseURL: e.OPENAI_BASE_URL, model: e.OPENAI_MODEL, sttDetectsLanguage: e.OPENAI_STT_DETECT_LANGUAGE } : undefined,
    inference: {
      llm: e.INFERENCE_LLM,
      stt: e.INFERENCE_STT,
      tts: e.INFERENCE_TTS,
      ...(hasInference ? { apiKey: e.LIVEKIT_INFERENCE_API_KEY, apiSecret: e.LIVEKIT_INFERENCE_API_SECRET } : {}),
    },
    worker: { loadThreshold: e.WORKER_LOAD_THRESHOLD, idleProcesses: e.WORKER_IDLE_PROCESSES, maxJobs: e.WORKER_MAX_JOBS ?? 0, httpPort: e.WORKER_HTTP_PORT || undefined, initTimeoutMs: e.WORKER_INIT_TIMEOUT_MS },
    metrics: { port: e.METRICS_PORT, host: e.METRICS_HOST },
    policy,
    encryptionKeys,
    archive,
    greetingBoundMs: e.STORE_GREETING_BOUND_MS ?? 500,
    minRegreetGapMs: e.MIN_REGREET_GAP_MS ?? 5_000,
    idle: { checkInAfterMs: e.IDLE_CHECK_IN_MS ?? DEFAULT_IDLE_LIMITS.checkInAfterMs, hangUpAfterMs: e.IDLE_HANG_UP_MS ?? DEFAULT_IDLE_LIMITS.hangUpAfterMs },
    livenessTtlMs: e.AGENT_LIVENESS_TTL_MS ?? DEFAULT_LIVENESS_TTL_MS,
    condenseAtChars: modelMode === 'offline' ? 0 : (e.HISTORY_CONDENSE_AT_CHARS ?? DEFAULT_CONDENSE_OPTIONS.condenseAtChars),
  };
}

/**
 * Loads `.env` from the working directory (unless `PVA_ENV_FILE` names another file, or is
 * empty to skip it), without overriding variables already set, then parses the environment.
 * Command-line `--url`, `--api-key` and `--api-secret` (the agents CLI flags) count as set.
 */
export function loadConfig(argv: readonly string[] = process.argv, env: NodeJS.ProcessEnv = process.env): Config {
  const envFile = env.PVA_ENV_FILE ?? '.env';
  if (envFile !== '') dotenv.config({ path: envFile, quiet: true });
  const fromFlags: Env = {};
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
  };
  fromFlags.LIVEKIT_URL = flag('--url');
  fromFlags.LIVEKIT_API_KEY = flag('--api-key');
  fromFlags.LIVEKIT_API_SECRET = flag('--api-secret');
  const merged: Env = { ...env };
  for (const [k, v] of Object.entries(fromFlags)) if (v !== undefined) merged[k] = v;
  return parseConfig(merged);
}
