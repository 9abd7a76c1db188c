/**
 * What the page keeps in `localStorage` (seed 003: the identity survives a reload), validated
 * on read (anything unreadable is "nothing stored", never a crash), over an injected
 * key-value storage so it is testable without a browser.
 *
 * | key               | holds                                                     |
 * |-------------------|-----------------------------------------------------------|
 * | `pva.device`      | `{v:1, identity, deviceSecret}` issued by the token service|
 * | `pva.last_room`   | `{v:1, identity, name, seenAtMs, wasConnected}`            |
 * | `pva.transcript`  | `{v:1, identity, entries}` (bounded, see `transcript.ts`)  |
 * | `pva.policy`      | the demo resume-policy selection                           |
 * | `pva.language`    | the participant's language pick                            |
 *
 * and in the tab's own `sessionStorage` (kept across a reload of that tab, not shared with
 * other tabs):
 *
 * | key               | holds                                                     |
 * |-------------------|-----------------------------------------------------------|
 * | `pva.tab_call`    | `{v:1, identity, name}`: this tab was in that room's call  |
 *
 * so only the tab that was in the call rejoins it by itself when reloaded; another tab opened
 * meanwhile does not join it (and push the first one out: one identity, one connection).
 *
 * Records carry the identity they belong to, so a page that got a new identity (after
 * "Forget me") never shows or reuses the previous one's transcript or room.
 */
import { z } from 'zod';
import type { LastRoom } from './session_machine.js';
import { MAX_ENTRY_CHARS, MAX_TRANSCRIPT_ENTRIES, type TranscriptEntry } from './transcript.js';

/** The subset of the Web Storage API used. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Storage keys. */
export const STORAGE_KEYS = {
  device: 'pva.device',
  lastRoom: 'pva.last_room',
  transcript: 'pva.transcript',
  policy: 'pva.policy',
  language: 'pva.language',
  /** In the tab's `sessionStorage`. */
  tabCall: 'pva.tab_call',
} as const;

/** The credential the token service issued to this browser. */
export interface StoredDevice {
  identity: string;
  deviceSecret: string;
}

/** The last room and whether this tab was connected when it went away (a reload rejoins it). */
export interface StoredLastRoom extends LastRoom {
  wasConnected: boolean;
}

const deviceSchema = z.object({ v: z.literal(1), identity: z.string().min(1).max(128), deviceSecret: z.string().min(1).max(128) });
const lastRoomSchema = z.object({
  v: z.literal(1),
  identity: z.string(),
  name: z.string().min(1).max(64),
  seenAtMs: z.number().finite(),
  wasConnected: z.boolean(),
});
const tabCallSchema = z.object({ v: z.literal(1), identity: z.string(), name: z.string() });
const transcriptSchema = z.object({
  v: z.literal(1),
  identity: z.string(),
  entries: z
    .array(
      z.object({
        id: z.string().max(256),
        role: z.enum(['agent', 'user', 'system']),
        text: z.string().max(MAX_ENTRY_CHARS),
        atMs: z.number().finite(),
      }),
    )
    .max(MAX_TRANSCRIPT_ENTRIES),
});

