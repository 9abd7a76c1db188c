/**
 * The project's processes built from environment variables alone, as an operator runs them:
 * a job's stores (`createJobStores(parseConfig(env))`, as `agent/main.ts` builds them) and the
 * sessions CLI (`tsx scripts/sessions.ts` in a child process with only the given variables).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseConfig } from '../../agent/config.js';
import { createJobStores, type JobStores } from '../../agent/store.js';
import { silentLogger } from '../../lib/logger.js';
import { TEST_GREETING_BOUND_MS } from './env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** LiveKit variables the worker's configuration requires (no server is contacted). */
export const LIVEKIT_ENV = { LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret-secret-secret-secret-secret-0123' };

/** Job stores built from variables; {@link close} disposes of every one made. */
export class JobStoresFromEnv {
  private readonly made: JobStores[] = [];

  /** A job's stores from `env` (with {@link LIVEKIT_ENV} and {@link TEST_GREETING_BOUND_MS} unless `env` says otherwise). */
  make(env: Record<string, string>): JobStores {
    const stores = createJobStores(parseConfig({ ...LIVEKIT_ENV, STORE_GREETING_BOUND_MS: TEST_GREETING_BOUND_MS, ...env }), silentLogger);
    this.made.push(stores);
    return stores;
  }

  async close(): Promise<void> {
    for (const j of this.made.splice(0)) {
      await j.store.dispose();
      await j.notices?.close();
    }
  }
}

/** Runs `npm run sessions -- <args>` (tsx scripts/sessions.ts) with only `env` (no `.env`); bound 30 s. */
export async function runSessionsCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const fullEnv = { PATH: process.env.PATH, HOME: process.env.HOME, PVA_ENV_FILE: '', ...env };
  return promisify(execFile)(`${root}/node_modules/.bin/tsx`, ['scripts/sessions.ts', ...args], { cwd: root, env: fullEnv, encoding: 'utf8', timeout: 30_000 }).then(
    (ok) => ({ code: 0, stdout: ok.stdout, stderr: ok.stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  );
}
