import { initializeLogger, type stt, type tts } from '@livekit/agents';
import * as openai from '@livekit/agents-plugin-openai';
import { TokenVerifier } from 'livekit-server-sdk';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { parseConfig } from '../../agent/config.js';
import { buildModels, type Models } from '../../agent/models.js';
import { waitFor } from '../support/wait.js';

const base = { LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret' };
const inferenceKeys = { LIVEKIT_INFERENCE_API_KEY: 'inference-key', LIVEKIT_INFERENCE_API_SECRET: 'inference-secret-of-32-characters' };

describe('buildModels', () => {
  it('gives background requests an LLM instance of their own, so their failures never count against the conversation', () => {
    for (const io of ['text', 'voice']) {
      const m = buildModels(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: io }));
      expect(m.backgroundLlm).toBeInstanceOf(openai.LLM);
      expect(m.backgroundLlm).not.toBe(m.llm);
    }
    const inference = buildModels(parseConfig({ ...base, ...inferenceKeys, AGENT_IO: 'text' }));
    expect(inference.backgroundLlm).toBeDefined();
    expect(inference.backgroundLlm).not.toBe(inference.llm);
  });

  it('voice with OpenAI can tell the speech-to-text the participant\'s language; text mode has nothing to tell', () => {
    const voice = buildModels(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: 'voice' }));
    expect(voice.useLanguage).toBeTypeOf('function');
    expect(() => voice.useLanguage?.('es-MX')).not.toThrow(); // what the STT then asks for: test/e2e/voice.test.ts
    expect(buildModels(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: 'text' })).useLanguage).toBeUndefined();
    expect(buildModels(parseConfig({ ...base, ...inferenceKeys, AGENT_IO: 'text' })).useLanguage).toBeUndefined();
    // Only a detecting STT's reported language is evidence of what the participant speaks.
    expect(voice.sttDetectsLanguage).toBeFalsy();
  });

  it('voice with OpenAI and OPENAI_STT_DETECT_LANGUAGE: the speech-to-text detects, so it is never told a language', () => {
    const detecting = buildModels(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: 'voice', OPENAI_STT_DETECT_LANGUAGE: 'true' }));
    expect(detecting.sttDetectsLanguage).toBe(true);
    expect(detecting.useLanguage).toBeUndefined(); // what its session then asks for: test/e2e/voice.test.ts
  });

  it('offline has no model for background requests', () => {
    expect(buildModels(parseConfig(base)).backgroundLlm).toBeUndefined();
  });
});

/**
 * LiveKit Inference is a cloud gateway that cannot run here: a WebSocket server on loopback
 * stands in for it (`LIVEKIT_INFERENCE_URL`) and records the session each real inference STT and
 * TTS stream opens: the gateway's path, the bearer token and the `session.create` message.
 */
describe('LiveKit Inference voice models (against a stand-in gateway)', () => {
  interface Opened {
    path: string;
    token: string;
    create: Record<string, unknown> & { settings?: Record<string, unknown> };
  }
  const opened: Opened[] = [];
  let server: WebSocketServer;
  const savedUrl = process.env.LIVEKIT_INFERENCE_URL;

  beforeAll(async () => {
    initializeLogger({ pretty: false, level: 'warn' });
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    server.on('connection', (ws, req) => {
      ws.once('message', (data) => {
        opened.push({
          path: new URL(req.url ?? '/', 'http://gateway').pathname,
          token: (req.headers.authorization ?? '').replace(/^Bearer /, ''),
          create: JSON.parse(String(data)),
        });
      });
    });
    await new Promise<void>((r) => server.once('listening', () => r()));
    process.env.LIVEKIT_INFERENCE_URL = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (savedUrl === undefined) delete process.env.LIVEKIT_INFERENCE_URL;
    else process.env.LIVEKIT_INFERENCE_URL = savedUrl;
    for (const ws of server.clients) ws.terminate();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** Opens one STT and one TTS stream of `models`; resolves to the sessions they created, closed again. */
  async function openSessions(models: Models): Promise<{ stt: Opened; tts: Opened }> {
    opened.length = 0;
    const sttStream = (models.stt as stt.STT).stream();
    const ttsStream = (models.tts as tts.TTS).stream();
    ttsStream.pushText('Hola');
    try {
      const find = (path: string) => opened.find((o) => o.path === path);
      return await waitFor('an STT and a TTS session at the gateway', () => {
        const sttSession = find('/stt');
        const ttsSession = find('/tts');
        return sttSession && ttsSession ? { stt: sttSession, tts: ttsSession } : undefined;
      });
    } finally {
      sttStream.close();
      ttsStream.close();
    }
  }

  const inferenceVoice = (extra: Record<string, string> = {}) =>
    buildModels(parseConfig({ ...base, ...inferenceKeys, AGENT_IO: 'voice', ...extra }));

  it('a Spanish participant is listened to and spoken to in Spanish, not in the model string\'s English', async () => {
    const models = inferenceVoice();
    models.useLanguage!('es-MX');
    const { stt: sttSession, tts: ttsSession } = await openSessions(models);
    expect(sttSession.create.type).toBe('session.create');
    expect(sttSession.create.model).toBe('deepgram/nova-3');
    expect(sttSession.create.settings?.language).toBe('es');
    expect(ttsSession.create.model).toBe('cartesia/sonic-3');
    expect(ttsSession.create.language).toBe('es');
    // The gateway is reached with the configured inference credentials, not the LiveKit server's.
    const verifier = new TokenVerifier(inferenceKeys.LIVEKIT_INFERENCE_API_KEY, inferenceKeys.LIVEKIT_INFERENCE_API_SECRET);
    for (const session of [sttSession, ttsSession]) await expect(verifier.verify(session.token)).resolves.toBeTruthy();
  });

  it('with no language known the model string decides (English by default), and `multi` keeps detecting', async () => {
    const untold = await openSessions(inferenceVoice());
    expect(untold.stt.create.settings?.language).toBe('en');
    expect(untold.tts.create.language).toBe('en');
    // Only a detecting STT's reported language is evidence of what the participant speaks.
    expect(inferenceVoice().sttDetectsLanguage).toBe(false);

    const detecting = inferenceVoice({ INFERENCE_STT: 'deepgram/nova-3:multi' });
    expect(detecting.sttDetectsLanguage).toBe(true);
    detecting.useLanguage!('fr-CA');
    const told = await openSessions(detecting);
    expect(told.stt.create.settings?.language).toBe('multi');
    expect(told.tts.create.language).toBe('fr');
  });
});
