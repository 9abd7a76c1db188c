/**
 * The baseline of the greeting-latency benchmark: the same worker, models and I/O as
 * `agent/main.ts`, but with no persistence at all — it links the first participant and greets.
 *
 *   tsx bench/bare_agent.ts dev
 */
import { AutoSubscribe, ServerOptions, cli, defineAgent, voice, type AgentServer, type JobContext } from '@livekit/agents';
import { fileURLToPath } from 'node:url';
import { Assistant } from '../agent/assistant.js';
import { collectGarbage } from '../agent/heap.js';
import { loadConfig } from '../agent/config.js';
import { buildModels } from '../agent/models.js';
import { renderGreeting } from '../lib/session/greeting.js';

const config = loadConfig();

export default defineAgent({
  // Same process shape as agent/main.ts (which prewarms its store): pre-warmed job processes
  // with a settled heap, so the comparison measures persistence, not the heap settling.
  prewarm: async () => {
    collectGarbage();
  },
  entry: async (ctx: JobContext) => {
    await ctx.connect(undefined, AutoSubscribe.AUDIO_ONLY);
    const participant = await ctx.waitForParticipant();
    const models = buildModels(config);
    const session = new voice.AgentSession({
      llm: models.llm,
      ...(models.stt ? { stt: models.stt } : {}),
      ...(models.tts ? { tts: models.tts } : {}),
      ...models.sessionOptions,
    });
    session.on(voice.AgentSessionEventTypes.Close, () => ctx.shutdown());
    const text = config.io === 'text';
    await session.start({
      agent: new Assistant(),
      room: ctx.room,
      inputOptions: { participantIdentity: participant.identity, audioEnabled: !text },
      outputOptions: { audioEnabled: !text, transcriptionEnabled: true },
    });
    session.say(renderGreeting({ kind: 'first_time' })!);
  },
});

cli.runApp(
  new ServerOptions({
    agent: fileURLToPath(import.meta.url),
    agentName: config.agentName,
    wsURL: config.livekit.url,
    apiKey: config.livekit.apiKey,
    apiSecret: config.livekit.apiSecret,
    ...(config.worker.httpPort !== undefined ? { port: config.worker.httpPort } : {}),
    ...(config.worker.idleProcesses !== undefined ? { numIdleProcesses: config.worker.idleProcesses } : {}),
    ...(config.worker.maxJobs > 0 ? { loadFunc: async (server: AgentServer) => server.activeJobs.length / config.worker.maxJobs } : {}),
  }),
);
