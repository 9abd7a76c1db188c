/**
 * The Redis variables every process of the project reads the same way (the worker, the token
 * service, the sessions CLI): one Redis (`REDIS_URL`), a Sentinel group (`REDIS_SENTINELS` +
 * `REDIS_SENTINEL_MASTER`, optional `REDIS_PASSWORD` / `REDIS_SENTINEL_PASSWORD`) or a Redis
 * Cluster (`REDIS_CLUSTER_NODES`, optional `REDIS_PASSWORD`); TLS (`rediss://`, or `REDIS_TLS`
 * for a cluster or a Sentinel group, and `REDIS_TLS_CA_FILE` for a private CA); and the
 * replica acknowledgements session writes wait for (`REDIS_REPLICA_ACKS`,
 * `REDIS_REPLICA_ACK_TIMEOUT_MS`); how often a running process reads the memory policy again
 * (`REDIS_POLICY_CHECK_MS`).
 *
 * Parses an environment record it is given; it never reads `process.env` (each process's config
 * module does). Problems are phrased `<VARIABLE> <what is wrong>` and never echo a value that may
 * hold a secret (a password, or a mistyped sentinel entry such as `user:pass@host`).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { booleanVar, optionalString, pastTimerLimit } from '../env_vars.js';
import { ConfigError } from '../errors.js';
import type { RedisTarget, RedisTls, SentinelAddress } from './redis_connection.js';

/** Environment variables as read (strings). */
export type RedisEnvSource = Record<string, string | undefined>;

/** Default port of a sentinel named without one in `REDIS_SENTINELS` (Sentinel's own default). */
export const DEFAULT_SENTINEL_PORT = 26_379;

/** Default port of a cluster node named without one in `REDIS_CLUSTER_NODES` (Redis's own default). */
export const DEFAULT_REDIS_PORT = 6_379;

/**
 * A list of `host:port[,host:port…]` (`[v6addr]:port` for IPv6; the port defaults to
 * `defaultPort`). Entries are not echoed in errors: a mistyped entry may hold a password.
 */
function addressList(defaultPort: number) {
  return optionalString.transform((v, ctx) => {
    if (v === undefined) return undefined;
    const out: SentinelAddress[] = [];
    const entries = v.split(',').map((e) => e.trim());
    for (const [i, entry] of entries.entries()) {
      const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d{1,5}))?$/.exec(entry);
      const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
      if (m === null || port < 1 || port > 65_535) {
        ctx.addIssue({ code: 'custom', message: `must be a comma-separated list of host:port; entry ${i + 1} of ${entries.length} is not` });
        return z.NEVER;
      }
      out.push({ host: m[1] ?? m[2] ?? '', port });
    }
    return out;
  });
}

/** Default of `REDIS_REPLICA_ACK_TIMEOUT_MS` (the session store's `replicaAckTimeoutMs` default). */
export const DEFAULT_REPLICA_ACK_TIMEOUT_MS = 100;

/** Default of `REDIS_POLICY_CHECK_MS`: how often a running process checks Redis again (`lib/store/redis_watch.ts`). */
export const DEFAULT_POLICY_CHECK_MS = 300_000;

/** An integer variable ≥ `min`; unset or empty gives `fallback`. The value is echoed: it is never a secret. */
function integerVar({ fallback, min }: { fallback: number; min: 0 | 1 }) {
  return z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return fallback;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < min) {
        ctx.addIssue({ code: 'custom', message: `must be a ${min === 0 ? 'non-negative' : 'positive'} integer, got "${v}"` });
        return z.NEVER;
      }
      if (pastTimerLimit(n, v, ctx)) return z.NEVER;
      return n;
    });
}

/** A `redis://` or `rediss://` URL that parses, with a host. */
function isRedisUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
  } catch {
    return false;
  }
}

/**
 * The zod fields of the Redis variables, to spread into a process's own environment schema
 * (`z.object({ ...redisEnvShape, … })`) so every issue names its variable. Each field alone is
 * checked here; how they fit together is {@link redisEnvProblems}.
 */
