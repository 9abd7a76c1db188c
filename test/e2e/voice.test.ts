/**
 * Voice mode end to end: the worker with `AGENT_IO=voice` hears through the real OpenAI STT
 * plugin (realtime transcription) and speaks through the real OpenAI TTS plugin, both against the
 * OpenAI-compatible test server, in a real livekit-server room; the participant speaks and
 * listens with `@livekit/rtc-node`. No speech model runs here, so "speech" is a tone: the test
 * server transcribes a stretch of sound as the text the test queued, and speaks text as a tone
 * as long as the text implies. A second worker does the same with LiveKit Inference's LLM, STT
 * and TTS plugins, the test server standing in for the inference gateway. Two more have speech-to-
 * text that detects the language spoken (inference `:multi`, OpenAI's `detectLanguage`).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { renderGreeting } from '../../lib/session/greeting.js';
import { languageInstruction } from '../../lib/session/language.js';
import { KeyBuilder } from '../../lib/store/keys.js';
import { RedisSessionStore } from '../../lib/store/redis_session_store.js';
import { unlinkPrefix } from '../lib/store/redis_support.js';
import { inferenceModelEnv, STUB_SPEECH_MIN_MS, STUB_SPEECH_MS_PER_CHAR, startOpenAIStub, stubModelEnv, stubReply, type OpenAIStub } from '../support/openai_stub.js';
import { literally, TestParticipant, type ServerInfo } from '../support/participant.js';
import { RtcContextPublisher } from '../support/rtc_context_publisher.js';
import { freeTcpPort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { livekitEnv, startWorker, type WorkerProcess } from '../support/worker.js';

const server: ServerInfo = { url: inject('livekitUrl'), apiKey: inject('livekitApiKey'), apiSecret: inject('livekitApiSecret') };
const redisUrl = inject('redisUrl');
const run = Math.random().toString(36).slice(2, 8);
const prefix = `pva-e2e-voice-${run}:`;
const agentName = `voice-${run}`;
const rejoinTtlMs = 30_000;
let stub: OpenAIStub;
let inspect: RedisSessionStore;
let worker: WorkerProcess;
/** The worker in inference mode (`describe('voice mode with LiveKit Inference')`). */
let inferenceWorker: WorkerProcess | undefined;
const inferenceAgentName = `voice-inference-${run}`;
/** The inference worker whose STT detects the language (`describe('… detects the language …')`). */
let multiWorker: WorkerProcess | undefined;
const multiAgentName = `voice-multi-${run}`;
/** The OpenAI worker whose STT detects the language (`OPENAI_STT_DETECT_LANGUAGE`). */
let detectingWorker: WorkerProcess | undefined;
const detectingAgentName = `voice-detect-${run}`;
const participants: TestParticipant[] = [];

/** Milliseconds of stub speech for the utterances in `texts` (the stub's rule). */
const speechMs = (texts: string[]) => texts.reduce((ms, t) => ms + Math.max(STUB_SPEECH_MIN_MS, t.length * STUB_SPEECH_MS_PER_CHAR), 0);
const words = (s: string) => s.replace(/\s+/g, ' ').trim();

/** A worker in voice mode on this file's Redis prefix, with the models `modelEnv` configures. */
function startVoiceWorker(name: string, modelEnv: Record<string, string>): Promise<WorkerProcess> {
  return startWorker({
    env: { ...livekitEnv(server, name), REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, AGENT_IO: 'voice', REJOIN_TTL_MS: String(rejoinTtlMs), ...modelEnv },
  });
}

beforeAll(async () => {
  stub = await startOpenAIStub();
  inspect = new RedisSessionStore({ url: redisUrl, prefix });
  worker = await startVoiceWorker(agentName, { ...stubModelEnv(stub), MIN_REGREET_GAP_MS: '300' });
});

afterAll(async () => {
  for (const p of participants) await p.leave().catch(() => undefined);
  await worker?.stop();
  await inferenceWorker?.stop();
  await multiWorker?.stop();
  await detectingWorker?.stop();
  await stub?.close();
  await inspect?.dispose();
  const redis = new Redis(redisUrl);
  await unlinkPrefix(redis, new KeyBuilder(prefix).allKeysPattern());
  redis.disconnect();
});

async function join(identity: string, room: string, language?: string, agent = agentName): Promise<TestParticipant> {
  const p = await TestParticipant.join(server, { identity, room, agentName: agent, rejoinTtlMs, ...(language ? { language } : {}) });
  participants.push(p);
  return p;
}

