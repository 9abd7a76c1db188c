/**
 * The minimal, pino-shaped logger `lib/` accepts. `agent/` passes `log().child({...})` from
 * `@livekit/agents`; tests pass {@link silentLogger} or a recording logger.
 *
 * Rules: static messages, structured fields; identities and transcripts only under
 * PII-tagged keys (see {@link pii}); never a whole record or payload.
 */
export interface Logger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

/**
 * Wraps personal data (identities, names, transcripts) under the one PII-tagged key, so log
 * pipelines can drop or redact `pii` wholesale: `log.info({ ...pii({ identity }) }, 'arrived')`.
 */
export function pii(fields: Record<string, unknown>): { pii: Record<string, unknown> } {
  return { pii: fields };
}

/** A log line captured by {@link RecordingLogger}. */
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every line in memory; for tests. */
export class RecordingLogger implements Logger {
  constructor(
    readonly lines: LogLine[] = [],
    private readonly bindings: Record<string, unknown> = {},
  ) {}
  private push(level: LogLine['level'], obj: Record<string, unknown>, msg: string): void {
    this.lines.push({ level, msg, fields: { ...this.bindings, ...obj } });
  }
  debug(obj: Record<string, unknown>, msg: string): void {
    this.push('debug', obj, msg);
  }
  info(obj: Record<string, unknown>, msg: string): void {
    this.push('info', obj, msg);
  }
  warn(obj: Record<string, unknown>, msg: string): void {
    this.push('warn', obj, msg);
  }
  error(obj: Record<string, unknown>, msg: string): void {
    this.push('error', obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new RecordingLogger(this.lines, { ...this.bindings, ...bindings });
  }
}
