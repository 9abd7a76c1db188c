/**
 * The page controller: wires the DOM, `livekit-client` and the token service to the pure
 * session machine (`session_machine.ts`), the transcript model and the shared dynamic-context
 * publisher. Bundled by `web/server/build_client.ts` into `web/public/app.js`.
 *
 * One `Room` instance lives as long as the page; every connection attempt (re)uses it, so the
 * text-stream handler and the context publisher stay attached across reconnects.
 */
import {
  ConnectionError,
  ConnectionErrorReason,
  DisconnectReason,
  Room,
  RoomEvent,
  Track,
  type RemoteParticipant,
  type RemoteTrack,
  type TextStreamReader,
} from 'livekit-client';
import { ATTR_AGENT_LEFT, CONTEXT_TOPIC, SESSION_TOPIC } from '../../lib/attributes.js';
import { decodeAgentMessage } from '../../lib/context/messages.js';
import type { TrackerResult } from '../../lib/context/tracker.js';
import { decodeSessionStatus, type SessionStatusMessage } from '../../lib/session_messages.js';
import { ApiError, createIdentity, exportIdentity, fetchConfig, forgetIdentity, pageLanguage, requestAgent, requestToken } from './api.js';
import { RoomContextPublisher } from './context_publisher.js';
import {
  DEFAULT_RECONNECT_POLICY,
  initialMachine,
  isActive,
  transition,
  type ClientEffect,
  type ClientError,
  type ClientEvent,
  type ClientMachine,
  type ReconnectPolicy,
} from './session_machine.js';
import { PageStorage, STORAGE_KEYS, type StoredDevice } from './storage.js';
import { addLine, segmentText, textOf, upsertSegment, type TranscriptEntry } from './transcript.js';

/** Seed 000 `AutoMicStartDelaySeconds`: the microphone starts this long after connecting. */
const AUTO_MIC_START_DELAY_MS = 500;
/** While connected, `lastRoom.seenAtMs` is refreshed this often (a crash loses at most this much of the rejoin window). */
const HEARTBEAT_MS = 5_000;
/** Lines kept in the events and acknowledgement logs. */
const MAX_LOG_LINES = 100;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`missing #${id}`);
  return el as T;
};

const ui = {
  state: $('session-state'),
  attempt: $('attempt'),
  identity: $('identity'),
  room: $('room'),
  greeting: $('greeting-kind'),
  decision: $('decision'),
  agentSession: $('agent-session'),
  language: $('language'),
  errorPanel: $('error-panel'),
  errorMessage: $('error-message'),
  retry: $<HTMLButtonElement>('retry'),
  connect: $<HTMLButtonElement>('connect'),
  disconnect: $<HTMLButtonElement>('disconnect'),
  mic: $<HTMLInputElement>('mic'),
  policy: $<HTMLSelectElement>('policy'),
  languageChoice: $<HTMLSelectElement>('language-choice'),
  forget: $<HTMLButtonElement>('forget'),
  exportData: $<HTMLButtonElement>('export'),
  notice: $('notice'),
  transcript: $('transcript'),
  agentSaid: $('agent-said'),
  chatForm: $<HTMLFormElement>('chat-form'),
  chatInput: $<HTMLInputElement>('chat-input'),
  chatSend: $<HTMLButtonElement>('chat-send'),
  ctxStateForm: $<HTMLFormElement>('ctx-state-form'),
  ctxName: $<HTMLInputElement>('ctx-name'),
  ctxValue: $<HTMLInputElement>('ctx-value'),
  ctxRemove: $<HTMLButtonElement>('ctx-remove'),
  ctxEventForm: $<HTMLFormElement>('ctx-event-form'),
  ctxEvent: $<HTMLInputElement>('ctx-event'),
  ctxReset: $<HTMLButtonElement>('ctx-reset'),
  ctxStatus: $('ctx-status'),
  ctxUnacked: $('ctx-unacked'),
  ctxLastAck: $('ctx-last-ack'),
  ctxText: $('ctx-text'),
  ctxLog: $('ctx-log'),
  events: $('events'),
  audio: $('audio'),
};

