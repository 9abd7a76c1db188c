import { describe, expect, it } from 'vitest';
import { PageStorage, STORAGE_KEYS, type KeyValueStorage } from '../../web/client/storage.js';
import { addLine, MAX_TRANSCRIPT_ENTRIES, segmentText, textOf, upsertSegment, type TranscriptEntry } from '../../web/client/transcript.js';

class MapStorage implements KeyValueStorage {
  readonly map = new Map<string, string>();
  getItem(k: string): string | null {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.map.set(k, v);
  }
  removeItem(k: string): void {
    this.map.delete(k);
  }
}

describe('transcript model', () => {
  it('builds a segment from deltas and from a cumulative / final stream without duplicating', () => {
    let t: TranscriptEntry[] = [];
    let streamText = '';
    for (const chunk of ['Hello', '! Nice', ' to meet you.']) {
      streamText += chunk;
      t = upsertSegment(t, { id: 's1', role: 'agent', text: segmentText('', streamText), atMs: 1 });
    }
    expect(t).toEqual([{ id: 's1', role: 'agent', text: 'Hello! Nice to meet you.', atMs: 1 }]);
    // A second stream of the same segment that repeats the text (final) replaces it...
    const before = textOf(t, 's1', 'agent');
    t = upsertSegment(t, { id: 's1', role: 'agent', text: segmentText(before, 'Hello! Nice to meet you.'), atMs: 1 });
    expect(t[0]?.text).toBe('Hello! Nice to meet you.');
    // ...and one that continues it (delta) appends.
    t = upsertSegment(t, { id: 's1', role: 'agent', text: segmentText(textOf(t, 's1', 'agent'), ' How can I help?'), atMs: 1 });
    expect(t[0]?.text).toBe('Hello! Nice to meet you. How can I help?');
  });

  it('is bounded', () => {
    let t: TranscriptEntry[] = [];
    for (let i = 0; i < MAX_TRANSCRIPT_ENTRIES + 5; i++) t = addLine(t, { id: `l${i}`, role: 'user', text: String(i), atMs: i });
    expect(t).toHaveLength(MAX_TRANSCRIPT_ENTRIES);
    expect(t[0]?.text).toBe('5');
  });
});

