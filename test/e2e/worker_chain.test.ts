/**
 * The whole chain, for real: a real livekit-server (global setup), the worker started as a
 * user starts it, a participant joined with @livekit/rtc-node and a token from
 * livekit-server-sdk; explicit dispatch; greeting on lk.transcription; text on lk.chat → reply.
 */
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TestParticipant, type ServerInfo } from '../support/participant.js';
import { PrivateRedis, freePort } from '../lib/store/private_redis.js';
import { waitFor } from '../support/wait.js';
import { REPO_ROOT } from '../../web/server/build_client.js';
import { livekitEnv, startWorker, type WorkerProcess } from '../support/worker.js';

const server: ServerInfo = { url: inject('livekitUrl'), apiKey: inject('livekitApiKey'), apiSecret: inject('livekitApiSecret') };
const agentName = `e2e-chain-${Math.random().toString(36).slice(2, 8)}`;
let worker: WorkerProcess;

beforeAll(async () => {
  worker = await startWorker({ env: livekitEnv(server, agentName) });
});

afterAll(async () => {
  await worker?.stop();
});

describe('worker on a real livekit-server', () => {
  it('is dispatched, greets the participant, and replies to text', async () => {
    const room = `chain-${Date.now()}`;
    const p = await TestParticipant.join(server, { identity: `user-${Date.now()}`, room, agentName });
    try {
      const greeting = await p.nthText(1, 60_000);
      expect(greeting.text).toMatch(/glad you're here/i);
      expect(greeting.from).toMatch(/^agent-/);
      console.log(`[figure] join → first greeting text: ${greeting.atMs - p.joinedAtMs} ms`);

      await p.say('What is the capital of France?');
      const reply = await p.textMatching(/offline mode/i, { from: 1 });
      // Offline text mode says so plainly and shows it heard the question.
      expect(reply.text).toContain('What is the capital of France?');
    } finally {
      await p.leave();
    }
  });
});

describe('automatic dispatch (no agent name: the Agents Playground case)', () => {
  it('joins any new room without an explicit dispatch and greets', async () => {
    const auto = await startWorker({
      env: livekitEnv(server),
    });
    try {
      const p = await TestParticipant.join(server, { identity: `playground-${Date.now()}`, room: `auto-${Date.now()}` });
      try {
        expect((await p.nthText(1, 60_000)).text).toMatch(/glad you're here/i);
      } finally {
        await p.leave();
      }
    } finally {
      await auto.stop();
    }
  });
});

describe('a job process that cannot start in time (WORKER_INIT_TIMEOUT_MS)', () => {
  it('fails its job when the bound is too short for any start: the bound reaches agents-js', async () => {
    const name = `${agentName}-init`;
    const impatient = await startWorker({ env: { ...livekitEnv(server, name), WORKER_INIT_TIMEOUT_MS: '1' } });
    try {
      const p = await TestParticipant.join(server, { identity: `late-${Date.now()}`, room: `init-${Date.now()}`, agentName: name });
      try {
        await impatient.waitForOutput(/runner initialization timed out/, 60_000);
        expect(p.agent()).toBeUndefined();
      } finally {
        await p.leave();
      }
    } finally {
      await impatient.stop();
    }
  });
});

describe('a worker on a Redis that evicts keys when full', () => {
  it('warns once at start, naming the server and its policy, still serves, and sees the policy fixed later', async () => {
    const redis = new PrivateRedis(await freePort(), ['--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru']);
    await redis.start();
    const name = `${agentName}-evict`;
    const metricsPort = await freePort();
    const w = await startWorker({ env: { ...livekitEnv(server, name), REDIS_URL: redis.url, METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1', REDIS_POLICY_CHECK_MS: '500' } });
    try {
      await w.waitForOutput(/Redis may evict session data when it is full/, 30_000);
      expect(w.output()).toContain(`127.0.0.1:${redis.port}`);
      expect(w.output()).toContain('volatile-lru');
      // For alerting: the worker's /metrics counts the masters that may evict.
      await waitFor('the evicting-masters gauge', async () => /^pva_redis_evicting_masters 1$/m.test(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()));
      const p = await TestParticipant.join(server, { identity: `evict-${Date.now()}`, room: `evict-${Date.now()}`, agentName: name });
      try {
        expect((await p.nthText(1, 60_000)).text).toMatch(/glad you're here/i);
      } finally {
        await p.leave();
      }
      // Once per worker, not once per job process, and not again while nothing changes.
      expect(w.output().match(/Redis may evict session data/g)).toHaveLength(1);
      // The operator fixes Redis while the worker runs: the worker notices without a restart.
      const admin = new Redis(redis.url);
      try {
        await admin.config('SET', 'maxmemory-policy', 'noeviction');
      } finally {
        admin.disconnect();
      }
      await waitFor('the gauge to drop', async () => /^pva_redis_evicting_masters 0$/m.test(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()));
      await w.waitForOutput(/no master evicts any more/, 10_000);
      expect(w.output().match(/Redis may evict session data/g)).toHaveLength(1);
      // Its clock is in step with Redis's (the same machine): measured, not warned about.
      const skew = Number(/^pva_clock_skew_seconds (\S+)$/m.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1]);
      expect(Math.abs(skew)).toBeLessThan(0.1);
      expect(w.output()).not.toMatch(/clock disagrees with Redis/);
    } finally {
      await w.stop();
      await redis.kill();
    }
  });
});

describe('a worker whose clock is off (its NTP stopped)', () => {
  it('warns once that its clock disagrees with Redis, reports how far on /metrics, and still serves', async () => {
    // libfaketime sets the worker's clock (and its job processes') 7 s behind the machine's.
    const libfaketime = execFileSync('bash', ['scripts/ensure_faketime.sh'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').at(-1) ?? '';
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    const name = `${agentName}-clock`;
    const metricsPort = await freePort();
    const w = await startWorker({ env: { ...livekitEnv(server, name), REDIS_URL: redis.url, METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1', LD_PRELOAD: libfaketime, FAKETIME: '-7s' } });
    try {
      await w.waitForOutput(/clock disagrees with Redis's by more than a second/, 30_000);
      expect(w.output()).toContain(`127.0.0.1:${redis.port}`);
      const skew = async () => Number(/^pva_clock_skew_seconds (\S+)$/m.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1]);
      await waitFor('the skew gauge', async () => Math.abs((await skew()) + 7) < 0.5);
      const p = await TestParticipant.join(server, { identity: `clock-${Date.now()}`, room: `clock-${Date.now()}`, agentName: name });
      try {
        expect((await p.nthText(1, 60_000)).text).toMatch(/glad you're here/i);
      } finally {
        await p.leave();
      }
      // Once per worker, not once per job process.
      expect(w.output().match(/clock disagrees with Redis/g)).toHaveLength(1);
    } finally {
      await w.stop();
      await redis.kill();
    }
  });
});