describe('voice mode', () => {
  it('the greeting is heard once, a spoken question is transcribed and answered aloud, and a reload is welcomed back aloud', async () => {
    const identity = `vera-${run}`;
    const room = `room-voice-${run}`;
    const p1 = await join(identity, room);

    const status = await p1.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 60_000 });
    expect(status).toMatchObject({ state: 'Connected', greeting: 'first_time' });
    const greeting = await p1.nthText(1, 60_000);
    expect(greeting.text).toMatch(/glad you're here/i);
    // Everything said aloud so far is the greeting, once (the TTS may get it sentence by sentence).
    await waitFor('the greeting to be spoken', () => words(stub.speech.join(' ')) === words(greeting.text));
    const greetingMs = speechMs(stub.speech);
    await waitFor('the greeting to be heard', () => p1.heard.audibleMs >= 0.8 * greetingMs, { timeoutMs: 30_000 });
    expect(p1.heard.firstAudibleAtMs).not.toBeNull();

    // A spoken question: transcribed, answered by the model, and the answer heard.
    const spokenBefore = stub.speech.length;
    const heardBefore = p1.heard.audibleMs;
    const question = 'What are your opening hours?';
    stub.willHear(question);
    await p1.speak(1_200);
    await waitFor('the utterance to be transcribed', () => stub.heard.length === 1);
    expect(stub.heard[0]!.soundMs).toBeGreaterThanOrEqual(1_000);
    await waitFor('the model to receive the spoken question', () => stub.requests.some((msgs) => msgs.at(-1)?.role === 'user' && msgs.at(-1)?.content === question));
    await p1.textMatching(/Model heard: What are your opening hours\?/, { timeoutMs: 30_000 });
    await waitFor('the answer to be spoken', () => words(stub.speech.slice(spokenBefore).join(' ')) === words(stubReply(question)));
    const answerMs = speechMs(stub.speech.slice(spokenBefore));
    await waitFor('the answer to be heard', () => p1.heard.audibleMs - heardBefore >= 0.8 * answerMs, { timeoutMs: 30_000 });
    // Heard once: no more audible audio than the greeting and the answer (20 ms frames of slack each side).
    expect(p1.heard.audibleMs).toBeLessThanOrEqual(greetingMs + answerMs + 200);
    await waitFor('both turns persisted', async () => {
      const r = await inspect.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.history.turns.some((t) => t.text === question) && r.record.history.turns.some((t) => t.text === stubReply(question));
    });

    // A reload: the same job welcomes the participant back, aloud, once.
    await p1.leave();
    await waitFor('the agent to see the leave', async () => {
      const r = await inspect.readRecord({ agentName, identity });
      return r.status === 'found' && r.record.disconnectedAt !== null;
    });
    const spokenBeforeRejoin = stub.speech.length;
    const p2 = await join(identity, room);
    const back = await p2.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 30_000 });
    expect(back).toMatchObject({ greeting: 'welcome_back_brief', sessionId: status.sessionId });
    const welcome = await p2.nthText(1, 30_000);
    expect(welcome.text).toMatch(/welcome back/i);
    await waitFor('the welcome back to be spoken', () => words(stub.speech.slice(spokenBeforeRejoin).join(' ')) === words(welcome.text));
    const welcomeMs = speechMs(stub.speech.slice(spokenBeforeRejoin));
    await waitFor('the welcome back to be heard', () => p2.heard.audibleMs >= 0.8 * welcomeMs, { timeoutMs: 30_000 });
    expect(p2.texts.filter((t) => /welcome back/i.test(t.text))).toHaveLength(1);
    // With no language in the token, the speech-to-text listened for English (its default).
    expect(new Set(stub.transcriptionLanguages)).toEqual(new Set(['en']));
  });

  it('with a dynamic context set, each spoken question costs one model request: the reply begun on the final transcript is the one spoken, and it sees the context', async () => {
    const p = await join(`otto-${run}`, `room-voice-ctx-${run}`);
    await p.statusMatching((m) => m.greeting === 'first_time', { timeoutMs: 60_000 });
    const pub = new RtcContextPublisher(p.room);
    pub.context.setState('Order', 'parcel 4711');
    await waitFor('the context op acknowledged', () => pub.context.unackedRevisions().length === 0 && pub.replies.length > 0);
    // Two questions: from the second on, turns sit after the context message in the chat context.
    for (const question of ['Where is my parcel right now?', 'When will it arrive at my door?']) {
      const spokenBefore = stub.speech.length;
      const heardBefore = p.heard.audibleMs;
      stub.willHear(question);
      await p.speak(1_200);
      // The answer heard to its end: the next question is not an interruption.
      await waitFor('the answer to be spoken', () => words(stub.speech.slice(spokenBefore).join(' ')) === words(stubReply(question)), { timeoutMs: 30_000 });
      const answerMs = speechMs(stub.speech.slice(spokenBefore));
      await waitFor('the answer to be heard', () => p.heard.audibleMs - heardBefore >= 0.8 * answerMs, { timeoutMs: 30_000 });
      // Agents-js starts the reply on the final transcript (preemptive generation) and keeps it
      // only while the turn's chat context is unchanged when the turn ends: a second request
      // would mean the participant waited for the model twice.
      const asked = stub.requests.filter((msgs) => msgs.at(-1)?.role === 'user' && msgs.at(-1)?.content === question);
      expect(asked, question).toHaveLength(1);
      expect(asked[0]!.some((m) => m.content.includes('parcel 4711'))).toBe(true);
    }
    // The context changes: the reply to the next question is generated from the new one.
    pub.context.setState('Order', 'parcel 4712');
    await waitFor('the change acknowledged', () => pub.context.unackedRevisions().length === 0);
    const question = 'Can you check it again?';
    stub.willHear(question);
    await p.speak(1_200);
    await p.textMatching(/Model heard: Can you check it again\?/, { timeoutMs: 30_000 });
    const answered = stub.requests.filter((msgs) => msgs.at(-1)?.role === 'user' && msgs.at(-1)?.content === question).at(-1)!;
    const contextLines = answered.filter((m) => m.role === 'system').map((m) => m.content);
    expect(contextLines.some((c) => c.endsWith('Order is parcel 4712'))).toBe(true);
    expect(contextLines).toContain('Context update: Order changed from parcel 4711 to parcel 4712');
    pub.close();
  });

  it('a participant whose token says Spanish is greeted aloud in Spanish, and the speech-to-text listens for Spanish', async () => {
    const p = await join(`lucia-${run}`, `room-voice-es-${run}`, 'es-ES');
    const sessionsBefore = stub.transcriptionLanguages.length;
    const spokenBefore = stub.speech.length;
    await p.statusMatching((m) => m.greeting === 'first_time', { timeoutMs: 60_000 });
    const greeting = await p.nthText(1, 60_000);
    expect(greeting.text).toBe(renderGreeting({ kind: 'first_time' }, null, 'es-ES'));
    await waitFor('the Spanish greeting to be spoken', () => words(stub.speech.slice(spokenBefore).join(' ')) === words(greeting.text));
    await waitFor('the transcription session to be configured', () => stub.transcriptionLanguages.length > sessionsBefore);
    expect(stub.transcriptionLanguages.slice(sessionsBefore)).toEqual(['es']);
  });
});

