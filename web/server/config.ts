/**
 * Configuration of the token service, read from the environment (the only reader of
 * `process.env` in `web/server`). Like `scripts/token.ts`: `.env` first, then
 * `.env.development` when `LIVEKIT_URL` is still unset (the local dev server of `npm run dev`).
 * A missing or invalid variable gives one {@link ConfigError} naming it. The Redis variables
 * (`REDIS_URL`, or `REDIS_SENTINELS` + `REDIS_SENTINEL_MASTER` and their passwords) are parsed as
 * the worker parses them (`lib/store/redis_env.ts`).
 */
import dotenv from 'dotenv';
import { z } from 'zod';
import { optionalString, stringOr } from '../../lib/env_vars.js';
import { ConfigError } from '../../lib/errors.js';
import { DEFAULT_SESSION_TTL_MS } from '../../lib/session/policy.js';
import { parseKeyring, type Keyring } from '../../lib/store/crypto.js';
import type { RedisClusterTarget, RedisSentinelTarget, RedisTls } from '../../lib/store/redis_connection.js';
import { redisEnvProblems, redisEnvShape, redisTargetOf, replicaAcksOf, type ReplicaAcks } from '../../lib/store/redis_env.js';
import { MAX_TRUST_PROXY_HOPS } from './client_address.js';
import { RESUME_POLICY_NAMES, type ResumePolicyName } from './validation.js';

/** Default rejoin window, ms; must match the worker's (`livekit.yaml` `departure_timeout` covers it). */
export const DEFAULT_REJOIN_TTL_MS = 60_000;
/** Default lifetime of a device credential after its last use, ms (30 days, like the profile TTL). */
export const DEFAULT_DEVICE_TTL_MS = 30 * 24 * 60 * 60 * 1000;
/** Default time a room stays reusable by the identity it was issued to after its last issue, ms (12 h). */
export const DEFAULT_ROOM_REUSE_MS = 12 * 60 * 60 * 1000;
/** Default lifetime of a minted token, seconds (1 h; LiveKit refreshes it while connected). */
export const DEFAULT_TOKEN_TTL_S = 3600;
/** Default new identities per client address (or IPv6 /64) per minute: a cheap brake on scripted sign-ups. */
export const DEFAULT_IDENTITIES_PER_MIN = 30;
/**
 * Default new rooms per identity per minute. Every room a participant joins starts an agent job
 * (and its model calls); rejoining an issued room does not count.
 */
export const DEFAULT_NEW_ROOMS_PER_MIN = 10;

