/**
 * Zod shapes for environment variables, shared by the worker's configuration (`agent/config.ts`)
 * and the shared store's (`lib/store/redis_env.ts`). Values arrive as strings; unset and empty
 * (or blank) mean the same.
 */
import { z } from 'zod';

/** A string variable, trimmed; unset or blank gives `undefined`. */
export const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/**
 * The largest number of ms a Node timer takes (2^31 - 1, about 24.8 days): a longer one fires at
 * once, so a variable that sets a timer is refused above it.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** The error for a timer setting above {@link MAX_TIMER_MS}. */
export const tooLongForATimer = (raw: string) => `must be at most ${MAX_TIMER_MS} (about 24.8 days: a timer's limit), got "${raw}"`;

/** True, with the {@link tooLongForATimer} issue added, when `n` (read from `raw`) is past {@link MAX_TIMER_MS}. */
export function pastTimerLimit(n: number, raw: string, ctx: z.RefinementCtx): boolean {
  if (n <= MAX_TIMER_MS) return false;
  ctx.addIssue({ code: 'custom', message: tooLongForATimer(raw) });
  return true;
}

/** A string variable, trimmed; unset or blank gives `fallback` (a blank line in `.env` means "the default", never ""). */
export const stringOr = (fallback: string) => optionalString.transform((v) => v ?? fallback);

/** One of `values`; unset or blank gives `fallback`; anything else is an error listing the values. */
export const enumOr = <const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
  optionalString.pipe(z.enum(values).optional()).transform((v): T[number] => v ?? fallback);

/** `true` or `false`; unset or blank gives `false`. Anything else is an error naming the value (never a secret). */
export const booleanVar = () =>
  optionalString.transform((v, ctx) => {
    if (v === undefined || v === 'false') return false;
    if (v === 'true') return true;
    ctx.addIssue({ code: 'custom', message: `must be true or false, got "${v}"` });
    return z.NEVER;
  });
