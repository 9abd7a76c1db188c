/**
 * A participant joined with `@livekit/rtc-node`, using a token minted with
 * `livekit-server-sdk`: collects the agent's `lk.transcription` texts and sends `lk.chat`.
 */
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  DisconnectReason,
  LocalAudioTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  type RemoteParticipant,
  type RemoteTrack,
} from '@livekit/rtc-node';
import { SESSION_TOPIC } from '../../lib/attributes.js';
import { decodeSessionStatus, type SessionStatusMessage } from '../../lib/session_messages.js';
import { mintParticipantToken, type ResumePolicyName } from '../../web/server/tokens.js';
import { waitFor } from './wait.js';

/** Connection details of a LiveKit server. */
export interface ServerInfo {
  url: string;
  apiKey: string;
  apiSecret: string;
}

/** Options of {@link TestParticipant.join}. */
export interface JoinOptions {
  identity: string;
  room: string;
  /** Explicit dispatch of this agent name through the token's room configuration. */
  agentName?: string;
  /** Trusted per-participant resume policy (token attribute). */
  resumePolicy?: ResumePolicyName;
  /** The rejoin window the room's departure timeout must cover, ms. @default 60 000 */
  rejoinTtlMs?: number;
  /** Trusted language attribute (a canonical BCP 47 tag, as the token service sets it). */
  language?: string;
}

/** One complete agent utterance as received. */
export interface ReceivedText {
  text: string;
  from: string;
  atMs: number;
}

/** What the participant heard from the agent's audio track(s). */
export interface HeardAudio {
  /** Milliseconds of audio received. */
  totalMs: number;
  /** Milliseconds of it that were audible (RMS above 1 % of full scale). */
  audibleMs: number;
  /** When the first audible frame arrived, epoch ms (null until then). */
  firstAudibleAtMs: number | null;
}

/** Mints a participant token exactly as the project's token service does. */
export function mintToken(server: ServerInfo, opts: JoinOptions): Promise<string> {
  return mintParticipantToken({
    apiKey: server.apiKey,
    apiSecret: server.apiSecret,
    identity: opts.identity,
    room: opts.room,
    ttlS: 600,
    ...(opts.agentName ? { agentName: opts.agentName } : {}),
    ...(opts.resumePolicy ? { resumePolicy: opts.resumePolicy } : {}),
    ...(opts.language ? { language: opts.language } : {}),
    ...(opts.rejoinTtlMs !== undefined ? { rejoinTtlMs: opts.rejoinTtlMs } : {}),
  });
}

/**
 * How long a test waits for the agent by default, ms: a new job's process may take up to
 * `WORKER_INIT_TIMEOUT_MS` (30 s) to start on a machine short of CPU, and then greets.
 */
export const AGENT_WAIT_MS = 60_000;

