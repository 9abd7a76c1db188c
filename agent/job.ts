/**
 * One job = one room. Links the participant, decides resume / greeting with the session core,
 * restores history and dynamic context into the agent's chat context, greets once, persists
 * every turn as it happens, waits out the rejoin window after a leave, and lets go on takeover.
 */
import { randomUUID } from 'node:crypto';
import { AutoSubscribe, llm, voice, type JobContext } from '@livekit/agents';
import type { RemoteParticipant } from '@livekit/rtc-node';
import { ATTR_AGENT_ALIVE, ATTR_LANGUAGE, ATTR_LANGUAGE_CHOSEN, ATTR_RESUME_POLICY } from '../lib/attributes.js';
import { systemClock } from '../lib/clock.js';
import { hintMatches, parseDispatchHint, type DispatchHint, type HintedParticipant } from '../lib/dispatch_hint.js';
import { ContextReceiver } from '../lib/context/receiver.js';
import { pii, type Logger } from '../lib/logger.js';
import { DEFAULT_CONDENSE_OPTIONS, type CondenseOptions, type Condenser } from '../lib/session/condense.js';
import { takenOverMessage } from '../lib/session/greeting.js';
import { idleCheckInText, idleGoodbyeText } from '../lib/session/idle.js';
import { greetingLanguageOf, parseLanguageTag, primaryLanguageOf, SpokenLanguage } from '../lib/session/language.js';
import { detectTextLanguage } from '../lib/session/text_language.js';
import { policyForParticipant } from '../lib/session/policy.js';
import type { DisconnectReason } from '../lib/session/record.js';
import type { SessionStatusMessage } from '../lib/session_messages.js';
import type { KeptAlive } from '../lib/store/agent_liveness.js';
import { bounded } from '../lib/store/bounded.js';
import type { SessionKey } from '../lib/store/keys.js';
import { Assistant } from './assistant.js';
import { chatMessageToTurn, historyToChatContext } from './chat_history.js';
import { llmCondenser } from './condenser.js';
import type { Config } from './config.js';
import { AgentContextSink } from './context_sink.js';
import type { JobMetrics } from './metrics.js';
import { IdleWatch } from './idle_watch.js';
import { buildModels, type Models } from './models.js';
import { ParticipantSession, type Arrival } from './participant_session.js';
import { RoomMessenger, agentAlreadyServing, bridgeRoom, endCallFor, holdEarlyContext, markLeavingOnPurpose, type EarlyContext } from './room_bridge.js';
import type { JobStores } from './store.js';

/** Session key agent name when the worker has none (automatic dispatch). */
export const DEFAULT_AGENT_KEY = 'default';


/** Longest wait for the greeting's first text (or audio) before the arrival's messages go out, ms. */
const GREETING_HEAD_START_MS = 1_000;

/**
 * Longest hold of the arrival's store writes (the resumed or new record's first save) while the
 * job connects and greets, ms, counted from the participant's link (a dispatch hint's claim,
 * made before the link, saves nothing until then). They go out as soon as the greeting does;
 * this bounds a greeting that is slow to start.
 */
const ARRIVAL_WRITE_HOLD_MS = 5_000;

/** Longest wait for the goodbye of an idle hang-up to play out before the call ends anyway, ms. */
const GOODBYE_MAX_MS = 20_000;
/** The longest a job waits for its agent session to close before it puts the conversation away anyway. */
const SESSION_CLOSE_MAX_MS = 10_000;

/** Resolves once `handle` played out, failed, or after `maxMs`. */
function playedOut(handle: voice.SpeechHandle | undefined, maxMs: number): Promise<void> {
  if (handle === undefined) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, maxMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    handle.waitForPlayout().then(done, done);
  });
}

/** Resolves once the agent starts speaking (first text or audio frame out), the speech ends, or after `maxMs`. */
function agentStartedSpeaking(session: voice.AgentSession, handle: voice.SpeechHandle, maxMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const onState = (ev: voice.AgentStateChangedEvent) => {
      if (ev.newState === 'speaking') done();
    };
    const timer = setTimeout(() => done(), maxMs);
    function done(): void {
      clearTimeout(timer);
      session.off(voice.AgentSessionEventTypes.AgentStateChanged, onState);
      resolve();
    }
    session.on(voice.AgentSessionEventTypes.AgentStateChanged, onState);
    handle.waitForPlayout().then(done, done);
  });
}

