/**
 * The agent side of the dynamic-context protocol, behind an injected reply transport and sink
 * (the worker wires them to the room and to `agent/context_sink.ts`).
 *
 * For each packet: size → sender check → per-sender rate limit → schema → revision → tracker.
 * Accepted senders: the session's own participant, participants whose token attributes mark
 * them as context publishers (`ATTR_CONTEXT_PUBLISHER === '1'`), and the server API (no
 * participant). Anything else is rejected with a reason, logged at warn without its payload,
 * and changes nothing; `handle` never throws.
 *
 * Revisions are kept per publisher stream (sender + `src`). A participant's incremental op
 * must be exactly the next revision (else `revision_gap` with the expected one); `sync` and
 * `reset` are authoritative and accepted after a gap. A server-API stream cannot be asked to
 * resend, so any higher revision is accepted from it. Lower or equal revisions are duplicates:
 * ignored and re-acknowledged. An op the tracker refuses still consumes its revision (it was
 * processed: the reject names it), so later ops do not stall behind it.
 *
 * Acks mean "applied to the tracker" (and so in {@link ContextReceiver.snapshot}); the chat
 * context is written coalesced. Before {@link ContextReceiver.markReady} the tracker is
 * inactive: ops queue and flush as one Replace, or one Reset when a reset is the last change.
 * Unlike a sender's queue, a reset followed by more changes keeps them (they were
 * acknowledged): the flush is one Replace of the resulting context, so the model, the
 * snapshot and the welcome agree.
 *
 * View bound: when the Appends since the last Replace/Reset exceed `maxContextBytes`, the
 * receiver follows them with a Replace of the canonical context (compaction), so the
 * chat context never grows without bound. This depends only on the update stream, never on
 * timing, so coalescing still never changes the result.
 */
import { ATTR_CONTEXT_PUBLISHER } from '../attributes.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';
import { LogThrottle } from '../log_throttle.js';
import type { Logger } from '../logger.js';
import { pii, silentLogger } from '../logger.js';
import { CoalescingWriter } from './coalescer.js';
import { DEFAULT_CONTEXT_LIMITS, MAX_PACKET_BYTES, MAX_TRACKED_SENDERS, utf8Bytes, type ContextLimits } from './limits.js';
import {
  CONTEXT_PROTOCOL_VERSION,
  decodeClientMessage,
  encodeContextMessage,
  type AgentMessage,
  type ContextOp,
  type ContextRejectReason,
} from './messages.js';
import { TokenBucketRateLimiter, type RateLimitOptions } from './rate_limiter.js';
import type { ContextSink } from './sink.js';
import { contextSnapshotSchema, type ContextSnapshot } from './snapshot.js';
import { systemTimers, type Timers } from './timers.js';
import { ContextTracker, type ContextUpdate, type TrackerResult } from './tracker.js';

