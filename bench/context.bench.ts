/**
 * Dynamic-context benchmark. Rerun: `npm run bench:context`
 * (`BENCH_MESSAGES` = messages per cost round, default 20000; `BENCH_ROUNDS`, default 7).
 *
 * 1. Cost per applied message: `ContextReceiver.handle` (size, auth, decode + zod, revision,
 *    tracker, update buffering) against a baseline of `TextDecoder` + `JSON.parse` of the same
 *    packets, measured in the same run; median of rounds.
 * 2. A burst of 1 000 messages into a real `voice.Agent` through `AgentContextSink` with real
 *    timers (0.5 s debounce, 3 s ceiling): chat-context writes (`updateChatCtx` calls) and the
 *    time until the final state is in the agent's chat context.
 */
import { initializeLogger, llm, voice } from '@livekit/agents';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { AgentContextSink, DYNAMIC_CONTEXT_MESSAGE_ID } from '../agent/context_sink.js';
import { ManualClock, systemClock } from '../lib/clock.js';
import { encodeContextMessage, type ContextOp } from '../lib/context/messages.js';
import { ContextReceiver } from '../lib/context/receiver.js';
import { MemoryContextSink } from '../lib/context/sink.js';
import { ManualTimers, systemTimers } from '../lib/context/timers.js';
import { ContextTracker } from '../lib/context/tracker.js';

initializeLogger({ pretty: false, level: 'warn' });

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const USER = { identity: 'user-1' };

/** A realistic mix: state edits (Replace + Append), new states, events, a few removals. */
function opAt(i: number): ContextOp {
  const r = i % 10;
  if (r < 5) return { type: 'setState', name: `State${i % 12}`, value: `value ${i}` };
  if (r < 8) return { type: 'addEvent', text: `Event number ${i}: operator did something noteworthy` };
  if (r < 9) return { type: 'setStates', states: [{ name: `State${i % 12}`, value: `v${i}` }, { name: 'Zone', value: `Z${i % 3}` }] };
  return { type: 'removeState', name: `State${(i + 5) % 12}` };
}

function packets(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => encodeContextMessage({ v: 1, kind: 'op', src: 'tab-1', rev: i + 1, op: opAt(i) }));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function costRound(pk: Uint8Array[], withOnChange: boolean): number {
  const clock = new ManualClock(0);
  let persisted = 0;
  const receiver = new ContextReceiver({
    participantIdentity: USER.identity,
    sink: new MemoryContextSink(),
    clock,
    timers: new ManualTimers(clock),
    rateLimit: false,
    ...(withOnChange ? { onChange: () => void persisted++ } : {}),
  });
  void receiver.markReady();
  const t0 = performance.now();
  for (const p of pk) {
    if (!receiver.handle(p, USER).ok) throw new Error('bench message rejected');
  }
  return ((performance.now() - t0) * 1000) / pk.length;
}

function baselineRound(pk: Uint8Array[]): number {
  const dec = new TextDecoder();
  let sink = 0;
  const t0 = performance.now();
  for (const p of pk) sink += (JSON.parse(dec.decode(p)) as { rev: number }).rev;
  const us = ((performance.now() - t0) * 1000) / pk.length;
  if (sink < 0) console.log(sink);
  return us;
}

async function burst(n: number): Promise<{ writes: number; updates: number; finalMs: number; lastSendMs: number }> {
  const agent = new voice.Agent({ instructions: 'bench' });
  const sink = new AgentContextSink(agent);
  const receiver = new ContextReceiver({
    participantIdentity: USER.identity,
    sink,
    clock: systemClock,
    timers: systemTimers,
    rateLimit: false,
  });
  await receiver.markReady();
  const pk = packets(n);
  // What an uncoalesced writer would do: one write per tracker update.
  const t = new ContextTracker({ active: true });
  let updates = 0;
  for (let i = 0; i < n; i++) {
    const op = opAt(i);
    const r =
      op.type === 'setState' ? t.setState(op.name, op.value)
      : op.type === 'addEvent' ? t.addEvent(op.text)
      : op.type === 'setStates' ? t.setStates(op.states.map((s) => [s.name, s.value] as const))
      : op.type === 'removeState' ? t.removeState(op.name)
      : t.reset();
    if (r.ok) updates += r.updates.length;
  }
  const finalLine = t.content().events.at(-1)!;
  const t0 = performance.now();
  for (const p of pk) receiver.handle(p, USER);
  const lastSendMs = performance.now() - t0;
  const hasFinal = () =>
    agent.chatCtx.items.some((i) => i.type === 'message' && ((i as llm.ChatMessage).textContent ?? '').includes(finalLine)) &&
    agent.chatCtx.getById(DYNAMIC_CONTEXT_MESSAGE_ID) !== undefined;
  const deadline = performance.now() + 10_000;
  while (!hasFinal()) {
    if (performance.now() > deadline) throw new Error('final state never reached the chat context');
    await new Promise((r) => setTimeout(r, 5));
  }
  const finalMs = performance.now() - t0;
  await receiver.close();
  if (receiver.canonicalText() !== t.canonicalText()) throw new Error('receiver diverged');
  return { writes: sink.writes, updates, finalMs, lastSendMs };
}

async function main(): Promise<void> {
  const pk = packets(MESSAGES);
  const avgBytes = pk.reduce((a, p) => a + p.byteLength, 0) / pk.length;
  // warm-up
  costRound(pk, false);
  baselineRound(pk);
  const base: number[] = [];
  const cost: number[] = [];
  const costPersist: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(baselineRound(pk));
    cost.push(costRound(pk, false));
    costPersist.push(costRound(pk, true));
  }
  const b = median(base);
  const c = median(cost);
  const cp = median(costPersist);
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs; ${MESSAGES} messages x ${ROUNDS} rounds, ${avgBytes.toFixed(0)} B average packet`);
  console.log(`baseline TextDecoder + JSON.parse: ${b.toFixed(2)} us/msg`);
  console.log(`receiver.handle:                   ${c.toFixed(2)} us/msg  (${(c / b).toFixed(1)}x baseline)`);
  console.log(`receiver.handle + onChange hook:   ${cp.toFixed(2)} us/msg  (${(cp / b).toFixed(1)}x baseline)`);
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await burst(1_000));
  for (const r of runs) {
    console.log(
      `burst of 1000: sent in ${r.lastSendMs.toFixed(1)} ms; ${r.updates} tracker updates -> ${r.writes} chat-context writes; final state in chatCtx after ${r.finalMs.toFixed(0)} ms`,
    );
  }
}

await main();