/** What a dispatch hint says about a participant, read from the participant itself. */
function participantFacts(p: RemoteParticipant): HintedParticipant {
  return {
    identity: p.identity,
    name: p.name,
    resumePolicy: p.attributes[ATTR_RESUME_POLICY],
    language: p.attributes[ATTR_LANGUAGE],
    ...(p.attributes[ATTR_LANGUAGE_CHOSEN] === 'true' ? { languageChosen: true } : {}),
  };
}

/** What every conversation of one job shares. */
interface JobParts {
  ctx: JobContext;
  config: Config;
  logger: Logger;
  stores: JobStores;
  metrics: JobMetrics;
  models: Models;
  /** Condenses the summary of older turns with the model, and when; undefined when that is off. */
  condense: { condense: Condenser; condenseOptions: CondenseOptions } | undefined;
  /** The job's liveness beats, from when it knows it serves the room; undefined without them. */
  alive: KeptAlive | undefined;
  /** Dynamic-context packets that arrived before the conversation linked, for its receiver. */
  earlyContext: EarlyContext;
}

/** One arrival's conversation, claimed before or after its participant linked. */
interface Conversation {
  /** Links `participant` (the one it was opened for), greets, and runs until the job ends. */
  run(participant: RemoteParticipant): Promise<void>;
  /** Drops a conversation whose participant never linked: nothing of the arrival is saved. */
  abandon(): Promise<void>;
  /**
   * False when the conversation's claim found the session live in another job and, being a
   * dispatch hint's speculation, took nothing (the conversation is then closed; do not run it).
   * True once it holds the session, or if the claim failed (`run` reports that).
   */
  claimed(): Promise<boolean>;
  /** The job is shutting down. */
  shutdown(): Promise<void>;
}

/**
 * How long a job sent for one participant (a dispatch hint) waits for them before serving whoever
 * else is in the room: the token service sends the agent before the participant's page has its
 * token, so they often join after the agent, and after anyone who was already there.
 */
export const HINTED_PARTICIPANT_WAIT_MS = 10_000;

/**
 * The participant this job serves: the one its dispatch hint names, when they come within
 * {@link HINTED_PARTICIPANT_WAIT_MS} (a colleague already in the room is not them); otherwise,
 * and without a hint, the first participant.
 */