/** The participant a packet came from; `undefined` means the server API (`RoomServiceClient.sendData`). */
export interface ContextSender {
  /** Participant identity. */
  readonly identity: string;
  /** Participant attributes (set by the token service; participants cannot change them). */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** Sends a reply to one participant (reliable, on the context topic). */
export interface ContextReplyTransport {
  reply(identity: string, payload: Uint8Array): void | Promise<void>;
}

/** Outcome of {@link ContextReceiver.handle}. */
export type HandleResult =
  | { readonly ok: true; readonly kind: 'op' | 'hello'; readonly rev?: number; readonly queued: boolean }
  | { readonly ok: false; readonly reason: ContextRejectReason };

/** Options of {@link ContextReceiver}. */
export interface ContextReceiverOptions {
  /** Identity of the participant this session talks to. */
  participantIdentity: string;
  /** Where Replace / Append / Reset go (the agent's chat context). */
  sink: ContextSink;
  /** Replies (ack / reject / welcome). Without one, nothing is replied. */
  transport?: ContextReplyTransport;
  /** @default systemClock */
  clock?: Clock;
  /** @default systemTimers (unref'd) */
  timers?: Timers;
  /** @default silentLogger */
  logger?: Logger;
  /** Must equal the publishers' limits. @default DEFAULT_CONTEXT_LIMITS */
  limits?: Partial<ContextLimits>;
  /** @default COALESCE_DEBOUNCE_MS (500 ms) */
  debounceMs?: number;
  /** @default COALESCE_MAX_DELAY_MS (3000 ms) */
  maxDelayMs?: number;
  /** Per-sender token bucket, or `false` to disable (benchmarks). @default RATE_LIMIT_BURST / RATE_LIMIT_PER_SECOND */
  rateLimit?: RateLimitOptions | false;
  /** Publisher streams whose revision is remembered. @default MAX_TRACKED_SENDERS */
  maxSenders?: number;
  /** Called with the new snapshot after every accepted op and restore (persist it). */
  onChange?: (snapshot: ContextSnapshot) => void;
}

/** Key of a publisher stream in {@link ContextSnapshot.revisions}. */
export function senderKey(sender: ContextSender | undefined, src: string): string {
  return sender === undefined
    ? `s:${encodeURIComponent(src)}`
    : `p:${encodeURIComponent(sender.identity)}/${encodeURIComponent(src)}`;
}

/** The agent-side receiver: validates, authorises, orders and applies context messages. */
export class ContextReceiver {
  private readonly tracker: ContextTracker;
  private readonly writer: CoalescingWriter;
  private readonly limiter: TokenBucketRateLimiter | undefined;
  private readonly log: Logger;
  private readonly limits: ContextLimits;
  private readonly maxSenders: number;
  private readonly revisions = new Map<string, number>();
  /** One rejection warning per reason per 10 s (a sender looping on bad messages floods nothing). */
  private readonly rejectionLog: LogThrottle;
  private readonly pendingHellos = new Map<string, { sender: ContextSender; src: string }>();
  private appendedBytes = 0;
  private ready = false;

  constructor(private readonly opts: ContextReceiverOptions) {
    this.log = opts.logger ?? silentLogger;
    this.limits = { ...DEFAULT_CONTEXT_LIMITS, ...opts.limits };
    this.maxSenders = opts.maxSenders ?? MAX_TRACKED_SENDERS;
    this.tracker = new ContextTracker({ limits: this.limits, logger: this.log, keepChangesAfterPendingReset: true });
    const clock = opts.clock ?? systemClock;
    this.rejectionLog = new LogThrottle(clock);
    this.limiter = opts.rateLimit === false ? undefined : new TokenBucketRateLimiter(clock, opts.rateLimit);
    this.writer = new CoalescingWriter({
      sink: opts.sink,
      clock,
      timers: opts.timers ?? systemTimers,
      debounceMs: opts.debounceMs,
      maxDelayMs: opts.maxDelayMs,
      logger: this.log,
    });
  }

  /** True once the agent session is ready (ops apply to the chat context instead of queueing). */
  get isReady(): boolean {
    return this.ready;
  }

  /** The canonical text of the tracked context. */
  canonicalText(): string {
    return this.tracker.canonicalText();
  }

  /** Handles one packet. Never throws; a rejection carries its reason and changes nothing. */
  handle(payload: Uint8Array | string, sender: ContextSender | undefined): HandleResult {
    try {
      return this.handleUnsafe(payload, sender);
    } catch (err) {
      this.log.error({ error: err instanceof Error ? err.name : 'unknown' }, 'dynamic context handler failed');
      return { ok: false, reason: 'invalid_message' };
    }
  }

  /**
   * The agent session is ready: flush the queue (one Replace or one Reset; it never changes the
   * tracked content, so the last snapshot given to `onChange` stays current) and welcome
   * waiting publishers.
   */
  async markReady(): Promise<void> {
    if (this.ready) return;
    this.ready = true;
    this.push(this.tracker.start());
    const hellos = [...this.pendingHellos.values()];
    this.pendingHellos.clear();
    for (const h of hellos) this.welcome(h.sender, h.src);
    await this.writer.flush();
  }

  /** The agent session paused (participant away): later ops queue until {@link markReady}. */
  markNotReady(): void {
    this.ready = false;
    this.tracker.stop();
  }

  /** Writes any coalesced updates to the sink now. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /** Flushes and stops writing. */
  close(): Promise<void> {
    return this.writer.close();
  }

