import { Cluster } from 'ioredis';
import type { Redis } from 'ioredis';
import { SessionError } from '../errors.js';
import { systemClock } from '../clock.js';
import type { Clock } from '../clock.js';
import { silentLogger } from '../logger.js';
import type { Logger } from '../logger.js';
import type { Profile, SessionRecord, Turn } from '../session/record.js';
import { bounded } from './bounded.js';
import { PayloadCodec, forkArchiveId, keyOf, resolveStoreOptions } from './codec.js';
import type { PayloadKind, ResolvedStoreOptions } from './codec.js';
import { KeyBuilder, encodeKeyPart, decodeKeyPart, sessionKeyId } from './keys.js';
import type { SessionKey } from './keys.js';
import { createBoundedClient } from './redis_connection.js';
import type { RedisClusterTarget, RedisSentinelTarget, RedisTls } from './redis_connection.js';
import type { ReplicaAcks } from './redis_env.js';
import { resolveReplicaAcks, waitForReplicas } from './replica_acks.js';
import { LUA_CODES, asArray, callScript, checkCode, defineScripts, num, strList, strOrNull, toStoreError } from './redis_scripts.js';
import type { LuaReply } from './redis_scripts.js';
import type {
  ArchivedSession,
  ClaimMode,
  ClaimResult,
  LeaseToken,
  RecordRead,
  RestoreOutcome,
  SessionPage,
  SessionSnapshot,
  SessionStore,
  StoreOptions,
} from './session_store.js';
import { restoreWritesSession } from './session_store.js';

/** At most this long between two indexings of a session saved again and again, ms (see `indexDue`). */
const INDEX_REFRESH_MAX_MS = 60 * 60 * 1000;
/** Sessions whose last indexing a store remembers; past it, it forgets them all (one more SADD each). */
const INDEXED_AT_SIZE = 4_096;

/**
 * {@link SessionStore} on Redis (ioredis): single Redis, Sentinel (`sentinel` option, or a
 * handed-in Sentinel client) or Cluster (hash tags keep each script's keys in one slot; see
 * `keys.ts`). Every read-modify-write is one Lua script: resume lookup + claim is one round
 * trip, appending a turn is one round trip.
 */

/**
 * What {@link RedisSessionStore.resealSession} did with one session's payloads (each pending turn
 * and each turn of an archive tail is a payload of its own).
 */
export interface ResealReport {
  payloads: number;
  /** Sealed again under the current key (with `dryRun`: would be). */
  resealed: number;
  /** Already under the current key. */
  current: number;
  /** Tampered, or under a key the keyring does not have: left as they are. */
  unreadable: number;
  /** Rewritten by a job between the read and the write: left as the job wrote them. */
  conflicts: number;
  /** Payloads by the key id they had when read (`plaintext`: not sealed). */
  byKeyId: Record<string, number>;
}

/** Kept here too for the callers that import it with the store. */
export { boundedRedisOptions } from './redis_connection.js';

/** Options of {@link RedisSessionStore}. */
export interface RedisSessionStoreOptions extends StoreOptions {
  /** A client to use; it is NOT closed by {@link RedisSessionStore.dispose}. */
  client?: Redis | Cluster;
  /** URL of a Redis to connect to when no client is given; the store then owns (and closes) it. */
  url?: string;
  /**
   * A Sentinel group to connect to when no client is given (instead of `url`); the store then
   * owns (and closes) a client that follows the master through failovers.
   */
  sentinel?: RedisSentinelTarget;
  /**
   * A Redis Cluster to connect to when no client is given (instead of `url` or `sentinel`); the
   * store then owns (and closes) a bounded Cluster client.
   */
  cluster?: RedisClusterTarget;
  /** TLS settings for a `rediss://` `url` (a private CA). */
  tls?: RedisTls;
  /** @default 'pva:' */
  prefix?: string;
  /** Per-command bound for a client the store creates, ms. @default 250 */
  commandTimeoutMs?: number;
  /** Connect bound for a client the store creates, ms. @default 1_000 */
  connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts of a client the store creates, ms. @default 1_000 */
  maxReconnectDelayMs?: number;
  /**
   * Replicas that must acknowledge every data write (save, suspend, end, append, restore,
   * forget) before it counts as done (Redis `WAIT`, after the write, on the same connection).
   * A write they do not all acknowledge within {@link replicaAckTimeoutMs} is on the master but
   * could be lost in a failover: it fails with `store_unavailable` (retryable), and the tiered
   * store keeps it in memory and replays it once the replicas acknowledge again. Not for a
   * Cluster client (`WAIT` has no key to route by). 0 = off (asynchronous replication).
   * @default 0
   */
  replicaAcks?: number;
  /**
   * Longest wait for those acknowledgements, ms. Other commands on the connection queue behind
   * a `WAIT`, so keep it well under the command bound. @default 100
   */
  replicaAckTimeoutMs?: number;
  /** @default silentLogger */
  logger?: Logger;
  /** Times the identity index's refresh (Redis's TTLs run on real time). @default systemClock */
  clock?: Clock;
}

