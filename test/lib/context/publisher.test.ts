import { describe, expect, it } from 'vitest';
import { RecordingLogger } from '../../../lib/logger.js';
import { MAX_PACKET_BYTES, MAX_STATES } from '../../../lib/context/limits.js';
import { decodeClientMessage, encodeContextMessage, type ClientMessage } from '../../../lib/context/messages.js';
import { ContextPublisher } from '../../../lib/context/publisher.js';
import { MemoryContextSink } from '../../../lib/context/sink.js';
import { Harness } from './harness.js';

/** A memory sink that also records which kind of write each one was. */
class ModeRecordingSink extends MemoryContextSink {
  readonly modes: Array<'replace' | 'append' | 'reset'> = [];
  override replace(text: string): void {
    this.modes.push('replace');
    super.replace(text);
  }
  override append(text: string): void {
    this.modes.push('append');
    super.append(text);
  }
  override reset(): void {
    this.modes.push('reset');
    super.reset();
  }
}

function sent(h: Harness): ClientMessage[] {
  return h.toAgent.map((p) => {
    const d = decodeClientMessage(p);
    if (!d.ok) throw new Error('publisher sent an invalid packet');
    return d.message;
  });
}

async function readyHarness(opts: ConstructorParameters<typeof Harness>[0] = {}) {
  const h = new Harness(opts);
  await h.receiver.markReady();
  h.connect();
  h.settle();
  return h;
}

/** Connects `tab` to `h`'s agent: hello, and the agent's replies handed to it. */
function connect(h: Harness, tab: ContextPublisher): void {
  tab.connected();
  for (const p of h.toClient.splice(0)) tab.handleReply(p);
}

/** A reloaded tab: a new publisher stream to `h`'s agent (its replies land in h.toClient), connected. */
function reloadedTab(h: Harness): ContextPublisher {
  const tab = new ContextPublisher({
    src: 'tab-2',
    timers: h.timers,
    transport: { send: (p) => void h.receiver.handle(p, { identity: 'user-1' }) },
  });
  connect(h, tab);
  return tab;
}

