/**
 * One job = one room. Waits for the participant, starts the `AgentSession` and greets.
 */
import { voice, type JobContext } from '@livekit/agents';
import type { Logger } from '../lib/logger.js';
import { pii } from '../lib/logger.js';
import { Assistant } from './assistant.js';
import type { Config } from './config.js';
import { buildModels } from './models.js';

/** Greeting for a first-time participant. */
export const FIRST_TIME_GREETING = 'Hello! Nice to meet you. How can I help you today?';

/** Runs the job until the session closes. */
export async function runJob(ctx: JobContext, config: Config, logger: Logger): Promise<void> {
  const models = buildModels(config);
  logger.info({ models: models.label, store: config.redis ? 'redis' : 'memory' }, 'job started');
  const participant = await ctx.waitForParticipant();
  logger.info({ ...pii({ identity: participant.identity }) }, 'participant linked');

  const session = new voice.AgentSession({
    llm: models.llm,
    ...(models.stt ? { stt: models.stt } : {}),
    ...(models.tts ? { tts: models.tts } : {}),
    ...models.sessionOptions,
  });
  session.on(voice.AgentSessionEventTypes.Close, (ev) => {
    logger.info({ reason: ev.reason }, 'session closed');
    ctx.shutdown(String(ev.reason));
  });
  const text = config.io === 'text';
  await session.start({
    agent: new Assistant(),
    room: ctx.room,
    inputOptions: { participantIdentity: participant.identity, audioEnabled: !text, textEnabled: true },
    outputOptions: { audioEnabled: !text, transcriptionEnabled: true },
  });
  session.say(FIRST_TIME_GREETING);
}