async function participantToServe(ctx: JobContext, hint: DispatchHint | null): Promise<RemoteParticipant> {
  if (hint === null) return ctx.waitForParticipant();
  const hinted = ctx.waitForParticipant(hint.identity);
  hinted.catch(() => undefined); // a room that closes after the wait ended rejects it unheard
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), HINTED_PARTICIPANT_WAIT_MS);
  });
  try {
    return (await Promise.race([hinted, gaveUp])) ?? (await ctx.waitForParticipant());
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the job until the conversation is over (rejoin window passed, taken over, or shutdown). */
export async function runJob(ctx: JobContext, config: Config, logger: Logger, stores: JobStores, metrics: JobMetrics): Promise<void> {
  // With a dispatch hint (tokens the project mints), the job claims the hinted participant's
  // session while it connects to the room; otherwise it waits for the first participant.
  const hint = parseDispatchHint(ctx.job.metadata);
  // Kept from the start: a backend's context can arrive before the participant does.
  const earlyContext = holdEarlyContext(ctx.room, logger);
  const connected = ctx.connect(undefined, AutoSubscribe.AUDIO_ONLY);
  connected.catch(() => undefined); // awaited below
  const models = buildModels(config);
  logger.info({ models: models.label, store: config.redis ? 'redis' : 'memory', livenessBeats: stores.liveness !== undefined }, 'job started');
  if (!config.redis) logger.info({}, 'REDIS_URL is not set: sessions live in this job only (memory)');
  const condenseOptions: CondenseOptions = { ...DEFAULT_CONDENSE_OPTIONS, condenseAtChars: config.condenseAtChars };
  const condense =
    models.backgroundLlm !== undefined && config.condenseAtChars > 0
      ? { condense: llmCondenser(models.backgroundLlm, { condense: condenseOptions }), condenseOptions }
      : undefined;
  const job: JobParts = { ctx, config, logger, stores, metrics, models, condense, alive: undefined, earlyContext };
  let current: Conversation | undefined;
  // One callback for the job: the conversation ends first, then what its writes go through.
  ctx.addShutdownCallback(async () => {
    await current?.shutdown();
    // Left to lapse: a job stopped with its call going (or still waiting for it) is replaced.
    await job.alive?.stop({ lapse: true });
    metrics.gauge('pva_active_sessions', 0);
    await stores.notices?.close();
    await stores.liveness?.close();
    await stores.store.dispose();
    await metrics.close();
  });
  if (hint !== null) current = openConversation(job, hint, true);
  await connected;
  // A second dispatch into a room our agent already serves: the first one stays (the
  // participant hears one greeting and no takeover), this one leaves marked, so that no new
  // agent is sent to replace it. A hint's speculative claim took nothing from the live one.
  const serving = agentAlreadyServing(ctx.room, config.agentName);
  if (serving !== undefined) {
    logger.info({ serving: serving.identity }, 'another agent of ours is already in the room: leaving it to that one');
    await current?.abandon();
    current = undefined;
    await markLeavingOnPurpose(ctx.room, 'duplicate', logger);
    ctx.shutdown('duplicate');
    return;
  }
  // While the job serves the room, it beats in Redis: the token service replaces an agent whose
  // beats stop (a crashed worker) long before livekit-server drops its participant.
  // Cut off from Redis, it says so on its participant instead, so it is not taken for dead.
  job.alive = stores.liveness?.keepAlive(config.agentName, ctx.room.name ?? '', ctx.room.localParticipant?.identity ?? '', config.livenessTtlMs, (failing) => {
    ctx.room.localParticipant?.setAttributes({ [ATTR_AGENT_ALIVE]: failing ? String(Date.now()) : '' }).catch(() => undefined);
  });
  const participant = await participantToServe(ctx, hint);
  if (hint !== null && current !== undefined) {
    // The hint was a speculation. When it did not come true (another participant, or the same
    // identity with another name or policy), its claim is dropped unsaved; when the session was
    // live in another job, it claimed nothing. Either way the participant is claimed now.
    if (!hintMatches(hint, participantFacts(participant))) {
      logger.info({ fromDispatchHint: true }, 'the first participant is not the one the dispatch hint named: its claim is dropped unsaved');
      await current.abandon();
      current = undefined;
    } else if (!(await current.claimed())) {
      current = undefined;
    }
  }
  current ??= openConversation(job, participantFacts(participant), false);
  await current.run(participant);
}

/**
 * Claims `who`'s session (while the job may still be connecting), then returns the
 * conversation, to run once `who` links or to abandon.
 */
function openConversation(job: JobParts, who: HintedParticipant, fromDispatchHint: boolean): Conversation {
  const { ctx, config, logger, stores, metrics, models, condense } = job;
  const identity = who.identity;
  const key: SessionKey = { agentName: config.agentName || DEFAULT_AGENT_KEY, identity };
  const ownerId = `${ctx.job.id}:${randomUUID().slice(0, 8)}`;
  const { policy, overridden, ignoredOverride } = policyForParticipant(config.policy, who.resumePolicy);
  // A malformed language attribute is ignored (the remembered language, if any, is used).
  const language = parseLanguageTag(who.language);
  const log = logger.child({ ownerId });
  log.info({ ...pii({ identity }), resumePolicy: policy.resumePolicy, overridden, ignoredOverride, language, languageChosen: who.languageChosen === true, ignoredLanguage: who.language !== undefined && language === null, fromDispatchHint }, 'session owner chosen');

  const messenger = new RoomMessenger(ctx.room, log);
  const { store, notices } = stores;
  let finishing: Promise<void> | undefined;
  let agentSession: voice.AgentSession | undefined;
  let idle: IdleWatch | undefined;
  let arrival: Arrival | undefined;
  /** Releases the arrival's held store writes (see ARRIVAL_WRITE_HOLD_MS). */
  let greetingOnItsWay = () => {};

  const status = (extra: Partial<SessionStatusMessage> = {}) => {
    const record = ps.currentRecord ?? arrival?.record ?? null;
    const conversationLanguage = parseLanguageTag(record?.language);
    return messenger.status(identity, {
      v: 1,
      type: 'session_status',
      sessionId: record?.sessionId ?? '',
      state: ps.state,
      ...(store.isDegraded ? { degraded: true } : {}),
      ...(conversationLanguage !== null
        ? { language: conversationLanguage, ...(record?.languageHeard ? { languageHeard: true } : {}), ...(record?.languageChosen ? { languageChosen: true } : {}) }
        : {}),
      ...extra,
    });
  };

  const ps: ParticipantSession = new ParticipantSession({
    store,
    key,
    ownerId,
    policy,
    clock: systemClock,
    logger: log,
    metrics,
    participantName: who.name || null,
    language,
    languageChosen: language !== null && who.languageChosen === true,
    minRegreetGapMs: config.minRegreetGapMs,
    ...condense,
    onStateChanged: (ev) => {
      log.info({ from: ev.oldState, to: ev.newState, cause: ev.cause }, 'session state changed');
      // Connected is announced with its greeting; Connecting is what the client already knows
      // (and would put a data message on the greeting path).
      if (ev.newState !== 'Connected' && ev.newState !== 'Connecting') void status();
    },
    onClose: (reason) => void finish(reason),
  });

  const offHealth = store.onHealth((ev) => {
    metrics.gauge('pva_store_degraded', ev.type === 'degraded' ? 1 : 0);
    if (ev.type === 'degraded') log.warn({ reason: ev.reason }, 'session store degraded: working from memory until Redis answers');
    else log.info({ replayedKeys: ev.replayedKeys }, 'session store recovered: replayed what memory held');
  });

  /** Closes the agent session once (later calls wait for the same close), within {@link SESSION_CLOSE_MAX_MS}. */
  let sessionClosed: Promise<void> | undefined;
  /**
   * Says `text` when the agent session can; while it starts or closes (agents-js then throws
   * at once) nothing is said, so a goodbye on the way out never stops the job from leaving.
   */
  const sayIfRunning = (text: string, options?: { allowInterruptions?: boolean }): voice.SpeechHandle | undefined => {
    try {
      return agentSession?.say(text, options);
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'the agent session could not speak now');
      return undefined;
    }
  };

  const closeAgentSession = (): Promise<void> => {
    if (agentSession === undefined) return Promise.resolve();
    sessionClosed ??= bounded(agentSession.close(), SESSION_CLOSE_MAX_MS, () => new Error(`not closed within ${SESSION_CLOSE_MAX_MS} ms`)).catch((err: unknown) =>
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'the agent session did not close cleanly'),
    );
    return sessionClosed;
  };

  /** Ends this job's part: close the agent session, persist, leave the room. */
  const finish = (reason: DisconnectReason | 'rejoin_expired'): Promise<void> => {
    finishing ??= (async () => {
      log.info({ reason }, 'conversation closing');
      idle?.stop();
      greetingOnItsWay();
      if (ps.isForgotten) {
        // Erased: nothing may be written back.
      } else if (reason === 'taken_over') {
        const message = takenOverMessage(ps.currentRecord?.language ?? null);
        await status({ error: { code: 'taken_over', message } });
        await sayIfRunning(message)?.waitForPlayout().catch(() => undefined);
      } else if (reason === 'idle') {
        // The goodbye is said whole, the conversation saved, and only then is the client told
        // (it then leaves without trying to rejoin; a new call resumes the conversation).
        const message = idleGoodbyeText(ps.currentRecord?.language ?? null, policy.resumePolicy !== 'AlwaysFresh');
        await playedOut(sayIfRunning(message, { allowInterruptions: false }), GOODBYE_MAX_MS);
        await closeAgentSession();
        await ps.suspend('idle');
        await status({ state: 'Disconnected', ended: { reason: 'idle', message } });
      } else {
        // Closed before the conversation is put away: what closing adds (an answer cut off while
        // it was coming, the participant's last words) is saved with the rest.
        await closeAgentSession();
        await ps.suspend(reason === 'rejoin_expired' ? 'network' : reason);
      }
      await closeAgentSession();
      // Marked before the room can go away under it. A job stopped with its call still going (a
      // worker shut down) leaves unmarked: the token service then sends another agent to whoever
      // is still in the room.
      if (reason !== 'agent_shutdown') await markLeavingOnPurpose(ctx.room, reason, log);
      await job.alive?.stop({ lapse: reason === 'agent_shutdown' });
      // The call is over: the participant is disconnected instead of left in a room with no
      // agent (the room is deleted when nobody else is in it; other people stay).
      if (reason === 'idle') {
        const ended = await endCallFor({ room: ctx.room, livekit: config.livekit, logger: log }, identity);
        log.info({ ended }, 'idle call ended on the server');
      }
      ctx.shutdown(reason);
    })();
    return finishing;
  };

  /** True once the participant linked; false while the claim is a dispatch hint's speculation. */
  let linked = false;
  let abandoned = false;

  // Listen for notices before claiming, so no announcement can slip between the two.
  const watching = notices
    ?.watch(identity, (n) => {
      if (abandoned) return;
      if (n.kind === 'takeover' && n.agentName === key.agentName && n.owner !== ownerId) {
        log.info({ newOwner: n.owner, fence: n.fence }, 'takeover notice received');
        ps.takenOver({ owner: n.owner, fence: n.fence });
      } else if (n.kind === 'forget') {
        log.info({}, 'identity forgotten: dropping this job\'s copy');
        ps.forgotten();
        // After any write still in flight, so the job's own copy is erased too. Only this job's:
        // the erasure itself is done, and a conversation started since in another job stays.
        void ps
          .drain()
          .then(() => store.forgetLocal(identity))
          .then(() => finish('ended'));
      }
    })
    .catch((err: unknown) => log.warn({ error: err instanceof Error ? err.message : 'unknown' }, 'session notices unavailable'));
  // The claim is not held (the lease is taken at once); the writes that follow wait for the
  // greeting. A hint's speculative arrival saves nothing before its participant links: its
  // hold's bound starts at the link.
  const hold = ps.holdWrites(fromDispatchHint ? null : ARRIVAL_WRITE_HOLD_MS);
  greetingOnItsWay = hold.release;
  // A speculation never takes over a conversation that is live in another job (another room,
  // tab or device): it claims only a free session, and yields otherwise.
  const claimed = fromDispatchHint ? ps.arriveIfFree() : ps.arrive();
  claimed.then(
    (a) => {
      if (a !== null) return;
      abandoned = true;
      offHealth();
      log.info({ fromDispatchHint }, 'the hinted session is live in another job: nothing claimed ahead of its participant');
    },
    () => undefined, // awaited in run() or abandon()
  );

  const abandon = async (): Promise<void> => {
    abandoned = true;
    offHealth();
    const held = (await claimed.catch(() => undefined)) !== null;
    await ps.abandon();
    if (held) log.info({}, 'claim dropped: its participant never linked');
  };

  return {
    abandon,
    claimed: () => claimed.then((a) => a !== null, () => true),
    shutdown: async () => {
      if (!linked) return abandon();
      await finish('agent_shutdown').catch(() => undefined);
      await ps.drain();
      offHealth();
    },
    run: (participant) => {
      linked = true;
      hold.bound(ARRIVAL_WRITE_HOLD_MS);
      return linkAndGreet(participant);
    },
  };

  async function linkAndGreet(participant: RemoteParticipant): Promise<void> {
    const linkedAtMs = systemClock.nowMs();
    log.info({}, 'participant linked');
    // Subscribed to its notices first when Redis answers, but never waited on past the greeting
    // bound: a Redis that stops answering without closing anything would hold the greeting for
    // minutes. A takeover the watch misses meanwhile is still caught by the lease.
    await bounded(watching ?? Promise.resolve(), config.greetingBoundMs).catch(() => log.warn({}, 'session notices not subscribed within the greeting bound: greeting anyway'));
    const got = await claimed;
    if (got === null) throw new Error('ran a speculative conversation that claimed nothing'); // runJob never does
    if (ps.isForgotten) {
      // Erased while a dispatch hint's claim waited for its participant: nothing of it is
      // restored or greeted (the greeting would speak the erased conversation); the job ends.
      log.info({}, 'identity forgotten before its participant linked: not greeted');
      await finish('ended');
      return;
    }
    if (ps.isTakenOver) {
      // A newer arrival elsewhere claimed the conversation while this claim was on its way: it
      // goes on there, and nothing is greeted here (the close is under way).
      log.info({}, 'taken over before its participant was greeted: not greeted');
      await finish('taken_over');
      return;
    }
    arrival = got;
    if (arrival.previousOwner !== null) void notices?.announceTakeover(key, ownerId, arrival.fence);

    const restored = arrival.resumed && arrival.record ? arrival.record : null;
    /** True once the arrival's greeting (or its refusal) is on its way. */
    let arrivalGreeted = false;
    // The receiver is created right after the agent; the agent's hook only runs once it exists.
    let receiver: ContextReceiver | undefined;
    const flushContext = async () => {
      await receiver?.flush();
    };
    const agent = new Assistant({
      chatCtx: restored ? historyToChatContext(restored.history) : llm.ChatContext.empty(),
      language: arrival.record?.language ?? null,
      beforeUserTurn: flushContext,
      history: () => ps.currentRecord?.history,
    });
    receiver = new ContextReceiver({
      participantIdentity: identity,
      sink: new AgentContextSink(agent),
      transport: messenger,
      logger: log,
      onChange: (snapshot) => ps.updateContext(snapshot),
    });
    if (restored) receiver.restore(restored.context);
    /**
     * Tells the model and the speech models the conversation's language changed to `tag`; with
     * null (a new conversation that knows none), back to no instruction and the agent's own
     * language, English, which its greetings fall back to.
     */
    const tellLanguage = (tag: string | null): Promise<void> => {
      models.useLanguage?.(tag ?? greetingLanguageOf(null));
      return agent.useLanguage(tag).catch((err: unknown) => log.warn({ err }, 'could not tell the model the language'));
    };
    /**
     * Learns the participant's language from their own words: what they type, always, and what
     * they say when the STT detects the language. Two messages in a row in another language
     * (unclear ones count for nothing) and it becomes the conversation's language.
     */
    const spoken = new SpokenLanguage(ps.currentRecord?.language ?? null);
    const learnLanguage = async (detected: string | null | undefined, from: 'speech' | 'text'): Promise<void> => {
      const adopted = spoken.observe(detected);
      if (adopted === null) return;
      log.info({ language: adopted, from }, 'participant uses another language: adopted');
      metrics.inc('pva_languages_adopted_total', { language: primaryLanguageOf(adopted) });
      ps.useLanguage(adopted);
      void status();
      await tellLanguage(adopted);
    };
    const unbridge = bridgeRoom(ctx.room, identity, receiver, metrics, log, {
      onLeft: (reason) => {
        log.info({ reason }, 'participant left');
        idle?.report({ type: 'participant_away' });
        metrics.gauge('pva_active_sessions', 0);
        ps.left(reason);
      },
      onRejoined: (participant) => {
        const facts = participantFacts(participant);
        const back = ps.rejoined({ language: parseLanguageTag(facts.language), chosen: facts.languageChosen === true, participantName: facts.name || null });
        if (back === undefined) return;
        if (back.startedOver) {
          // AlwaysFresh: a new conversation in this room. The model forgets the last one's turns and context.
          log.info({}, 'conversation started over in the room (AlwaysFresh)');
          void agent.updateChatCtx(llm.ChatContext.empty()).catch((err: unknown) => log.warn({ err }, 'could not clear the model\'s conversation'));
          receiver.clear();
          spoken.reset(ps.currentRecord?.language ?? null);
        }
        // Also to none: a kiosk's next visitor whose token says no language is not spoken to in
        // the last visitor's.
        const now = ps.currentRecord?.language ?? null;
        if (back.languageChanged) {
          log.info({ language: now, chosen: ps.currentRecord?.languageChosen === true }, 'participant came back with another language');
          spoken.reset(now);
          void tellLanguage(now);
        }
        metrics.gauge('pva_active_sessions', 1);
        idle?.report({ type: 'participant_back' });
        log.info({ greeting: back.greeting.kind }, 'participant rejoined');
        void status({ decision: { kind: back.decision.kind, why: back.decision.why }, greeting: back.greeting.kind });
        // A new connection before the arrival's own greeting went out (a reload while the claim
        // was still on its way) is greeted by that one: never two greetings for one arrival.
        if (back.speech !== null && arrivalGreeted) sayIfRunning(back.speech);
      },
    }, job.earlyContext);
    ctx.addShutdownCallback(async () => {
      unbridge();
      await receiver.close();
    });

    if (arrival.record?.language) models.useLanguage?.(arrival.record.language);
    const session = new voice.AgentSession({
      llm: models.llm,
      ...(models.stt ? { stt: models.stt } : {}),
      ...(models.tts ? { tts: models.tts } : {}),
      ...models.sessionOptions,
    });
    agentSession = session;
    session.on(voice.AgentSessionEventTypes.ConversationItemAdded, (ev) => {
      const turn = chatMessageToTurn(ev.item);
      if (turn) ps.persistTurn(turn);
    });
    // The idle rule's inputs: the participant speaking, and the agent busy or quiet.
    session.on(voice.AgentSessionEventTypes.UserStateChanged, (ev) => {
      if (ev.newState === 'speaking') idle?.report({ type: 'user_active' });
    });
    session.on(voice.AgentSessionEventTypes.AgentStateChanged, (ev) => {
      if (ev.newState === 'thinking' || ev.newState === 'speaking') idle?.report({ type: 'agent_busy' });
      else if (ev.newState === 'listening' || ev.newState === 'idle') idle?.report({ type: 'agent_quiet' });
    });
    session.on(voice.AgentSessionEventTypes.UserInputTranscribed, (ev) => {
      if (ev.transcript.trim() !== '') idle?.report({ type: 'user_active' });
      // What the participant speaks, as the STT detects it.
      if (models.sttDetectsLanguage && ev.isFinal && ev.transcript.trim() !== '') void learnLanguage(ev.language, 'speech');
    });
    session.on(voice.AgentSessionEventTypes.Close, (ev) => {
      log.info({ reason: ev.reason }, 'agent session closed');
      void finish('agent_shutdown');
    });
    const text = config.io === 'text';
    await session.start({
      agent,
      room: ctx.room,
      inputOptions: {
        participantIdentity: identity,
        audioEnabled: !text,
        textEnabled: true,
        // A refresh or drop must not end the conversation: the rejoin window decides (ParticipantSession).
        closeOnDisconnect: false,
        // Typed input: like the default, but pending dynamic context reaches the model first.
        textInputCallback: async (sess, ev) => {
          idle?.report({ type: 'user_active' });
          // Before the reply: a language adopted now is in the model's instructions for it.
          await learnLanguage(detectTextLanguage(ev.text), 'text');
          await flushContext();
          sess.interrupt();
          sess.generateReply({ userInput: ev.text });
        },
      },
      outputOptions: { audioEnabled: !text, transcriptionEnabled: true },
    });
    const { decision, greeting, speech } = arrival;
    if (decision.kind !== 'reject' && finishing === undefined) {
      idle = new IdleWatch(config.idle, systemClock, {
        checkIn: () => {
          log.info({}, 'participant silent: checking in');
          metrics.inc('pva_idle_total', { step: 'check_in' });
          sayIfRunning(idleCheckInText(ps.currentRecord?.language ?? null));
        },
        hangUp: () => {
          log.info({}, 'participant silent after the check-in: ending the call');
          metrics.inc('pva_idle_total', { step: 'hang_up' });
          void finish('idle');
        },
      });
    }
    // The greeting goes out first; nothing on its path waits for another round trip.
    // Not once the job is leaving (taken over, or erased, while the agent session started).
    const handle = speech !== null && finishing === undefined ? sayIfRunning(speech) : undefined;
    arrivalGreeted = true;
    if (handle) metrics.observe('pva_arrival_to_greeting_seconds', (systemClock.nowMs() - linkedAtMs) / 1000);
    metrics.gauge('pva_active_sessions', 1);
    // The status message and the queued context follow the greeting onto the wire instead of
    // queueing ahead of its first text (at most GREETING_HEAD_START_MS later).
    if (handle) await agentStartedSpeaking(session, handle, GREETING_HEAD_START_MS);
    greetingOnItsWay();
    await receiver.markReady();
    await status({
      decision: { kind: decision.kind, why: decision.why },
      greeting: greeting.kind,
      restoredTurns: restored?.history.turns.length ?? 0,
      ...(decision.kind === 'reject' ? { error: { code: 'resume_failed', message: speech ?? '' } } : {}),
    });
    log.info(
      { decision: decision.kind, why: decision.why, greeting: greeting.kind, restoredTurns: restored?.history.turns.length ?? 0, degraded: arrival.degraded },
      'arrival decided',
    );
    if (decision.kind === 'reject') {
      // AlwaysResume could not resume: the participant hears why, the session stays in Error,
      // and nothing was reset. The job then leaves; a retry dispatches a new one.
      await handle?.waitForPlayout().catch(() => undefined);
      // Marked and off the liveness list before the session closes (a closed session ends the
      // job as if shut down, leaving its entry to lapse): no agent is sent to refuse them again.
      await markLeavingOnPurpose(ctx.room, 'resume_failed', log);
      await job.alive?.stop();
      await closeAgentSession();
      ctx.shutdown('resume_failed');
    }
  }
}
