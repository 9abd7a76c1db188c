/**
 * `scripts/ensure_redis.sh` (run by `npm test` and `npm run dev`) as an operator meets it: a
 * configured `REDIS_URL` whose Redis wants a password is used, not swapped for another Redis,
 * nor is one reached over TLS, and the password never reaches the script's messages.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedis, canStartRedis, freePort, tlsServerArgs } from '../lib/store/private_redis.js';

// Never a skip: `npm test` (scripts/ensure_redis.sh) installs Debian's redis-server when it is missing.
if (!canStartRedis()) throw new Error('the ensure_redis test needs the redis-server binary (apt-get install redis-server)');

const root = fileURLToPath(new URL('../..', import.meta.url));
const PASSWORD = 'pw-0f1e2d3c4b5a';
/** Bound of one script run, ms. */
const SCRIPT_DEADLINE_MS = 20_000;

/** Runs the script with `REDIS_URL`; its stdout (the URL it settled on) and stderr. */
async function ensureRedis(redisUrl: string): Promise<{ stdout: string; stderr: string }> {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', REDIS_URL: redisUrl, PVA_NO_REDIS_INSTALL: '1' };
  const r = await promisify(execFile)('bash', ['scripts/ensure_redis.sh'], { cwd: root, env, encoding: 'utf8', timeout: SCRIPT_DEADLINE_MS });
  return { stdout: r.stdout.trim(), stderr: r.stderr };
}

/** Stops a Redis the script started itself (when nothing answered on 6379 either). */
function stopStartedBy(url: string): void {
  const port = /:(\d+)$/.exec(url)?.[1];
  const pidFile = `${root}/.tools/redis-${port}.pid`;
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()));
    rmSync(pidFile);
  } catch {
    // Not one it started.
  }
}

describe('ensure_redis.sh', () => {
  let redis: PrivateRedis;
  let tls: PrivateRedis;
  let tlsPort: number;
  beforeAll(async () => {
    redis = new PrivateRedis(await freePort(), [], { password: PASSWORD });
    tlsPort = await freePort();
    tls = new PrivateRedis(await freePort(), tlsServerArgs(tlsPort));
    await Promise.all([redis.start(), tls.start()]);
  });
  afterAll(async () => {
    await Promise.all([redis.kill(), tls.kill()]);
  });

  it('uses a configured Redis that wants a password, with the password the URL carries', async () => {
    const url = `redis://:${PASSWORD}@127.0.0.1:${redis.port}`;
    const r = await ensureRedis(url);
    expect(r.stdout).toBe(url);
    expect(r.stderr).toBe('');
  });

  it('uses a configured Redis reached over TLS (rediss://)', async () => {
    const url = `rediss://127.0.0.1:${tlsPort}`;
    const r = await ensureRedis(url);
    expect(r.stdout).toBe(url);
    expect(r.stderr).toBe('');
  });

  it('when the configured Redis does not answer (a wrong password), says which host and port, never the password', async () => {
    const wrong = 'wrong-secret-9a8b7c';
    const r = await ensureRedis(`redis://:${wrong}@127.0.0.1:${redis.port}`);
    stopStartedBy(r.stdout);
    expect(r.stdout).not.toContain(wrong);
    expect(r.stderr).toContain(`127.0.0.1:${redis.port}`);
    expect(r.stderr).toMatch(/does not answer/);
    expect(r.stderr).not.toContain(wrong);
  });
});
