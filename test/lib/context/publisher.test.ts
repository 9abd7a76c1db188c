import { describe, expect, it } from 'vitest';
import { RecordingLogger } from '../../../lib/logger.js';
import { decodeClientMessage, encodeContextMessage, type ClientMessage } from '../../../lib/context/messages.js';
import { ContextPublisher } from '../../../lib/context/publisher.js';
import { Harness } from './harness.js';

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
    h.disconnect();
    h.publisher.reset();
    h.publisher.setState('B', '2');
    h.connect();
    h.settle();
    expect(h.results.at(-1)).toMatchObject({ ok: true });
    expect(h.publisher.canonicalText()).toBe('');
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
    // A reloaded tab: a new publisher stream to the same agent (replies still land in h.toClient).
    const tab2 = new ContextPublisher({
      src: 'tab-2',
      timers: h.timers,
      transport: { send: (p) => void h.receiver.handle(p, { identity: 'user-1' }) },
    });
    tab2.connected();
    for (const p of h.toClient.splice(0)) tab2.handleReply(p);
    expect(tab2.isActive).toBe(true);
    expect(tab2.tryGetStateValue('A')).toEqual({ found: true, value: '1' });
    tab2.setState('A', '2');
    expect(h.receiver.canonicalText()).toBe('A is 2');
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
