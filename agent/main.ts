/**
 * The worker: `defineAgent({ prewarm, entry })` + `cli.runApp`. Wiring only.
 *
 *   tsx agent/main.ts dev | start | connect --room <name>
 *   node dist/agent/main.js start
 */
import { ServerOptions, cli, defineAgent, log, type AgentServer, type JobContext, type JobProcess } from '@livekit/agents';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { largestSkewMs } from '../lib/store/clock_skew.js';
import { watchRedis } from '../lib/store/redis_watch.js';
import { redisTarget } from '../lib/store/redis_connection.js';
import { loadConfig, type Config } from './config.js';
import { runJob } from './job.js';
import { collectGarbage } from './heap.js';
import { JobMetrics, MetricsHub } from './metrics.js';
import { createJobStores, warmUp, type JobStores } from './store.js';

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
const thisFile = fileURLToPath(import.meta.url);
/** True in the worker process; job (and inference) processes run the framework's `*_proc_lazy_main` entry. */
const isWorkerProcess = !/_proc_lazy_main\.[cm]?js$/.test(process.argv[1] ?? '');

type ProcData = { stores: JobStores };

export default defineAgent<ProcData>({
  // Runs in each job process before its job (pre-warmed in `start`): connect to Redis early and
  // settle the heap, so the first arrival pays for neither.
  prewarm: async (proc: JobProcess<ProcData>) => {
    const logger = log().child({ component: 'store' }) as unknown as Logger;
    proc.userData.stores = createJobStores(config, logger);
    await warmUp(proc.userData.stores, config.policy);
    collectGarbage();
  },
  entry: async (ctx: JobContext<ProcData>) => {
    const logger = log().child({ room: ctx.job.room?.name, jobId: ctx.job.id }) as unknown as Logger;
    const stores = ctx.proc.userData.stores ?? createJobStores(config, logger);
    await runJob(ctx, config, logger, stores, new JobMetrics());
  },
});

let hub: MetricsHub | undefined;
if (isWorkerProcess && config.metrics.port > 0) {
  // Before cli.runApp forks any job process, so every job inherits the hub's socket path.
  hub = new MetricsHub();
  const port = await hub.start(config.metrics.port, config.metrics.host);
  process.stderr.write(`persistent-voice-agent: metrics on http://${config.metrics.host}:${port}/metrics\n`);
}

// In job processes commander finds no subcommand and does nothing (livekit-agents-notes §1).
cli.runApp(
  new ServerOptions({
    agent: thisFile,
    agentName: config.agentName,
    wsURL: config.livekit.url,
    apiKey: config.livekit.apiKey,
    apiSecret: config.livekit.apiSecret,
    ...(config.worker.loadThreshold !== undefined ? { loadThreshold: config.worker.loadThreshold } : {}),
    ...(config.worker.idleProcesses !== undefined ? { numIdleProcesses: config.worker.idleProcesses } : {}),
    ...(config.worker.httpPort !== undefined ? { port: config.worker.httpPort } : {}),
    initializeProcessTimeout: config.worker.initTimeoutMs,
    ...(config.worker.maxJobs > 0 ? { loadFunc: async (server: AgentServer) => server.activeJobs.length / config.worker.maxJobs } : {}),
  }),
);

// Once per worker (its jobs share the same Redis and clock; asked again until it answers, then
// every REDIS_POLICY_CHECK_MS): a Redis that evicts keys when full loses conversations without an
// error, and a clock that disagrees with Redis's misreads what other workers stamped. `runApp`
// has set up the logger by now for `start`, `dev` and `connect` (`log()` throws when no command
// set it up: then there is no worker to warn about).
if (isWorkerProcess && config.redis !== undefined && ['start', 'dev', 'connect'].includes(process.argv[2] ?? '')) {
  const storeLog = (() => {
    try {
      return log().child({ component: 'store' }) as unknown as Logger;
    } catch {
      return undefined;
    }
  })();
  if (storeLog !== undefined) {
    watchRedis(redisTarget(config.redis), storeLog, {
      recheckMs: config.redisPolicyCheckMs,
      onRisks: (risks) => hub?.state.apply({ t: 'gauge', name: 'pva_redis_evicting_masters', value: risks.length }, 0),
      clock: { onSkew: (skews) => hub?.state.apply({ t: 'gauge', name: 'pva_clock_skew_seconds', value: largestSkewMs(skews) / 1000 }, 0) },
    });
  }
}
