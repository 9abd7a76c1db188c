import * as openai from '@livekit/agents-plugin-openai';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config.js';
import { buildModels } from '../../agent/models.js';

const base = { LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret' };

describe('buildModels', () => {
  it('gives background requests an LLM instance of their own, so their failures never count against the conversation', () => {
    for (const io of ['text', 'voice']) {
      const m = buildModels(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: io }));
      expect(m.backgroundLlm).toBeInstanceOf(openai.LLM);
      expect(m.backgroundLlm).not.toBe(m.llm);
    }
    const inference = buildModels(parseConfig({ ...base, LIVEKIT_INFERENCE_API_KEY: 'k', LIVEKIT_INFERENCE_API_SECRET: 's', AGENT_IO: 'text' }));
    expect(inference.backgroundLlm).toBeDefined();
    expect(inference.backgroundLlm).not.toBe(inference.llm);
  });

  it('offline has no model for background requests', () => {
    expect(buildModels(parseConfig(base)).backgroundLlm).toBeUndefined();
  });
});
