/**
 * A small JSON-lines logger for the token service, shaped like `lib/logger.ts`'s `Logger`
 * (pino-like: fields object first, static message second). Identities and secrets never go
 * in a field except under the `pii` key (`pii({ identity })`); secrets never at all.
 */
import type { Logger } from '../../lib/logger.js';

/** Log levels in order. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** See {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Writes one JSON object per line to `write` (stdout by default). */
export function jsonLogger(
  {
    level = 'info',
    write = (line: string) => process.stdout.write(line),
    bindings = {},
  }: { level?: LogLevel; write?: (line: string) => void; bindings?: Record<string, unknown> } = {},
): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const emit = (lvl: LogLevel, obj: Record<string, unknown>, msg: string): void => {
    if (LOG_LEVELS.indexOf(lvl) < min) return;
    write(`${JSON.stringify({ level: lvl, time: new Date().toISOString(), ...bindings, ...obj, msg })}\n`);
  };
  return {
    debug: (o, m) => emit('debug', o, m),
    info: (o, m) => emit('info', o, m),
    warn: (o, m) => emit('warn', o, m),
    error: (o, m) => emit('error', o, m),
    child: (b) => jsonLogger({ level, write, bindings: { ...bindings, ...b } }),
  };
}