const storage = new PageStorage(window.localStorage, window.sessionStorage);
let policy: ReconnectPolicy = { ...DEFAULT_RECONNECT_POLICY };
let device: StoredDevice | null = storage.device();
let transcript: TranscriptEntry[] = device ? storage.transcript(device.identity) : [];
const storedRoom = device ? storage.lastRoom(device.identity) : null;
let machine: ClientMachine = initialMachine(storedRoom ? { name: storedRoom.name, seenAtMs: storedRoom.seenAtMs } : null);
let currentRoomName: string | null = null;
let lastStatus: SessionStatusMessage | null = null;
let lastAckRev: number | null = null;
let startTimer: ReturnType<typeof setTimeout> | undefined;
let roomOps: Promise<void> = Promise.resolve();
let pendingClose: Promise<void> = Promise.resolve();
let localLineSeq = 0;
/** A request of the button's in flight: it stays disabled until it ends (a re-render does not enable it). */
const busy = { forget: false, export: false };

const room = new Room({ adaptiveStream: true, dynacast: true, disconnectOnPageLeave: true });
let ctxPub = new RoomContextPublisher(room);

// ---------------------------------------------------------------- rendering

function logLine(list: HTMLElement, text: string): void {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  list.append(li);
  while (list.childElementCount > MAX_LOG_LINES) list.firstElementChild?.remove();
  list.scrollTop = list.scrollHeight;
}

const event = (text: string): void => logLine(ui.events, text);