describe('ContextPublisher: conversation lifecycle', () => {
  it('queues ops until the agent welcomes it, then flushes ONE sync (the seed Replace)', async () => {
    const h = new Harness();
    h.publisher.setState('Station', 'Bay 3');
    h.publisher.setState('HazardLevel', 'High');
    h.publisher.addEvent('Operator bypassed interlock');
    h.connect();
    expect(sent(h).map((m) => m.kind)).toEqual(['hello']);
    expect(h.publisher.isActive).toBe(false);
    h.deliverToAgent(); // hello: the agent is not ready yet
    await h.receiver.markReady(); // → welcome
    h.deliverToClient();
    expect(h.publisher.isActive).toBe(true);
    expect(sent(h)).toEqual([
      {
        v: 1,
        kind: 'op',
        src: 'tab-1',
        rev: 1,
        op: {
          type: 'sync',
          states: [
            { name: 'Station', value: 'Bay 3' },
            { name: 'HazardLevel', value: 'High' },
          ],
          events: ['Operator bypassed interlock'],
        },
      },
    ]);
    h.settle();
    await h.receiver.flush();
    expect(h.sink.writes).toBe(1);
    expect(h.sink.dynamic).toBe('Station is Bay 3\nHazardLevel is High\nOperator bypassed interlock');
  });

  it('flushes a pending reset as one reset op; changes after it are discarded on both sides', async () => {
    const h = await readyHarness();
    h.publisher.setState('A', '1');
    h.settle();
    await h.receiver.flush();
    expect(h.sink.writes).toBe(1);
    h.disconnect();
    h.publisher.reset();
    h.publisher.setState('B', '2');
    h.connect();
    h.deliverToAgent(); // hello
    h.deliverToClient(); // welcome → the flush
    expect(sent(h).map((m) => (m.kind === 'op' ? m.op : m.kind))).toEqual([{ type: 'reset' }]);
    h.settle();
    await h.receiver.flush();
    expect(h.results.at(-1)).toMatchObject({ ok: true });
    expect(h.sink.writes).toBe(2); // the one Reset
    expect(h.sink.view()).toBe('');
    expect(h.publisher.canonicalText()).toBe('');
    expect(h.receiver.canonicalText()).toBe('');
  });

  it('flushes offline changes that net to an empty context as ONE Replace with empty text, not a Reset', async () => {
    const sink = new ModeRecordingSink();
    const h = new Harness({ receiver: { sink } });
    await h.receiver.markReady();
    h.connect();
    h.settle();
    h.publisher.setState('A', '1');
    h.settle();
    await h.receiver.flush();
    h.disconnect();
    h.publisher.setState('A', '2');
    h.publisher.removeState('A');
    h.connect();
    h.settle();
    await h.receiver.flush();
    expect(sink.modes).toEqual(['append', 'replace']);
    expect(sink.view()).toBe('');
    expect(h.receiver.canonicalText()).toBe('');
  });

  it('sends each op with the next revision and keeps it until acknowledged', async () => {
    const h = await readyHarness();
    h.publisher.setState('A', '1');
    h.publisher.addEvent('e');
    expect(sent(h).map((m) => (m.kind === 'op' ? m.rev : 0))).toEqual([1, 2]);
    expect(h.publisher.unackedRevisions()).toEqual([1, 2]);
    h.settle();
    expect(h.publisher.unackedRevisions()).toEqual([]);
  });

  it('ignores acks for revisions it never sent', async () => {
    const h = await readyHarness();
    h.publisher.setState('A', '1');
    h.publisher.handleReply(encodeContextMessage({ v: 1, kind: 'ack', src: 'tab-1', rev: 99 }));
    expect(h.publisher.unackedRevisions()).toEqual([1]);
    h.publisher.handleReply(encodeContextMessage({ v: 1, kind: 'ack', src: 'other-tab', rev: 1 }));
    expect(h.publisher.unackedRevisions()).toEqual([1]);
  });

  it('resends unacknowledged revisions after a reconnect; the agent applies each once', async () => {
    const h = await readyHarness();
    h.publisher.setState('A', '1');
    h.deliverToAgent(); // applied, but the ack is lost with the link
    h.publisher.addEvent('lost event');
    h.disconnect();
    expect(h.publisher.unackedRevisions()).toEqual([1, 2]);
    h.connect();
    h.settle();
    expect(h.publisher.unackedRevisions()).toEqual([]);
    expect(h.receiver.canonicalText()).toBe('A is 1\nlost event');
  });

  it('sends a full sync when the agent lost what it had acknowledged (new job, no restore)', async () => {
    const h = await readyHarness();
    h.publisher.setState('A', '1');
    h.settle();
    const fresh = new Harness();
    await fresh.receiver.markReady();
    // Reuse the publisher's acknowledged history against a fresh agent:
    fresh.up = true;
    const pub = h.publisher as unknown as { opts: { transport: { send: (p: Uint8Array) => void } } };
    pub.opts.transport.send = (p) => fresh.toAgent.push(p);
    h.publisher.disconnected();
    h.publisher.connected();
    fresh.deliverToAgent(); // hello
    h.publisher.handleReply(fresh.toClient.shift()!); // welcome lastRev 0 < acked 1
    expect(sent(fresh).at(-1)).toMatchObject({ kind: 'op', op: { type: 'sync' } });
    fresh.deliverToAgent();
    expect(fresh.receiver.canonicalText()).toBe('A is 1');
  });

  it('resends an unacknowledged revision after ackTimeoutMs when a packet was lost without a disconnect', async () => {
    const h = await readyHarness();
    h.publisher.addEvent('only once');
    h.toAgent = []; // lost
    h.timers.advance(2_999);
    expect(h.toAgent).toEqual([]);
    h.timers.advance(1);
    expect(sent(h)).toMatchObject([{ kind: 'op', rev: 1, op: { type: 'addEvent' } }]);
    h.settle();
    h.timers.advance(10_000);
    h.settle();
    expect(h.receiver.canonicalText()).toBe('only once');
    expect(h.publisher.unackedRevisions()).toEqual([]);
  });

  it('answers a revision_gap reject with one sync', async () => {
    const h = await readyHarness();
    h.publisher.setState('A', '1');
    h.toAgent = []; // lost in transit without a disconnect
    h.publisher.setState('B', '2');
    h.settle();
    expect(h.receiver.canonicalText()).toBe('A is 1\nB is 2');
    expect(h.publisher.unackedRevisions()).toEqual([]);
  });

  it('adopts the agent context into a fresh tracker (a reloaded page)', async () => {
    const h = await readyHarness();
    h.publisher.setState('A', '1');
    h.settle();
    const tab2 = reloadedTab(h);
    expect(tab2.isActive).toBe(true);
    expect(tab2.tryGetStateValue('A')).toEqual({ found: true, value: '1' });
    tab2.setState('A', '2');
    expect(h.receiver.canonicalText()).toBe('A is 2');
  });

  it('a reloaded page that only adopted the agent context follows the agent when it lost it (a new conversation in the room), instead of showing it as live', async () => {
    const h = await readyHarness();
    h.publisher.setState('Station', 'Bay 3');
    h.publisher.addEvent('Operator bypassed interlock');
    h.settle();
    const tab2 = reloadedTab(h);
    expect(tab2.canonicalText()).toBe('Station is Bay 3\nOperator bypassed interlock');
    // The agent starts a new conversation in the room (AlwaysFresh): its context is cleared, and
    // the page's connection comes back to it.
    h.receiver.clear();
    tab2.disconnected();
    connect(h, tab2);
    expect(tab2.isActive).toBe(true);
    expect(tab2.canonicalText()).toBe('');
    expect(h.receiver.canonicalText()).toBe('');
    // From here on both sides hold the same context.
    tab2.setState('Mood', 'Calm');
    expect(h.receiver.canonicalText()).toBe('Mood is Calm');
    expect(tab2.canonicalText()).toBe('Mood is Calm');
  });
});

