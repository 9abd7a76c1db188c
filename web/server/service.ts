/**
 * The token service: plain `node:http`, no framework. It issues LiveKit tokens only for
 * identities it issued itself, and serves the page.
 *
 * | route               | body                                          | answer                                                     |
 * |---------------------|-----------------------------------------------|------------------------------------------------------------|
 * | `POST /api/identity`| none or `{}`                                  | `201 {identity, deviceSecret}`                              |
 * | `POST /api/token`   | `{identity, deviceSecret, room?, policy?, language?, languageChosen?}` | `200 {url, token, room, reused, policy, rejoinTtlMs}` |
 * | `POST /api/agent`   | `{identity, deviceSecret, room}`              | `200 {agent}`: dispatched / present / pending / no_room     |
 * | `POST /api/forget`  | `{identity, deviceSecret}`                    | `200 {forgotten, sessionKeysErased, roomsClosed}`           |
 * | `POST /api/export`  | `{identity, deviceSecret}`                    | `200` everything kept about the identity (`identity_export.ts`) |
 * | `GET /api/config`   |                                               | `200 {rejoinTtlMs, policies, defaultPolicy}`                |
 * | `POST /livekit/webhook` | a LiveKit webhook event, signed with the API key (`Authorization`) | `200 {action}` (`agent_webhooks.ts`; `duplicate`: an event id seen before, not acted on again); `401 invalid_signature` |
 * | `GET /healthz`      |                                               | `200 {ok, store}` or `503`                                  |
 * | `GET /`, `/app.js`… |                                               | the static page from `web/public/`                          |
 *
 * Refusals are JSON `{error, reason, message}`: `400` (malformed body; see `validation.ts`),
 * `403 invalid_credentials` (unknown identity or wrong secret: the same answer for both),
 * `403 room_not_issued`, `403 policy_not_allowed`, `503 dispatch_failed`, `404`, `405`, `413 body_too_large`,
 * `415 unsupported_media_type` (POST bodies must be `application/json`, which also keeps
 * cross-site form posts out), `429 rate_limited` (new identities per client address, new rooms per
 * identity: `WEB_IDENTITIES_PER_MIN`, `WEB_NEW_ROOMS_PER_MIN`; exports per identity:
 * {@link EXPORTS_PER_MIN}), `503 store_unavailable`.
 *
 * Trusted token attributes are decided here, never by the page: the resume policy (the page's
 * demo selector is a request the service may refuse) and never the context-publisher mark.
 */
