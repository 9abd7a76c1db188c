/**
 * The dynamic-context tracker with the exact semantics of seed 001 (Convai "Sync behavior and
 * timing"). Pure: no LiveKit, no Node-only API, no clock. The agent (receiver), the browser
 * client and a backend publisher all run this same module.
 *
 * Decisions where the seed is silent (each has a test):
 * - Setting a state to the value it already has changes nothing and produces no message.
 * - Removing a state that is not set changes nothing and produces no message.
 * - Names must be non-blank; names, values and events must not contain control characters
 *   (C0, DEL, C1) nor the line breaks U+2028 / U+2029 (a line break would split a canonical
 *   line). Empty values are allowed (`"Mood is "`).
 * - `setStates`: at most `maxStates` entries (`too_many_states`); a name listed twice keeps its
 *   last value and its first position; unchanged entries are skipped. In a mixed batch the
 *   Append lists every change in batch order: new states as their canonical line
 *   (`HazardLevel is Extreme`), changed ones as `Station changed from Bay 3 to Bay 7`. A batch
 *   is validated as a whole: one bad entry rejects it and changes nothing.
 * - `reset` always sends its Reset, even on an empty tracker (it also clears raw `apply` text).
 * - A pending reset followed by more changes while inactive (seed: "the reset takes priority
 *   and clears the queue"): on `start` only the Reset is sent, and the states and events set
 *   after it are discarded from the tracker too, so the tracker and the other side agree (both
 *   empty). A warning says how many changes were discarded. Set them again after `start`.
 *   That rule is the sender's: the agent's receiver has acknowledged every op it queued, so
 *   it sets `keepChangesAfterPendingReset` and a reset followed by changes flushes as one
 *   Replace of the resulting context.
 * - A queued `load` (a `sync` op, a restore) is a pending sync, flushed as one Replace even
 *   when its content is empty (Replace with empty text), unless a reset is pending.
 */
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import {
  DEFAULT_CONTEXT_LIMITS,
  EVENT_OVERHEAD_BYTES,
  STATE_OVERHEAD_BYTES,
  jsonStringBytes,
  type ContextLimits,
} from './limits.js';

/** How a context update changes the other side's view: the three RTVI modes of the seed. */
export type ContextUpdateMode = 'replace' | 'append' | 'reset';

/** One message to the other side (the seed's Replace / Append / Reset). `text` is `''` for a Reset. */
export interface ContextUpdate {
  readonly mode: ContextUpdateMode;
  readonly text: string;
}

/** One named state. */
export interface ContextState {
  readonly name: string;
  readonly value: string;
}

/** The structured content of a context: states in first-set order, events in call order. */
export interface ContextContent {
  readonly states: readonly ContextState[];
  readonly events: readonly string[];
}

/** Why the tracker refused an operation; nothing changed. */
export type TrackerRejectReason =
  | 'empty_name'
  | 'name_too_long'
  | 'value_too_long'
  | 'empty_event'
  | 'event_too_long'
  | 'control_character'
  | 'too_many_states'
  | 'context_too_large'
  | 'empty_text'
  | 'invalid_value'
  | 'duplicate_name'
  | 'apply_inactive'
  /** Publisher only: the op would not fit in one data packet (`MAX_PACKET_BYTES`, 15 KiB). */
  | 'too_large';

/**
 * Outcome of a tracker operation. `updates` are the messages to send now (empty while
 * inactive: the operation was queued, `queued` is true). `changed` says whether the tracked
 * content changed.
 */
export type TrackerResult =
  | { readonly ok: true; readonly changed: boolean; readonly queued: boolean; readonly updates: readonly ContextUpdate[] }
  | { readonly ok: false; readonly reason: TrackerRejectReason };

/** What is waiting for `start` while inactive. */
export type PendingFlush = 'none' | 'sync' | 'reset';

/** Result of {@link ContextTracker.tryGetStateValue}. */
export type StateLookup = { readonly found: true; readonly value: string } | { readonly found: false };

/** Options of {@link ContextTracker}. */
export interface ContextTrackerOptions {
  /** Limits; both ends must use the same. @default DEFAULT_CONTEXT_LIMITS */
  limits?: Partial<ContextLimits>;
  /** Warnings (dropped `apply`, discarded changes after a pending reset). @default silentLogger */
  logger?: Logger;
  /** Start active (a conversation is already running). @default false */
  active?: boolean;
  /**
   * Changes queued after a pending reset are kept and flushed (one Replace of the resulting
   * context) instead of being discarded. The agent's receiver sets it: it has acknowledged
   * those changes. @default false (the seed's sender rule: the reset wins and clears the queue)
   */
  keepChangesAfterPendingReset?: boolean;
}