export const redisEnvShape = {
  // Checked whole here: a URL the client cannot parse would fail later with the URL (and its password) in the error.
  REDIS_URL: optionalString.refine((v) => v === undefined || isRedisUrl(v), {
    message: 'must be a redis:// or rediss:// URL (host, optional port 1-65535)',
  }),
  REDIS_SENTINELS: addressList(DEFAULT_SENTINEL_PORT),
  /** Seed nodes of a Redis Cluster (any reachable one tells the client the rest). */
  REDIS_CLUSTER_NODES: addressList(DEFAULT_REDIS_PORT),
  REDIS_SENTINEL_MASTER: optionalString.refine((v) => v === undefined || /^\S+$/.test(v), {
    message: 'must be one master name, without spaces',
  }),
  REDIS_PASSWORD: optionalString,
  /** Connect to the cluster nodes over TLS (a `REDIS_URL` says it with `rediss://`). */
  REDIS_TLS: booleanVar(),
  /** PEM file of the CA that signed the Redis servers' certificates (a private CA), read at start. */
  REDIS_TLS_CA_FILE: optionalString.transform((path, ctx) => {
    if (path === undefined) return undefined;
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch {
      ctx.addIssue({ code: 'custom', message: 'names a file that cannot be read' });
      return z.NEVER;
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      ctx.addIssue({ code: 'custom', message: 'must name a PEM file of certificates (-----BEGIN CERTIFICATE-----)' });
      return z.NEVER;
    }
    return pem;
  }),
  REDIS_SENTINEL_PASSWORD: optionalString,
  /** Replicas that must acknowledge every session write (Redis `WAIT`); 0 = asynchronous replication. */
  REDIS_REPLICA_ACKS: integerVar({ fallback: 0, min: 0 }),
  /** The longest wait for those acknowledgements, ms. */
  REDIS_REPLICA_ACK_TIMEOUT_MS: integerVar({ fallback: DEFAULT_REPLICA_ACK_TIMEOUT_MS, min: 1 }),
  /** How often the worker and the token service read every master's memory policy again (the worker also measures its clock against Redis's), ms; 0 = only at start. */
  REDIS_POLICY_CHECK_MS: integerVar({ fallback: DEFAULT_POLICY_CHECK_MS, min: 0 }),
};

const redisEnvSchema = z.object(redisEnvShape);

/** The Redis variables once parsed by {@link redisEnvShape}. */
export type RedisEnv = z.output<typeof redisEnvSchema>;

const isSet = (v: string | undefined): boolean => v !== undefined && v.trim() !== '';

/** How the Redis variables fit together (each alone is checked by {@link redisEnvShape}); `[]` when they do. */
export function redisEnvProblems(env: RedisEnvSource): string[] {
  const problems: string[] = [];
  const sentinels = isSet(env.REDIS_SENTINELS);
  const master = isSet(env.REDIS_SENTINEL_MASTER);
  const cluster = isSet(env.REDIS_CLUSTER_NODES);
  const kinds = [isSet(env.REDIS_URL), sentinels || master, cluster].filter(Boolean).length;
  if (kinds > 1) problems.push('REDIS_URL, REDIS_SENTINELS/REDIS_SENTINEL_MASTER and REDIS_CLUSTER_NODES are mutually exclusive (set one: a single Redis, a Sentinel group or a Cluster)');
  if (sentinels && !master) problems.push('REDIS_SENTINEL_MASTER is required when REDIS_SENTINELS is set (the master name the sentinels monitor)');
  if (master && !sentinels) problems.push('REDIS_SENTINELS is required when REDIS_SENTINEL_MASTER is set (host:port of the sentinels)');
  if (isSet(env.REDIS_PASSWORD) && !sentinels && !cluster) problems.push('REDIS_PASSWORD is only used with REDIS_SENTINELS or REDIS_CLUSTER_NODES (with REDIS_URL, put the password in the URL)');
  if (isSet(env.REDIS_SENTINEL_PASSWORD) && !sentinels) problems.push('REDIS_SENTINEL_PASSWORD is only used with REDIS_SENTINELS (with REDIS_URL, put the password in the URL)');
  const tls = env.REDIS_TLS?.trim() === 'true';
  const rediss = /^rediss:\/\//.test(env.REDIS_URL?.trim() ?? '');
  if (tls && !cluster && !sentinels) problems.push('REDIS_TLS is only used with REDIS_CLUSTER_NODES or REDIS_SENTINELS (a single Redis over TLS is a rediss:// REDIS_URL)');
  if (isSet(env.REDIS_TLS_CA_FILE) && !rediss && !(tls && (cluster || sentinels))) {
    problems.push('REDIS_TLS_CA_FILE is only used over TLS (a rediss:// REDIS_URL, or REDIS_CLUSTER_NODES or REDIS_SENTINELS with REDIS_TLS=true)');
  }
  return problems;
}