describe('voice mode with LiveKit Inference', () => {
  beforeAll(async () => {
    inferenceWorker = await startVoiceWorker(inferenceAgentName, inferenceModelEnv(stub));
  });

  it('a Spanish participant is greeted aloud in Spanish, heard and answered: the inference STT and TTS are told Spanish, not the model string\'s English', async () => {
    const identity = `pilar-${run}`;
    const sessionsBefore = stub.inferenceSessions.length;
    const spokenBefore = stub.speech.length;
    const p = await join(identity, `room-voice-inference-es-${run}`, 'es-ES', inferenceAgentName);
    await p.statusMatching((m) => m.greeting === 'first_time', { timeoutMs: 60_000 });
    const greeting = await p.nthText(1, 60_000);
    expect(greeting.text).toBe(renderGreeting({ kind: 'first_time' }, null, 'es-ES'));
    await waitFor('the Spanish greeting to be spoken', () => words(stub.speech.slice(spokenBefore).join(' ')) === words(greeting.text));
    const greetingMs = speechMs(stub.speech.slice(spokenBefore));
    await waitFor('the greeting to be heard', () => p.heard.audibleMs >= 0.8 * greetingMs, { timeoutMs: 30_000 });
    const opened = stub.inferenceSessions.slice(sessionsBefore);
    expect(opened.filter((o) => o.kind === 'stt').map((o) => o.language)).toEqual(['es']);
    expect(new Set(opened.filter((o) => o.kind === 'tts').map((o) => o.language))).toEqual(new Set(['es']));

    const question = '¿A qué hora abren?';
    const heardBefore = stub.heard.length;
    const spokenBeforeAnswer = stub.speech.length;
    stub.willHear(question);
    await p.speak(1_200);
    await waitFor('the utterance to be transcribed', () => stub.heard.length === heardBefore + 1);
    await p.textMatching(/Model heard: ¿A qué hora abren\?/, { timeoutMs: 30_000 });
    await waitFor('the answer to be spoken', () => words(stub.speech.slice(spokenBeforeAnswer).join(' ')) === words(stubReply(question)));
    await waitFor('both turns persisted', async () => {
      const r = await inspect.readRecord({ agentName: inferenceAgentName, identity });
      return r.status === 'found' && r.record.history.turns.some((t) => t.text === question) && r.record.history.turns.some((t) => t.text === stubReply(question));
    });
  });

  it('a participant with no language known is listened to as the model string says (English)', async () => {
    const sessionsBefore = stub.inferenceSessions.length;
    const p = await join(`oliver-${run}`, `room-voice-inference-en-${run}`, undefined, inferenceAgentName);
    await p.statusMatching((m) => m.greeting === 'first_time', { timeoutMs: 60_000 });
    await waitFor('the STT session to open', () => stub.inferenceSessions.slice(sessionsBefore).some((o) => o.kind === 'stt'));
    expect(stub.inferenceSessions.slice(sessionsBefore).filter((o) => o.kind === 'stt').map((o) => o.language)).toEqual(['en']);
  });
});