function renderTranscript(): void {
  const items = transcript.map((e) => {
    const li = document.createElement('li');
    li.dataset.role = e.role;
    li.dataset.id = e.id;
    li.dataset.testid = 'transcript-line';
    const span = document.createElement('span');
    span.textContent = e.text;
    li.append(span);
    return li;
  });
  ui.transcript.replaceChildren(...items);
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function persistTranscript(): void {
  // Only while the identity is still the browser's (another tab may have forgotten or replaced it).
  if (device && storage.device()?.identity === device.identity) storage.setTranscript(device.identity, transcript);
}

function renderSession(): void {
  const s = machine.state;
  document.body.dataset.state = s;
  ui.state.textContent = s;
  ui.attempt.textContent = (s === 'Connecting' || s === 'Reconnecting') && machine.attempts > 0 ? `attempt ${machine.attempts} of ${policy.maxReconnectAttempts}` : '';
  ui.identity.textContent = device?.identity ?? '— (issued on connect)';
  ui.room.textContent = currentRoomName ?? machine.lastRoom?.name ?? '—';
  ui.errorPanel.hidden = s !== 'Error';
  ui.errorMessage.textContent = machine.error?.message ?? '';
  ui.connect.disabled = s !== 'Disconnected';
  ui.disconnect.disabled = !isActive(s);
  ui.chatInput.disabled = s !== 'Connected';
  ui.chatSend.disabled = s !== 'Connected';
  ui.forget.disabled = busy.forget || s === 'Disconnecting';
  ui.exportData.disabled = busy.export || device === null;
  ui.policy.disabled = isActive(s);
  ui.languageChoice.disabled = isActive(s);
  const st = lastStatus;
  ui.greeting.textContent = st?.greeting ?? '—';
  ui.greeting.dataset.kind = st?.greeting ?? '';
  ui.decision.textContent = st?.decision ? `${st.decision.kind} (${st.decision.why})` : '—';
  ui.decision.dataset.kind = st?.decision?.kind ?? '';
  ui.agentSession.textContent = st
    ? `${st.state}${st.restoredTurns !== undefined ? `, ${st.restoredTurns} turns restored` : ''}${st.degraded ? ', degraded (store unavailable)' : ''}`
    : '—';
  ui.agentSession.dataset.state = st?.state ?? '';
  ui.language.textContent = st?.language ? `${languageName(st.language)}${st.languageHeard ? ' (from what you said)' : st.languageChosen ? ' (your choice)' : ''}` : '—';
  ui.language.dataset.tag = st?.language ?? '';
  ui.language.dataset.heard = String(st?.languageHeard === true);
  ui.language.dataset.chosen = String(st?.languageChosen === true);
  // The context link follows the call (it stops when the page leaves the room or the agent goes).
  renderContext();
}

/** A language's name in that language (`es-MX` → "español (México)"), as language menus show it; the tag when the browser cannot name it. */
function languageName(tag: string): string {
  try {
    return new Intl.DisplayNames([tag], { type: 'language' }).of(tag) ?? tag;
  } catch {
    return tag;
  }
}

function renderContext(): void {
  const c = ctxPub.context;
  ui.ctxText.textContent = c.canonicalText();
  ui.ctxStatus.textContent = c.isActive ? 'active (sent at once)' : 'queued (no conversation yet)';
  ui.ctxStatus.dataset.active = String(c.isActive);
  const unacked = c.unackedRevisions();
  ui.ctxUnacked.textContent = unacked.length === 0 ? 'none' : unacked.join(', ');
  ui.ctxUnacked.dataset.count = String(unacked.length);
  ui.ctxLastAck.textContent = lastAckRev === null ? '—' : `rev ${lastAckRev}`;
  ui.ctxLastAck.dataset.rev = lastAckRev === null ? '' : String(lastAckRev);
}

function notice(text: string): void {
  ui.notice.textContent = text;
}

// ---------------------------------------------------------------- the machine

function dispatch(ev: ClientEvent): void {
  const before = machine.state;
  const t = transition(machine, ev, Date.now(), policy);
  machine = t.machine;
  if (machine.state !== before) event(`${before} → ${machine.state} (${ev.type})`);
  renderSession();
  for (const e of t.effects) runEffect(e);
}

function clearStartTimer(): void {
  if (startTimer !== undefined) clearTimeout(startTimer);
  startTimer = undefined;
}

function closeRoom(): Promise<void> {
  currentRoomName = null;
  pendingClose = room.disconnect().catch(() => {});
  return pendingClose;
}

function runEffect(e: ClientEffect): void {
  switch (e.type) {
    case 'startAttempt':
      clearStartTimer();
      startTimer = setTimeout(() => dispatch({ type: 'startTimeout', attemptId: e.attemptId }), e.delayMs + e.timeoutMs);
      roomOps = roomOps
        .then(() => pendingClose)
        .then(() => (e.delayMs > 0 ? new Promise<void>((resolve) => setTimeout(resolve, e.delayMs)) : undefined))
        .then(() => runAttempt(e.attemptId, e.room));
      if (e.delayMs > 0) event(`attempt ${e.attempt} in ${e.delayMs / 1000} s`);
      return;
    case 'abandonAttempt':
      clearStartTimer();
      void closeRoom();
      return;
    case 'closeRoom':
      clearStartTimer();
      void closeRoom().then(() => dispatch({ type: 'closed' }));
      return;
    case 'persistLastRoom':
      if (device) storage.setLastRoom(device.identity, e.lastRoom ? { ...e.lastRoom, wasConnected: isActive(machine.state) } : null);
      return;
  }
}

function classify(err: unknown): { error: ClientError; fatal: boolean } {
  if (err instanceof ApiError) {
    return { error: { code: err.reason, message: `token service: ${err.message}` }, fatal: !err.retryable };
  }
  if (err instanceof ConnectionError) {
    const fatal = err.reason === ConnectionErrorReason.NotAllowed;
    return { error: { code: `livekit_${err.reasonName}`, message: `LiveKit: ${err.message}` }, fatal };
  }
  return { error: { code: 'unknown', message: err instanceof Error ? err.message : String(err) }, fatal: false };
}

/** The identity being issued: callers at the same time (Connect clicked during start-up) share it. */
let issuing: Promise<StoredDevice> | null = null;

/** This page's identity, issued if it has none; `refused` is one the service no longer knows, never adopted. */
async function ensureDevice(refused: string | null = null): Promise<StoredDevice> {
  if (device) return device;
  // The browser keeps one identity: another tab's, when it holds one (before the request or meanwhile).
  const kept = (): StoredDevice | null => {
    const other = storage.device();
    return other !== null && other.identity !== refused ? other : null;
  };
  const held = kept();
  if (held !== null) return adoptDevice(held);
  issuing ??= (async () => {
    try {
      const issued = await createIdentity();
      const other = kept();
      if (other !== null) return adoptDevice(other);
      device = { identity: issued.identity, deviceSecret: issued.deviceSecret };
      storage.setDevice(device);
      transcript = [];
      renderTranscript();
      event('new identity issued');
      return device;
    } finally {
      issuing = null;
    }
  })();
  return issuing;
}

/**
 * Drops what this page holds of the identity it talked as, before it forgets it or takes
 * another: its call, its dynamic context (never sent into another identity's conversation), the
 * agent's last status and the language pick (as stored now). Its stored room, if still the
 * browser's, goes too.
 */
function dropIdentityState(): void {
  lastStatus = null;
  lastAckRev = null;
  ctxPub.dispose();
  ctxPub = new RoomContextPublisher(room);
  ui.ctxLog.replaceChildren();
  ui.languageChoice.value = storage.language();
  dispatch({ type: 'reset' }); // renders the session and the context
}

/** Makes `d` (stored by another tab) this page's identity, with its transcript. */
function adoptDevice(d: StoredDevice): StoredDevice {
  device = d;
  transcript = storage.transcript(d.identity);
  renderTranscript();
  event('identity changed in another tab: adopted');
  return d;
}

// Another tab of this browser forgot the identity or was issued a new one: this page follows it,
// so it never writes the old identity's transcript back or replaces the identity the browser keeps.
window.addEventListener('storage', (e) => {
  if (e.key !== null && e.key !== STORAGE_KEYS.device) return;
  const stored = storage.device();
  if (stored?.identity === device?.identity) return;
  // A page that had no identity yet (one being issued for its Connect) just takes this one.
  if (device !== null) {
    if (isActive(machine.state)) notice('This browser forgot or replaced the identity of this call in another tab: the call ended.');
    dropIdentityState();
  }
  if (stored !== null) {
    adoptDevice(stored);
  } else {
    device = null;
    transcript = [];
    renderTranscript();
    event('identity forgotten in another tab');
  }
  renderSession();
});

async function runAttempt(attemptId: number, reuseRoom: string | null): Promise<void> {
  const stale = (): boolean => attemptId !== machine.attemptId || (machine.state !== 'Connecting' && machine.state !== 'Reconnecting');
  if (stale()) return;
  try {
    const stored = device !== null;
    let d = await ensureDevice();
    const requested = ui.policy.value;
    // The participant's pick from the language menu outranks everything the agent knows; the browser's only a default.
    const chosen = ui.languageChoice.value;
    const language = chosen || pageLanguage(navigator.language);
    const ask = (dev: StoredDevice, roomName: string | null) =>
      requestToken({
        identity: dev.identity,
        deviceSecret: dev.deviceSecret,
        ...(roomName ? { room: roomName } : {}),
        ...(requested ? { policy: requested } : {}),
        ...(language ? { language, ...(chosen ? { languageChosen: true } : {}) } : {}),
      });
    let tok;
    try {
      tok = await ask(d, reuseRoom);
    } catch (err) {
      if (stored && err instanceof ApiError && err.reason === 'invalid_credentials') {
        // The service no longer knows the identity this browser kept (its credential lapsed after
        // a long absence, or it was erased): start as a new visitor instead of failing every
        // attempt. Nothing of the old identity can be reached with it any more.
        // Another tab may already hold the browser's new identity: that one, never a third.
        device = null;
        transcript = [];
        d = await ensureDevice(d.identity);
        notice('This browser\'s identity is no longer known here: you start as a new visitor.');
        event('stored identity refused: a new one issued');
        tok = await ask(d, null);
      } else if (reuseRoom !== null && err instanceof ApiError && err.reason === 'room_not_issued') {
        // The room's reuse window passed on the service: a new room (the agent resumes from the store).
        tok = await ask(d, null);
      } else throw err;
    }
    if (stale()) return;
    event(`token for ${tok.reused ? 'the same' : 'a new'} room${tok.policy ? `, policy ${tok.policy}` : ''}`);
    await room.connect(tok.url, tok.token, { autoSubscribe: true });
    if (stale()) return;
    clearStartTimer();
    currentRoomName = tok.room;
    dispatch({ type: 'connected', attemptId, room: tok.room });
    watchAgentArrival(d, tok.room);
    if (ui.mic.checked) setTimeout(() => void setMic(true), AUTO_MIC_START_DELAY_MS);
  } catch (err) {
    if (stale()) return;
    clearStartTimer();
    const c = classify(err);
    event(`attempt failed: ${c.error.message}`);
    const retryAfterMs = err instanceof ApiError ? err.retryAfterMs : undefined;
    dispatch({ type: 'attemptFailed', attemptId, error: c.error, fatal: c.fatal, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
  }
}

async function setMic(on: boolean): Promise<void> {
  if (machine.state !== 'Connected') return;
  try {
    await room.localParticipant.setMicrophoneEnabled(on);
    event(on ? 'microphone on' : 'microphone off');
  } catch (err) {
    ui.mic.checked = false;
    notice(`Microphone unavailable: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** How long the page waits for the agent after connecting before asking the service for it, ms. */
const AGENT_ARRIVAL_MS = 12_000;
/** How many times it asks before telling the participant that no agent came. */
const AGENT_REQUESTS = 3;
let agentWatch: ReturnType<typeof setTimeout> | undefined;

const agentPresent = (): boolean => [...room.remoteParticipants.values()].some((p) => p.isAgent);

/**
 * When no agent is in `roomName` {@link AGENT_ARRIVAL_MS} after connecting or after the agent
 * left (no worker was registered when the room was created; its job or worker died), asks the
 * service to send one (`POST /api/agent`; it sends none while one is there or on its way), up
 * to {@link AGENT_REQUESTS} times, then says so.
 */
function watchAgentArrival(dev: StoredDevice, roomName: string, asked = 0): void {
  clearTimeout(agentWatch);
  agentWatch = setTimeout(() => {
    agentWatch = undefined;
    if (machine.state !== 'Connected' || currentRoomName !== roomName || agentPresent()) return;
    if (asked >= AGENT_REQUESTS) {
      notice('No agent has joined this call: none may be available right now. Disconnect and try again later.');
      return;
    }
    event('no agent yet: asking the service for one');
    void requestAgent({ identity: dev.identity, deviceSecret: dev.deviceSecret, room: roomName })
      .then((r) => event(`agent request: ${r.agent}`))
      .catch((err: unknown) => event(`agent request failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => watchAgentArrival(dev, roomName, asked + 1));
  }, AGENT_ARRIVAL_MS);
}

// ---------------------------------------------------------------- room events

room.on(RoomEvent.Disconnected, (reason?: DisconnectReason) => {
  currentRoomName = null;
  if (reason === DisconnectReason.CLIENT_INITIATED) {
    dispatch({ type: 'closed' });
  } else if (reason === DisconnectReason.ROOM_DELETED || reason === DisconnectReason.PARTICIPANT_REMOVED) {
    // The agent hung up (its status message, if it arrived, already ended the call; it deletes
    // the room, or removes only us when other people are in it) or an operator did: there is
    // nothing to rejoin.
    if (isActive(machine.state)) notice('The call ended. Press Connect to call again.');
    dispatch({ type: 'ended' });
  } else if (reason === DisconnectReason.DUPLICATE_IDENTITY) {
    dispatch({
      type: 'fatal',
      error: { code: 'replaced', message: 'This identity connected from another tab or device.' },
    });
  } else {
    dispatch({ type: 'connectionLost', reason: `disconnected (${reason ?? 'unknown'})` });
  }
});
room.on(RoomEvent.Reconnecting, () => dispatch({ type: 'transportReconnecting' }));
room.on(RoomEvent.Reconnected, () => dispatch({ type: 'transportReconnected' }));
room.on(RoomEvent.ParticipantConnected, (p: RemoteParticipant) => {
  if (p.isAgent) event('agent joined');
});
room.on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) => {
  if (!p.isAgent) return;
  const onPurpose = p.attributes[ATTR_AGENT_LEFT];
  event(onPurpose ? `agent left (${onPurpose})` : 'agent left');
  queueMicrotask(renderContext); // the context link went with it (after the publisher hears it)
  // Taken over by another room of this identity (its status message may not have arrived first).
  if (onPurpose === 'taken_over') continuedElsewhere(null);
  // An agent that leaves a live call without ending it (its worker crashed or shut down, or its
  // rejoin window closed as this page came back) is replaced: the next one resumes the
  // conversation from the store. One that ended the call (idle, forget) has ended this page's
  // call too, and a duplicate leaves another agent here: nothing is asked for then.
  else if (machine.state === 'Connected' && currentRoomName !== null && device !== null) watchAgentArrival(device, currentRoomName);
});

