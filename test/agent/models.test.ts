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

  it('voice with OpenAI can tell the speech-to-text the participant\'s language; text mode and inference have nothing to tell', () => {
    const voice = buildModels(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: 'voice' }));
    expect(voice.useLanguage).toBeTypeOf('function');
    expect(() => voice.useLanguage?.('es-MX')).not.toThrow(); // what the STT then asks for: test/e2e/voice.test.ts
    expect(buildModels(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: 'text' })).useLanguage).toBeUndefined();
    expect(buildModels(parseConfig({ ...base, LIVEKIT_INFERENCE_API_KEY: 'k', LIVEKIT_INFERENCE_API_SECRET: 's' })).useLanguage).toBeUndefined();
  });

  it('offline has no model for background requests', () => {
    expect(buildModels(parseConfig(base)).backgroundLlm).toBeUndefined();
  });
});