  /** The persisted form: states, events and the last revision per publisher stream. */
  snapshot(): ContextSnapshot {
    const c = this.tracker.content();
    return {
      states: c.states.map((s) => ({ name: s.name, value: s.value })),
      events: [...c.events],
      revisions: Object.fromEntries(this.revisions),
    };
  }

  /**
   * Forgets the context and every publisher's revision, as a receiver just made: the
   * conversation started over in the room (AlwaysFresh). The model's copy is cleared by one
   * Replace (now, or at {@link markReady}); a publisher that reconnects is welcomed at revision 0
   * and, having had ops acknowledged, sends its whole context again, and a new page adopts the
   * empty one.
   */
  clear(): void {
    this.pushResult(this.tracker.load({ states: [], events: [] }));
    this.revisions.clear();
    this.opts.onChange?.(this.snapshot());
  }

  /**
   * Restores a persisted snapshot (resume). Before ready it queues as one Replace for
   * {@link markReady}; after, it applies as one Replace (nothing if equal). Revisions merge
   * (the higher wins). Returns false, changing nothing, for an invalid snapshot.
   */
  restore(snapshot: ContextSnapshot): boolean {
    const parsed = contextSnapshotSchema.safeParse(snapshot);
    if (!parsed.success) {
      this.log.warn({ reason: 'invalid_message' }, 'dynamic context snapshot rejected');
      return false;
    }
    const r = this.tracker.load(parsed.data);
    if (!r.ok) {
      this.log.warn({ reason: r.reason }, 'dynamic context snapshot rejected');
      return false;
    }
    this.pushResult(r);
    for (const [key, rev] of Object.entries(parsed.data.revisions)) {
      this.setRevision(key, Math.max(rev, this.revisions.get(key) ?? 0));
    }
    this.opts.onChange?.(this.snapshot());
    return true;
  }

  private handleUnsafe(payload: Uint8Array | string, sender: ContextSender | undefined): HandleResult {
    const size =
      typeof payload === 'string'
        ? payload.length * 3 > MAX_PACKET_BYTES ? utf8Bytes(payload) : payload.length
        : payload instanceof Uint8Array ? payload.byteLength : Infinity;
    if (size > MAX_PACKET_BYTES) return this.refuse(sender, 'too_large');
    if (!this.isAuthorized(sender)) return this.refuse(sender, 'unauthorized');
    if (this.limiter && !this.limiter.tryTake(sender === undefined ? 'server' : `p:${sender.identity}`)) {
      return this.refuse(sender, 'rate_limited');
    }
    const decoded = decodeClientMessage(payload);
    if (!decoded.ok) return this.refuse(sender, decoded.reason);
    const msg = decoded.message;
    if (msg.kind === 'hello') {
      if (sender === undefined) return this.refuse(sender, 'hello_without_participant', msg.src);
      if (this.ready) this.welcome(sender, msg.src);
      else if (this.pendingHellos.size < this.maxSenders || this.pendingHellos.has(senderKey(sender, msg.src))) {
        this.pendingHellos.set(senderKey(sender, msg.src), { sender, src: msg.src });
      }
      return { ok: true, kind: 'hello', queued: !this.ready };
    }
    const key = senderKey(sender, msg.src);
    const last = this.revisions.get(key) ?? 0;
    if (msg.rev <= last) {
      this.send(sender, { v: CONTEXT_PROTOCOL_VERSION, kind: 'ack', src: msg.src, rev: last });
      return { ok: false, reason: 'stale_revision' };
    }
    const authoritative = msg.op.type === 'sync' || msg.op.type === 'reset';
    if (sender !== undefined && !authoritative && msg.rev !== last + 1) {
      return this.refuse(sender, 'revision_gap', msg.src, msg.rev, last + 1);
    }
    const result = this.applyOp(msg.op);
    this.setRevision(key, msg.rev);
    if (!result.ok) {
      this.refuse(sender, result.reason, msg.src, msg.rev);
      this.opts.onChange?.(this.snapshot());
      return { ok: false, reason: result.reason };
    }
    this.pushResult(result);
    this.send(sender, { v: CONTEXT_PROTOCOL_VERSION, kind: 'ack', src: msg.src, rev: msg.rev });
    this.opts.onChange?.(this.snapshot());
    return { ok: true, kind: 'op', rev: msg.rev, queued: result.queued };
  }

