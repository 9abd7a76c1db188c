/**
 * The sending side of the dynamic-context protocol, pure over an injected transport: the
 * browser adapter (`web/client/context_publisher.ts`) and the backend adapter
 * (`web/server/backend_context_publisher.ts`) wrap it.
 *
 * A publisher owns a {@link ContextTracker}. The conversation is active from the agent's
 * `welcome` (answering our `hello`) until the link drops; while inactive every tracked op
 * queues in the tracker (seed 001), and on the next welcome the queue goes out as one `sync`
 * (the seed's Replace, carrying the full content) or one `reset` (pending reset wins).
 *
 * Delivery (participant publisher): every op gets the next revision of this stream (`src`)
 * and stays unacknowledged until an `ack` covers it. After a reconnect the welcome names the
 * last revision the agent applied: acknowledged ones are dropped, the rest are resent in
 * order (the agent ignores duplicates). If the agent lost state (it applied less than was
 * acknowledged, e.g. a new job without a restore) or reports a `revision_gap`, the publisher
 * sends one `sync` instead, which supersedes everything unacknowledged. Revisions not
 * acknowledged within `ackTimeoutMs` are resent too (a packet lost without a disconnect). Acks for revisions it
 * never sent are ignored. Unacknowledged `apply` ops are not resent after a `sync` (raw text is
 * best effort, as in the seed).
 *
 * Every op must fit in one data packet ({@link MAX_PACKET_BYTES}): an op that would not is
 * refused at the call (`too_large`) and changes nothing; a `setStates` batch goes out with
 * each name once (last value, first position), as the tracker applies it. A packet that still
 * would not fit (a `sync` under limits larger than the agent's) is dropped with a warning
 * rather than resent forever.
 *
 * Delivery (server-API publisher, `canReceiveAcks: false`): there is no reply path, so the
 * publisher treats itself as active from {@link ContextPublisher.connected}, keeps nothing
 * unacknowledged, and after each change burst sends a trailing `sync` of its full content
 * (`resyncDelayMs` later). The agent applies a `sync` idempotently (equal content changes
 * nothing), so repeating it is safe: at least once, exactly one resulting state.
 */
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { MAX_PACKET_BYTES, type ContextLimits } from './limits.js';
import {
  CONTEXT_PROTOCOL_VERSION,
  decodeAgentMessage,
  encodeContextMessage,
  type AgentMessage,
  type ContextOp,
} from './messages.js';
import { systemTimers, type TimerHandle, type Timers } from './timers.js';
import {
  ContextTracker,
  type ContextContent,
  type ContextUpdateMode,
  type StateLookup,
  type TrackerResult,
} from './tracker.js';

/** Sends one packet to the agent (reliable, on the context topic). */
export interface ContextPublisherTransport {
  send(payload: Uint8Array): void | Promise<void>;
}

/** Options of {@link ContextPublisher}. */
export interface ContextPublisherOptions {
  transport: ContextPublisherTransport;
  /** Id of this publisher stream. @default a random id per instance */
  src?: string;
  /** False for a server-API sender, which never gets replies. @default true */
  canReceiveAcks?: boolean;
  /** On each welcome, a tracker never used here adopts the agent's context (a reloaded page; the agent's again after it lost it). @default true */
  adoptAgentContext?: boolean;
  /** Resend `hello` until welcomed, every this many ms. @default 2000 */
  helloRetryMs?: number;
  /** After a `rate_limited` reply, resync this many ms later. @default 1000 */
  retryDelayMs?: number;
  /** Resend unacknowledged revisions when no ack came for this long (a packet lost without a disconnect). @default 3000 */
  ackTimeoutMs?: number;
  /** Server-API only: trailing `sync` this many ms after the last change (0 = never). @default 1000 */
  resyncDelayMs?: number;
  /** Must equal the agent's. @default DEFAULT_CONTEXT_LIMITS */
  limits?: Partial<ContextLimits>;
  /** @default systemTimers (unref'd) */
  timers?: Timers;
  /** @default silentLogger */
  logger?: Logger;
}

