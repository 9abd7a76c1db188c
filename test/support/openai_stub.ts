/**
 * An OpenAI-compatible server for tests, behind the real OpenAI plugin. It is the only test
 * double in the end-to-end tests (no model can run here):
 * - chat completions record what the model receives (every request's `messages`) and stream a
 *   deterministic answer;
 * - speech (`/audio/speech`, the TTS of voice mode) records the text to say and answers with a
 *   tone as long as the text implies;
 * - realtime transcription (the `/realtime?intent=transcription` WebSocket, the STT of voice
 *   mode) listens to the appended audio: a stretch of sound followed by silence is one utterance,
 *   transcribed as the next text a test queued with {@link OpenAIStub.willHear}.
 *
 * It also stands in for the LiveKit Inference gateway ({@link inferenceModelEnv}), a cloud
 * service that cannot run here: the inference LLM's chat completions are the ones above, and the
 * `/stt` and `/tts` WebSockets speak the gateway's protocol to the real inference STT and TTS,
 * with the same rules (an utterance is transcribed as the queued text; text is spoken as a tone).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

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
  /** Every speech request's text (what the agent says aloud), in arrival order. */
  speech: string[];
  /**
   * Queues the transcript of the next utterance the transcription socket hears. `language`: the
   * language the STT reports it detected (as an inference `:multi` model, or OpenAI's STT with no
   * language given, does); by default the language its session was created with.
   */
  willHear(text: string, opts?: { language?: string }): void;
  /** Every utterance the transcription socket heard: its transcript and how long it lasted, ms. */
  heard: Array<{ transcript: string; soundMs: number }>;
  /** The language of every transcription session configured (`session.update`), in arrival order ('' when none). */
  transcriptionLanguages: string[];
  /** Base URL for `LIVEKIT_INFERENCE_URL`: the same server as the LiveKit Inference gateway. */
  inferenceURL: string;
  /** Every inference STT / TTS session opened (`session.create`), with its language ('' when none), in arrival order. */
  inferenceSessions: Array<{ kind: 'stt' | 'tts'; language: string }>;
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

/** Sample rate of the speech the stub returns to the OpenAI TTS (`response_format: 'pcm'`: 16-bit mono). */
export const STUB_SPEECH_SAMPLE_RATE = 24_000;

/** Milliseconds of stub speech per character of text (at least {@link STUB_SPEECH_MIN_MS}). */
export const STUB_SPEECH_MS_PER_CHAR = 20;
export const STUB_SPEECH_MIN_MS = 400;

/**
 * "Speech" for `text`: a 440 Hz tone at a quarter of full scale, as long as the text implies.
 * Audible, deterministic, and long enough to measure on the receiving side.
 */
export function stubSpeechPcm(text: string, sampleRate = STUB_SPEECH_SAMPLE_RATE): Buffer {
  const ms = Math.max(STUB_SPEECH_MIN_MS, text.length * STUB_SPEECH_MS_PER_CHAR);
  const samples = Math.round((sampleRate * ms) / 1000);
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(8_192 * Math.sin((2 * Math.PI * 440 * i) / sampleRate)), i * 2);
  return pcm;
}

/** Sample rate of the audio the realtime transcription socket receives (PCM 16-bit mono). */
const TRANSCRIPTION_SAMPLE_RATE = 24_000;
/** An utterance ends after this much silence, ms. */
const UTTERANCE_END_SILENCE_MS = 400;
/** Audio louder than this RMS (1 % of full scale) is sound. */
const SOUND_RMS = 327;

/** A queued transcript (see {@link OpenAIStub.willHear}). */
interface Heard {
  text: string;
  language?: string;
}

/** Where the transcription sockets take their transcripts and record what they heard. */
interface Ears {
  next: () => Heard | undefined;
  heard: OpenAIStub['heard'];
}

/**
 * Finds utterances in a stream of 16-bit mono PCM chunks at `sampleRate`: a stretch of sound
 * followed by silence. Calls `started` when sound begins, and `ended` with the queued transcript
 * (recorded in `ears.heard`) once silence has lasted long enough.
 */
function utterances(sampleRate: number, ears: Ears, started: () => void, ended: (transcript: string, soundMs: number, language: string | undefined) => void): (pcm: Buffer) => void {
  let soundMs = 0;
  let silenceMs = 0;
  return (pcm) => {
    const samples = Math.floor(pcm.length / 2);
    let sum = 0;
    for (let i = 0; i < samples; i++) sum += pcm.readInt16LE(i * 2) ** 2;
    const ms = (samples * 1000) / sampleRate;
    if (Math.sqrt(sum / Math.max(1, samples)) > SOUND_RMS) {
      if (soundMs === 0) started();
      soundMs += ms;
      silenceMs = 0;
      return;
    }
    if (soundMs === 0) return;
    silenceMs += ms;
    if (silenceMs < UTTERANCE_END_SILENCE_MS) return;
    const queued = ears.next();
    const transcript = queued?.text ?? '';
    ears.heard.push({ transcript, soundMs });
    ended(transcript, soundMs, queued?.language);
    soundMs = 0;
    silenceMs = 0;
  };
}

