/**
 * How far this process's clock is from Redis's. The workers stamp what they write with their own
 * clock: a lease's end (`exp`, compared by another worker's claim), a record's `lastSeenAt` (the
 * rejoin window and the "no second greeting for a short drop" gap, read by whichever job the
 * participant comes back to). Two workers whose clocks disagree by seconds read each other's
 * stamps wrong: a worker ahead finds live leases lapsed (a speculative claim takes over a live
 * conversation), one behind finds a participant who left a minute ago still within the rejoin
 * window. NTP keeps clocks within milliseconds; this notices when it does not. Redis is the one
 * clock every worker talks to, so a worker within a second of it is within two of every other.
 */
import { Cluster, type Redis } from 'ioredis';
import { addressOf } from './redis_connection.js';

/** This process's clock against one Redis master's. */
export interface ClockSkew {
  /** The master's address, `host:port`. */
  node: string;
  /** This process's clock minus the master's, ms (positive: this process is ahead). */
  skewMs: number;
  /** How far off {@link skewMs} may be: half the round trip it was measured over, plus the clocks' 1 ms resolution. */
  uncertaintyMs: number;
}

/** Skew beyond which the clocks disagree enough to matter (the shortest time rule is a 5 s regreet gap). */
export const CLOCK_SKEW_WARN_MS = 1_000;

/** Round trips per master; the one with the shortest round trip is kept (the least uncertain). */
const SAMPLES = 3;

/** The epoch ms of a `TIME` reply (`[seconds, microseconds]`). */
export function timeReplyMs(reply: unknown): number {
  if (!Array.isArray(reply) || reply.length !== 2) throw new Error('TIME did not answer [seconds, microseconds]');
  const ms = Number(reply[0]) * 1000 + Number(reply[1]) / 1000;
  if (!Number.isFinite(ms)) throw new Error('TIME did not answer [seconds, microseconds]');
  return ms;
}

/** {@link ClockSkew} of one connected master, with `now` as this process's clock. */
async function skewOf(node: Redis, now: () => number): Promise<ClockSkew> {
  let best: ClockSkew | null = null;
  for (let i = 0; i < SAMPLES; i++) {
    const before = now();
    const redisMs = timeReplyMs(await node.time());
    const after = now();
    const sample = { node: addressOf(node), skewMs: Math.round((before + after) / 2 - redisMs), uncertaintyMs: Math.ceil((after - before) / 2) + 1 };
    if (best === null || sample.uncertaintyMs < best.uncertaintyMs) best = sample;
  }
  return best as ClockSkew;
}

/**
 * The skew of this process's clock against every master behind `client` (the one Redis, the
 * Sentinel group's master, or each master of a Cluster). `client` must be connected.
 */
export async function clockSkews(client: Redis | Cluster, now: () => number = Date.now): Promise<ClockSkew[]> {
  const masters = client instanceof Cluster ? client.nodes('master') : [client];
  return Promise.all(masters.map((node) => skewOf(node, now)));
}

/** The skews that are certainly beyond {@link CLOCK_SKEW_WARN_MS}, whatever the measurement's uncertainty. */
export function skewed(skews: readonly ClockSkew[]): ClockSkew[] {
  return skews.filter((s) => Math.abs(s.skewMs) - s.uncertaintyMs > CLOCK_SKEW_WARN_MS);
}

/** The largest skew by magnitude, signed, in ms (0 with no master). */
export function largestSkewMs(skews: readonly ClockSkew[]): number {
  return skews.reduce((m, s) => (Math.abs(s.skewMs) > Math.abs(m) ? s.skewMs : m), 0);
}

/** What the operator is told when this process's clock is off (static; the masters and skews go in the fields). */
export const CLOCK_SKEW_WARNING =
  "This worker's clock disagrees with Redis's by more than a second: leases and rejoin windows written by other workers are read wrong (a live conversation can be taken over, a long absence greeted as a short one). " +
  'Keep every worker and Redis on NTP';