/** See the module comment. */
export class RedisSessionStore implements SessionStore {
  /** The client in use. */
  readonly client: Redis | Cluster;
  /** The key builder (prefix included). */
  readonly keys: KeyBuilder;
  private readonly ownsClient: boolean;
  private readonly opts: ResolvedStoreOptions;
  private readonly codec: PayloadCodec;
  private readonly log: Logger;
  /** The scripts' constant arguments, as sent. */
  private readonly scriptArgs: { maxPendingTurns: string; sessionTtlMs: string; turnsKeepMs: string; archiveTtlMs: string };
  private readonly acks: ReplicaAcks;
  /** TTL of an identity's index (see {@link index}), ms: {@link indexKeepMs} plus {@link indexRefreshMs}. */
  private readonly indexTtlMs: number;
  /**
   * How long after this store last indexed a session a save indexes it again (see
   * {@link indexDue}): so a session kept alive by saves alone (claimed again after a crash, never
   * suspended or ended) never outlives its index.
   */
  private readonly indexRefreshMs: number;
  /** When this store last indexed each session key (record key → ms), at most {@link INDEXED_AT_SIZE}. */
  private readonly indexedAt = new Map<string, number>();
  private readonly clock: Clock;

  constructor(opts: RedisSessionStoreOptions) {
    if (opts.client === undefined && opts.url === undefined && opts.sentinel === undefined && opts.cluster === undefined) {
      throw new SessionError('config_invalid', 'RedisSessionStore needs a client, a url, a Sentinel target or a Cluster target');
    }
    this.acks = resolveReplicaAcks(opts);
    this.client = opts.client ?? createBoundedClient(opts, opts);
    this.ownsClient = opts.client === undefined;
    this.keys = new KeyBuilder(opts.prefix ?? 'pva:');
    this.opts = resolveStoreOptions(opts);
    this.codec = new PayloadCodec(this.opts.cipher);
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? systemClock;
    // The index outlives the longest-kept part of a session (the profile or the archive) by the
    // refresh interval: a session last indexed up to that long before its last save stays findable.
    const indexKeepMs = Math.max(this.opts.profileTtlMs, this.opts.archiveTtlMs, this.opts.sessionTtlMs);
    this.indexRefreshMs = Math.min(Math.ceil(indexKeepMs / 2), INDEX_REFRESH_MAX_MS);
    this.indexTtlMs = indexKeepMs + this.indexRefreshMs;
    this.scriptArgs = {
      maxPendingTurns: String(this.opts.maxPendingTurns),
      sessionTtlMs: String(this.opts.sessionTtlMs),
      turnsKeepMs: this.turnsKeepMs(this.opts.sessionTtlMs),
      archiveTtlMs: String(this.opts.archiveTtlMs),
    };
    // A client we own reports its errors here instead of as unhandled 'error' events.
    if (this.ownsClient) this.client.on('error', (err: Error) => this.log.debug({ err: err.message }, 'redis client error'));
    defineScripts(this.client);
  }

  /**
   * TTL of the pending turns when the record and meta keep `keepMs`: pending turns outlive the
   * record up to the archive's retention, so if the owner crashes they are its archive copy's
   * last turns (see claim-6.lua).
   */
  private turnsKeepMs(keepMs: number): string {
    return String(Math.max(keepMs, this.opts.archiveTtlMs));
  }