/**
 * The conversation went on in another tab, window or device of this identity (the agent here was
 * taken over): this page leaves its call instead of asking for an agent that would take it back.
 */
function continuedElsewhere(message: string | null): void {
  if (!isActive(machine.state)) return;
  notice(`${message ?? 'This conversation has continued in another window.'} Press Connect to continue it here.`);
  dispatch({ type: 'ended' });
}
room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
  if (track.kind === Track.Kind.Audio) ui.audio.append(track.attach());
});
room.on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack) => {
  for (const el of track.detach()) el.remove();
});

room.on(RoomEvent.DataReceived, (payload: Uint8Array, participant?: RemoteParticipant, _kind?: unknown, topic?: string) => {
  if (participant === undefined || !participant.isAgent) return;
  if (topic === SESSION_TOPIC) {
    const msg = decodeSessionStatus(payload);
    if (msg === undefined) return;
    // A later status of the same session may omit what an earlier one said (e.g. the decision).
    lastStatus = lastStatus !== null && lastStatus.sessionId === msg.sessionId && msg.sessionId !== '' ? { ...lastStatus, ...msg } : msg;
    if (msg.state !== 'Error' && msg.error === undefined && lastStatus.error !== undefined) delete lastStatus.error;
    event(`agent session: ${msg.state}${msg.greeting ? `, greeting ${msg.greeting}` : ''}${msg.decision ? `, ${msg.decision.kind} (${msg.decision.why})` : ''}`);
    renderSession();
    if (msg.ended !== undefined) {
      notice(`The agent ended the call: ${msg.ended.message} Press Connect to call again.`);
      dispatch({ type: 'ended' });
    } else if (msg.error?.code === 'taken_over') {
      continuedElsewhere(msg.error.message);
    } else if (msg.state === 'Error') {
      dispatch({ type: 'fatal', error: msg.error ? { code: msg.error.code, message: msg.error.message } : { code: 'agent_error', message: 'The agent could not continue this session.' } });
    }
  } else if (topic === CONTEXT_TOPIC) {
    const d = decodeAgentMessage(payload);
    if (!d.ok) return;
    const m = d.message;
    if (m.src !== undefined && m.src !== ctxPub.context.src) return;
    if (m.kind === 'ack') {
      lastAckRev = m.rev;
      logLine(ui.ctxLog, `ack: revisions up to ${m.rev} applied`);
    } else if (m.kind === 'welcome') {
      logLine(ui.ctxLog, `welcome: agent ready (last applied revision ${m.lastRev}, ${m.context.states.length} states, ${m.context.events.length} events)`);
    } else {
      logLine(ui.ctxLog, `rejected${m.rev !== undefined ? ` revision ${m.rev}` : ''}: ${m.reason}`);
    }
    // The publisher handles the same packet in its own listener; render after it did.
    queueMicrotask(renderContext);
  }
});

