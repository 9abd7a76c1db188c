import { createServer, type Server, type Socket } from 'node:net';
import { initializeLogger } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CondenseTimeoutError, llmCondenser } from '../../agent/condenser.js';
import { condenseRequest } from '../../lib/session/condense.js';
import { freePort } from '../lib/store/private_redis.js';
import { startOpenAIStub, type OpenAIStub } from '../support/openai_stub.js';

const SUMMARY = 'user: my name is Ana and my router drops on 5 GHz\nassistant: which model is it?\nuser: the AX55, since the last firmware update';
const CONDENSED = 'Ana\'s AX55 router drops on the 5 GHz band since a firmware update.';

/** The real OpenAI plugin, talking to `baseURL`. */
const model = (baseURL: string) => new openai.LLM({ apiKey: 'test-key', baseURL, model: 'stub-model' });

describe('llmCondenser: the real OpenAI plugin against an OpenAI-compatible test server', () => {
  let stub: OpenAIStub;
  beforeAll(async () => {
    initializeLogger({ pretty: false, level: 'fatal' });
    // The stub answers the condensing request (its system message) with a fixed summary.
    stub = await startOpenAIStub({
      chatReply: (messages) => {
        if (messages[0]?.role !== 'system' || !messages[0].content.includes('memory of a spoken conversation')) return undefined;
        return messages[1]?.content === 'silence' ? '' : CONDENSED;
      },
    });
  });
  afterAll(async () => {
    await stub.close();
  });

  it('sends the instructions as a system message and the summary as the user message, and returns the streamed answer', async () => {
    const condense = llmCondenser(model(stub.baseURL));
    const before = stub.requests.length;
    await expect(condense(SUMMARY)).resolves.toBe(CONDENSED);
    expect(stub.requests.slice(before)).toEqual([
      [
        { role: 'system', content: condenseRequest(SUMMARY).instructions },
        { role: 'user', content: SUMMARY },
      ],
    ]);
  });

  it('rejects an answer with no text', async () => {
    await expect(llmCondenser(model(stub.baseURL))('silence')).rejects.toThrow(/no text/);
  });

  it('rejects when the model cannot be reached (closed port), with no unhandled error', async () => {
    const condense = llmCondenser(model(`http://127.0.0.1:${await freePort()}/v1`), { timeoutMs: 5_000 });
    const err = await condense(SUMMARY).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(CondenseTimeoutError);
    expect(String((err as Error).message)).toMatch(/connection|attempts/i);
  });

  it('gives up on a model that never answers after timeoutMs', async () => {
    const sockets: Socket[] = [];
    const hole: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    try {
      const port = (hole.address() as { port: number }).port;
      const condense = llmCondenser(model(`http://127.0.0.1:${port}/v1`), { timeoutMs: 300 });
      const started = Date.now();
      await expect(condense(SUMMARY)).rejects.toBeInstanceOf(CondenseTimeoutError);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => hole.close(() => r()));
    }
  });
});