/** One realtime transcription connection (the OpenAI STT). */
function serveTranscription(ws: WebSocket, ears: Ears, languages: string[]): void {
  let item = 0;
  const send = (event: object) => ws.send(JSON.stringify(event));
  const listen = utterances(
    TRANSCRIPTION_SAMPLE_RATE,
    ears,
    () => send({ type: 'input_audio_buffer.speech_started', item_id: `item-${++item}` }),
    (transcript, _soundMs, detected) => {
      send({ type: 'input_audio_buffer.speech_stopped', item_id: `item-${item}` });
      // The language heard: the one the test queued (a detecting session), else the one configured.
      const language = detected ?? configured;
      send({ type: 'conversation.item.input_audio_transcription.completed', item_id: `item-${item}`, transcript, ...(language ? { languages: [{ code: language }] } : {}) });
    },
  );
  let configured = '';
  ws.on('message', (data) => {
    const event = JSON.parse(String(data)) as { type?: string; audio?: string; session?: { audio?: { input?: { transcription?: { language?: string } } } } };
    if (event.type === 'session.update') {
      configured = event.session?.audio?.input?.transcription?.language ?? '';
      languages.push(configured);
    }
    if (event.type === 'input_audio_buffer.append' && event.audio !== undefined) listen(Buffer.from(event.audio, 'base64'));
  });
}

/** One LiveKit Inference STT connection: `session.create`, then `input_audio` chunks; answers with transcripts. */
function serveInferenceStt(ws: WebSocket, ears: Ears, sessions: OpenAIStub['inferenceSessions']): void {
  const send = (event: object) => ws.send(JSON.stringify(event));
  let listen: ((pcm: Buffer) => void) | null = null;
  ws.on('message', (data) => {
    const event = JSON.parse(String(data)) as { type?: string; audio?: string; settings?: { language?: string; sample_rate?: string } };
    switch (event.type) {
      case 'session.create': {
        const language = event.settings?.language ?? '';
        sessions.push({ kind: 'stt', language });
        const sampleRate = Number(event.settings?.sample_rate ?? 16_000);
        listen = utterances(
          sampleRate,
          ears,
          () => send({ type: 'start_of_speech' }),
          (transcript, soundMs, detected) =>
            send({ type: 'final_transcript', transcript, language: detected ?? language, start: 0, duration: soundMs / 1000, confidence: 1, words: [] }),
        );
        send({ type: 'session.created', session_id: 'stt-session' });
        return;
      }
      case 'input_audio':
        if (event.audio !== undefined) listen?.(Buffer.from(event.audio, 'base64'));
        return;
      case 'session.finalize':
        send({ type: 'session.finalized' });
        return;
      case 'session.close':
        send({ type: 'session.closed' });
        ws.close();
    }
  });
}

/**
 * One LiveKit Inference TTS connection (the plugin keeps it for several utterances): `session.create`,
 * then `input_transcript` pieces; each `session.flush` is answered with the tone of the text since
 * the last one, then `done`.
 */
function serveInferenceTts(ws: WebSocket, speech: string[], sessions: OpenAIStub['inferenceSessions']): void {
  const send = (event: object) => ws.send(JSON.stringify(event));
  let sampleRate = 16_000;
  let text = '';
  ws.on('message', (data) => {
    const event = JSON.parse(String(data)) as { type?: string; transcript?: string; language?: string; sample_rate?: string };
    switch (event.type) {
      case 'session.create':
        sessions.push({ kind: 'tts', language: event.language ?? '' });
        sampleRate = Number(event.sample_rate ?? 16_000);
        send({ type: 'session.created', session_id: 'tts-session' });
        return;
      case 'input_transcript':
        text += event.transcript ?? '';
        return;
      case 'session.flush': {
        const said = text.trim();
        text = '';
        if (said === '') {
          send({ type: 'done', session_id: 'tts-session' });
          return;
        }
        speech.push(said);
        const pcm = stubSpeechPcm(said, sampleRate);
        // 100 ms chunks, as a streaming gateway sends them.
        const chunk = (sampleRate / 10) * 2;
        for (let at = 0; at < pcm.length; at += chunk) send({ type: 'output_audio', audio: pcm.subarray(at, at + chunk).toString('base64'), session_id: 'tts-session' });
        send({ type: 'done', session_id: 'tts-session' });
        return;
      }
      case 'session.close':
        send({ type: 'session.closed', session_id: 'tts-session' });
        ws.close();
    }
  });
}