describe('ContextPublisher: ops the wire refuses never go out', () => {
  it('refuses a setStates batch of more than MAX_STATES entries at the call; nothing changes or is sent', async () => {
    const h = await readyHarness();
    h.toAgent = [];
    const batch = Array.from({ length: MAX_STATES + 1 }, (_, i) => [`S${i}`, 'v'] as const);
    expect(h.publisher.setStates(batch)).toEqual({ ok: false, reason: 'too_many_states' });
    expect(h.publisher.canonicalText()).toBe('');
    expect(h.toAgent).toEqual([]);
    expect(h.publisher.unackedRevisions()).toEqual([]);
  });

  it('sends a batch with repeated names once per name, so it fits one packet and the agent applies it', async () => {
    const h = await readyHarness();
    h.toAgent = [];
    const long = '€'.repeat(1000); // 3000 bytes of UTF-8
    const batch = Array.from({ length: 6 }, (_, i) => ['Note', `${i}${long}`] as const);
    expect(h.publisher.setStates(batch)).toMatchObject({ ok: true, changed: true });
    expect(h.toAgent).toHaveLength(1);
    expect(h.toAgent[0]!.byteLength).toBeLessThanOrEqual(MAX_PACKET_BYTES);
    expect(sent(h)[0]).toMatchObject({ kind: 'op', op: { type: 'setStates', states: [{ name: 'Note', value: `5${long}` }] } });
    h.settle();
    expect(h.receiver.canonicalText()).toBe(h.publisher.canonicalText());
    expect(h.publisher.unackedRevisions()).toEqual([]);
  });

  it('refuses at the call an op that would not fit in one packet (limits larger than the agent\'s)', async () => {
    const h = await readyHarness({ publisher: { limits: { maxValueLength: 20_000, maxContextBytes: 100_000 } } });
    h.toAgent = [];
    expect(h.publisher.setState('A', 'x'.repeat(16_000))).toEqual({ ok: false, reason: 'too_large' });
    expect(h.publisher.tryGetStateValue('A')).toEqual({ found: false });
    expect(h.toAgent).toEqual([]);
    expect(h.publisher.setState('B', '1').ok).toBe(true);
    h.settle();
    expect(h.receiver.canonicalText()).toBe('B is 1');
    expect(h.publisher.unackedRevisions()).toEqual([]);
  });

  it('never resends a sync too large for one packet: it is dropped with a warning', async () => {
    const log = new RecordingLogger();
    const h = new Harness({ publisher: { logger: log, limits: { maxValueLength: 20_000, maxContextBytes: 100_000 } } });
    await h.receiver.markReady();
    for (const name of ['A', 'B', 'C']) expect(h.publisher.setState(name, 'x'.repeat(6_000)).ok).toBe(true);
    h.connect();
    h.settle(); // hello → welcome → the flush sync (18 KB) is not sent
    expect(h.publisher.unackedRevisions()).toEqual([]);
    h.timers.advance(30_000);
    expect(sent(h).filter((m) => m.kind === 'op')).toEqual([]);
    expect(log.lines.some((l) => l.level === 'warn' && l.msg.includes('too large'))).toBe(true);
  });
});

describe('ContextPublisher: apply', () => {
  it('is dropped with a warning before the conversation is active, and not sent', () => {
    const log = new RecordingLogger();
    const h = new Harness({ publisher: { logger: log } });
    h.connect();
    h.toAgent = [];
    expect(h.publisher.apply('Weather is Rain', 'append')).toEqual({ ok: false, reason: 'apply_inactive' });
    expect(h.toAgent).toEqual([]);
    expect(log.lines.some((l) => l.level === 'warn')).toBe(true);
  });

  it('is sent as given while active and never touches either tracker', async () => {
    const h = await readyHarness();
    h.publisher.apply('Weather is Rain', 'append');
    h.settle();
    await h.receiver.flush();
    expect(h.sink.view()).toBe('Weather is Rain');
    expect(h.publisher.tryGetStateValue('Weather')).toEqual({ found: false });
    expect(h.receiver.canonicalText()).toBe('');
  });
});

describe('ContextPublisher: server-API mode', () => {
  it('is active at once, keeps nothing unacknowledged and follows a burst with a trailing sync', () => {
    const h = new Harness({ publisher: { canReceiveAcks: false, resyncDelayMs: 1000 } });
    h.publisher.setState('A', '1');
    h.up = true;
    h.publisher.connected();
    h.publisher.addEvent('e');
    expect(sent(h).map((m) => (m.kind === 'op' ? m.op.type : m.kind))).toEqual(['sync', 'addEvent']);
    expect(h.publisher.unackedRevisions()).toEqual([]);
    h.toAgent = []; // both lost (agent not in the room yet)
    h.timers.advance(1000);
    expect(sent(h).map((m) => (m.kind === 'op' ? m.op.type : m.kind))).toEqual(['sync']);
    for (const p of h.toAgent) h.receiver.handle(p, undefined);
    expect(h.receiver.canonicalText()).toBe('A is 1\ne');
    // a repeated sync is idempotent:
    h.toAgent = [];
    h.publisher.resync();
    expect(h.receiver.handle(h.toAgent[0]!, undefined)).toMatchObject({ ok: true });
    expect(h.receiver.canonicalText()).toBe('A is 1\ne');
  });
});