room.registerTextStreamHandler('lk.transcription', (reader: TextStreamReader, { identity }: { identity: string }) => {
  void (async () => {
    const role = identity === room.localParticipant.identity ? 'user' : 'agent';
    const id = reader.info.attributes?.['lk.segment_id'] ?? reader.info.id;
    const atMs = Date.now();
    const before = textOf(transcript, id, role);
    let streamText = '';
    try {
      for await (const chunk of reader) {
        streamText += chunk;
        const text = segmentText(before, streamText);
        if (text.trim() === '') continue;
        transcript = upsertSegment(transcript, { id, role, text, atMs });
        renderTranscript();
        persistTranscript(); // per chunk: a reload mid-utterance keeps what was shown
      }
      // Screen readers hear each utterance once, whole (not the list at every chunk).
      if (role === 'agent' && streamText.trim() !== '') ui.agentSaid.textContent = textOf(transcript, id, role);
    } catch {
      /* stream aborted: keep what arrived */
    }
    persistTranscript();
  })();
});

// ---------------------------------------------------------------- user actions

ui.connect.addEventListener('click', () => {
  void room.startAudio().catch(() => {});
  notice('');
  dispatch({ type: 'connect' });
});
ui.retry.addEventListener('click', () => {
  notice('');
  dispatch({ type: 'retry' });
});
ui.disconnect.addEventListener('click', () => dispatch({ type: 'disconnect' }));
ui.mic.addEventListener('change', () => void setMic(ui.mic.checked));
ui.policy.addEventListener('change', () => storage.setPolicy(ui.policy.value));
ui.languageChoice.addEventListener('change', () => storage.setLanguage(ui.languageChoice.value));

