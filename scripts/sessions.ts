/**
 * Inspect and erase sessions in the shared store (Redis).
 *
 *   npm run sessions -- list [--count 50]
 *   npm run sessions -- show --identity alice [--agent my-agent]
 *   npm run sessions -- export --identity alice        # everything kept about alice, as "Download my data" gives it
 *   npm run sessions -- forget --identity alice        # every agent, and the web client's credential; also tells live jobs
 *   npm run sessions -- rekey [--dry-run]              # seal every stored payload under the current key
 *   npm run sessions -- check                          # does any Redis master evict keys when full?
 *
 * Reads the worker's Redis variables (environment, then `.env` or the file `PVA_ENV_FILE`
 * names): `REDIS_URL`, a Sentinel group (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`,
 * `REDIS_PASSWORD`, `REDIS_SENTINEL_PASSWORD`) or a Cluster (`REDIS_CLUSTER_NODES`,
 * `REDIS_PASSWORD`), parsed and checked as the worker does, with
 * `REDIS_REPLICA_ACKS` / `REDIS_REPLICA_ACK_TIMEOUT_MS` (a forget waits for the replicas as the
 * worker's writes do); `REDIS_KEY_PREFIX`; `ARCHIVE_TTL_MS` (which archived conversations `show`
 * counts as within retention); and `STORE_ENCRYPTION_KEYS`, the worker's keyring, to
 * open sealed payloads (without it a sealed session reads as `invalid` / `tampered`, never as
 * plaintext). Prints JSON lines; a usage or configuration error
 * exits with status 2, a store failure (Redis unreachable, replicas not acknowledging a forget)
 * with one line on stderr and status 1, and so does a `check` that finds a master that may evict.
 */
import dotenv from 'dotenv';
import { parseArgs } from 'node:util';
import { ConfigError, SessionError, StoreUnavailableError } from '../lib/errors.js';
import { PayloadCipher, parseKeyring } from '../lib/store/crypto.js';
import { EVICTION_WARNING, checkEviction } from '../lib/store/eviction.js';
import { sessionKeyId } from '../lib/store/keys.js';
import type { RedisTarget } from '../lib/store/redis_connection.js';
import { loadPolicyFromEnv } from '../lib/session/policy.js';
import { parseRedisEnv, type ReplicaAcks } from '../lib/store/redis_env.js';
import { RedisSessionStore } from '../lib/store/redis_session_store.js';
import { SessionNotices, forgetIdentity } from '../lib/store/session_notices.js';
import type { SessionSnapshot } from '../lib/store/session_store.js';
import { identityExport } from '../lib/identity_export.js';
import { archiveOptionsFromEnv, type ArchiveOptions } from '../lib/store/archive_env.js';
import { toStoreError } from '../lib/store/redis_scripts.js';
import { RedisDeviceStore } from '../web/server/device_store.js';

/** True when a snapshot holds something the keyring could not open. */
function hasUnreadable(s: SessionSnapshot): boolean {
  return s.recordProblem !== undefined || s.profileProblem !== undefined || s.archive.some((a) => a.problem !== undefined);
}

/** Per-command bound of the CLI's Redis clients, ms (an operator waits; a scan page may be slow). */
const COMMAND_TIMEOUT_MS = 2_000;

function fail(msg: string): never {
  process.stderr.write(`sessions: ${msg}\n`);
  process.exit(2);
}

// Like the worker: variables already set win over the file.
const envFile = process.env.PVA_ENV_FILE ?? '.env';
if (envFile !== '') dotenv.config({ path: envFile, quiet: true });

const USAGE = 'usage: sessions list | show --identity <id> [--agent <name>] | export --identity <id> | forget --identity <id> | rekey [--dry-run] | check';

