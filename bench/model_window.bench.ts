/**
 * Model input of a long conversation (not a test). Run: `npm run bench:window`. Writes the
 * "## Model input of a long conversation" section of docs/benchmarks.md.
 *
 * A live conversation of N turns (about 100 characters each, as the agent's chat context holds
 * them): what the model is given on the next turn, whole (agents-js sends every item) against
 * the window (`windowedChatContext`: the 50 turns the history keeps verbatim, after its summary
 * as folded lines, or condensed to 1 200 characters), in characters of text and items; and what
 * cutting the window costs per model request against `ChatContext.copy()` of the same context
 * (agents-js copies the chat context for every reply), medians of interleaved calls.
 */
import { performance } from 'node:perf_hooks';
import { initializeLogger, llm } from '@livekit/agents';
import { windowedChatContext } from '../agent/chat_history.js';
import { DEFAULT_CONDENSE_OPTIONS } from '../lib/session/condense.js';
import { appendTurn, emptyHistory } from '../lib/session/history.js';
import type { History, Turn } from '../lib/session/record.js';
import { writeDocSection } from './doc_section.js';

initializeLogger({ pretty: false, level: 'fatal' });
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2_000);
const SIZES = [50, 100, 200, 400, 800];

/** A conversation of `n` turns: the agent's chat context and the history the session keeps. */
function conversation(n: number): { ctx: llm.ChatContext; history: History } {
  const ctx = llm.ChatContext.empty();
  ctx.addMessage({ id: 'instructions', role: 'system', content: 'You are a friendly, concise voice assistant.', createdAt: 1 });
  let history = emptyHistory();
  for (let i = 0; i < n; i++) {
    const t: Turn = { id: `t${i}`, role: i % 2 === 0 ? 'user' : 'assistant', text: `Turn ${i}: the router on the 5 GHz band drops every few minutes and restarting it only helps for a while.`, createdAtMs: 1_000 + i };
    ctx.addMessage({ id: t.id, role: t.role, content: t.text, createdAt: t.createdAtMs });
    history = appendTurn(history, t);
  }
  return { ctx, history };
}

const chars = (c: llm.ChatContext) => c.items.reduce((s, i) => s + (i.type === 'message' ? (i.textContent ?? '').length : 0), 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const rows: string[] = [];
for (const n of SIZES) {
  const { ctx, history } = conversation(n);
  const condensed = { ...history, summary: history.summarizedTurnCount > 0 ? 'c'.repeat(DEFAULT_CONDENSE_OPTIONS.maxCondensedChars) : '' };
  const whole = chars(ctx);
  const lines = windowedChatContext(ctx, history);
  const paragraph = windowedChatContext(ctx, condensed);
  const cut: number[] = [];
  const copy: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const first = i % 2 === 0;
    for (const which of first ? ['cut', 'copy'] : ['copy', 'cut']) {
      const t0 = performance.now();
      if (which === 'cut') windowedChatContext(ctx, history);
      else ctx.copy();
      (which === 'cut' ? cut : copy).push(performance.now() - t0);
    }
  }
  const ratio = (x: number) => `${(x / whole).toFixed(2)}×`;
  rows.push(
    `| ${n} | ${whole} chars, ${ctx.items.length} items | ${chars(lines)} chars (${ratio(chars(lines))}), ${lines.items.length} items | ${chars(paragraph)} chars (${ratio(chars(paragraph))}) | ${(median(cut) * 1000).toFixed(1)} µs (${(median(cut) / median(copy)).toFixed(2)}× a copy, ${(median(copy) * 1000).toFixed(1)} µs) |`,
  );
}

const body = [
  `Rerun: \`npm run bench:window\` (\`BENCH_ITERATIONS\`, default 2 000). Measured ${new Date().toISOString().slice(0, 10)} on Node ${process.version}.`,
  '',
  'What the model is given on the next turn of a live conversation of N turns of about 100 characters: the whole chat context (what agents-js sends by default) against the window the agent gives it (`windowedChatContext`: the summary, then the 50 turns kept verbatim; instructions and dynamic context always kept), with the summary as folded lines or condensed by the model to 1 200 characters; and the cost of cutting the window per model request, against `ChatContext.copy()` of the same context (which agents-js does for every reply).',
  '',
  '| turns | whole | window (summary as lines) | window (condensed summary) | cutting the window, median |',
  '|---|---|---|---|---|',
  ...rows,
  '',
];
writeDocSection('Model input of a long conversation', body.join('\n'));
process.stdout.write(`${body.join('\n')}\n`);