describe('voice mode with LiveKit Inference, an STT that detects the language (`:multi`)', () => {
  /** Short, so that a participant's leave ends the job soon and their return is a new job's. */
  const multiRejoinTtlMs = 1_500;

  let metricsPort: number;

  beforeAll(async () => {
    metricsPort = await freeTcpPort();
    multiWorker = await startVoiceWorker(multiAgentName, {
      ...inferenceModelEnv(stub),
      INFERENCE_STT: 'deepgram/nova-3:multi',
      REJOIN_TTL_MS: String(multiRejoinTtlMs),
      METRICS_PORT: String(metricsPort),
      METRICS_HOST: '127.0.0.1',
    });
  });

  it('a participant whose token names no language, heard speaking Spanish, is answered in Spanish speech and greeted in Spanish on return, though their browser then says English', async () => {
    const identity = `mateo-${run}`;
    const joinMulti = async (room: string, language?: string) => {
      const p = await TestParticipant.join(server, { identity, room, agentName: multiAgentName, rejoinTtlMs: multiRejoinTtlMs, ...(language ? { language } : {}) });
      participants.push(p);
      return p;
    };
    const sessionsAtStart = stub.inferenceSessions.length;
    const p1 = await joinMulti(`room-voice-multi-1-${run}`);
    await p1.statusMatching((m) => m.greeting === 'first_time', { timeoutMs: 60_000 });
    expect((await p1.nthText(1, 60_000)).text).toBe(renderGreeting({ kind: 'first_time' }));
    const say = async (text: string, language: string) => {
      const heardBefore = stub.heard.length;
      stub.willHear(text, { language });
      await p1.speak(1_200);
      await waitFor('the utterance to be transcribed', () => stub.heard.length === heardBefore + 1);
      await p1.textMatching(literally(stubReply(text)), { timeoutMs: 30_000 });
    };
    const language = async () => {
      const r = await inspect.readRecord({ agentName: multiAgentName, identity });
      return r.status === 'found' ? r.record.language : undefined;
    };

    // One utterance detected as Spanish is not enough (a short one is often misdetected).
    await say('Hola', 'es');
    await waitFor('the first turn to be saved', async () => (await language()) !== undefined);
    expect(await language()).toBeNull();
    // A second one in a row is: the record keeps Spanish, and the speech is told Spanish.
    const sessionsBefore = stub.inferenceSessions.length;
    await say('¿Tienen mesas libres esta noche?', 'es');
    await waitFor('the language heard to be saved', async () => (await language()) === 'es');
    await waitFor('a speech session in Spanish', () => stub.inferenceSessions.slice(sessionsBefore).some((o) => o.kind === 'tts' && o.language === 'es'));
    // The STT keeps detecting: it is never told a language.
    const sttLanguages = stub.inferenceSessions.slice(sessionsAtStart).filter((o) => o.kind === 'stt').map((o) => o.language);
    expect(sttLanguages.length).toBeGreaterThan(0);
    expect(new Set(sttLanguages)).toEqual(new Set(['multi']));
    // Operators see it counted.
    const adoptedSpanish = async () => Number(/pva_languages_adopted_total\{language="es"\} (\d+)/.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1] ?? '0');
    await waitFor('the adoption to be counted', async () => (await adoptedSpanish()) === 1);
    // And the model is told it: its input for the next turn carries the language.
    const next = 'Somos cuatro.';
    await say(next, 'es');
    const asked = stub.requests.find((msgs) => msgs.at(-1)?.role === 'user' && msgs.at(-1)?.content === next);
    expect(asked?.some((m) => m.role === 'system' && m.content.includes(languageInstruction('es')))).toBe(true);
    await p1.leave();
    await waitFor('the session to be suspended', async () => {
      const r = await inspect.readRecord({ agentName: multiAgentName, identity });
      return r.status === 'found' && r.record.owner === null && r.record.disconnectedAt !== null;
    }, { timeoutMs: 30_000 });

    // A return in another room, a new job, from a browser set to English (the web client sends
    // `navigator.language`): what they were heard speaking outranks it.
    const p2 = await joinMulti(`room-voice-multi-2-${run}`, 'en-US');
    const back = await p2.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 60_000 });
    expect(back).toMatchObject({ greeting: 'returning', decision: { kind: 'resume', why: 'within_session_ttl' } });
    expect((await p2.nthText(1, 60_000)).text).toMatch(/^¡Hola de nuevo! Han? pasado .+ y esta es tu visita número 2\. La última vez hablamos de «¿Tienen mesas libres esta noche\?»\. ¿Seguimos\?$/);
  });
});