/** A pattern matching `text` literally (for {@link TestParticipant.textMatching}). */
export function literally(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

/** A joined test participant. */
export class TestParticipant {
  readonly texts: ReceivedText[] = [];
  /** Session status messages from the agent (`pva.session`), in arrival order. */
  readonly statuses: SessionStatusMessage[] = [];
  /** Agent utterances begun (a text stream opened), finished or not. */
  textStreamsOpened = 0;
  /** The agent's audio, as heard (voice mode). */
  readonly heard: HeardAudio = { totalMs: 0, audibleMs: 0, firstAudibleAtMs: null };
  readonly joinedAtMs: number;
  /** Why the room disconnected this participant, once it did. */
  disconnectReason: DisconnectReason | undefined;
  private constructor(
    readonly room: Room,
    readonly identity: string,
  ) {
    this.joinedAtMs = Date.now();
    room.on(RoomEvent.Disconnected, (reason) => {
      this.disconnectReason = reason;
    });
    room.on(RoomEvent.DataReceived, (payload, _p, _kind, topic) => {
      if (topic !== SESSION_TOPIC) return;
      const msg = decodeSessionStatus(payload);
      if (msg) this.statuses.push(msg);
    });
    room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack, _pub, participant: RemoteParticipant) => {
      if (track.kind === TrackKind.KIND_AUDIO && participant.identity.startsWith('agent-')) void this.listen(track);
    });
    room.registerTextStreamHandler('lk.transcription', (reader, info) => {
      this.textStreamsOpened++;
      void reader.readAll().then((text) => {
        if (text.trim() !== '') this.texts.push({ text, from: info.identity, atMs: Date.now() });
      }, () => undefined); // cut off by leaving the room: never finished, not counted
    });
  }

  /** Accumulates {@link heard} from one audio track until it ends. */
  private async listen(track: RemoteTrack): Promise<void> {
    const reader = new AudioStream(track).getReader();
    for (;;) {
      const { done, value: frame } = await reader.read();
      if (done) return;
      const ms = (frame.samplesPerChannel * 1000) / frame.sampleRate;
      let sum = 0;
      for (const v of frame.data) sum += v * v;
      const rms = Math.sqrt(sum / Math.max(1, frame.data.length));
      this.heard.totalMs += ms;
      if (rms > 327) {
        this.heard.audibleMs += ms;
        this.heard.firstAudibleAtMs ??= Date.now();
      }
    }
  }

  /** Joins `opts.room` as `opts.identity`. */
  static async join(server: ServerInfo, opts: JoinOptions): Promise<TestParticipant> {
    const room = new Room();
    const token = await mintToken(server, opts);
    const p = new TestParticipant(room, opts.identity);
    await room.connect(server.url, token, { autoSubscribe: true, dynacast: false });
    return p;
  }

  /** Joins with a token someone else minted (the token service), as `identity`. */
  static async joinWithToken(url: string, token: string, identity: string): Promise<TestParticipant> {
    const room = new Room();
    const p = new TestParticipant(room, identity);
    await room.connect(url, token, { autoSubscribe: true, dynacast: false });
    return p;
  }

  /** The agent participant, once present. */
  agent(): RemoteParticipant | undefined {
    return [...this.room.remoteParticipants.values()].find((p) => p.identity.startsWith('agent-'));
  }

  /** Waits for the `n`-th (1-based) agent utterance and returns it. */
  async nthText(n: number, timeoutMs = AGENT_WAIT_MS): Promise<ReceivedText> {
    return waitFor(`agent utterance #${n}`, () => this.texts[n - 1], { timeoutMs });
  }

  /** Waits for an utterance matching `re`, among those received after index `from`. */
  async textMatching(re: RegExp, { from = 0, timeoutMs = AGENT_WAIT_MS } = {}): Promise<ReceivedText> {
    return waitFor(`agent utterance matching ${re}`, () => this.texts.slice(from).find((t) => re.test(t.text)), { timeoutMs });
  }

  /** Waits for a status message matching `pred` (among those after index `from`). */
  async statusMatching(pred: (m: SessionStatusMessage) => boolean, { from = 0, timeoutMs = AGENT_WAIT_MS } = {}): Promise<SessionStatusMessage> {
    return waitFor('a session status message', () => this.statuses.slice(from).find(pred), { timeoutMs });
  }

  private mic: AudioSource | undefined;

  /**
   * "Speaks" into a published microphone track: a 300 Hz tone for `soundMs`, then a second of
   * silence (the end of the utterance), in real time (the source's queue paces the frames).
   */
  async speak(soundMs: number): Promise<void> {
    const sampleRate = 48_000;
    const frameSamples = sampleRate / 50; // 20 ms
    if (this.mic === undefined) {
      this.mic = new AudioSource(sampleRate, 1);
      const track = LocalAudioTrack.createAudioTrack('microphone', this.mic);
      await this.room.localParticipant!.publishTrack(track, new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE }));
    }
    let n = 0;
    for (let sentMs = 0; sentMs < soundMs + 1_000; sentMs += 20) {
      const data = new Int16Array(frameSamples);
      if (sentMs < soundMs) for (let i = 0; i < frameSamples; i++, n++) data[i] = Math.round(8_192 * Math.sin((2 * Math.PI * 300 * n) / sampleRate));
      await this.mic.captureFrame(new AudioFrame(data, sampleRate, 1, frameSamples));
    }
  }

  /** Sends user text on `lk.chat`. */
  async say(text: string): Promise<void> {
    await this.room.localParticipant!.sendText(text, { topic: 'lk.chat' });
  }

  /** Leaves the room (a client-initiated disconnect, like closing the tab). */
  async leave(): Promise<void> {
    await this.room.disconnect();
  }
}

/** Room events and disconnect reasons re-exported for tests. */
export { DisconnectReason, RoomEvent };
