/**
 * The worker: `defineAgent({ prewarm, entry })` + `cli.runApp`. Wiring only.
 *
 *   tsx agent/main.ts dev | start | connect --room <name>
 *   node dist/agent/main.js start
 */
import { AutoSubscribe, ServerOptions, cli, defineAgent, log, type JobContext } from '@livekit/agents';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../lib/errors.js';
import { loadConfig, type Config } from './config.js';
import { runJob } from './job.js';

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      // One clear line naming the variable, then a non-zero exit: nothing can run without it.
      process.stderr.write(`persistent-voice-agent: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

const config = configOrExit();

export default defineAgent({
  entry: async (ctx: JobContext) => {
    const logger = log().child({ room: ctx.job.room?.name, jobId: ctx.job.id });
    await ctx.connect(undefined, AutoSubscribe.AUDIO_ONLY);
    await runJob(ctx, config, logger);
  },
});

// Runs in the worker process; in job child processes commander finds no subcommand and does
// nothing (see livekit-agents-notes §1).
cli.runApp(
  new ServerOptions({
    agent: fileURLToPath(import.meta.url),
    agentName: config.agentName,
    wsURL: config.livekit.url,
    apiKey: config.livekit.apiKey,
    apiSecret: config.livekit.apiSecret,
    ...(config.worker.loadThreshold !== undefined ? { loadThreshold: config.worker.loadThreshold } : {}),
    ...(config.worker.idleProcesses !== undefined ? { numIdleProcesses: config.worker.idleProcesses } : {}),
  }),
);