/** C0, DEL, C1 (U+0085 NEL among them) and the Unicode line / paragraph separators. */
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const NO_CHANGE = Object.freeze({ ok: true as const, changed: false, queued: false, updates: Object.freeze([]) });

function reject(reason: TrackerRejectReason): TrackerResult {
  return { ok: false, reason };
}

/** The canonical line of a state: `{name} is {value}`. */
export function stateLine(name: string, value: string): string {
  return `${name} is ${value}`;
}

/** The Append line of an edited state: `{name} changed from {old} to {new}`. */
export function changeLine(name: string, oldValue: string, newValue: string): string {
  return `${name} changed from ${oldValue} to ${newValue}`;
}

/** Canonical text of a content: state lines in order, then event lines, newline-joined. */
export function canonicalTextOf(content: ContextContent): string {
  const lines: string[] = [];
  for (const s of content.states) lines.push(stateLine(s.name, s.value));
  for (const e of content.events) lines.push(e);
  return lines.join('\n');
}

/**
 * Seed-001 tracker. Operations return the messages to send (see {@link TrackerResult}); while
 * inactive they only queue, and {@link ContextTracker.start} returns the one flush message.
 */
export class ContextTracker {
  private readonly limits: ContextLimits;
  private readonly log: Logger;
  private readonly stateMap = new Map<string, string>();
  private eventList: string[] = [];
  private statesBytes = 0;
  private eventsBytes = 0;
  private active: boolean;
  private readonly keepChangesAfterPendingReset: boolean;
  private pendingSync = false;
  private pendingReset = false;
  private changesAfterReset = 0;

  constructor(opts: ContextTrackerOptions = {}) {
    this.limits = { ...DEFAULT_CONTEXT_LIMITS, ...opts.limits };
    this.log = opts.logger ?? silentLogger;
    this.active = opts.active ?? false;
    this.keepChangesAfterPendingReset = opts.keepChangesAfterPendingReset ?? false;
  }

  /** True while a conversation is active (operations send at once instead of queueing). */
  get isActive(): boolean {
    return this.active;
  }

  /** What `start` would flush now. */
  get pending(): PendingFlush {
    return this.pendingReset ? 'reset' : this.pendingSync ? 'sync' : 'none';
  }

  /** Encoded size of the content, as counted against `maxContextBytes`. */
  get contentBytes(): number {
    return this.statesBytes + this.eventsBytes;
  }

  /** Number of states. */
  get stateCount(): number {
    return this.stateMap.size;
  }

  /** The value of a tracked state. Keys only ever sent with `apply` are not found. */
  tryGetStateValue(name: string): StateLookup {
    const value = this.stateMap.get(name);
    return value === undefined ? { found: false } : { found: true, value };
  }

  /** The canonical text (see {@link canonicalTextOf}). */
  canonicalText(): string {
    return canonicalTextOf(this.content());
  }

  /** A copy of the structured content. */
  content(): ContextContent {
    return {
      states: [...this.stateMap].map(([name, value]) => ({ name, value })),
      events: [...this.eventList],
    };
  }

  /** Sets one state. New: 1 Append (its line). Edited: Replace (canonical) then Append (the change). */
  setState(name: string, value: string): TrackerResult {
    return this.setStates([[name, value]]);
  }