/** The worker's environment for the real OpenAI plugins talking to `stub`. */
export function stubModelEnv(stub: OpenAIStub): Record<string, string> {
  return { OPENAI_API_KEY: 'test-key', OPENAI_BASE_URL: stub.baseURL, OPENAI_MODEL: 'stub-model' };
}

/** The worker's environment for the real LiveKit Inference LLM, STT and TTS talking to `stub` as their gateway. */
export function inferenceModelEnv(stub: OpenAIStub): Record<string, string> {
  return {
    MODEL_MODE: 'inference',
    LIVEKIT_INFERENCE_URL: stub.inferenceURL,
    LIVEKIT_INFERENCE_API_KEY: 'inference-test-key',
    LIVEKIT_INFERENCE_API_SECRET: 'inference-test-secret-of-32-chars',
  };
}

/** Options of {@link startOpenAIStub}. */
export interface OpenAIStubOptions {
  /** The answer to a chat request; undefined (or no function) answers {@link stubReply} of its last user message. */
  chatReply?: (messages: StubMessage[]) => string | undefined;
  /**
   * A reply streamed in two parts: `head` at once, `tail` once `rest` settles (a model still
   * generating). Undefined answers as usual. A client that hangs up meanwhile gets nothing more.
   */
  streamedReply?: (messages: StubMessage[]) => { head: string; rest: Promise<string> } | undefined;
}

/** Starts the stub on a free loopback port. */
export async function startOpenAIStub(opts: OpenAIStubOptions = {}): Promise<OpenAIStub> {
  const requests: StubMessage[][] = [];
  const speech: string[] = [];
  const transcripts: Heard[] = [];
  const heard: OpenAIStub['heard'] = [];
  const transcriptionLanguages: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'GET' && req.url?.endsWith('/models')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'stub-model', object: 'model' }] }));
        return;
      }
      if (req.method === 'POST' && req.url?.endsWith('/audio/speech')) {
        const { input } = JSON.parse(body) as { input: string };
        speech.push(input);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(stubSpeechPcm(input));
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
      const streamed = opts.streamedReply?.(messages);
      const reply = streamed?.head ?? opts.chatReply?.(messages) ?? stubReply(lastUser?.content ?? '');
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (delta: object, finish: string | null) =>
        `data: ${JSON.stringify({
          id: 'chatcmpl-stub',
          object: 'chat.completion.chunk',
          created: 0,
          model: 'stub-model',
          choices: [{ index: 0, delta, finish_reason: finish }],
        })}\n\n`;
      const finish = () => {
        if (res.destroyed || res.writableEnded) return;
        res.write(chunk({}, 'stop'));
        res.write(
          `data: ${JSON.stringify({ id: 'chatcmpl-stub', object: 'chat.completion.chunk', created: 0, model: 'stub-model', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })}\n\n`,
        );
        res.end('data: [DONE]\n\n');
      };
      res.write(chunk({ role: 'assistant', content: reply }, null));
      if (streamed === undefined) return finish();
      void streamed.rest.then((tail) => {
        if (!res.destroyed && !res.writableEnded) res.write(chunk({ content: tail }, null));
        finish();
      });
    });
  });
  const sockets = new WebSocketServer({ noServer: true });
  const ears: Ears = { next: () => transcripts.shift(), heard };
  const inferenceSessions: OpenAIStub['inferenceSessions'] = [];
  server.on('upgrade', (req, socket, head) => {
    const path = new URL(req.url ?? '/', 'http://stub').pathname;
    const serve =
      path.endsWith('/realtime')
        ? (ws: WebSocket) => serveTranscription(ws, ears, transcriptionLanguages)
        : path.endsWith('/stt')
          ? (ws: WebSocket) => serveInferenceStt(ws, ears, inferenceSessions)
          : path.endsWith('/tts')
            ? (ws: WebSocket) => serveInferenceTts(ws, speech, inferenceSessions)
            : null;
    if (serve === null) {
      socket.destroy();
      return;
    }
    sockets.handleUpgrade(req, socket, head, serve);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    speech,
    willHear: (text, opts = {}) => transcripts.push({ text, ...opts }),
    heard,
    transcriptionLanguages,
    inferenceURL: `http://127.0.0.1:${port}/v1`,
    inferenceSessions,
    close: async () => {
      for (const ws of sockets.clients) ws.terminate();
      sockets.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