describe('voice mode with OpenAI, a speech-to-text that detects the language (`OPENAI_STT_DETECT_LANGUAGE`)', () => {
  beforeAll(async () => {
    detectingWorker = await startVoiceWorker(detectingAgentName, { ...stubModelEnv(stub), OPENAI_STT_DETECT_LANGUAGE: 'true' });
  });

  it('a participant whose browser says English but who speaks French is greeted in English, then answered in French, and the speech-to-text is never told a language', async () => {
    const identity = `amelie-${run}`;
    const sessionsBefore = stub.transcriptionLanguages.length;
    const p = await join(identity, `room-voice-detect-${run}`, 'en-US', detectingAgentName);
    const greeted = await p.statusMatching((m) => m.greeting === 'first_time', { timeoutMs: 60_000 });
    expect(greeted).toMatchObject({ language: 'en-US' });
    expect(greeted.languageHeard).toBeUndefined();
    expect((await p.nthText(1, 60_000)).text).toBe(renderGreeting({ kind: 'first_time' }, null, 'en-US'));
    const say = async (text: string) => {
      const heardBefore = stub.heard.length;
      stub.willHear(text, { language: 'fr' });
      await p.speak(1_200);
      await waitFor('the utterance to be transcribed', () => stub.heard.length === heardBefore + 1);
      await p.textMatching(literally(stubReply(text)), { timeoutMs: 30_000 });
    };
    const record = async () => {
      const r = await inspect.readRecord({ agentName: detectingAgentName, identity });
      return r.status === 'found' ? r.record : undefined;
    };

    await say('Bonjour, je voudrais réserver une table.');
    await say('Pour quatre personnes, ce soir.');
    await waitFor('the language heard to be saved', async () => (await record())?.language === 'fr');
    expect((await record())?.languageHeard).toBe(true);
    // The participant's client is told at once (the web client shows it).
    await p.statusMatching((m) => m.language === 'fr' && m.languageHeard === true, { timeoutMs: 10_000 });
    // The model is told it: its input for the next turn carries the French instruction.
    const next = 'Vers vingt heures.';
    await say(next);
    const asked = stub.requests.find((msgs) => msgs.at(-1)?.role === 'user' && msgs.at(-1)?.content === next);
    expect(asked?.some((m) => m.role === 'system' && m.content.includes(languageInstruction('fr')))).toBe(true);
    // The token's English was never forced on the speech-to-text, before or after: it kept detecting.
    const configured = stub.transcriptionLanguages.slice(sessionsBefore);
    expect(configured.length).toBeGreaterThan(0);
    expect(new Set(configured)).toEqual(new Set(['']));
  });
});