/** The command line; a mistyped option is a usage error (exit 2), never a stack trace. */
function commandLine() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        identity: { type: 'string' },
        agent: { type: 'string', default: process.env.LIVEKIT_AGENT_NAME || 'default' },
        count: { type: 'string', default: '100' },
        'dry-run': { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    return fail(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
}
const { positionals, values } = commandLine();

const command = positionals[0];
if (!['list', 'show', 'export', 'forget', 'rekey', 'check'].includes(command ?? '')) fail(USAGE);
const count = Number(values.count);
if (!Number.isInteger(count) || count <= 0) fail('--count must be a positive integer');

let target: RedisTarget | undefined;
let acks: ReplicaAcks;
let cipher: PayloadCipher | undefined;
let archive: ArchiveOptions;
let sessionTtlMs: number;
try {
  ({ target, acks } = parseRedisEnv(process.env));
  archive = archiveOptionsFromEnv(process.env);
  // The worker's: a forget's mark holds off a job cut off from Redis for this long.
  sessionTtlMs = loadPolicyFromEnv(process.env).sessionTtlMs;
  const keys = process.env.STORE_ENCRYPTION_KEYS;
  if (keys?.trim()) cipher = new PayloadCipher(parseKeyring(keys, 'STORE_ENCRYPTION_KEYS'));
} catch (err) {
  if (err instanceof ConfigError) fail(`configuration error: ${err.message}`);
  throw err;
}
if (command === 'rekey' && cipher === undefined) fail('rekey needs STORE_ENCRYPTION_KEYS: the first key seals, every key listed opens');
if (target === undefined) fail('none of REDIS_URL, REDIS_SENTINELS/REDIS_SENTINEL_MASTER or REDIS_CLUSTER_NODES is set (sessions live in the shared store only when the worker uses Redis)');
const prefix = process.env.REDIS_KEY_PREFIX?.trim() || 'pva:';

const store = new RedisSessionStore({ ...target, prefix, commandTimeoutMs: COMMAND_TIMEOUT_MS, sessionTtlMs, ...acks, ...archive, ...(cipher ? { cipher } : {}) });
/** The token service's device credentials and issued rooms, in the same Redis under the same prefix (export and forget only). */
let devices: RedisDeviceStore | undefined;
const deviceStore = (): RedisDeviceStore => (devices ??= new RedisDeviceStore({ ...target, prefix, ...acks }));
/** A device store call whose failure is reported as the session store's are (a `SessionError`). */
const deviceCall = <T>(fn: (d: RedisDeviceStore) => Promise<T>): Promise<T> => fn(deviceStore()).catch((err: unknown) => Promise.reject(toStoreError(err)));
const out = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
/** What an unreadable payload may mean when the CLI holds no keyring. */
const hint = cipher === undefined ? { hint: 'a sealed payload reads as invalid without the keyring: set STORE_ENCRYPTION_KEYS as the worker does' } : {};
/** A read result, with {@link hint} when it is not readable. */
const readable = <T extends { status: string }>(r: T) => (r.status === 'invalid' ? { ...r, ...hint } : r);
try {
  if (command === 'list') {
    let cursor: string | null = null;
    let shown = 0;
    do {
      const page = await store.listSessions({ cursor, count: Math.min(count, 500) });
      for (const key of page.items) {
        if (shown++ >= count) break;
        const r = await store.readRecord(key);
        out(r.status === 'found'
          ? { ...key, sessionId: r.record.sessionId, state: r.record.state, turns: r.record.history.turns.length, lastSeenAt: new Date(r.record.lastSeenAt).toISOString(), visitCount: r.record.visitCount }
          : { ...key, ...readable({ status: r.status }) });
      }
      cursor = page.cursor;
    } while (cursor !== null && shown < count);
  } else if (command === 'rekey') {
    await rekey(values['dry-run'] === true);
  } else if (command === 'check') {
    await check(target);
  } else {
    // An empty one (an unset `$ID` in a script) names nobody: refused, never "forgotten" with nothing erased.
    const identity = values.identity !== undefined && values.identity !== '' ? values.identity : fail('--identity is required and must not be empty');
    if (command === 'show') {
      const key = { agentName: values.agent!, identity };
      const [record, snapshot, archive] = await Promise.all([store.readRecord(key), store.exportSession(key), store.readArchive(key, Date.now())]);
      // A stored profile that does not open is named, never shown as if there were none.
      const unreadableProfile = snapshot?.profileProblem === undefined ? {} : { profileUnreadable: snapshot.profileProblem, ...hint };
      out({ record: readable(record), profile: snapshot?.profile ?? null, ...unreadableProfile, archive: archive.map((a) => ({ sessionId: a.sessionId, archivedAt: new Date(a.archivedAtMs).toISOString(), turns: a.record?.history.turns.length ?? null })) });
    } else if (command === 'export') {
      // A request for one's data that reached an operator (no device at hand): the same document.
      const [snapshots, rooms] = await Promise.all([store.exportIdentity(identity), deviceCall((d) => d.rooms(identity))]);
      out({ ...identityExport(identity, snapshots, rooms, Date.now(), true), ...(cipher === undefined && snapshots.some(hasUnreadable) ? hint : {}) });
    } else {
      // Everywhere: the conversations under every agent (live jobs are told to drop their copy),
      // then the web client's credential and rooms, so the identity can never get a token again.
      const notices = new SessionNotices({ ...target, prefix, commandTimeoutMs: COMMAND_TIMEOUT_MS });
      try {
        const erased = await forgetIdentity(store, notices, identity);
        await deviceCall((d) => d.delete(identity));
        out({ forgotten: true, ...erased, credentialErased: true });
      } finally {
        await notices.close();
      }
    }
  }
} catch (err) {
  // A store failure is one line (its code and a message that names no identity), exit status 1;
  // `retryable` failures (Redis unreachable, replicas not acknowledging) can be run again.
  if (!(err instanceof SessionError)) throw err;
  process.stderr.write(`sessions: ${err.code}${err.retryable ? ' (retryable)' : ''}: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  await store.dispose();
  await devices?.close();
}

/**
 * `check`: every master's memory policy (`lib/store/eviction.ts`). One JSON line with the masters
 * that may evict (none: `[]`); when there are any, the warning on stderr and exit status 1, so a
 * deploy can stop on it. Redis not answering is a store failure like any other.
 */
async function check(on: RedisTarget): Promise<void> {
  let evictingMasters;
  try {
    evictingMasters = await checkEviction(on, COMMAND_TIMEOUT_MS * 2);
  } catch (err) {
    if (err instanceof SessionError) throw err;
    throw new StoreUnavailableError('redis did not answer the memory policy check', err);
  }
  out({ evictingMasters });
  if (evictingMasters.length > 0) {
    process.stderr.write(`sessions: ${EVICTION_WARNING}\n`);
    process.exitCode = 1;
  }
}

/**
 * `rekey`: every session with anything stored (record, turns, profile, archive) has its payloads
 * sealed under the current key (`RedisSessionStore.resealSession`); a session a job rewrote
 * meanwhile is read again, up to three times. Prints one JSON summary (payloads by the key id
 * they had: an old key can leave STORE_ENCRYPTION_KEYS once no payload names it). Exit status 1
 * when payloads stay unreadable or contended (named by count only, never by identity).
 */
async function rekey(dryRun: boolean): Promise<void> {
  const done = new Set<string>();
  const total = { sessions: 0, payloads: 0, resealed: 0, current: 0, unreadable: 0, conflicts: 0, byKeyId: {} as Record<string, number> };
  let cursor: string | null = null;
  do {
    const page = await store.listStoredSessions({ cursor, count: 500 });
    for (const key of page.items) {
      const id = sessionKeyId(key);
      if (done.has(id)) continue;
      done.add(id);
      const first = await store.resealSession(key, dryRun);
      let last = first;
      let resealed = first.resealed;
      for (let i = 0; i < 3 && last.conflicts > 0; i++) {
        last = await store.resealSession(key, dryRun);
        resealed += last.resealed;
      }
      total.sessions++;
      total.payloads += first.payloads;
      total.current += first.current;
      total.resealed += resealed;
      total.unreadable += last.unreadable;
      total.conflicts += last.conflicts;
      for (const [k, n] of Object.entries(first.byKeyId)) total.byKeyId[k] = (total.byKeyId[k] ?? 0) + n;
    }
    cursor = page.cursor;
  } while (cursor !== null);
  out({ rekey: dryRun ? 'dry_run' : 'done', currentKeyId: cipher?.currentKeyId, ...total });
  const problems = [
    total.unreadable > 0 ? `${total.unreadable} payloads do not open (tampered, or under a key not in STORE_ENCRYPTION_KEYS) and were left as they are` : '',
    total.conflicts > 0 ? `${total.conflicts} payloads kept changing while being resealed; run rekey again` : '',
  ].filter((p) => p !== '');
  if (problems.length > 0) {
    process.stderr.write(`sessions: rekey incomplete: ${problems.join('; ')}\n`);
    process.exitCode = 1;
  }
}