/** Typed configuration of the token service. */
export interface WebConfig {
  /** LiveKit server URL used by the service (room admin API). */
  livekitUrl: string;
  /** LiveKit URL handed to browsers. @default livekitUrl */
  publicLivekitUrl: string;
  apiKey: string;
  apiSecret: string;
  /** Explicit agent dispatch when set. */
  agentName: string | undefined;
  /**
   * Device records and issued rooms go to this Redis when set (and identities are forgotten in
   * the worker's session store there); else in memory. Give this, `redisSentinel` or `redisCluster`.
   */
  redisUrl: string | undefined;
  /** The same, through a Redis Sentinel group (the master is asked of the sentinels) instead of `redisUrl`. */
  redisSentinel: RedisSentinelTarget | undefined;
  /** The same, on a Redis Cluster, instead of `redisUrl` or `redisSentinel`. */
  redisCluster: RedisClusterTarget | undefined;
  /** TLS settings of a `rediss://` `redisUrl` (a private CA: `REDIS_TLS_CA_FILE`). */
  redisTls: RedisTls | undefined;
  /** @default 'pva:' (same as the worker's `REDIS_KEY_PREFIX`) */
  redisKeyPrefix: string;
  /**
   * Replica acknowledgements the service's Redis writes wait for (device records, rooms, and
   * "Forget me", which counts as done only once replicas hold it), as the worker's
   * (`REDIS_REPLICA_ACKS`, `REDIS_REPLICA_ACK_TIMEOUT_MS`). @default none (asynchronous replication)
   */
  replicaAcks: ReplicaAcks;
  /** How often the service reads Redis's memory policy again, ms; 0 = only at start (`lib/store/eviction.ts`). @default 300 000 */
  redisPolicyCheckMs: number;
  /** @default '127.0.0.1' */
  host: string;
  /** @default 8080 */
  port: number;
  /** @default 60 000 ms */
  rejoinTtlMs: number;
  /**
   * The worker's `SESSION_TTL_MS`: how long the mark of an erasure ("Forget me") keeps a job cut
   * off from Redis from writing the identity back. @default 1 800 000 ms
   */
  sessionTtlMs: number;
  /** Policies the service honours when the page asks for one. @default all three (demo) */
  allowedPolicies: ResumePolicyName[];
  /**
   * Policy set on tokens when the page asks for none; undefined = no attribute (the worker's
   * default). The service's own choice: it need not be one the page may request.
   */
  defaultPolicy: ResumePolicyName | undefined;
  /** @default 30 days */
  deviceTtlMs: number;
  /** @default 12 h */
  roomReuseMs: number;
  /** @default 3600 s */
  tokenTtlS: number;
  /**
   * Reverse proxies of the deployment's own in front of the service: the client address (the
   * key of the limit on new identities) is then read from `X-Forwarded-For` as they wrote it
   * (`client_address.ts`). 0 = reached directly; the header is ignored. @default 0
   */
  trustProxyHops: number;
  /** New identities one client address (an IPv6 client: its /64) may get per minute; 0 = no limit. @default 30 */
  identitiesPerMin: number;
  /** New rooms one identity may get per minute (a rejoin of an issued room is not one); 0 = no limit. @default 10 */
  newRoomsPerMin: number;
  /**
   * The worker's keyring (`STORE_ENCRYPTION_KEYS`), to open sealed conversations for "Download my
   * data"; without it a sealed conversation is exported as unreadable. @default none
   */
  encryptionKeys: Keyring | undefined;
}


const positiveInt = (fallback: number, { allowZero = false } = {}) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || (n === 0 && !allowZero)) {
        ctx.addIssue({ code: 'custom', message: `must be a ${allowZero ? 'non-negative' : 'positive'} integer, got "${v}"` });
        return z.NEVER;
      }
      return n;
    });

const policyName = z.enum(RESUME_POLICY_NAMES);

const envSchema = z.object({
  LIVEKIT_URL: z
    .string({ error: 'is required (the LiveKit server URL, e.g. ws://127.0.0.1:7880)' })
    .trim()
    .regex(/^(wss?|https?):\/\/[^\s]+$/, 'must be a ws://, wss://, http:// or https:// URL'),
  LIVEKIT_PUBLIC_URL: optionalString.refine((v) => v === undefined || /^wss?:\/\/[^\s]+$/.test(v), {
    message: 'must be a ws:// or wss:// URL',
  }),
  LIVEKIT_API_KEY: z.string({ error: 'is required' }).trim().min(1, 'must not be empty'),
  LIVEKIT_API_SECRET: z.string({ error: 'is required' }).trim().min(1, 'must not be empty'),
  LIVEKIT_AGENT_NAME: optionalString,
  ...redisEnvShape,
  REDIS_KEY_PREFIX: stringOr('pva:').refine((v) => !/[{}]/.test(v), { message: 'must not contain { or }' }),
  WEB_HOST: stringOr('127.0.0.1'),
  WEB_PORT: positiveInt(8080, { allowZero: true }).refine((n) => n <= 65535, { message: 'must be a port number' }),
  REJOIN_TTL_MS: positiveInt(DEFAULT_REJOIN_TTL_MS),
  SESSION_TTL_MS: positiveInt(DEFAULT_SESSION_TTL_MS),
  WEB_ALLOWED_POLICIES: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return [...RESUME_POLICY_NAMES];
      const out: ResumePolicyName[] = [];
      for (const part of v.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
        const p = policyName.safeParse(part);
        if (!p.success) {
          ctx.addIssue({ code: 'custom', message: `unknown policy "${part}" (use ${RESUME_POLICY_NAMES.join(', ')})` });
          return z.NEVER;
        }
        out.push(p.data);
      }
      return out;
    }),
  WEB_DEFAULT_POLICY: optionalString.pipe(policyName.optional()),
  WEB_DEVICE_TTL_MS: positiveInt(DEFAULT_DEVICE_TTL_MS),
  WEB_ROOM_REUSE_MS: positiveInt(DEFAULT_ROOM_REUSE_MS),
  WEB_TOKEN_TTL_S: positiveInt(DEFAULT_TOKEN_TTL_S),
  WEB_TRUST_PROXY_HOPS: positiveInt(0, { allowZero: true }).refine((n) => n <= MAX_TRUST_PROXY_HOPS, {
    message: `must be at most ${MAX_TRUST_PROXY_HOPS} (the reverse proxies in front of the service)`,
  }),
  WEB_IDENTITIES_PER_MIN: positiveInt(DEFAULT_IDENTITIES_PER_MIN, { allowZero: true }),
  WEB_NEW_ROOMS_PER_MIN: positiveInt(DEFAULT_NEW_ROOMS_PER_MIN, { allowZero: true }),
  STORE_ENCRYPTION_KEYS: optionalString,
});

