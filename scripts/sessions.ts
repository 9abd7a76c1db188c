/**
 * Inspect and erase sessions in the shared store (Redis).
 *
 *   npm run sessions -- list [--count 50]
 *   npm run sessions -- show --identity alice [--agent my-agent]
 *   npm run sessions -- forget --identity alice        # every agent; also tells live jobs
 *
 * Reads REDIS_URL and REDIS_KEY_PREFIX (environment or .env). Prints JSON lines.
 */
import dotenv from 'dotenv';
import { parseArgs } from 'node:util';
import { RedisSessionStore } from '../lib/store/redis_session_store.js';
import { SessionNotices, forgetIdentity } from '../lib/store/session_notices.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    identity: { type: 'string' },
    agent: { type: 'string', default: process.env.LIVEKIT_AGENT_NAME || 'default' },
    count: { type: 'string', default: '100' },
  },
});

function fail(msg: string): never {
  process.stderr.write(`sessions: ${msg}\n`);
  process.exit(2);
}

dotenv.config({ path: '.env', quiet: true });
const url = process.env.REDIS_URL;
if (!url) fail('REDIS_URL is not set (sessions live in the shared store only when the worker uses Redis)');
const prefix = process.env.REDIS_KEY_PREFIX || 'pva:';
const command = positionals[0];
if (!['list', 'show', 'forget'].includes(command ?? '')) fail('usage: sessions list | show --identity <id> [--agent <name>] | forget --identity <id>');
const count = Number(values.count);
if (!Number.isInteger(count) || count <= 0) fail('--count must be a positive integer');

const store = new RedisSessionStore({ url, prefix, commandTimeoutMs: 2_000 });
const out = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
try {
  if (command === 'list') {
    let cursor: string | null = null;
    let shown = 0;
    do {
      const page = await store.listSessions({ cursor, count: Math.min(count, 500) });
      for (const key of page.items) {
        if (shown++ >= count) break;
        const r = await store.readRecord(key);
        out(r.status === 'found'
          ? { ...key, sessionId: r.record.sessionId, state: r.record.state, turns: r.record.history.turns.length, lastSeenAt: new Date(r.record.lastSeenAt).toISOString(), visitCount: r.record.visitCount }
          : { ...key, status: r.status });
      }
      cursor = page.cursor;
    } while (cursor !== null && shown < count);
  } else {
    const identity = values.identity ?? fail('--identity is required');
    if (command === 'show') {
      const key = { agentName: values.agent!, identity };
      const [record, profile, archive] = await Promise.all([store.readRecord(key), store.readProfile(key), store.readArchive(key, Date.now())]);
      out({ record, profile, archive: archive.map((a) => ({ sessionId: a.sessionId, archivedAt: new Date(a.archivedAtMs).toISOString(), turns: a.record?.history.turns.length ?? null })) });
    } else {
      const notices = new SessionNotices({ url, prefix });
      try {
        out({ forgotten: true, ...(await forgetIdentity(store, notices, identity)) });
      } finally {
        await notices.close();
      }
    }
  }
} finally {
  await store.dispose();
}