describe('page storage (localStorage)', () => {
  it('keeps the identity, the last room and the transcript across page loads', () => {
    const kv = new MapStorage();
    const tab = new MapStorage();
    const a = new PageStorage(kv, tab);
    a.setDevice({ identity: 'web-1', deviceSecret: 's1' });
    a.setLastRoom('web-1', { name: 'room-1', seenAtMs: 5, wasConnected: true });
    a.setTranscript('web-1', [{ id: 'x', role: 'agent', text: 'Hello!', atMs: 1 }]);
    const b = new PageStorage(kv, tab); // the reloaded page
    expect(b.device()).toEqual({ identity: 'web-1', deviceSecret: 's1' });
    expect(b.lastRoom('web-1')).toEqual({ name: 'room-1', seenAtMs: 5, wasConnected: true });
    expect(b.transcript('web-1')).toHaveLength(1);
  });

  it('only the tab that was in the call rejoins it by itself: another tab sees the room, not the call', () => {
    const kv = new MapStorage();
    const inCall = new MapStorage();
    const a = new PageStorage(kv, inCall);
    a.setDevice({ identity: 'web-1', deviceSecret: 's1' });
    a.setLastRoom('web-1', { name: 'room-1', seenAtMs: 5, wasConnected: true });
    // A tab opened while the first is in its call: same identity and room, not connected.
    const other = new PageStorage(kv, new MapStorage());
    expect(other.device()).toEqual({ identity: 'web-1', deviceSecret: 's1' });
    expect(other.lastRoom('web-1')).toEqual({ name: 'room-1', seenAtMs: 5, wasConnected: false });
    // The call ended in the first tab: its reload does not rejoin either.
    a.setLastRoom('web-1', { name: 'room-1', seenAtMs: 6, wasConnected: false });
    expect(new PageStorage(kv, inCall).lastRoom('web-1')?.wasConnected).toBe(false);
    // A tab that was in another room's call (the browser's last room is now another): no rejoin.
    a.setLastRoom('web-1', { name: 'room-1', seenAtMs: 7, wasConnected: true });
    new PageStorage(kv, new MapStorage()).setLastRoom('web-1', { name: 'room-2', seenAtMs: 8, wasConnected: true });
    expect(new PageStorage(kv, inCall).lastRoom('web-1')).toEqual({ name: 'room-2', seenAtMs: 8, wasConnected: false });
  });

  it("a tab that ends its call drops its own room, never another tab's since (another identity's, or the call the conversation went on in)", () => {
    const kv = new MapStorage();
    const a = new PageStorage(kv, new MapStorage());
    const b = new PageStorage(kv, new MapStorage());
    // The conversation went on in tab b's new room; tab a's call ends.
    a.setLastRoom('web-1', { name: 'room-1', seenAtMs: 1, wasConnected: true });
    b.setLastRoom('web-1', { name: 'room-2', seenAtMs: 2, wasConnected: true });
    a.setLastRoom('web-1', null);
    expect(b.lastRoom('web-1')).toEqual({ name: 'room-2', seenAtMs: 2, wasConnected: true });
    // Another identity's room (another tab's, after a new identity there).
    a.setLastRoom('web-2', null);
    expect(b.lastRoom('web-1')).not.toBeNull();
    // Its own call: dropped.
    b.setLastRoom('web-1', null);
    expect(b.lastRoom('web-1')).toBeNull();
    // A room no tab is in (left with Disconnect, kept for Connect) is dropped by any tab of the identity.
    b.setLastRoom('web-1', { name: 'room-3', seenAtMs: 3, wasConnected: false });
    a.setLastRoom('web-1', null);
    expect(b.lastRoom('web-1')).toBeNull();
  });

  it("never hands one identity's room or transcript to another", () => {
    const kv = new MapStorage();
    const s = new PageStorage(kv, new MapStorage());
    s.setDevice({ identity: 'web-1', deviceSecret: 's1' });
    s.setLastRoom('web-1', { name: 'room-1', seenAtMs: 5, wasConnected: false });
    s.setTranscript('web-1', [{ id: 'x', role: 'user', text: 'secret', atMs: 1 }]);
    expect(s.lastRoom('web-2')).toBeNull();
    expect(s.transcript('web-2')).toEqual([]);
    s.setDevice({ identity: 'web-2', deviceSecret: 's2' });
    expect(kv.getItem(STORAGE_KEYS.transcript)).toBeNull();
    expect(kv.getItem(STORAGE_KEYS.lastRoom)).toBeNull();
  });

  it('treats unreadable or foreign data as nothing stored', () => {
    const kv = new MapStorage();
    kv.setItem(STORAGE_KEYS.device, '{not json');
    kv.setItem(STORAGE_KEYS.transcript, JSON.stringify({ v: 2, identity: 'a', entries: [] }));
    const s = new PageStorage(kv, new MapStorage());
    expect(s.device()).toBeNull();
    expect(s.transcript('a')).toEqual([]);
  });

  it('keeps working when storage throws (disabled, quota)', () => {
    const broken: KeyValueStorage = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('quota');
      },
      removeItem: () => {
        throw new Error('denied');
      },
    };
    const s = new PageStorage(broken, broken);
    expect(s.device()).toBeNull();
    expect(() => s.setDevice({ identity: 'a', deviceSecret: 'b' })).not.toThrow();
    expect(() => s.clearAll()).not.toThrow();
  });

  it('clearAll (forget me) drops everything', () => {
    const kv = new MapStorage();
    const tab = new MapStorage();
    const s = new PageStorage(kv, tab);
    s.setDevice({ identity: 'web-1', deviceSecret: 's1' });
    s.setTranscript('web-1', []);
    s.setLastRoom('web-1', { name: 'room-1', seenAtMs: 5, wasConnected: true });
    s.setLanguage('es');
    expect(s.language()).toBe('es');
    s.clearAll();
    expect(kv.map.size).toBe(0);
    expect(tab.map.size).toBe(0);
    expect(s.language()).toBe('');
  });
});
