import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis } from 'ioredis';
import { ConflictError, SessionError, StoreUnavailableError } from '../errors.js';

/**
 * The Lua scripts of the Redis adapter (`lib/store/scripts/<name>-<numKeys>.lua`, each with a
 * header listing KEYS, ARGV with units and return codes; code shared by several scripts lives in
 * `scripts/include/` and is pasted in where a script says `-- #include <file>`), registered with
 * `defineCommand` and called through one typed function. Return codes become errors in {@link codeToError} only.
 */

/**
 * Lua that sets `now` to Redis's own clock, epoch ms, for the inline scripts of the coordination
 * keys (liveness, join checks), so the machines' clocks do not matter. Redis ≥ 5 replicates such a
 * script's writes, not the script (effects replication).
 */
export const REDIS_NOW_LUA = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** The scripts and their key counts. */
export const SCRIPTS = {
  claim: { file: 'claim-6.lua', numberOfKeys: 6, readOnly: false },
  append: { file: 'append-3.lua', numberOfKeys: 3, readOnly: false },
  save: { file: 'save-7.lua', numberOfKeys: 7, readOnly: false },
  lease: { file: 'lease-3.lua', numberOfKeys: 3, readOnly: false },
  read: { file: 'read-7.lua', numberOfKeys: 7, readOnly: true },
  restore: { file: 'restore-7.lua', numberOfKeys: 7, readOnly: false },
  reseal: { file: 'reseal-5.lua', numberOfKeys: 5, readOnly: false },
} as const;

/** A script name. */
export type ScriptName = keyof typeof SCRIPTS;

/** Lua return codes (see the script headers). */
export const LUA_CODES = {
  ok: 0,
  busy: -1,
  leaseLost: -3,
  versionConflict: -4,
  newerArrival: -5,
} as const;

/** A raw reply value from a script (RESP2 through ioredis). */
export type LuaReply = string | number | null | LuaReply[];

/** Command names are namespaced so a shared client cannot clash with other users. */
function commandName(name: ScriptName): string {
  return `pvaSession_${name}`;
}

function scriptDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'scripts'), join(here, '..', '..', '..', 'lib', 'store', 'scripts')];
  for (const c of candidates) if (existsSync(join(c, SCRIPTS.claim.file))) return c;
  throw new SessionError('internal', `Lua scripts not found next to ${here}`);
}

let sources: Record<ScriptName, string> | null = null;

/** A line `-- #include <file>`: replaced by `scripts/include/<file>` (Lua has no include of its own in Redis). */
const INCLUDE = /^-- #include ([\w.-]+\.lua)$/gm;

/** The source of a script file, its includes expanded (one level: an included file includes nothing). */
export function scriptSource(dir: string, file: string): string {
  return readFileSync(join(dir, file), 'utf8').replace(INCLUDE, (_line, included: string) => readFileSync(join(dir, 'include', included), 'utf8').trimEnd());
}

function loadSources(): Record<ScriptName, string> {
  if (sources !== null) return sources;
  const dir = scriptDir();
  const out = {} as Record<ScriptName, string>;
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) out[name] = scriptSource(dir, SCRIPTS[name].file);
  sources = out;
  return out;
}

type ScriptFn = (...keysAndArgs: string[]) => Promise<LuaReply>;

/** Registers every script on `client` (idempotent). */
export function defineScripts(client: Redis | Cluster): void {
  const src = loadSources();
  const table = client as unknown as Record<string, ScriptFn | undefined>;
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    if (typeof table[commandName(name)] === 'function') continue;
    client.defineCommand(commandName(name), { lua: src[name], numberOfKeys: SCRIPTS[name].numberOfKeys, readOnly: SCRIPTS[name].readOnly });
  }
}

/**
 * True for errors that mean "Redis did not answer, or cannot take writes for now" rather than
 * "Redis refused this data": the tiered store then works from memory and replays later.
 * `READONLY` is a demoted master during a Sentinel failover; `NOREPLICAS` a master that refuses
 * writes while too few replicas are in sync (`min-replicas-to-write`); `OOM` a full Redis
 * (`maxmemory` with `noeviction`); `MISCONF` a Redis that stopped writes after a failed RDB save.
 */
function isConnectivityError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // The code leads the reply; older Redis versions quote it inside a script error ("... -READONLY ...").
  if (err.name === 'ReplyError') return /(?:^|[\s:-])(?:LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOREPLICAS|OOM|MISCONF)\b/.test(err.message);
  return true;
}

/** Maps a thrown client error to a {@link SessionError}. */
export function toStoreError(err: unknown): SessionError {
  if (err instanceof SessionError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/timed out/i.test(message)) return new StoreUnavailableError('redis command timed out', err, 'store_timeout');
  if (isConnectivityError(err)) return new StoreUnavailableError('redis unavailable', err);
  return new SessionError('internal', 'redis refused a session script', { cause: err });
}

/** Calls a script with `keys` then `args`; client errors become {@link SessionError}s. */
export async function callScript(client: Redis | Cluster, name: ScriptName, keys: readonly string[], args: readonly string[]): Promise<LuaReply> {
  if (keys.length !== SCRIPTS[name].numberOfKeys) throw new SessionError('internal', `script ${name} takes ${SCRIPTS[name].numberOfKeys} keys`);
  const fn = (client as unknown as Record<string, ScriptFn | undefined>)[commandName(name)];
  if (typeof fn !== 'function') throw new SessionError('internal', `script ${name} is not defined on this client`);
  try {
    return await fn.call(client, ...keys, ...args);
  } catch (err) {
    throw toStoreError(err);
  }
}

/**
 * The one place Lua return codes become errors. `ok` passes; `busy` and `newerArrival` are expected outcomes the caller turns into values; the rest throw.
 */
export function codeToError(code: number, script: ScriptName, detail?: LuaReply): SessionError | null {
  switch (code) {
    case LUA_CODES.ok:
    case LUA_CODES.busy:
    case LUA_CODES.newerArrival:
      return null;
    case LUA_CODES.leaseLost:
      return new ConflictError('lease_lost', 'the session lease is held by a newer claim');
    case LUA_CODES.versionConflict:
      return new ConflictError('version_conflict', `store has version ${String(detail)}`);
    default:
      return new SessionError('internal', `script ${script} returned unknown code ${code}`);
  }
}

/** The reply as an array (or an `internal` error). */
export function asArray(reply: LuaReply, script: ScriptName): LuaReply[] {
  if (!Array.isArray(reply)) throw new SessionError('internal', `script ${script} returned a non-array`);
  return reply;
}

/** Element `i` as a number. */
export function num(reply: LuaReply[], i: number): number {
  const v = reply[i];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
  if (!Number.isFinite(n)) throw new SessionError('internal', `expected a number at ${i}`);
  return n;
}

/** Element `i` as a string or null. */
export function strOrNull(reply: LuaReply[], i: number): string | null {
  const v = reply[i];
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new SessionError('internal', `expected a string at ${i}`);
}

/** Element `i` as a list of strings. */
export function strList(reply: LuaReply[], i: number): string[] {
  const v = reply[i];
  if (!Array.isArray(v)) throw new SessionError('internal', `expected a list at ${i}`);
  return v.map((x) => (typeof x === 'string' ? x : x === null ? '' : String(x)));
}

/** Runs the reply code through {@link codeToError}; returns the code when it is not an error. */
export function checkCode(reply: LuaReply[], script: ScriptName): number {
  const code = num(reply, 0);
  const err = codeToError(code, script, reply[1]);
  if (err !== null) throw err;
  return code;
}