ui.chatForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.chatInput.value.trim();
  if (text === '' || machine.state !== 'Connected') return;
  ui.chatInput.value = '';
  transcript = addLine(transcript, { id: `local-${Date.now()}-${localLineSeq++}`, role: 'user', text, atMs: Date.now() });
  renderTranscript();
  persistTranscript();
  room.localParticipant.sendText(text, { topic: 'lk.chat' }).catch((err: unknown) => {
    notice(`Message not sent: ${err instanceof Error ? err.message : String(err)}`);
  });
});

function showResult(what: string, r: TrackerResult): void {
  if (!r.ok) notice(`${what} refused: ${r.reason}`);
  else if (!r.changed && r.updates.length === 0) notice(`${what}: nothing changed`);
  else notice(`${what}: ${r.queued ? 'queued until the conversation starts' : 'sent'}`);
  renderContext();
}

ui.ctxStateForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  showResult('Set state', ctxPub.context.setState(ui.ctxName.value.trim(), ui.ctxValue.value));
});
ui.ctxRemove.addEventListener('click', () => showResult('Remove state', ctxPub.context.removeState(ui.ctxName.value.trim())));
ui.ctxEventForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const r = ctxPub.context.addEvent(ui.ctxEvent.value.trim());
  if (r.ok) ui.ctxEvent.value = '';
  showResult('Add event', r);
});
ui.ctxReset.addEventListener('click', () => showResult('Reset', ctxPub.context.reset()));