import { DEFAULT_SESSION_TTL_MS } from '../../lib/session/policy.js';
import { createReadStream, existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { RoomServiceClient, WebhookReceiver } from 'livekit-server-sdk';
import type { Logger } from '../../lib/logger.js';
import { pii, silentLogger } from '../../lib/logger.js';
import { DEFAULT_POLICY_CHECK_MS, DEFAULT_REPLICA_ACK_TIMEOUT_MS } from '../../lib/store/redis_env.js';
import { watchRedis } from '../../lib/store/redis_watch.js';
import { CUT_OFF_ALIVE_MS, ensureAgentDispatched, removeLapsedAgent, type DispatchFor, type DispatchServer } from './agent_dispatch.js';
import { AgentWebhooks, REPLACEMENT_WINDOW_MS, REPLACEMENTS_PER_ROOM, type LivenessWatch } from './agent_webhooks.js';
import { DEFAULT_LIVENESS_CONFIRM_MS, type AgentLiveness } from '../../lib/store/agent_liveness.js';
import type { DispatchHint } from '../../lib/dispatch_hint.js';
import { buildClient, PUBLIC_DIR } from './build_client.js';
import { clientAddress, rateLimitKey } from './client_address.js';
import {
  DEFAULT_DEVICE_TTL_MS,
  DEFAULT_IDENTITIES_PER_MIN,
  DEFAULT_NEW_ROOMS_PER_MIN,
  DEFAULT_REJOIN_TTL_MS,
  DEFAULT_ROOM_REUSE_MS,
  DEFAULT_TOKEN_TTL_S,
  type WebConfig,
} from './config.js';
import { hashSecret, newDeviceSecret, newIdentity, newRoomName, secretMatches } from './credentials.js';
import type { DeviceStore } from './device_store.js';
import type { RateLimiter } from './rate_limiter.js';
import { createServiceStores, serviceRedisTarget, type SessionEraser, type SessionExporter } from './service_stores.js';
import { identityExport } from '../../lib/identity_export.js';
import type { SessionSnapshot } from '../../lib/store/session_store.js';
import { mintParticipantToken } from './tokens.js';
import {
  decidePolicy,
  parseAgentRequest,
  parseCredentials,
  parseIdentityRequest,
  parseJsonBody,
  parseTokenRequest,
  RESUME_POLICY_NAMES,
  type DeviceCredentials,
  type Validated,
} from './validation.js';

/** Largest request body accepted, bytes. Every valid body is far below it. */
export const MAX_BODY_BYTES = 4096;

/** Largest webhook body accepted, bytes: an event carries a participant's tracks and attributes. */
export const MAX_WEBHOOK_BODY_BYTES = 256 * 1024;

/** Exports one identity may ask for per minute: each reads every conversation it has. */
export const EXPORTS_PER_MIN = 6;

export type { SessionEraser, SessionExporter } from './service_stores.js';

/** Seed 000 `SpawnAgentOnRejoin`: dispatches the agent into a reused room that has none left (or whose agent never arrived). */
export type AgentSpawner = (room: string, hint: Omit<DispatchHint, 'v'>) => ReturnType<typeof ensureAgentDispatched>;

/** Closes LiveKit rooms (ends their agent jobs). */
export interface RoomCloser {
  deleteRoom(room: string): Promise<void>;
}

/** Options of {@link startTokenService}: the config (defaults as in `config.ts`) plus injected parts. */
export interface TokenServiceOptions extends Pick<WebConfig, 'livekitUrl' | 'apiKey' | 'apiSecret'>, Partial<Omit<WebConfig, 'livekitUrl' | 'apiKey' | 'apiSecret'>> {
  /** @default RedisDeviceStore when `redisUrl`, `redisSentinel` or `redisCluster` is set, else MemoryDeviceStore */
  deviceStore?: DeviceStore;
  /**
   * @default `forgetIdentity` on a RedisSessionStore when `redisUrl`, `redisSentinel` or `redisCluster` is set
   * (erases, then tells any job still holding the identity to drop its copy), else none
   */
  sessionEraser?: SessionEraser | null;
  /** @default the same RedisSessionStore (with `encryptionKeys`) when a Redis is configured, else none */
  sessionExporter?: SessionExporter | null;
  /** @default RoomServiceClient on `livekitUrl` */
  roomCloser?: RoomCloser;
  /** @default `ensureAgentDispatched` on `livekitUrl`, for `agentName` (or the workers with no name); null = never dispatch */
  agentSpawner?: AgentSpawner | null;
  /** @default silentLogger */
  logger?: Logger;
  /** After a person joins, when a webhook checks that their agent arrived, ms. @default JOIN_RECHECK_MS (agent_webhooks.ts) */
  webhookJoinRecheckMs?: number;
  /** Static files. @default web/public */
  publicDir?: string;
  /** Bundle the page before listening. @default false */
  buildClient?: boolean;
  /** @default Date.now */
  nowMs?: () => number;
}

/** A running token service. */
export interface TokenService {
  /** `http://host:port` */
  url: string;
  port: number;
  /** The resolved configuration. */
  config: WebConfig;
  /** Stops listening and closes what the service created. */
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly reason: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

function resolveConfig(o: TokenServiceOptions): WebConfig {
  return {
    livekitUrl: o.livekitUrl,
    publicLivekitUrl: o.publicLivekitUrl ?? o.livekitUrl.replace(/^http/, 'ws'),
    apiKey: o.apiKey,
    apiSecret: o.apiSecret,
    agentName: o.agentName,
    redisUrl: o.redisUrl,
    redisSentinel: o.redisSentinel,
    redisCluster: o.redisCluster,
    redisTls: o.redisTls,
    redisKeyPrefix: o.redisKeyPrefix ?? 'pva:',
    replicaAcks: o.replicaAcks ?? { replicaAcks: 0, replicaAckTimeoutMs: DEFAULT_REPLICA_ACK_TIMEOUT_MS },
    redisPolicyCheckMs: o.redisPolicyCheckMs ?? DEFAULT_POLICY_CHECK_MS,
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 8080,
    rejoinTtlMs: o.rejoinTtlMs ?? DEFAULT_REJOIN_TTL_MS,
    sessionTtlMs: o.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS,
    allowedPolicies: o.allowedPolicies ?? [...RESUME_POLICY_NAMES],
    defaultPolicy: o.defaultPolicy,
    deviceTtlMs: o.deviceTtlMs ?? DEFAULT_DEVICE_TTL_MS,
    roomReuseMs: o.roomReuseMs ?? DEFAULT_ROOM_REUSE_MS,
    tokenTtlS: o.tokenTtlS ?? DEFAULT_TOKEN_TTL_S,
    trustProxyHops: o.trustProxyHops ?? 0,
    identitiesPerMin: o.identitiesPerMin ?? DEFAULT_IDENTITIES_PER_MIN,
    newRoomsPerMin: o.newRoomsPerMin ?? DEFAULT_NEW_ROOMS_PER_MIN,
    encryptionKeys: o.encryptionKeys,
  };
}

function sendJson(res: ServerResponse, status: number, body: Json, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/** The path of a request target; one that is not a URL (a port out of range, say) is a 400. */
function requestPath(target: string | undefined): string {
  try {
    return new URL(target ?? '/', 'http://x').pathname;
  } catch {
    throw new HttpError(400, 'bad_request', 'target_invalid', 'the request target is not a valid path');
  }
}

function badRequest<T>(v: Validated<T>): T {
  if (v.ok) return v.value;
  throw new HttpError(400, 'bad_request', v.reason, v.detail);
}

async function readBody(req: IncomingMessage, maxBytes = MAX_BODY_BYTES): Promise<string> {
  const tooLarge = () => new HttpError(413, 'payload_too_large', 'body_too_large', `bodies are limited to ${maxBytes} bytes`);
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The liveness watch of `agentName`'s jobs: their beats in `liveness`, their removal on `server`. */
function livenessWatch(liveness: AgentLiveness, server: DispatchServer, agentName: string): LivenessWatch {
  return {
    // Taken again once ATTR_AGENT_ALIVE would be stale, had the job stopped updating it.
    reap: () => liveness.reap(agentName, DEFAULT_LIVENESS_CONFIRM_MS, CUT_OFF_ALIVE_MS),
    remove: (agent) => removeLapsedAgent(server, agent.room, agent.identity, agentName),
    forget: (agent) => liveness.leave(agentName, agent.room, agent.identity),
  };
}

/** Starts the service; `port: 0` picks a free port. */
export async function startTokenService(opts: TokenServiceOptions): Promise<TokenService> {
  const config = resolveConfig(opts);
  const log = opts.logger ?? silentLogger;
  const nowMs = opts.nowMs ?? Date.now;
  const publicDir = opts.publicDir ?? PUBLIC_DIR;
  if (opts.buildClient) {
    const b = await buildClient({ outDir: publicDir });
    log.info({ bytes: b.bytes, ms: b.ms }, 'page bundled');
  }

  const stores = createServiceStores(config, { deviceStore: opts.deviceStore, sessionEraser: opts.sessionEraser, sessionExporter: opts.sessionExporter }, log, nowMs);
  const { devices, eraser, exporter } = stores;

  const roomService = new RoomServiceClient(config.livekitUrl.replace(/^ws/, 'http'), config.apiKey, config.apiSecret);
  const rooms: RoomCloser = opts.roomCloser ?? { deleteRoom: (room) => roomService.deleteRoom(room) };
  // No agent name: the workers registered with none, which automatic dispatch sends.
  const agentName = config.agentName ?? '';
  const livekitServer = { url: config.livekitUrl, apiKey: config.apiKey, apiSecret: config.apiSecret };
  const dispatch = (room: string, forWhom: DispatchFor, onlyWhereDispatched = false) =>
    ensureAgentDispatched(livekitServer, room, agentName, forWhom, { gate: stores.dispatchGate, onlyWhereDispatched });
  const spawner: AgentSpawner | null = opts.agentSpawner !== undefined ? opts.agentSpawner : dispatch;
  // LiveKit webhooks replace an agent that crashed or never arrived, for any client (not with an
  // injected spawner or none: the service then does not dispatch by itself).
  const webhooks =
    opts.agentSpawner !== undefined
      ? null
      : new AgentWebhooks({
          agentName,
          dispatch,
          limiter: stores.limiter('replace', REPLACEMENTS_PER_ROOM, REPLACEMENT_WINDOW_MS),
          logger: log,
          nowMs,
          ...(opts.webhookJoinRecheckMs !== undefined ? { joinRecheckMs: opts.webhookJoinRecheckMs } : {}),
          rechecks: stores.roomRechecks(agentName),
          // The jobs' liveness beats, in the same Redis: a crashed agent is replaced in seconds.
          ...(stores.liveness !== null ? { liveness: livenessWatch(stores.liveness, livekitServer, agentName) } : {}),
        });
  const webhookReceiver = new WebhookReceiver(config.apiKey, config.apiSecret);
  const seenEvents = stores.seenEvents(agentName);
  /** Logged once: a deployment can see that livekit-server's webhooks reach this service. */
  let webhooksArriving = false;
  /** A per-minute limit (null = none). */
  const perMinute = (name: string, n: number): RateLimiter | null => (n > 0 ? stores.limiter(name, n, 60_000) : null);
  const identityLimiter = perMinute('identity', config.identitiesPerMin);
  const newRoomLimiter = perMinute('room', config.newRoomsPerMin);
  const exportLimiter = stores.limiter('export', EXPORTS_PER_MIN, 60_000);
  const tooMany = (what: string) => new HttpError(429, 'too_many_requests', 'rate_limited', `too many ${what}; try again in a minute`, { 'retry-after': '60' });

  const storeCall = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      log.error({ op: what, err: err instanceof Error ? err.message : String(err) }, 'device store failed');
      throw new HttpError(503, 'service_unavailable', 'store_unavailable', 'the identity store is unavailable; try again');
    }
  };

  const verify = async (c: DeviceCredentials): Promise<void> => {
    const record = await storeCall('get', () => devices.get(c.identity));
    // Unknown identity and wrong secret look the same from outside (no enumeration).
    const ok = record !== null && secretMatches(c.deviceSecret, record.secretHash);
    if (!ok) throw new HttpError(403, 'forbidden', 'invalid_credentials', 'unknown identity or wrong device secret');
  };

  /** Refuses (403 `room_not_issued`) a room not issued to `identity`, or whose reuse window passed. */
  const requireIssuedRoom = async (identity: string, room: string, atMs: number): Promise<void> => {
    const issued = await storeCall('hasRoom', () => devices.hasRoom(identity, room, atMs));
    if (!issued) throw new HttpError(403, 'forbidden', 'room_not_issued', 'this room was not issued to this identity (or its reuse window passed); ask for a new room');
  };

  const api = {
    async identity(req: IncomingMessage): Promise<[number, Json]> {
      badRequest(parseIdentityRequest(badRequest(parseJsonBody(await readBody(req)))));
      const limitKey = rateLimitKey(clientAddress(req, config.trustProxyHops));
      const countedAtMs = nowMs();
      if (identityLimiter !== null && !(await storeCall('rate_limit', () => identityLimiter.allow(limitKey, countedAtMs)))) throw tooMany('new identities from this address');
      try {
        for (let i = 0; i < 3; i++) {
          const identity = newIdentity();
          const deviceSecret = newDeviceSecret();
          const created = await storeCall('create', () =>
            devices.create(identity, { v: 1, secretHash: hashSecret(deviceSecret), createdAtMs: nowMs() }, config.deviceTtlMs),
          );
          if (created) {
            log.info({ ...pii({ identity }) }, 'identity issued');
            return [201, { identity, deviceSecret }];
          }
        }
        throw new HttpError(503, 'service_unavailable', 'identity_collision', 'could not allocate an identity; try again');
      } catch (err) {
        // Nothing was issued: the attempt does not count against the address's limit.
        await identityLimiter?.refund(limitKey, countedAtMs);
        throw err;
      }
    },

    async token(req: IncomingMessage): Promise<[number, Json]> {
      const body = badRequest(parseTokenRequest(badRequest(parseJsonBody(await readBody(req)))));
      await verify(body);
      const policy = decidePolicy(body.policy, config.allowedPolicies, config.defaultPolicy);
      if (!policy.ok) throw new HttpError(403, 'forbidden', policy.reason, `this service does not honour the requested resume policy (allowed: ${config.allowedPolicies.join(', ') || 'none'})`);
      const now = nowMs();
      let room: string;
      let reused = false;
      if (body.room !== undefined) {
        await requireIssuedRoom(body.identity, body.room, now);
        room = body.room;
        reused = true;
      } else {
        // Counted only for a verified identity, so nobody can use up someone else's rooms.
        if (newRoomLimiter !== null && !(await storeCall('rate_limit', () => newRoomLimiter.allow(body.identity, now)))) throw tooMany('new rooms for this identity');
        room = newRoomName();
      }
      try {
        await storeCall('addRoom', () => devices.addRoom(body.identity, room, now, now + config.roomReuseMs, config.deviceTtlMs));
      } catch (err) {
        // No room was issued: the attempt does not count against the identity's limit.
        if (!reused) await newRoomLimiter?.refund(body.identity, now);
        throw err;
      }
      // The participant's language, and whether they picked it (validation keeps the mark only with a language).
      const language = { ...(body.language ? { language: body.language } : {}), ...(body.languageChosen ? { languageChosen: true } : {}) };
      const token = await mintParticipantToken({
        apiKey: config.apiKey,
        apiSecret: config.apiSecret,
        identity: body.identity,
        room,
        rejoinTtlMs: config.rejoinTtlMs,
        ttlS: config.tokenTtlS,
        ...(config.agentName ? { agentName: config.agentName } : {}),
        ...(policy.policy ? { resumePolicy: policy.policy } : {}),
        ...language,
        // contextPublisher: never for a browser (it may publish only its own context).
      });
      if (reused && spawner !== null) {
        // A rejoin within the rejoin TTL returns to its room; if the agent's job there has ended
        // (crashed worker, window passed), dispatch it again. Best effort: a failure is logged.
        const spawned = await spawner(room, { identity: body.identity, ...(policy.policy ? { resumePolicy: policy.policy } : {}), ...language }).catch((err: unknown) => {
          log.warn({ err: err instanceof Error ? err.message : String(err) }, 'agent re-dispatch failed');
          return 'failed' as const;
        });
        if (spawned === 'dispatched') log.info({ room }, 'agent dispatched into the rejoined room');
      }
      log.info({ room, reused, policy: policy.policy ?? null, policyWhy: policy.why, ...pii({ identity: body.identity }) }, 'token issued');
      return [200, { url: config.publicLivekitUrl, token, room, reused, policy: policy.policy ?? null, rejoinTtlMs: config.rejoinTtlMs }];
    },

    /**
     * The agent did not arrive in a room issued to this identity (no worker was registered when
     * the room was created, or its job died before joining): dispatch it again, unless one is
     * there or on its way (`ensureAgentDispatched`).
     */
    async agent(req: IncomingMessage): Promise<[number, Json]> {
      const body = badRequest(parseAgentRequest(badRequest(parseJsonBody(await readBody(req)))));
      await verify(body);
      await requireIssuedRoom(body.identity, body.room, nowMs());
      if (spawner === null) throw new HttpError(503, 'service_unavailable', 'dispatch_unavailable', 'this service does not dispatch agents');
      let agent: Awaited<ReturnType<AgentSpawner>>;
      try {
        agent = await spawner(body.room, { identity: body.identity });
      } catch (err) {
        log.warn({ err: err instanceof Error ? err.message : String(err) }, 'agent dispatch on request failed');
        throw new HttpError(503, 'service_unavailable', 'dispatch_failed', 'the agent could not be dispatched; try again');
      }
      log.info({ room: body.room, agent }, 'agent requested');
      return [200, { agent }];
    },

    async forget(req: IncomingMessage): Promise<[number, Json]> {
      const creds = badRequest(parseCredentials(badRequest(parseJsonBody(await readBody(req)))));
      await verify(creds);
      const issuedRooms = await storeCall('rooms', () => devices.rooms(creds.identity));
      // First the conversations: erased, and any job still holding them is told to drop its copy
      // (it erases what it may have had in flight and writes nothing more). Before the
      // credential, so that a forget the session store could not complete (unreachable, or its
      // replicas did not acknowledge the erasure: REDIS_REPLICA_ACKS) answers 503 and the same
      // device can ask again; erasing twice is harmless.
      let sessionKeysErased = 0;
      if (eraser !== null) {
        const e = eraser;
        sessionKeysErased = (await storeCall('forget', () => e.forget(creds.identity))).sessionKeysErased;
      }
      // Then the credential: from here on the identity can never get a token again.
      await storeCall('delete', () => devices.delete(creds.identity));
      // Last its rooms: their agent jobs end instead of waiting out the rejoin window.
      const closed = await Promise.allSettled(issuedRooms.map((r) => rooms.deleteRoom(r)));
      const roomsClosed = closed.filter((c) => c.status === 'fulfilled').length;
      log.info({ roomsClosed, sessionKeysErased, ...pii({ identity: creds.identity }) }, 'identity forgotten');
      return [200, { forgotten: true, sessionKeysErased, roomsClosed }];
    },

    async export(req: IncomingMessage): Promise<[number, Json]> {
      const creds = badRequest(parseCredentials(badRequest(parseJsonBody(await readBody(req)))));
      await verify(creds);
      const now = nowMs();
      if (!(await storeCall('rate_limit', () => exportLimiter.allow(creds.identity, now)))) throw tooMany('exports for this identity');
      let snapshots: SessionSnapshot[];
      let rooms: string[];
      try {
        [snapshots, rooms] = await Promise.all([
          exporter === null ? [] : storeCall('export', () => exporter.exportIdentity(creds.identity)),
          storeCall('rooms', () => devices.rooms(creds.identity)),
        ]);
      } catch (err) {
        // Nothing was exported: the attempt does not count against the identity's limit.
        await exportLimiter.refund(creds.identity, now);
        throw err;
      }
      const body = identityExport(creds.identity, snapshots, rooms, now, exporter !== null);
      log.info({ agents: body.agents.length, ...pii({ identity: creds.identity }) }, 'identity exported');
      return [200, body as unknown as Json];
    },
  };

  const apiRoutes: Record<string, (req: IncomingMessage) => Promise<[number, Json]>> = {
    '/api/identity': api.identity,
    '/api/token': api.token,
    '/api/agent': api.agent,
    '/api/forget': api.forget,
    '/api/export': api.export,
  };

  const cspConnect = [`'self'`, config.publicLivekitUrl, config.publicLivekitUrl.replace(/^ws/, 'http')].join(' ');
  const pageHeaders = {
    'content-security-policy': `default-src 'self'; connect-src ${cspConnect}; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; base-uri 'none'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  };

  const serveStatic = (path: string, res: ServerResponse): boolean => {
    const rel = path === '/' ? 'index.html' : path.slice(1);
    if (!/^[A-Za-z0-9_.-]+$/.test(rel) || rel.startsWith('.')) return false;
    const file = normalize(join(publicDir, rel));
    const type = CONTENT_TYPES[extname(file)];
    if (type === undefined || !existsSync(file)) return false;
    res.writeHead(200, { 'content-type': type, ...pageHeaders });
    createReadStream(file).pipe(res);
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = Date.now();
    // A request target Node accepts but a URL cannot hold (`//a:99999/`) is answered 400, never thrown.
    let path: string | null = null;
    let status = 200;
    try {
      path = requestPath(req.url);
      const route = apiRoutes[path];
      if (route !== undefined) {
        if (req.method !== 'POST') throw new HttpError(405, 'method_not_allowed', 'method_not_allowed', 'use POST', { allow: 'POST' });
        const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
        if (type !== 'application/json') throw new HttpError(415, 'unsupported_media_type', 'unsupported_media_type', 'send the body as application/json');
        const [s, body] = await route(req);
        status = s;
        sendJson(res, s, body);
      } else if (path === '/livekit/webhook') {
        if (req.method !== 'POST') throw new HttpError(405, 'method_not_allowed', 'method_not_allowed', 'use POST', { allow: 'POST' });
        const body = await readBody(req, MAX_WEBHOOK_BODY_BYTES);
        // The signature covers the body's SHA-256; a bad one changes nothing.
        const event = await webhookReceiver.receive(body, req.headers.authorization).catch(() => {
          throw new HttpError(401, 'unauthorized', 'invalid_signature', 'the webhook is not signed with this service\'s LiveKit API key');
        });
        if (!webhooksArriving) {
          webhooksArriving = true;
          log.info({ event: event.event }, 'LiveKit webhooks arriving');
        }
        // An event sent again (a retried delivery, a replay) is acted on once.
        const action = event.id !== '' && !(await seenEvents.firstTime(event.id)) ? 'duplicate' : ((await webhooks?.handle(event)) ?? 'ignored');
        log.debug({ event: event.event, room: event.room?.name ?? null, action }, 'webhook');
        sendJson(res, 200, { action });
      } else if (path === '/api/config') {
        if (req.method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'method_not_allowed', 'use GET', { allow: 'GET' });
        sendJson(res, 200, { rejoinTtlMs: config.rejoinTtlMs, policies: config.allowedPolicies, defaultPolicy: config.defaultPolicy ?? null });
      } else if (path === '/healthz') {
        try {
          await devices.ping();
          sendJson(res, 200, { ok: true, store: stores.isShared ? 'shared' : 'memory' });
        } catch {
          status = 503;
          sendJson(res, 503, { ok: false, error: 'service_unavailable', reason: 'store_unavailable' });
        }
      } else if (path === '/favicon.ico') {
        res.writeHead(204, { 'cache-control': 'max-age=86400' });
        res.end();
      } else if ((req.method === 'GET' || req.method === 'HEAD') && serveStatic(path, res)) {
        // streamed
      } else {
        throw new HttpError(404, 'not_found', 'no_such_route', 'no such page or API route');
      }
    } catch (err) {
      if (err instanceof HttpError) {
        status = err.status;
        sendJson(res, err.status, { error: err.error, reason: err.reason, message: err.message }, err.headers);
        if (err.status === 401 || err.status === 403 || err.status === 429) log.warn({ path, status: err.status, reason: err.reason }, 'request refused');
        if (err.status === 413) req.resume(); // drain; the connection closes after the answer
      } else {
        status = 500;
        log.error({ err: err instanceof Error ? err.message : String(err), path }, 'request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal', reason: 'internal', message: 'internal error' });
        else res.destroy();
      }
    } finally {
      log.debug({ method: req.method, path, status, ms: Date.now() - started }, 'request');
    }
  };

  // Nothing a request does may end the process: a failure past the handler's own answer closes that one connection.
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'request failed after its answer');
      res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    await stores.close();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  log.info({ url, store: stores.redis === null ? 'memory' : 'redis', redis: stores.redis, agentName: config.agentName ?? null, rejoinTtlMs: config.rejoinTtlMs, livenessWatch: webhooks !== null && stores.liveness !== null }, 'token service listening');
  // A Redis that evicts keys when full would lose issued identities and conversations without an error.
  const redisTarget = serviceRedisTarget(config);
  const evictionWatch = redisTarget === undefined ? undefined : watchRedis(redisTarget, log, { recheckMs: config.redisPolicyCheckMs });

  return {
    url,
    port,
    config: { ...config, port },
    close: async () => {
      evictionWatch?.stop();
      await webhooks?.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await stores.close();
    },
  };
}