  /**
   * Sets several states at once. All new: 1 Append (all new lines). Any edited: Replace then
   * Append (all changes, batch order). Use the array form when names look like integers (a
   * plain object lists those first).
   */
  setStates(entries: Readonly<Record<string, string>> | Iterable<readonly [string, string]>): TrackerResult {
    const list: Array<readonly [string, string]> =
      Symbol.iterator in Object(entries)
        ? [...(entries as Iterable<readonly [string, string]>)]
        : Object.entries(entries as Record<string, string>);
    if (list.length > this.limits.maxStates) return reject('too_many_states');
    // Dedupe: last value wins, first position kept.
    const batch = new Map<string, string>();
    for (const [name, value] of list) {
      if (typeof name !== 'string' || name.trim() === '') return reject('empty_name');
      if (typeof value !== 'string') return reject('invalid_value');
      const bad = this.checkName(name) ?? this.checkValue(value);
      if (bad) return reject(bad);
      batch.set(name, value);
    }
    let newCount = 0;
    let bytes = this.statesBytes;
    const changes: Array<{ name: string; value: string; old: string | undefined }> = [];
    for (const [name, value] of batch) {
      const old = this.stateMap.get(name);
      if (old === value) continue;
      if (old === undefined) {
        newCount++;
        bytes += STATE_OVERHEAD_BYTES + jsonStringBytes(name) + jsonStringBytes(value);
      } else {
        bytes += jsonStringBytes(value) - jsonStringBytes(old);
      }
      changes.push({ name, value, old });
    }
    if (changes.length === 0) return NO_CHANGE;
    if (this.stateMap.size + newCount > this.limits.maxStates) return reject('too_many_states');
    if (bytes + this.eventsBytes > this.limits.maxContextBytes) return reject('context_too_large');
    for (const c of changes) this.stateMap.set(c.name, c.value);
    this.statesBytes = bytes;
    if (!this.active) return this.queued();
    const anyEdited = changes.some((c) => c.old !== undefined);
    const delta = changes
      .map((c) => (c.old === undefined ? stateLine(c.name, c.value) : changeLine(c.name, c.old, c.value)))
      .join('\n');
    const updates: ContextUpdate[] = anyEdited
      ? [
          { mode: 'replace', text: this.canonicalText() },
          { mode: 'append', text: delta },
        ]
      : [{ mode: 'append', text: delta }];
    return { ok: true, changed: true, queued: false, updates };
  }

  /** Removes a state: 1 Replace (canonical without it). Unknown name: no change, no message. */
  removeState(name: string): TrackerResult {
    const old = this.stateMap.get(name);
    if (old === undefined) return NO_CHANGE;
    this.stateMap.delete(name);
    this.statesBytes -= STATE_OVERHEAD_BYTES + jsonStringBytes(name) + jsonStringBytes(old);
    if (!this.active) return this.queued();
    return { ok: true, changed: true, queued: false, updates: [{ mode: 'replace', text: this.canonicalText() }] };
  }

  /**
   * Adds an event: 1 Append (never a Replace). Beyond `maxEvents`, or when the context would
   * exceed `maxContextBytes`, the oldest events are dropped.
   */
  addEvent(text: string): TrackerResult {
    if (typeof text !== 'string' || text.trim() === '') return reject('empty_event');
    if (text.length > this.limits.maxEventLength) return reject('event_too_long');
    if (CONTROL_CHARS.test(text)) return reject('control_character');
    const size = EVENT_OVERHEAD_BYTES + jsonStringBytes(text);
    const room = this.limits.maxContextBytes - this.statesBytes;
    if (size > room || this.limits.maxEvents < 1) return reject('context_too_large');
    let drop = 0;
    let bytes = this.eventsBytes;
    while (
      drop < this.eventList.length &&
      (this.eventList.length - drop + 1 > this.limits.maxEvents || bytes + size > room)
    ) {
      bytes -= EVENT_OVERHEAD_BYTES + jsonStringBytes(this.eventList[drop] ?? '');
      drop++;
    }
    if (drop > 0) this.eventList = this.eventList.slice(drop);
    this.eventList.push(text);
    this.eventsBytes = bytes + size;
    if (!this.active) return this.queued();
    return { ok: true, changed: true, queued: false, updates: [{ mode: 'append', text }] };
  }

  /** Clears every state and event: 1 Reset. While inactive the reset is pending and wins. */
  reset(): TrackerResult {
    this.clear();
    if (!this.active) {
      this.pendingReset = true;
      this.pendingSync = false;
      this.changesAfterReset = 0;
      return { ok: true, changed: true, queued: true, updates: [] };
    }
    return { ok: true, changed: true, queued: false, updates: [{ mode: 'reset', text: '' }] };
  }

  /**
   * Sends raw text in the given mode, bypassing the tracker. Only while active; otherwise it
   * is dropped with a warning (`apply_inactive`) and nothing queues. Never changes the tracker.
   */
  apply(text: string, mode: ContextUpdateMode): TrackerResult {
    if (!this.active) {
      this.log.warn({ mode }, 'dynamic context apply dropped: no active conversation');
      return reject('apply_inactive');
    }
    if (mode === 'reset') return { ok: true, changed: false, queued: false, updates: [{ mode, text: '' }] };
    if (typeof text !== 'string' || (mode === 'append' && text === '')) return reject('empty_text');
    if (text.length > this.limits.maxEventLength) return reject('event_too_long');
    return { ok: true, changed: false, queued: false, updates: [{ mode, text }] };
  }