  private applyOp(op: ContextOp): TrackerResult {
    switch (op.type) {
      case 'setState':
        return this.tracker.setState(op.name, op.value);
      case 'setStates':
        return this.tracker.setStates(op.states.map((s) => [s.name, s.value] as const));
      case 'removeState':
        return this.tracker.removeState(op.name);
      case 'addEvent':
        return this.tracker.addEvent(op.text);
      case 'reset':
        return this.tracker.reset();
      case 'apply':
        return this.tracker.apply(op.text, op.mode);
      case 'sync':
        return this.tracker.load(op);
    }
  }

  private isAuthorized(sender: ContextSender | undefined): boolean {
    if (sender === undefined) return true;
    if (typeof sender.identity !== 'string') return false;
    if (sender.identity === this.opts.participantIdentity) return true;
    return sender.attributes?.[ATTR_CONTEXT_PUBLISHER] === '1';
  }

  private pushResult(r: TrackerResult): void {
    if (r.ok) this.push(r.updates);
  }

  /** Queues updates for the sink, adding a compaction Replace when Appends outgrow the bound. */
  private push(updates: readonly ContextUpdate[]): void {
    if (updates.length === 0) return;
    const out: ContextUpdate[] = [];
    for (const u of updates) {
      out.push(u);
      if (u.mode !== 'append') {
        this.appendedBytes = 0;
        continue;
      }
      this.appendedBytes += utf8Bytes(u.text) + 1;
      if (this.appendedBytes > this.limits.maxContextBytes) {
        const text = this.tracker.canonicalText();
        out.push(text === '' ? { mode: 'reset', text: '' } : { mode: 'replace', text });
        this.appendedBytes = 0;
      }
    }
    this.writer.push(out);
  }

  private setRevision(key: string, rev: number): void {
    this.revisions.delete(key);
    this.revisions.set(key, rev);
    while (this.revisions.size > this.maxSenders) {
      const oldest = this.revisions.keys().next();
      if (oldest.done) break;
      this.revisions.delete(oldest.value);
    }
  }

  private welcome(sender: ContextSender, src: string): void {
    const c = this.tracker.content();
    this.send(sender, {
      v: CONTEXT_PROTOCOL_VERSION,
      kind: 'welcome',
      src,
      lastRev: this.revisions.get(senderKey(sender, src)) ?? 0,
      context: { states: c.states.map((s) => ({ ...s })), events: [...c.events] },
    });
  }

  private refuse(
    sender: ContextSender | undefined,
    reason: ContextRejectReason,
    src?: string,
    rev?: number,
    expectedRev?: number,
  ): HandleResult {
    const suppressed = this.rejectionLog.admit(reason);
    if (suppressed !== null) {
      this.log.warn(
        {
          reason,
          ...(rev === undefined ? {} : { rev }),
          ...(sender ? pii({ identity: sender.identity }) : { server: true }),
          ...(suppressed > 0 ? { suppressedSinceLast: suppressed } : {}),
        },
        'dynamic context message rejected',
      );
    }
    const reply: AgentMessage = { v: CONTEXT_PROTOCOL_VERSION, kind: 'reject', reason };
    if (src !== undefined) reply.src = src;
    if (rev !== undefined) reply.rev = rev;
    if (expectedRev !== undefined) reply.expectedRev = expectedRev;
    this.send(sender, reply);
    return { ok: false, reason };
  }

  private send(sender: ContextSender | undefined, msg: AgentMessage): void {
    const transport = this.opts.transport;
    if (sender === undefined || transport === undefined || typeof sender.identity !== 'string') return;
    try {
      const p = transport.reply(sender.identity, encodeContextMessage(msg));
      if (p instanceof Promise) p.catch(() => this.log.warn({ kind: msg.kind }, 'dynamic context reply failed'));
    } catch {
      this.log.warn({ kind: msg.kind }, 'dynamic context reply failed');
    }
  }
}
