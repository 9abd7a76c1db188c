/**
 * Starts the agent worker the way a user does (`tsx agent/main.ts dev|start`) as a real
 * process group, waits for it to register with livekit-server, and stops or kills it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TEST_GREETING_BOUND_MS } from './env.js';
import { freeTcpPort } from './ports.js';
import { waitFor } from './wait.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** The worker's environment for a livekit-server (and, for explicit dispatch, its agent name). */
export function livekitEnv(server: { url: string; apiKey: string; apiSecret: string }, agentName?: string): Record<string, string> {
  return {
    LIVEKIT_URL: server.url,
    LIVEKIT_API_KEY: server.apiKey,
    LIVEKIT_API_SECRET: server.apiSecret,
    ...(agentName === undefined ? {} : { LIVEKIT_AGENT_NAME: agentName }),
  };
}

/** A running worker process. */
export interface WorkerProcess {
  process: ChildProcess;
  /** Everything it printed (stdout + stderr). */
  output(): string;
  /** Waits for a line matching `re` in its output. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<true>;
  /** Graceful stop (SIGINT to the CLI, which closes its jobs), then SIGKILL after a bound. */
  stop(): Promise<void>;
  /** SIGKILL to the whole process group: the worker and every job child die at once. */
  kill(): Promise<void>;
  /**
   * SIGTERM to the worker process alone, as a deploy stops it: in `start` mode it takes no new
   * job, lets its running jobs finish, then exits. Does not wait.
   */
  terminate(): void;
}

/** Options for {@link startWorker}. */
export interface StartWorkerOptions {
  env: Record<string, string>;
  /** CLI subcommand. @default 'dev' */
  mode?: 'dev' | 'start';
  /** Wait for registration. @default true */
  waitRegistered?: boolean;
  /** The agent file to run. @default 'agent/main.ts' */
  entry?: string;
}

/** Spawns `tsx agent/main.ts <mode>` in its own process group. */
export async function startWorker(opts: StartWorkerOptions): Promise<WorkerProcess> {
  // `start` serves a health endpoint on 8081 by default: give each worker its own port. A port
  // found free can be taken before the worker listens on it (it is in the ephemeral range, where
  // outgoing connections get their ports): then the worker exits with EADDRINUSE, and another
  // port is tried.
  const ownPort = (opts.mode ?? 'dev') === 'start' && opts.env.WORKER_HTTP_PORT === undefined;
  for (let attempt = 1; ; attempt++) {
    const env = ownPort ? { ...opts.env, WORKER_HTTP_PORT: String(await freeTcpPort()) } : opts.env;
    try {
      return await spawnWorker({ ...opts, env });
    } catch (err) {
      if (!ownPort || attempt >= 3 || !/EADDRINUSE/.test(String(err))) throw err;
    }
  }
}

async function spawnWorker({ env, mode = 'dev', waitRegistered = true, entry = 'agent/main.ts' }: StartWorkerOptions): Promise<WorkerProcess> {
  const tsx = `${repoRoot}/node_modules/.bin/tsx`;
  const proc = spawn(tsx, [entry, mode, '--log-level', env.LOG_LEVEL ?? 'debug'], {
    cwd: repoRoot,
    // Load = jobs / 50: the 2-core test machine's CPU must not stop LiveKit from dispatching.
    // The greeting-path bound of tests (see TEST_GREETING_BOUND_MS) unless `env` sets one.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PVA_ENV_FILE: '', NODE_ENV: 'test', WORKER_MAX_JOBS: '50', STORE_GREETING_BOUND_MS: TEST_GREETING_BOUND_MS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 4_000_000) out = out.slice(-2_000_000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  let exited = false;
  // Each worker's output lands in .tools/test-logs/ (git-ignored) when it exits, for diagnosis.
  const logDir = `${repoRoot}/.tools/test-logs`;
  const exitP = new Promise<void>((r) =>
    proc.once('exit', () => {
      exited = true;
      try {
        mkdirSync(logDir, { recursive: true });
        writeFileSync(`${logDir}/worker-${env.LIVEKIT_AGENT_NAME ?? 'auto'}-${proc.pid}.log`, out);
      } catch {
        /* diagnosis only */
      }
      r();
    }),
  );
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-proc.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  const w: WorkerProcess = {
    process: proc,
    output: () => out,
    waitForOutput: (re, timeoutMs = 30_000) =>
      waitFor(`worker output ${re}`, () => {
        if (re.test(out)) return true;
        if (exited) throw new Error(`worker exited:\n${out.slice(-3000)}`);
        return false;
      }, { timeoutMs }),
    stop: async () => {
      if (exited) return;
      killGroup('SIGINT');
      const t = setTimeout(() => killGroup('SIGKILL'), 8000);
      await exitP;
      clearTimeout(t);
      killGroup('SIGKILL'); // any job child left behind
    },
    kill: async () => {
      killGroup('SIGKILL');
      await exitP;
    },
    terminate: () => {
      if (!exited) proc.kill('SIGTERM');
    },
  };
  if (waitRegistered) {
    // A worker that exits before registering fails at once, with its output.
    const exitedFirst = exitP.then(() => {
      throw new Error(`worker exited before registering:\n${out.slice(-3000)}`);
    });
    exitedFirst.catch(() => undefined);
    await Promise.race([w.waitForOutput(/registered worker/, 60_000), exitedFirst]);
  }
  return w;
}
