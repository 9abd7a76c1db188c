/**
 * What a long-running process keeps checking about the Redis it shares with the others: whether
 * a master may evict session data (`eviction.ts`) and, in the worker, whether its clock agrees
 * with Redis's (`clock_skew.ts`). Both are deployment mistakes that lose or misread data without
 * an error; both are logged when first seen and again only when they change.
 */
import type { Logger } from '../logger.js';
import { CLOCK_SKEW_WARNING, clockSkews, largestSkewMs, skewed, type ClockSkew } from './clock_skew.js';
import { EVICTION_WARNING, evictionRisks, type EvictionRisk } from './eviction.js';
import { withOwnClient, type RedisTarget } from './redis_connection.js';
import { DEFAULT_POLICY_CHECK_MS } from './redis_env.js';

/** Options of {@link watchRedis}. */
export interface WatchRedisOptions {
  /** Bound of each round, ms. @default 5_000 */
  timeoutMs?: number;
  /** Pause before asking again when Redis did not answer yet, ms. @default 30_000 */
  retryMs?: number;
  /**
   * Pause between two rounds once Redis has answered, ms: a `CONFIG SET`, a restart with another
   * configuration, a failover onto a master configured differently or a clock that drifts is
   * seen within it. 0 = one round. @default {@link DEFAULT_POLICY_CHECK_MS}
   */
  recheckMs?: number;
  /** Called with the masters that may evict after the first answer, then whenever they change. */
  onRisks?: (risks: EvictionRisk[]) => void;
  /**
   * Also measure this process's clock against every master's, each round: for a process that
   * stamps what other processes compare (the worker). `now` is this process's clock
   * (@default Date.now); `onSkew` gets every round's measures.
   */
  clock?: { now?: () => number; onSkew?: (skews: ClockSkew[]) => void };
}

/** A running {@link watchRedis}. */
export interface RedisWatch {
  /** The masters that may evict, at the first answer (never settles if stopped before, or if Redis refuses INFO). */
  readonly result: Promise<EvictionRisk[]>;
  /** Stops asking; nothing is logged after it. */
  stop(): void;
}

/** A set of findings, keyed so that two rounds can be compared (order-free). */
function keyOf(items: readonly string[]): string {
  return [...items].sort().join('\n');
}

/** Redis answered but refused a check's command (an ACL without it), with the error's code (`NOPERM`). */
interface Refusal {
  refused: string;
}

/**
 * `fn()`, or the {@link Refusal} when Redis refuses the command it sends: asking again would get
 * the same answer. Only the code is kept: Redis's text can name the ACL user.
 */
async function unlessRefused<T>(fn: () => Promise<T>): Promise<T | Refusal> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && err.name === 'ReplyError') return { refused: err.message.split(' ')[0] ?? '' };
    throw err;
  }
}

function isRefusal(value: unknown): value is Refusal {
  return typeof value === 'object' && value !== null && 'refused' in value;
}

/**
 * Checks Redis now and then on a client of its own. The first round logs
 * {@link EVICTION_WARNING} with the masters that may evict (a debug line when none does) and,
 * with `clock`, {@link CLOCK_SKEW_WARNING} with the masters whose clock is more than a second
 * off; later rounds, every `recheckMs`, log only what changed: a warning again for a new finding
 * (or a changed policy or limit), one info line once there is none any more. A Redis that does
 * not answer is not a reason to stop (the stores report it themselves): it is asked again every
 * `retryMs` until it answers once, then every `recheckMs`; what was last read stands meanwhile.
 * A check whose command Redis refuses (an ACL without `INFO` or `TIME`) is logged once at info,
 * with only the error's code (its text names the ACL user), and not made again. No timer keeps
 * the process alive.
 */
export function watchRedis(target: RedisTarget, logger: Logger, opts: WatchRedisOptions = {}): RedisWatch {
  const recheckMs = opts.recheckMs ?? DEFAULT_POLICY_CHECK_MS;
  const now = opts.clock?.now ?? Date.now;
  let evictionOn = true;
  let clockOn = opts.clock !== undefined;
  let stopped = false;
  let answeredOnce = false;
  let timer: NodeJS.Timeout | undefined;
  let lastRisks: string | undefined;
  let lastSkewed: string | undefined;
  let answered: (risks: EvictionRisk[]) => void = () => {};
  const result = new Promise<EvictionRisk[]>((resolve) => (answered = resolve));

  const seeRisks = (risks: EvictionRisk[]): void => {
    const key = keyOf(risks.map((r) => `${r.node} ${r.policy} ${r.maxmemoryBytes}`));
    if (key === lastRisks) return;
    const first = lastRisks === undefined;
    if (risks.length > 0) logger.warn({ redisMasters: risks }, EVICTION_WARNING);
    else if (first) logger.debug({}, 'Redis memory policy checked: no master evicts');
    else logger.info({}, 'Redis memory policy checked again: no master evicts any more');
    lastRisks = key;
    opts.onRisks?.(risks);
    if (first) answered(risks);
  };

  const seeSkews = (skews: ClockSkew[]): void => {
    opts.clock?.onSkew?.(skews);
    const off = skewed(skews);
    const key = keyOf(off.map((s) => s.node));
    if (key === lastSkewed) return;
    if (off.length > 0) logger.warn({ clockSkews: off }, CLOCK_SKEW_WARNING);
    else if (lastSkewed === undefined) logger.debug({ largestSkewMs: largestSkewMs(skews) }, 'clock checked against Redis: within a second');
    else logger.info({ largestSkewMs: largestSkewMs(skews) }, "this worker's clock agrees with Redis's again");
    lastSkewed = key;
  };

  const later = (ms: number): void => {
    timer = setTimeout(() => void round(), ms);
    timer.unref();
  };

  const round = async (): Promise<void> => {
    let found: { risks: EvictionRisk[] | Refusal | null; skews: ClockSkew[] | Refusal | null } | null = null;
    try {
      found = await withOwnClient(target, opts.timeoutMs ?? 5_000, async (client) => ({
        risks: evictionOn ? await unlessRefused(() => evictionRisks(client)) : null,
        skews: clockOn ? await unlessRefused(() => clockSkews(client, now)) : null,
      }));
    } catch (err) {
      if (stopped) return;
      logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'could not check Redis');
    }
    if (stopped) return;
    if (found === null) {
      later(answeredOnce ? recheckMs : (opts.retryMs ?? 30_000));
      return;
    }
    answeredOnce = true;
    if (isRefusal(found.risks)) {
      evictionOn = false;
      logger.info({ code: found.risks.refused }, 'Redis refused INFO: its memory policy is not checked (see README, Deploy)');
    } else if (found.risks !== null) seeRisks(found.risks);
    if (isRefusal(found.skews)) {
      clockOn = false;
      logger.info({ code: found.skews.refused }, 'Redis refused TIME: the clock is not checked against it (see README, Deploy)');
    } else if (found.skews !== null) seeSkews(found.skews);
    if (recheckMs > 0 && (evictionOn || clockOn)) later(recheckMs);
  };

  void round();
  return {
    result,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