ui.forget.addEventListener('click', () => {
  if (busy.forget) return;
  void (async () => {
    busy.forget = true;
    ui.forget.disabled = true;
    try {
      if (isActive(machine.state)) {
        dispatch({ type: 'disconnect' });
        await pendingClose;
      }
      let erased = '';
      if (device) {
        try {
          const r = await forgetIdentity(device);
          erased = ` (${r.sessionKeysErased} stored session${r.sessionKeysErased === 1 ? '' : 's'} erased)`;
        } catch (err) {
          // Already unknown to the service: nothing left to erase there.
          if (!(err instanceof ApiError && err.reason === 'invalid_credentials')) throw err;
        }
      }
      storage.clearAll();
      dropIdentityState();
      device = null;
      transcript = [];
      renderTranscript();
      notice(`Forgotten${erased}. The next connection starts as a new visitor.`);
      event('identity forgotten');
    } catch (err) {
      notice(`Forget failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      busy.forget = false;
      renderSession();
    }
  })();
});

// What the agent keeps about this identity, as a JSON file: every conversation, the profile and
// the archive (the service reads them from the shared store, with the worker's keyring).
ui.exportData.addEventListener('click', () => {
  void (async () => {
    if (!device || busy.export) return;
    busy.export = true;
    ui.exportData.disabled = true;
    try {
      const data = await exportIdentity(device);
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `my-data-${device.identity}.json`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      const n = data.agents.length;
      notice(n === 0 ? 'Downloaded: nothing is stored about you.' : `Downloaded what is stored about you (${n} agent${n === 1 ? '' : 's'}).`);
      event('data exported');
    } catch (err) {
      notice(`Download failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      busy.export = false;
      renderSession();
    }
  })();
});

// The network is back after the attempts gave up on it: a new round, without waiting for Retry.
window.addEventListener('online', () => {
  if (machine.state !== 'Error' || machine.error?.code !== 'max_attempts') return;
  event('back online: trying again');
  dispatch({ type: 'retry' });
});

window.addEventListener('pagehide', () => {
  persistTranscript();
  if (device && storage.device()?.identity === device.identity && machine.lastRoom && isActive(machine.state)) {
    storage.setLastRoom(device.identity, { ...machine.lastRoom, seenAtMs: Date.now(), wasConnected: true });
  }
});
setInterval(() => dispatch({ type: 'heartbeat' }), HEARTBEAT_MS);

// ---------------------------------------------------------------- start

async function start(): Promise<void> {
  ui.policy.value = storage.policy();
  ui.languageChoice.value = storage.language();
  const browserLanguage = pageLanguage(navigator.language);
  ui.languageChoice.options[0]!.textContent = browserLanguage ? `Browser's (${languageName(browserLanguage)})` : "Browser's";
  renderTranscript();
  renderSession();
  try {
    const cfg = await fetchConfig();
    policy = { ...policy, rejoinTtlMs: cfg.rejoinTtlMs };
    for (const opt of Array.from(ui.policy.options)) if (opt.value !== '') opt.disabled = !cfg.policies.includes(opt.value);
  } catch {
    notice('Token service unreachable; Connect will retry.');
  }
  if (device === null) {
    try {
      await ensureDevice();
    } catch {
      /* issued on connect instead */
    }
  }
  renderSession();
  // A reload while connected rejoins at once (the agent is still waiting in the room).
  if (storedRoom?.wasConnected && Date.now() - storedRoom.seenAtMs <= policy.rejoinTtlMs) {
    event('page reloaded during a conversation: rejoining');
    dispatch({ type: 'connect' });
  }
  document.body.dataset.ready = 'true';
}

void start();
