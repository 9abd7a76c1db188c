/**
 * The README's first command, `npm run dev`, run as a fresh clone runs it (no `.env`, no model
 * credentials): it starts its own livekit-server (livekit.yaml, 127.0.0.1:7880), the token
 * service and web client, and a worker in dev mode. A visitor gets an identity and a token from
 * the token service, joins, and is greeted by the agent, which answers typed text in offline
 * mode. Ctrl-C stops everything it started: no process is left holding a port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { OFFLINE_REPLY_PREFIX } from '../../agent/offline_llm.js';
import { DisconnectReason, TestParticipant } from '../support/participant.js';
import { freeTcpPort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const redisUrl = inject('redisUrl');
const prefix = `pva-dev-${Math.random().toString(36).slice(2, 8)}:`;
/** The ports livekit.yaml gives the development server. */
const DEV_TCP_PORTS = [7880, 7881];

/** True when nothing listens on 127.0.0.1:`port`. */
function tcpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A checkout as a fresh clone has it: every top-level entry of this one, linked, except `.env`
 * (a developer's own settings) and `.git`. `scripts/dev.sh` works from its own folder.
 */
function freshCheckout(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pva-dev-'));
  for (const entry of readdirSync(repoRoot)) {
    if (entry !== '.env' && entry !== '.git') symlinkSync(join(repoRoot, entry), join(dir, entry));
  }
  return dir;
}

/** The environment of a shell with nothing of this project's configured, but Redis and ports. */
function devEnv(webPort: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(LIVEKIT_|OPENAI_|REDIS_|WEB_|AGENT_|MODEL_|VITEST|NODE_ENV$)/.test(k)) env[k] = v;
  }
  return { ...env, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, WEB_PORT: String(webPort) };
}

let dev: ChildProcess | undefined;
let checkout: string | undefined;
const joined: TestParticipant[] = [];

afterAll(async () => {
  for (const p of joined) await p.leave().catch(() => undefined);
  if (dev?.pid !== undefined && groupAlive(dev.pid)) process.kill(-dev.pid, 'SIGKILL');
  if (checkout !== undefined) rmSync(checkout, { recursive: true, force: true });
  const admin = new Redis(redisUrl);
  const keys = await admin.keys(`${prefix}*`);
  if (keys.length > 0) await admin.unlink(...keys);
  admin.disconnect();
});

describe('npm run dev', () => {
  it('starts livekit-server, the token service with the web client, and a worker; a visitor is greeted and answered; Ctrl-C stops all of it', async () => {
    for (const port of DEV_TCP_PORTS) {
      if (!(await tcpPortFree(port))) throw new Error(`127.0.0.1:${port} is in use (another \`npm run dev\`?): this test starts the development livekit-server there`);
    }
    const webPort = await freeTcpPort();
    const web = `http://127.0.0.1:${webPort}`;
    checkout = freshCheckout();
    const output: string[] = [];
    dev = spawn('npm', ['run', 'dev'], { cwd: checkout, env: devEnv(webPort), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    dev.stdout?.on('data', (b: Buffer) => output.push(b.toString()));
    dev.stderr?.on('data', (b: Buffer) => output.push(b.toString()));

    try {
      // The web client's page, served by the token service.
      const page = await waitFor(
        'the web client page',
        async () => {
          const res = await fetch(`${web}/`).catch(() => undefined);
          return res?.ok ? res.text() : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 200 },
      );
      expect(page).toMatch(/<html/i);
      // As someone at the terminal would, wait until the worker says it is registered: a room
      // created before that gets no automatic dispatch (the web client would ask for the agent
      // after 12 s, `POST /api/agent`; this visitor is a plain participant).
      await waitFor('the worker to register', () => output.join('').includes('registered worker'), { timeoutMs: 90_000, intervalMs: 200 });

      // A visitor: an identity, then a token for a new room on the development server.
      const post = async (path: string, body: unknown) => {
        const res = await fetch(`${web}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const id = await post('/api/identity', {});
      expect(id.status).toBe(201);
      const tok = await post('/api/token', { identity: id.body.identity, deviceSecret: id.body.deviceSecret });
      expect(tok.status).toBe(200);
      expect(tok.body.url).toBe('ws://127.0.0.1:7880');

      const visitor = await TestParticipant.joinWithToken(String(tok.body.url), String(tok.body.token), String(id.body.identity));
      joined.push(visitor);
      const greeted = await visitor.statusMatching((m) => m.greeting !== undefined, { timeoutMs: 90_000 });
      expect(greeted).toMatchObject({ greeting: 'first_time', decision: { kind: 'fresh', why: 'new_identity' } });
      await visitor.nthText(1);
      // livekit-server's webhooks reach the token service on its port (WEB_PORT, not 8080).
      await waitFor('the token service to get webhooks', () => output.join('').includes('LiveKit webhooks arriving'), { timeoutMs: 30_000, intervalMs: 200 });
      const before = visitor.texts.length;
      await visitor.say('Hello from the dev command test.');
      const answer = await visitor.textMatching(/Hello from the dev command test/, { from: before });
      expect(answer.text.startsWith(OFFLINE_REPLY_PREFIX)).toBe(true);
      await visitor.leave();
      expect(visitor.disconnectReason).toBe(DisconnectReason.CLIENT_INITIATED);

      // Ctrl-C in the terminal: the whole process group gets SIGINT.
      process.kill(-(dev.pid as number), 'SIGINT');
      await waitFor('npm run dev to exit', () => dev?.exitCode !== null || dev?.signalCode !== null, { timeoutMs: 30_000 });
      // Nothing it started is left: the process group is empty.
      await waitFor('every process npm run dev started to exit', () => !groupAlive(dev?.pid as number), { timeoutMs: 15_000 });
      for (const port of [...DEV_TCP_PORTS, webPort]) {
        await waitFor(`127.0.0.1:${port} to be free again`, () => tcpPortFree(port), { timeoutMs: 15_000 });
      }
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- npm run dev said:\n${output.join('').slice(-4000)}`);
    }
  });
});