  /**
   * With {@link RedisSessionStoreOptions.replicaAcks}: waits until that many replicas hold every
   * write made so far on this connection (on a Cluster: on the masters of `writtenKeys`' slots);
   * throws `store_unavailable` when they do not within the bound (the write is on the master
   * only). See `replica_acks.ts`.
   */
  private async replicated(...writtenKeys: string[]): Promise<void> {
    await waitForReplicas(this.client, this.acks, writtenKeys);
  }

  private sk(key: SessionKey): string[] {
    const k = this.keys.session(key);
    return [k.rec, k.meta, k.turns, k.profile, k.archive, k.archiveData, k.archiveTail];
  }

  /**
   * Adds `key` to its identity's index (what {@link forget} and {@link exportIdentity} find),
   * kept as long as anything of the session can be: the profile or the archive, whichever is
   * kept longer (pending turns and the record never outlive both), plus {@link indexRefreshMs},
   * as a session saved again and again is indexed again only that often ({@link indexDue}). One
   * transaction, so the index never stays without its TTL.
   */
  private async index(key: SessionKey): Promise<void> {
    const nowMs = this.clock.nowMs();
    const idx = this.keys.identityIndex(key.identity);
    try {
      const replies = await this.client.multi().sadd(idx, encodeKeyPart(key.agentName)).pexpire(idx, this.indexTtlMs).exec();
      const failed = replies?.find(([err]) => err !== null)?.[0];
      if (failed) throw failed;
      if (this.indexedAt.size >= INDEXED_AT_SIZE) this.indexedAt.clear();
      this.indexedAt.set(this.keys.session(key).rec, nowMs);
    } catch (err) {
      // A command refused while queued (OOM, READONLY…) aborts the transaction: its own error
      // says whether to retry, not EXECABORT's.
      const queued = (err as { previousErrors?: unknown[] }).previousErrors?.[0];
      throw toStoreError(queued ?? err);
    }
  }

  async resumeAndClaim(key: SessionKey, owner: string, nowMs: number, leaseMs: number, mode: ClaimMode = 'takeover'): Promise<ClaimResult> {
    const k = this.keys.session(key);
    const keepMs = Math.max(this.opts.sessionTtlMs, leaseMs);
    const reply = asArray(
      await callScript(
        this.client,
        'claim',
        [k.rec, k.meta, k.turns, k.profile, k.archive, k.archiveTail],
        [owner, String(nowMs), String(nowMs + leaseMs), mode, String(keepMs), this.turnsKeepMs(keepMs), this.scriptArgs.archiveTtlMs],
      ),
      'claim',
    );
    if (checkCode(reply, 'claim') === LUA_CODES.busy) return { status: 'busy', owner: strOrNull(reply, 1) ?? '', leaseExpiresAtMs: num(reply, 2) };
    const fence = num(reply, 1);
    const version = num(reply, 2);
    const rec = strOrNull(reply, 4);
    // First claim of this key: make it findable by forget(identity) (second round trip, once).
    // A later claim leaves it to its first save (indexDue): the claim stays one round trip.
    if (fence === 1) await this.index(key);
    const record = this.codec.decodeRecord(key, rec, strList(reply, 6), version, this.opts.historyLimits);
    // A found record is a fresh object decoded for this call: set the new lease in place.
    if (record.status === 'found') record.record.owner = { ownerId: owner, fence, leaseExpiresAtMs: nowMs + leaseMs };
    return {
      status: 'claimed',
      lease: { owner, fence },
      record,
      profile: this.codec.decodeProfile(key, strOrNull(reply, 5)),
      previousOwner: (strOrNull(reply, 3) ?? '') === '' ? null : strOrNull(reply, 3),
      version,
    };
  }

  async appendTurn(key: SessionKey, turn: Turn, lease: LeaseToken): Promise<number> {
    const k = this.keys.session(key);
    const reply = asArray(
      await callScript(
        this.client,
        'append',
        [k.meta, k.turns, k.rec],
        [lease.owner, String(lease.fence), this.codec.encodeTurn(key, turn), this.scriptArgs.maxPendingTurns, this.scriptArgs.sessionTtlMs, this.scriptArgs.turnsKeepMs],
      ),
      'append',
    );
    checkCode(reply, 'append');
    await this.replicated(k.meta);
    return num(reply, 1);
  }