/**
 * Reads the configuration. With `loadDotenv` (the default for `npm run web`), `.env` is loaded
 * first, and when `LIVEKIT_URL` is still missing `.env.development` gives the local server's URL
 * and key.
 */
export function loadWebConfig(env: NodeJS.ProcessEnv = process.env, { loadDotenv = true } = {}): WebConfig {
  let source: Record<string, string | undefined> = { ...env };
  if (loadDotenv) {
    const file = env.PVA_ENV_FILE ?? '.env';
    const fromFile = file === '' ? {} : (dotenv.config({ path: file, quiet: true, processEnv: {} }).parsed ?? {});
    source = { ...fromFile, ...source };
    if (!source.LIVEKIT_URL?.trim()) {
      // The local development server, with its own key (a key from elsewhere would sign tokens
      // that server refuses), as `npm run dev` and `npm run token` use it.
      const dev = dotenv.config({ path: '.env.development', quiet: true, processEnv: {} }).parsed ?? {};
      source = { ...source, ...dev };
    }
  }
  const r = envSchema.safeParse(source);
  if (!r.success) {
    const issue = r.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(`${name} ${issue?.message ?? 'is invalid'}`);
  }
  const redisProblems = redisEnvProblems(source);
  if (redisProblems.length > 0) throw new ConfigError(redisProblems.join('; '));
  const e = r.data;
  const redis = redisTargetOf(e);
  return {
    livekitUrl: e.LIVEKIT_URL,
    publicLivekitUrl: e.LIVEKIT_PUBLIC_URL ?? e.LIVEKIT_URL.replace(/^http/, 'ws'),
    apiKey: e.LIVEKIT_API_KEY,
    apiSecret: e.LIVEKIT_API_SECRET,
    agentName: e.LIVEKIT_AGENT_NAME,
    redisUrl: redis?.url,
    redisSentinel: redis?.sentinel,
    redisCluster: redis?.cluster,
    redisTls: redis?.tls,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    replicaAcks: replicaAcksOf(e),
    redisPolicyCheckMs: e.REDIS_POLICY_CHECK_MS,
    host: e.WEB_HOST,
    port: e.WEB_PORT,
    rejoinTtlMs: e.REJOIN_TTL_MS,
    sessionTtlMs: e.SESSION_TTL_MS,
    allowedPolicies: e.WEB_ALLOWED_POLICIES,
    defaultPolicy: e.WEB_DEFAULT_POLICY,
    deviceTtlMs: e.WEB_DEVICE_TTL_MS,
    roomReuseMs: e.WEB_ROOM_REUSE_MS,
    tokenTtlS: e.WEB_TOKEN_TTL_S,
    trustProxyHops: e.WEB_TRUST_PROXY_HOPS,
    identitiesPerMin: e.WEB_IDENTITIES_PER_MIN,
    newRoomsPerMin: e.WEB_NEW_ROOMS_PER_MIN,
    encryptionKeys: e.STORE_ENCRYPTION_KEYS === undefined ? undefined : parseKeyring(e.STORE_ENCRYPTION_KEYS, 'STORE_ENCRYPTION_KEYS'),
  };
}
