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

/** `true` or `false`; unset or blank gives `false`. Anything else is an error naming the value (never a secret). */
export const booleanVar = () =>
  optionalString.transform((v, ctx) => {
    if (v === undefined || v === 'false') return false;
    if (v === 'true') return true;
    ctx.addIssue({ code: 'custom', message: `must be true or false, got "${v}"` });
    return z.NEVER;
  });