/**
 * Where the variables point, once {@link redisEnvProblems} found none: a URL, a Sentinel group,
 * a Cluster, or `undefined` when no Redis is configured.
 */
export function redisTargetOf(e: RedisEnv): RedisTarget | undefined {
  const tls: RedisTls = e.REDIS_TLS_CA_FILE === undefined ? {} : { ca: e.REDIS_TLS_CA_FILE };
  if (e.REDIS_URL !== undefined) return e.REDIS_URL.startsWith('rediss://') ? { url: e.REDIS_URL, tls } : { url: e.REDIS_URL };
  if (e.REDIS_CLUSTER_NODES !== undefined) {
    return {
      cluster: {
        nodes: e.REDIS_CLUSTER_NODES,
        ...(e.REDIS_PASSWORD === undefined ? {} : { password: e.REDIS_PASSWORD }),
        ...(e.REDIS_TLS ? { tls } : {}),
      },
    };
  }
  if (e.REDIS_SENTINELS === undefined || e.REDIS_SENTINEL_MASTER === undefined) return undefined;
  const sentinel = {
    sentinels: e.REDIS_SENTINELS,
    name: e.REDIS_SENTINEL_MASTER,
    ...(e.REDIS_PASSWORD === undefined ? {} : { password: e.REDIS_PASSWORD }),
    ...(e.REDIS_SENTINEL_PASSWORD === undefined ? {} : { sentinelPassword: e.REDIS_SENTINEL_PASSWORD }),
    ...(e.REDIS_TLS ? { tls } : {}),
  };
  return { sentinel };
}

/** How many replicas must acknowledge each session write, and for how long to wait (`RedisSessionStoreOptions`). */
export interface ReplicaAcks {
  replicaAcks: number;
  replicaAckTimeoutMs: number;
}

/** The replica acknowledgements the variables ask for (`REDIS_REPLICA_ACKS`, `REDIS_REPLICA_ACK_TIMEOUT_MS`). */
export function replicaAcksOf(e: RedisEnv): ReplicaAcks {
  return { replicaAcks: e.REDIS_REPLICA_ACKS, replicaAckTimeoutMs: e.REDIS_REPLICA_ACK_TIMEOUT_MS };
}

/**
 * Parses only the Redis variables of `env` (for a process that reads nothing else of them).
 * @returns the target (`undefined` when no `REDIS_URL`, Sentinel group or Cluster is set) and the
 *   replica acknowledgements every session write waits for.
 * @throws ConfigError naming every invalid variable, `; `-separated.
 */
export function parseRedisEnv(env: RedisEnvSource): { target: RedisTarget | undefined; acks: ReplicaAcks } {
  const parsed = redisEnvSchema.safeParse(env);
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${String(i.path[0] ?? '?')} ${i.message}`);
  problems.push(...redisEnvProblems(env));
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems.join('; '));
  return { target: redisTargetOf(parsed.data), acks: replicaAcksOf(parsed.data) };
}