function read<T>(storage: KeyValueStorage, key: string, schema: z.ZodType<T>): T | null {
  let raw: string | null;
  try {
    raw = storage.getItem(key);
  } catch {
    return null; // storage disabled (private mode, policy)
  }
  if (raw === null) return null;
  try {
    const r = schema.safeParse(JSON.parse(raw));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

function write(storage: KeyValueStorage, key: string, value: unknown): void {
  try {
    storage.setItem(key, JSON.stringify(value));
  } catch {
    /* quota or disabled: the page keeps working without persistence */
  }
}

function remove(storage: KeyValueStorage, key: string): void {
  try {
    storage.removeItem(key);
  } catch {
    /* disabled */
  }
}

/** Typed access to the page's persisted state. */
export class PageStorage {
  /**
   * @param storage the browser's storage, shared by its tabs (`localStorage`)
   * @param tab this tab's own storage (`sessionStorage`)
   */
  constructor(
    private readonly storage: KeyValueStorage,
    private readonly tab: KeyValueStorage,
  ) {}

  /** The device credential, or null. */
  device(): StoredDevice | null {
    const d = read(this.storage, STORAGE_KEYS.device, deviceSchema);
    return d === null ? null : { identity: d.identity, deviceSecret: d.deviceSecret };
  }

  /** Stores a new device credential and drops everything of the previous identity. */
  setDevice(d: StoredDevice): void {
    const prev = this.device();
    if (prev !== null && prev.identity !== d.identity) this.clearSession();
    write(this.storage, STORAGE_KEYS.device, { v: 1, ...d });
  }

  /** The last room of `identity`, or null; `wasConnected` only in the tab that was in its call. */
  lastRoom(identity: string): StoredLastRoom | null {
    const r = read(this.storage, STORAGE_KEYS.lastRoom, lastRoomSchema);
    if (r === null || r.identity !== identity) return null;
    return { name: r.name, seenAtMs: r.seenAtMs, wasConnected: r.wasConnected && this.inThisTabsCall(identity, r.name) };
  }

  /** Whether this tab was last in the call of room `name` as `identity`. */
  private inThisTabsCall(identity: string, name: string): boolean {
    const call = read(this.tab, STORAGE_KEYS.tabCall, tabCallSchema);
    return call?.identity === identity && call.name === name;
  }

  /**
   * Stores (or with null, drops) the last room of `identity`, and whether this tab is in its
   * call. Another tab's since is not dropped: another identity's, or a call another tab of this
   * one is in (the conversation went on there).
   */
  setLastRoom(identity: string, room: StoredLastRoom | null): void {
    if (room === null) {
      const stored = read(this.storage, STORAGE_KEYS.lastRoom, lastRoomSchema);
      const anotherTabsCall = stored !== null && stored.wasConnected && !this.inThisTabsCall(stored.identity, stored.name);
      if (stored === null || (stored.identity === identity && !anotherTabsCall)) remove(this.storage, STORAGE_KEYS.lastRoom);
    } else write(this.storage, STORAGE_KEYS.lastRoom, { v: 1, identity, ...room });
    if (room?.wasConnected === true) write(this.tab, STORAGE_KEYS.tabCall, { v: 1, identity, name: room.name });
    else remove(this.tab, STORAGE_KEYS.tabCall);
  }

  /** The transcript of `identity` (empty when none). */
  transcript(identity: string): TranscriptEntry[] {
    const t = read(this.storage, STORAGE_KEYS.transcript, transcriptSchema);
    return t === null || t.identity !== identity ? [] : t.entries;
  }

  /** Stores the transcript of `identity`. */
  setTranscript(identity: string, entries: readonly TranscriptEntry[]): void {
    write(this.storage, STORAGE_KEYS.transcript, { v: 1, identity, entries: entries.slice(-MAX_TRANSCRIPT_ENTRIES) });
  }

  /** The demo policy selection ('' = the service's default). */
  policy(): string {
    return this.choice(STORAGE_KEYS.policy);
  }

  /** Stores the demo policy selection. */
  setPolicy(policy: string): void {
    this.setChoice(STORAGE_KEYS.policy, policy);
  }

  /** The language the participant picked from the page's menu ('' = the browser's). */
  language(): string {
    return this.choice(STORAGE_KEYS.language);
  }

  /** Stores the participant's language pick. */
  setLanguage(language: string): void {
    this.setChoice(STORAGE_KEYS.language, language);
  }

  /** A menu selection kept as a plain string ('' when none, or storage is disabled). */
  private choice(key: string): string {
    try {
      return this.storage.getItem(key) ?? '';
    } catch {
      return '';
    }
  }

  private setChoice(key: string, value: string): void {
    try {
      this.storage.setItem(key, value);
    } catch {
      /* disabled */
    }
  }

  /** Drops the room and transcript (not the credential). */
  clearSession(): void {
    remove(this.storage, STORAGE_KEYS.lastRoom);
    remove(this.storage, STORAGE_KEYS.transcript);
    remove(this.tab, STORAGE_KEYS.tabCall);
  }

  /** Drops everything personal (after "Forget me"): the credential, the session and the language pick. */
  clearAll(): void {
    this.clearSession();
    remove(this.storage, STORAGE_KEYS.device);
    remove(this.storage, STORAGE_KEYS.language);
  }
}