interface Unacked {
  readonly rev: number;
  readonly op: ContextOp;
}

function randomSrc(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return c?.randomUUID ? c.randomUUID() : `${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

/** A tracker that publishes its operations to the agent with revisions, acks and resends. */
export class ContextPublisher {
  /** This publisher's stream id. */
  readonly src: string;
  private readonly tracker: ContextTracker;
  private readonly timers: Timers;
  private readonly log: Logger;
  private readonly canReceiveAcks: boolean;
  private nextRev = 1;
  private highestAcked = 0;
  private ignoreRejectsBelow = 0;
  private unacked: Unacked[] = [];
  private awaitingWelcome = false;
  private everUsed = false;
  private helloTimer: TimerHandle | undefined;
  private retryTimer: TimerHandle | undefined;
  private resyncTimer: TimerHandle | undefined;
  private ackTimer: TimerHandle | undefined;

  constructor(private readonly opts: ContextPublisherOptions) {
    this.src = opts.src ?? randomSrc();
    this.log = opts.logger ?? silentLogger;
    this.timers = opts.timers ?? systemTimers;
    this.canReceiveAcks = opts.canReceiveAcks ?? true;
    this.tracker = new ContextTracker({ limits: opts.limits, logger: this.log });
  }

  /** True while a conversation is active (ops are sent at once). */
  get isActive(): boolean {
    return this.tracker.isActive;
  }

  /** Revisions sent and not yet acknowledged, in order. */
  unackedRevisions(): number[] {
    return this.unacked.map((u) => u.rev);
  }

  /** See {@link ContextTracker.setState}. `too_large` if the op would not fit in one packet. */
  setState(name: string, value: string): TrackerResult {
    return this.track({ type: 'setState', name, value }, () => this.tracker.setState(name, value));
  }

  /**
   * See {@link ContextTracker.setStates}. The op sent lists each name once (last value, first
   * position). `too_large` if it would not fit in one packet.
   */
  setStates(entries: Readonly<Record<string, string>> | Iterable<readonly [string, string]>): TrackerResult {
    const list = Symbol.iterator in Object(entries)
      ? [...(entries as Iterable<readonly [string, string]>)]
      : Object.entries(entries as Record<string, string>);
    const batch = new Map<string, string>();
    for (const [name, value] of list) batch.set(name, value);
    const op: ContextOp = { type: 'setStates', states: [...batch].map(([name, value]) => ({ name, value })) };
    return this.track(op, () => this.tracker.setStates(list));
  }

  /** See {@link ContextTracker.removeState}. */
  removeState(name: string): TrackerResult {
    return this.track({ type: 'removeState', name }, () => this.tracker.removeState(name));
  }

  /** See {@link ContextTracker.addEvent}. `too_large` if the op would not fit in one packet. */
  addEvent(text: string): TrackerResult {
    return this.track({ type: 'addEvent', text }, () => this.tracker.addEvent(text));
  }

  /** See {@link ContextTracker.reset}. */
  reset(): TrackerResult {
    return this.track({ type: 'reset' }, () => this.tracker.reset());
  }

  /** See {@link ContextTracker.apply}: sent only while active, else dropped with a warning. */
  apply(text: string, mode: ContextUpdateMode): TrackerResult {
    const op: ContextOp = { type: 'apply', mode, text: mode === 'reset' ? '' : text };
    if (!this.fitsOnePacket(op)) return { ok: false, reason: 'too_large' };
    const r = this.tracker.apply(text, mode);
    if (r.ok) this.sendOp(op);
    return r;
  }

  /** See {@link ContextTracker.tryGetStateValue}. */
  tryGetStateValue(name: string): StateLookup {
    return this.tracker.tryGetStateValue(name);
  }

  /** See {@link ContextTracker.canonicalText}. */
  canonicalText(): string {
    return this.tracker.canonicalText();
  }

  /** See {@link ContextTracker.content}. */
  content(): ContextContent {
    return this.tracker.content();
  }

  /** The link to the agent is up: say hello (or, without acks, start at once). */
  connected(): void {
    if (!this.canReceiveAcks) {
      this.activate(undefined);
      return;
    }
    this.awaitingWelcome = true;
    this.sendHello();
  }

  /** The link dropped: the conversation is inactive and ops queue. */
  disconnected(): void {
    this.tracker.stop();
    this.awaitingWelcome = false;
    this.clearTimer('helloTimer');
    this.clearTimer('ackTimer');
  }

  /** Sends the full content now as one `sync` (server API: call when the agent joins). */
  resync(): void {
    if (!this.tracker.isActive) return;
    this.sendSync();
  }

  /** Stops timers. */
  close(): void {
    this.disconnected();
    this.clearTimer('retryTimer');
    this.clearTimer('resyncTimer');
  }

  /** Handles a packet from the agent (ack / reject / welcome). Never throws. */
  handleReply(payload: Uint8Array | string): void {
    const d = decodeAgentMessage(payload);
    if (!d.ok) {
      this.log.warn({ reason: d.reason }, 'dynamic context reply rejected');
      return;
    }
    const m = d.message;
    if (m.src !== undefined && m.src !== this.src) return;
    if (m.kind === 'ack') this.onAck(m.rev);
    else if (m.kind === 'welcome') this.onWelcome(m);
    else this.onReject(m);
  }

  /** Refuses an op that would not fit in one packet before the tracker sees it, then applies and sends it. */
  private track(op: ContextOp, run: () => TrackerResult): TrackerResult {
    if (!this.fitsOnePacket(op)) return { ok: false, reason: 'too_large' };
    const r = run();
    if (!r.ok) return r;
    if (r.changed) this.everUsed = true;
    if (r.updates.length > 0) this.sendOp(op);
    return r;
  }

  private fitsOnePacket(op: ContextOp): boolean {
    return this.encodeOp(this.nextRev, op).byteLength <= MAX_PACKET_BYTES;
  }

  private encodeOp(rev: number, op: ContextOp): Uint8Array {
    return encodeContextMessage({ v: CONTEXT_PROTOCOL_VERSION, kind: 'op', src: this.src, rev, op });
  }

  private onAck(rev: number): void {
    if (rev >= this.nextRev) return; // never sent: ignore
    if (rev > this.highestAcked) this.highestAcked = rev;
    this.unacked = this.unacked.filter((u) => u.rev > rev);
    if (this.unacked.length === 0) this.clearTimer('ackTimer');
  }

  private onWelcome(m: Extract<AgentMessage, { kind: 'welcome' }>): void {
    if (!this.awaitingWelcome) {
      this.onAck(m.lastRev);
      return;
    }
    this.activate(m);
  }

  private onReject(m: Extract<AgentMessage, { kind: 'reject' }>): void {
    if (m.rev !== undefined && m.rev < this.ignoreRejectsBelow) return;
    if (m.reason === 'revision_gap') {
      if (this.tracker.isActive) this.sendSync();
      return;
    }
    if (m.reason === 'rate_limited') {
      if (this.retryTimer === undefined && this.tracker.isActive) {
        this.retryTimer = this.timers.setTimeout(() => {
          this.retryTimer = undefined;
          if (this.tracker.isActive) this.sendSync();
        }, this.opts.retryDelayMs ?? 1_000);
      }
      return;
    }
    this.log.warn({ reason: m.reason, ...(m.rev === undefined ? {} : { rev: m.rev }) }, 'dynamic context op rejected by agent');
    if (m.rev !== undefined && m.rev < this.nextRev) this.unacked = this.unacked.filter((u) => u.rev !== m.rev);
  }

  private activate(welcome: Extract<AgentMessage, { kind: 'welcome' }> | undefined): void {
    this.awaitingWelcome = false;
    this.clearTimer('helloTimer');
    let needSync = false;
    let adopted = false;
    if (welcome !== undefined) {
      const lastRev = welcome.lastRev;
      if (lastRev >= this.nextRev) {
        this.nextRev = lastRev + 1; // another instance used this src: its history is not ours
        needSync = true;
      } else if (lastRev < this.highestAcked) {
        needSync = true; // the agent lost what it acknowledged
      }
      this.onAck(Math.min(lastRev, this.nextRev - 1));
      // A tracker never used here holds nothing or only what an earlier welcome gave it: it
      // takes the agent's context as it is now, also when the agent lost it (a new conversation
      // in the room, a new job without a restore), instead of showing stale content as live.
      if ((this.opts.adoptAgentContext ?? true) && !this.everUsed && this.tracker.pending === 'none' && this.tracker.load(welcome.context).ok) {
        adopted = true;
        needSync = false;
      }
    }
    const flushed = this.tracker.start();
    const first = flushed[0];
    if (first?.mode === 'reset') {
      this.unacked = [];
      this.sendOp({ type: 'reset' });
    } else if ((first?.mode === 'replace' && !adopted) || needSync) {
      this.sendSync();
    } else {
      this.resendUnacked();
    }
  }

  private resendUnacked(): void {
    for (const u of this.unacked) this.transmit(u.rev, u.op);
    if (this.unacked.length > 0) this.armAckTimer();
  }

  private armAckTimer(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = this.timers.setTimeout(() => {
      this.ackTimer = undefined;
      if (this.tracker.isActive) this.resendUnacked();
    }, this.opts.ackTimeoutMs ?? 3_000);
  }

  private sendSync(): void {
    this.unacked = [];
    const c = this.tracker.content();
    this.ignoreRejectsBelow = this.nextRev;
    this.sendOp({ type: 'sync', states: c.states.map((s) => ({ ...s })), events: [...c.events] });
  }

  private sendOp(op: ContextOp): void {
    const payload = this.encodeOp(this.nextRev, op);
    if (payload.byteLength > MAX_PACKET_BYTES) {
      // The agent would refuse it without naming a revision: never send it, never resend it,
      // and spend no revision on it (the next op must not look like a gap).
      this.log.warn({ op: op.type, bytes: payload.byteLength }, 'dynamic context op too large for one data packet: not sent');
      return;
    }
    const rev = this.nextRev++;
    if (this.canReceiveAcks) {
      this.unacked.push({ rev, op });
      this.armAckTimer();
    }
    this.send(payload);
    if (!this.canReceiveAcks && op.type !== 'sync') this.scheduleResync();
  }

  private transmit(rev: number, op: ContextOp): void {
    this.send(this.encodeOp(rev, op));
  }

  private sendHello(): void {
    this.send(encodeContextMessage({ v: CONTEXT_PROTOCOL_VERSION, kind: 'hello', src: this.src }));
    this.clearTimer('helloTimer');
    this.helloTimer = this.timers.setTimeout(() => {
      this.helloTimer = undefined;
      if (this.awaitingWelcome) this.sendHello();
    }, this.opts.helloRetryMs ?? 2_000);
  }

  private scheduleResync(): void {
    const delayMs = this.opts.resyncDelayMs ?? 1_000;
    if (delayMs <= 0) return;
    this.clearTimer('resyncTimer');
    this.resyncTimer = this.timers.setTimeout(() => {
      this.resyncTimer = undefined;
      this.resync();
    }, delayMs);
  }

  private send(payload: Uint8Array): void {
    try {
      const p = this.opts.transport.send(payload);
      if (p instanceof Promise) p.catch(() => this.log.warn({}, 'dynamic context send failed'));
    } catch {
      this.log.warn({}, 'dynamic context send failed');
    }
  }

  private clearTimer(name: 'helloTimer' | 'retryTimer' | 'resyncTimer' | 'ackTimer'): void {
    const h = this[name];
    if (h !== undefined) this.timers.clearTimeout(h);
    this[name] = undefined;
  }
}