  private async write(record: SessionRecord, expectedVersion: number, lease: LeaseToken, mode: 'save' | 'suspend' | 'end', nowMs: number): Promise<number> {
    const key = keyOf(record);
    const payload = this.codec.encodeRecord({ ...record, version: expectedVersion + 1, owner: null });
    const args = [
      lease.owner,
      String(lease.fence),
      String(expectedVersion),
      mode,
      payload,
      this.codec.profilePayloadFor(record),
      String(this.opts.sessionTtlMs),
      String(this.opts.profileTtlMs),
      String(this.opts.archiveTtlMs),
      String(this.opts.archiveMaxCount),
      String(nowMs),
      String(nowMs - this.opts.archiveTtlMs),
      record.sessionId,
    ];
    const reply = asArray(await callScript(this.client, 'save', this.sk(key), args), 'save');
    checkCode(reply, 'save');
    let indexed = false;
    if (mode !== 'save') {
      await this.index(key);
      indexed = true;
    } else if (this.indexDue(key)) {
      // The save itself is done: an index not refreshed now is tried again at the next save.
      indexed = await this.index(key).then(
        () => true,
        (err: unknown) => {
          this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'identity index not refreshed; trying again at the next save');
          return false;
        },
      );
    }
    await this.replicated(this.keys.session(key).rec, ...(indexed ? [this.keys.identityIndex(key.identity)] : []));
    return num(reply, 1);
  }

  /**
   * Whether a save of `key` indexes it again: this store has not indexed it yet (a claim after
   * another job's crash, a restart) or did so {@link indexRefreshMs} ago or more.
   */
  private indexDue(key: SessionKey): boolean {
    const at = this.indexedAt.get(this.keys.session(key).rec);
    const nowMs = this.clock.nowMs();
    return at === undefined || nowMs - at >= this.indexRefreshMs || nowMs < at;
  }

  async save(record: SessionRecord, expectedVersion: number, lease: LeaseToken): Promise<number> {
    return this.write(record, expectedVersion, lease, 'save', record.lastSeenAt);
  }

  async suspend(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number> {
    return this.write(record, expectedVersion, lease, 'suspend', nowMs);
  }

  async end(record: SessionRecord, expectedVersion: number, lease: LeaseToken, nowMs: number): Promise<number> {
    return this.write(record, expectedVersion, lease, 'end', nowMs);
  }

  private async lease(op: 'release' | 'renew', key: SessionKey, lease: LeaseToken, nowMs: number, leaseMs: number): Promise<boolean> {
    const k = this.keys.session(key);
    const keepMs = Math.max(this.opts.sessionTtlMs, leaseMs);
    const reply = await callScript(
      this.client,
      'lease',
      [k.meta, k.rec, k.turns],
      [op, lease.owner, String(lease.fence), String(nowMs + leaseMs), String(keepMs), this.turnsKeepMs(keepMs)],
    );
    return reply === 1;
  }

  async release(key: SessionKey, lease: LeaseToken): Promise<boolean> {
    return this.lease('release', key, lease, 0, 0);
  }

  async renewLease(key: SessionKey, lease: LeaseToken, nowMs: number, leaseMs: number): Promise<boolean> {
    return this.lease('renew', key, lease, nowMs, leaseMs);
  }

  private async readRaw(key: SessionKey, what: 'session' | 'all'): Promise<LuaReply[]> {
    return asArray(await callScript(this.client, 'read', this.sk(key), [what]), 'read');
  }

  private decodeRead(key: SessionKey, reply: LuaReply[]): { record: RecordRead; meta: (string | null)[] } {
    const meta = asArray(reply[1] ?? [], 'read').map((_, i, a) => strOrNull(a, i));
    const version = Number(meta[0] ?? '0');
    let record = this.codec.decodeRecord(key, strOrNull(reply, 0), strList(reply, 2), version, this.opts.historyLimits);
    if (record.status === 'found') {
      const owner = meta[2] ?? null;
      const lease = owner === null ? null : { ownerId: owner, fence: Number(meta[1] ?? '0'), leaseExpiresAtMs: Number(meta[3] ?? '0') };
      record = { status: 'found', record: { ...record.record, owner: lease } };
    }
    return { record, meta };
  }

  async readRecord(key: SessionKey): Promise<RecordRead> {
    return this.decodeRead(key, await this.readRaw(key, 'session')).record;
  }

  async readProfile(key: SessionKey): Promise<Profile | null> {
    try {
      return this.codec.decodeProfile(key, await this.client.get(this.keys.session(key).profile));
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /**
   * The archive of a `read` reply, newest first. Each entry has its tail merged in (turns said
   * after its last save by an owner that crashed); pending turns with no live record are such a
   * tail not yet moved (claim-6.lua moves it at the next claim): they belong to the newest entry.
   */
  private decodeArchive(key: SessionKey, reply: LuaReply[], cutoffMs: number): ArchivedSession[] {
    const flat = strList(reply, 4);
    const unmoved = reply[0] === null ? strList(reply, 2) : [];
    const out: ArchivedSession[] = [];
    for (let i = 0; i + 3 < flat.length; i += 4) {
      const atMs = Number(flat[i + 1]);
      if (atMs < cutoffMs) continue;
      const sessionId = flat[i] ?? '';
      const tail = PayloadCodec.parseTail(flat[i + 3] ?? '');
      const pending = i === 0 ? unmoved : [];
      out.push(this.codec.decodeArchived(key, sessionId, atMs, flat[i + 2] ?? '', tail === null ? pending : [...tail, ...pending], this.opts.historyLimits, tail === null));
    }
    return out;
  }

  async readArchive(key: SessionKey, nowMs: number): Promise<ArchivedSession[]> {
    return this.decodeArchive(key, await this.readRaw(key, 'all'), nowMs - this.opts.archiveTtlMs);
  }

  async listSessions(opts: { cursor?: string | null; count?: number } = {}): Promise<SessionPage> {
    return this.scanSessions(this.keys.metaScanPattern(), (k) => this.keys.parseMetaKey(k), opts);
  }

  /**
   * Every session with anything stored under this prefix — a record, pending turns, a profile or
   * an archive — where {@link listSessions} lists the live ones (a profile and an archive outlive
   * the record). A session can appear on more than one page (one entry per page).
   */
  async listStoredSessions(opts: { cursor?: string | null; count?: number } = {}): Promise<SessionPage> {
    return this.scanSessions(this.keys.sessionScanPattern(), (k) => this.keys.parseSessionKey(k), opts);
  }

  /** One page of a SCAN of every master for `pattern`, each key mapped to its session by `parse`. */
  private async scanSessions(pattern: string, parse: (redisKey: string) => SessionKey | null, opts: { cursor?: string | null; count?: number }): Promise<SessionPage> {
    let [nodeIdx, cursor] = (opts.cursor ?? '0:0').split(':').map(Number) as [number, number];
    const items: SessionKey[] = [];
    const seen = new Set<string>();
    let nodes: Redis[] = [];
    try {
      // A Cluster client knows its masters once it has the slot map: a first command waits for it.
      if (this.client instanceof Cluster && this.client.nodes('master').length === 0) await this.client.ping();
      nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
      while (nodeIdx < nodes.length) {
        const node = nodes[nodeIdx] as Redis;
        const [next, keys] = await node.scan(String(cursor), 'MATCH', pattern, 'COUNT', String(opts.count ?? 100));
        for (const k of keys) {
          const parsed = parse(k);
          if (parsed === null) continue;
          const id = sessionKeyId(parsed);
          if (!seen.has(id)) items.push(parsed);
          seen.add(id);
        }
        cursor = Number(next);
        if (cursor === 0) nodeIdx++;
        if (items.length > 0) break;
      }
    } catch (err) {
      throw toStoreError(err);
    }
    return { items, cursor: nodeIdx < nodes.length ? `${nodeIdx}:${cursor}` : null };
  }

  /**
   * Seals every stored payload of `key` — record, pending turns, profile, archived records and
   * their tails — under the keyring's current key: key rotation (then the old key can leave the
   * keyring), or sealing data written before encryption was turned on. One read (`read-7.lua`),
   * then one `reseal-5.lua` that replaces each payload only if it still holds what was read; one
   * a job rewrote meanwhile is a conflict, left as the job wrote it (run again). Payloads that
   * do not open (tampered, or under a key no longer in the keyring) are left and counted. With
   * `dryRun` nothing is written: the report says what would be.
   * @throws SessionError `config_invalid` without a keyring; `store_unavailable`.
   */
  async resealSession(key: SessionKey, dryRun = false): Promise<ResealReport> {
    if (this.opts.cipher === null) throw new SessionError('config_invalid', 'resealing needs an encryption keyring');
    const reply = await this.readRaw(key, 'all');
    const report: ResealReport = { payloads: 0, resealed: 0, current: 0, unreadable: 0, conflicts: 0, byKeyId: {} };
    const quads: string[] = [];
    /** Payloads each quad carries (an archive tail carries several). */
    const carried: number[] = [];
    const reseal = (kind: PayloadKind, payload: string): string | null => {
      const r = this.codec.reseal(kind, key, payload);
      const id = r.keyId ?? 'plaintext';
      report.payloads++;
      report.byKeyId[id] = (report.byKeyId[id] ?? 0) + 1;
      if (r.status === 'current') report.current++;
      if (r.status === 'unreadable') report.unreadable++;
      return r.status === 'resealed' ? r.payload : null;
    };
    const plan = (slot: number, where: string, old: string, next: string | null, payloads = 1) => {
      if (next === null) return;
      quads.push(String(slot), where, old, next);
      carried.push(payloads);
    };
    const rec = strOrNull(reply, 0);
    if (rec !== null) plan(1, '', rec, reseal('rec', rec));
    strList(reply, 2).forEach((t, i) => plan(2, String(i), t, reseal('turn', t)));
    const profile = strOrNull(reply, 3);
    if (profile !== null) plan(3, '', profile, reseal('profile', profile));
    const flat = strList(reply, 4);
    for (let i = 0; i + 3 < flat.length; i += 4) {
      const id = flat[i] ?? '';
      const archived = flat[i + 2] ?? '';
      if (archived !== '') plan(4, id, archived, reseal('rec', archived));
      const tailText = flat[i + 3] ?? '';
      const tail = PayloadCodec.parseTail(tailText);
      if (tail === null || tail.length === 0) continue;
      const next = tail.map((t) => reseal('turn', t) ?? t);
      const changed = next.filter((t, j) => t !== tail[j]).length;
      plan(5, id, tailText, changed > 0 ? JSON.stringify(next) : null, changed);
    }
    if (quads.length === 0 || dryRun) {
      report.resealed = carried.reduce((a, b) => a + b, 0);
      return report;
    }
    const k = this.keys.session(key);
    const done = asArray(await callScript(this.client, 'reseal', [k.rec, k.turns, k.profile, k.archiveData, k.archiveTail], quads), 'reseal');
    carried.forEach((n, i) => {
      if (done[i] === 1) report.resealed += n;
      else report.conflicts += n;
    });
    await this.replicated(k.rec);
    return report;
  }

  /** The agents `identity` has sessions with, from its identity index (what `forget` erases by). */
  private async agentsOf(identity: string): Promise<string[]> {
    try {
      return (await this.client.smembers(this.keys.identityIndex(identity))).map(decodeKeyPart);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async forget(identity: string): Promise<{ sessionKeysErased: number }> {
    const idx = this.keys.identityIndex(identity);
    const mark = this.keys.forgetMark(identity);
    try {
      // The mark first: a replay that writes after the erasure below finds it (see restore).
      await this.client.set(mark, String(Date.now()), 'PX', this.opts.sessionTtlMs);
    } catch (err) {
      throw toStoreError(err);
    }
    const agents = await this.agentsOf(identity);
    try {
      await Promise.all(agents.map((agentName) => this.client.unlink(...this.sk({ agentName, identity }))));
      await this.client.unlink(idx);
      for (const agentName of agents) this.indexedAt.delete(this.keys.session({ agentName, identity }).rec);
    } catch (err) {
      throw toStoreError(err);
    }
    await this.replicated(mark, idx, ...agents.map((agentName) => this.keys.session({ agentName, identity }).rec));
    return { sessionKeysErased: agents.length };
  }

  async exportIdentity(identity: string): Promise<SessionSnapshot[]> {
    const agents = await this.agentsOf(identity);
    const snapshots = await Promise.all(agents.map((agentName) => this.exportSession({ agentName, identity })));
    return snapshots.filter((s): s is SessionSnapshot => s !== null);
  }

  async exportSession(key: SessionKey): Promise<SessionSnapshot | null> {
    const reply = await this.readRaw(key, 'all');
    const { record, meta } = this.decodeRead(key, reply);
    const { profile, problem: profileProblem } = this.codec.readProfile(key, strOrNull(reply, 3));
    const archive = this.decodeArchive(key, reply, Number.NEGATIVE_INFINITY);
    const hasMeta = meta[1] !== null && meta[1] !== undefined;
    if (!hasMeta && record.status !== 'found' && profile === null && profileProblem === undefined && archive.length === 0) return null;
    return {
      key: { ...key },
      version: Number(meta[0] ?? '0'),
      lease: hasMeta ? { owner: meta[2] ?? null, fence: Number(meta[1]), expiresAtMs: Number(meta[3] ?? '0'), claimedAtMs: Number(meta[4] ?? '0') } : null,
      record: record.status === 'found' ? { ...record.record, owner: null } : null,
      ...(record.status === 'invalid' ? { recordProblem: record.why } : {}),
      profile,
      ...(profileProblem === undefined ? {} : { profileProblem }),
      archive,
    };
  }

  /** True when {@link forget} erased `identity` after `claimedAtMs` (0: unknown), within its mark's TTL. */
  private async erasedSince(identity: string, claimedAtMs: number): Promise<boolean> {
    let at: string | null;
    try {
      at = await this.client.get(this.keys.forgetMark(identity));
    } catch (err) {
      throw toStoreError(err);
    }
    return at !== null && claimedAtMs < Number(at);
  }

  async restore(snapshot: SessionSnapshot, writer: string, nowMs: number): Promise<RestoreOutcome> {
    const key = snapshot.key;
    // A snapshot claimed before the identity was erased is not written back. The mark is read
    // again after the script: a forget that ran meanwhile may have erased before it wrote.
    const claimedAtMs = snapshot.lease?.claimedAtMs ?? 0;
    if (await this.erasedSince(key.identity, claimedAtMs)) return { status: 'skipped', why: 'forgotten' };
    const writeSession = restoreWritesSession(snapshot);
    const archive = snapshot.archive.filter((a) => a.record !== null);
    const args = [
      String(snapshot.lease?.fence ?? 0),
      String(snapshot.version),
      snapshot.lease?.owner ?? '',
      String(snapshot.lease?.expiresAtMs ?? 0),
      snapshot.record === null ? '' : this.codec.encodeRecord({ ...snapshot.record, version: snapshot.version, owner: null }),
      snapshot.profile === null ? '' : this.codec.encodeProfile(snapshot.profile),
      String(this.opts.sessionTtlMs),
      String(this.opts.profileTtlMs),
      String(this.opts.archiveTtlMs),
      writeSession ? '1' : '0',
      writer,
      String(nowMs),
      snapshot.record === null ? '' : forkArchiveId(snapshot.record.sessionId, writer),
      String(snapshot.lease?.claimedAtMs ?? 0),
      String(this.opts.archiveMaxCount),
      String(nowMs - this.opts.archiveTtlMs),
      String(archive.length),
      ...archive.flatMap((a) => [String(a.archivedAtMs), a.sessionId, this.codec.encodeRecord(a.record as SessionRecord)]),
    ];
    const reply = asArray(await callScript(this.client, 'restore', this.sk(key), args), 'restore');
    const skipped = checkCode(reply, 'restore') === LUA_CODES.newerArrival;
    if (await this.erasedSince(key.identity, claimedAtMs)) {
      try {
        await this.client.unlink(...this.sk(key));
      } catch (err) {
        throw toStoreError(err);
      }
      return { status: 'skipped', why: 'forgotten' };
    }
    if (!skipped) await this.index(key);
    // A skipped restore still wrote the archive (see restore-7.lua).
    await this.replicated(this.keys.session(key).rec, ...(skipped ? [] : [this.keys.identityIndex(key.identity)]));
    return skipped ? { status: 'skipped', why: 'newer_arrival' } : { status: 'restored', version: num(reply, 1), fence: num(reply, 2) };
  }

  async ping(): Promise<void> {
    try {
      await this.client.ping();
    } catch (err) {
      throw toStoreError(err);
    }
  }

  async dispose(): Promise<void> {
    if (!this.ownsClient) return;
    try {
      await bounded(this.client.quit(), 1_000);
    } catch {
      this.client.disconnect();
    }
  }
}