  /**
   * Replaces the whole content with an authoritative snapshot (a `sync` op, a restore).
   * Idempotent: equal content changes nothing and sends nothing. Active: 1 Replace (with empty
   * text when the new content is empty). Inactive: queued as a pending sync; non-empty content
   * supersedes a pending reset (the flush then sends this content), empty content leaves it.
   */
  load(content: ContextContent): TrackerResult {
    const probe = new ContextTracker({ limits: this.limits, active: true });
    for (const s of content.states) {
      const r = probe.setState(s.name, s.value);
      if (!r.ok) return r;
    }
    if (probe.stateCount !== content.states.length) return reject('duplicate_name');
    for (const e of content.events) {
      const r = probe.addEvent(e);
      if (!r.ok) return r;
    }
    if (probe.eventList.length !== content.events.length) return reject('context_too_large');
    if (this.sameContent(probe)) return NO_CHANGE;
    this.stateMap.clear();
    for (const [k, v] of probe.stateMap) this.stateMap.set(k, v);
    this.eventList = [...probe.eventList];
    this.statesBytes = probe.statesBytes;
    this.eventsBytes = probe.eventsBytes;
    const empty = this.stateMap.size === 0 && this.eventList.length === 0;
    if (!this.active) {
      if (!(empty && this.pendingReset)) {
        this.pendingReset = false;
        this.pendingSync = true;
      }
      this.changesAfterReset = 0;
      return { ok: true, changed: true, queued: true, updates: [] };
    }
    return { ok: true, changed: true, queued: false, updates: [{ mode: 'replace', text: this.canonicalText() }] };
  }

  /**
   * A conversation became active: flushes the queue as ONE Replace of the canonical context at
   * this moment, or ONE Reset when a reset is pending (then changes queued after the reset are
   * discarded: see the module comment). Returns the messages to send (none if nothing queued).
   */
  start(): ContextUpdate[] {
    this.active = true;
    const pending = this.pending;
    this.pendingReset = false;
    this.pendingSync = false;
    if (pending === 'reset') {
      if (this.changesAfterReset > 0) {
        this.log.warn(
          { discardedChanges: this.changesAfterReset },
          'dynamic context changes queued after a pending reset were discarded',
        );
      }
      this.changesAfterReset = 0;
      this.clear();
      return [{ mode: 'reset', text: '' }];
    }
    return pending === 'sync' ? [{ mode: 'replace', text: this.canonicalText() }] : [];
  }

  /** The conversation ended or the link dropped: later operations queue until `start`. */
  stop(): void {
    this.active = false;
  }

  private queued(): TrackerResult {
    if (this.pendingReset && !this.keepChangesAfterPendingReset) this.changesAfterReset++;
    else {
      // With keepChangesAfterPendingReset the flush Replace carries the whole resulting context,
      // which supersedes the reset (a Replace also drops every update message).
      this.pendingReset = false;
      this.pendingSync = true;
    }
    return { ok: true, changed: true, queued: true, updates: [] };
  }

  private clear(): void {
    this.stateMap.clear();
    this.eventList = [];
    this.statesBytes = 0;
    this.eventsBytes = 0;
  }

  private sameContent(other: ContextTracker): boolean {
    if (other.stateMap.size !== this.stateMap.size || other.eventList.length !== this.eventList.length) return false;
    const a = [...this.stateMap];
    const b = [...other.stateMap];
    for (let i = 0; i < a.length; i++) {
      if (a[i]![0] !== b[i]![0] || a[i]![1] !== b[i]![1]) return false;
    }
    return this.eventList.every((e, i) => e === other.eventList[i]);
  }

  private checkName(name: string): TrackerRejectReason | undefined {
    if (name.length > this.limits.maxNameLength) return 'name_too_long';
    if (CONTROL_CHARS.test(name)) return 'control_character';
    return undefined;
  }

  private checkValue(value: string): TrackerRejectReason | undefined {
    if (value.length > this.limits.maxValueLength) return 'value_too_long';
    if (CONTROL_CHARS.test(value)) return 'control_character';
    return undefined;
  }
}
