/**
 * An OpenAI-compatible chat-completions server for tests, behind the real OpenAI plugin: it
 * records what the model receives (every request's `messages`) and streams a deterministic
 * answer. It is the only test double in the end-to-end tests (no LLM can run here).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One message as the model received it. */
export interface StubMessage {
  role: string;
  content: string;
}

/** A running stub. */
export interface OpenAIStub {
  /** Base URL for `OPENAI_BASE_URL`, e.g. http://127.0.0.1:1234/v1 */
  baseURL: string;
  /** Every chat request's messages, in arrival order. */
  requests: StubMessage[][];
  close(): Promise<void>;
}

/** The stub's reply to a user turn: `Model heard: <text>`. */
export function stubReply(userText: string): string {
  return `Model heard: ${userText}`;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((c) => (typeof c === 'object' && c && 'text' in c ? String((c as { text: unknown }).text) : ''))
      .join('');
  }
  return '';
}

/** Starts the stub on a free loopback port. */
export async function startOpenAIStub(): Promise<OpenAIStub> {
  const requests: StubMessage[][] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'GET' && req.url?.endsWith('/models')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'stub-model', object: 'model' }] }));
        return;
      }
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        res.writeHead(404).end();
        return;
      }
      const parsed = JSON.parse(body) as { messages: Array<{ role: string; content: unknown }> };
      const messages = parsed.messages.map((m) => ({ role: m.role, content: textOf(m.content) }));
      requests.push(messages);
      const lastUser = [...messages].reverse().find((m) => m.role === 'user');
      const reply = stubReply(lastUser?.content ?? '');
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (delta: object, finish: string | null) =>
        `data: ${JSON.stringify({
          id: 'chatcmpl-stub',
          object: 'chat.completion.chunk',
          created: 0,
          model: 'stub-model',
          choices: [{ index: 0, delta, finish_reason: finish }],
        })}\n\n`;
      res.write(chunk({ role: 'assistant', content: reply }, null));
      res.write(chunk({}, 'stop'));
      res.write(
        `data: ${JSON.stringify({ id: 'chatcmpl-stub', object: 'chat.completion.chunk', created: 0, model: 'stub-model', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })}\n\n`,
      );
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
