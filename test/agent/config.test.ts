import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config.js';
import { ConfigError } from '../../lib/errors.js';

const base = { LIVEKIT_URL: 'ws://127.0.0.1:7880', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret' };
/** The test CA's PEM file (`test/fixtures/tls`). */
const TEST_CA = fileURLToPath(new URL('../fixtures/tls/ca.crt', import.meta.url));

describe('parseConfig', () => {
  it('accepts the minimal environment: offline text mode, automatic dispatch, memory only', () => {
    const c = parseConfig(base);
    expect(c.livekit).toEqual({ url: 'ws://127.0.0.1:7880', apiKey: 'devkey', apiSecret: 'secret' });
    expect(c.agentName).toBe('');
    expect(c.redis).toBeUndefined();
    expect(c.modelMode).toBe('offline');
    expect(c.io).toBe('text');
    expect(c.metrics.port).toBe(0);
    expect(c.policy).toMatchObject({ resumePolicy: 'ResumeIfPossible', rejoinTtlMs: 60_000, sessionTtlMs: 1_800_000 });
    expect(c.encryptionKeys).toBeUndefined();
    expect(c.worker.initTimeoutMs).toBe(30_000);
  });

  it('0 means off or the default where the README says so: METRICS_PORT (off), WORKER_MAX_JOBS (machine CPU), WORKER_HTTP_PORT (agents-js\'s port)', () => {
    const c = parseConfig({ ...base, METRICS_PORT: '0', WORKER_MAX_JOBS: '0', WORKER_HTTP_PORT: '0' });
    expect(c.metrics.port).toBe(0);
    expect(c.worker).toMatchObject({ maxJobs: 0, httpPort: undefined });
    const set = parseConfig({ ...base, METRICS_PORT: '9464', WORKER_MAX_JOBS: '8', WORKER_HTTP_PORT: '8081', WORKER_IDLE_PROCESSES: '2' });
    expect(set.metrics.port).toBe(9464);
    expect(set.worker).toMatchObject({ maxJobs: 8, httpPort: 8081, idleProcesses: 2 });
    expect(parseConfig(base).worker.idleProcesses).toBeUndefined();
  });

  it('WORKER_INIT_TIMEOUT_MS sets how long a job process may take to start', () => {
    expect(parseConfig({ ...base, WORKER_INIT_TIMEOUT_MS: '60000' }).worker.initTimeoutMs).toBe(60_000);
  });

  it('REDIS_POLICY_CHECK_MS sets how often Redis\'s memory policy is read again (5 min; 0 = only at start)', () => {
    expect(parseConfig(base).redisPolicyCheckMs).toBe(300_000);
    expect(parseConfig({ ...base, REDIS_POLICY_CHECK_MS: '60000' }).redisPolicyCheckMs).toBe(60_000);
    expect(parseConfig({ ...base, REDIS_POLICY_CHECK_MS: '0' }).redisPolicyCheckMs).toBe(0);
  });

  it('IDLE_CHECK_IN_MS and IDLE_HANG_UP_MS set the idle rule (2 min, then 30 s; 0 turns a step off); anything else is refused by name', () => {
    expect(parseConfig(base).idle).toEqual({ checkInAfterMs: 120_000, hangUpAfterMs: 30_000 });
    expect(parseConfig({ ...base, IDLE_CHECK_IN_MS: '0', IDLE_HANG_UP_MS: '600000' }).idle).toEqual({ checkInAfterMs: 0, hangUpAfterMs: 600_000 });
    expect(() => parseConfig({ ...base, IDLE_CHECK_IN_MS: '-1' })).toThrow(/IDLE_CHECK_IN_MS must be a non-negative integer, got "-1"/);
    expect(() => parseConfig({ ...base, IDLE_HANG_UP_MS: '2m' })).toThrow(/IDLE_HANG_UP_MS must be a non-negative integer, got "2m"/);
  });

  it('AGENT_LIVENESS_TTL_MS sets how long each liveness beat holds (4 s; 0 = no beats); shorter than 2 s or not a number is refused by name', () => {
    expect(parseConfig(base).livenessTtlMs).toBe(4_000);
    expect(parseConfig({ ...base, AGENT_LIVENESS_TTL_MS: '0' }).livenessTtlMs).toBe(0);
    expect(parseConfig({ ...base, AGENT_LIVENESS_TTL_MS: '10000' }).livenessTtlMs).toBe(10_000);
    expect(() => parseConfig({ ...base, AGENT_LIVENESS_TTL_MS: '500' })).toThrow(/AGENT_LIVENESS_TTL_MS must be 0 \(off\) or at least 2000/);
    expect(() => parseConfig({ ...base, AGENT_LIVENESS_TTL_MS: '4s' })).toThrow(/AGENT_LIVENESS_TTL_MS must be a non-negative integer, got "4s"/);
  });

  it('uses explicit dispatch when LIVEKIT_AGENT_NAME is set', () => {
    expect(parseConfig({ ...base, LIVEKIT_AGENT_NAME: 'concierge' }).agentName).toBe('concierge');
    expect(parseConfig({ ...base, LIVEKIT_AGENT_NAME: '  ' }).agentName).toBe('');
  });

  it('picks OpenAI when OPENAI_API_KEY is set, with an optional base URL, in voice mode', () => {
    const c = parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'http://127.0.0.1:9999/v1' });
    expect(c.modelMode).toBe('openai');
    expect(c.io).toBe('voice');
    expect(c.openai).toEqual({ apiKey: 'sk-x', baseURL: 'http://127.0.0.1:9999/v1', model: 'gpt-4.1-mini', sttDetectsLanguage: false });
    expect(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', AGENT_IO: 'text' }).io).toBe('text');
  });

  it('OPENAI_STT_DETECT_LANGUAGE=true makes the OpenAI speech-to-text detect the language spoken', () => {
    expect(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', OPENAI_STT_DETECT_LANGUAGE: 'true' }).openai?.sttDetectsLanguage).toBe(true);
    expect(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', OPENAI_STT_DETECT_LANGUAGE: 'false' }).openai?.sttDetectsLanguage).toBe(false);
    expect(parseConfig({ ...base, OPENAI_API_KEY: 'sk-x', OPENAI_STT_DETECT_LANGUAGE: ' ' }).openai?.sttDetectsLanguage).toBe(false);
  });

  it('prefers LiveKit Inference when its credentials are set', () => {
    const c = parseConfig({ ...base, OPENAI_API_KEY: 'sk', LIVEKIT_INFERENCE_API_KEY: 'k', LIVEKIT_INFERENCE_API_SECRET: 's' });
    expect(c.modelMode).toBe('inference');
    expect(c.inference.apiKey).toBe('k');
  });

  it('reads the session policy and an encryption keyring', () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const c = parseConfig({ ...base, RESUME_POLICY: 'AlwaysResume', REJOIN_TTL_MS: '15000', STORE_ENCRYPTION_KEYS: `k1:${key}` });
    expect(c.policy).toMatchObject({ resumePolicy: 'AlwaysResume', rejoinTtlMs: 15_000 });
    expect(c.encryptionKeys?.currentKeyId).toBe('k1');
  });

  it('condenses the summary of older turns at 3 000 characters with a model, never offline; HISTORY_CONDENSE_AT_CHARS sets it, 0 turns it off', () => {
    const openai = { ...base, OPENAI_API_KEY: 'sk-x' };
    expect(parseConfig(openai).condenseAtChars).toBe(3_000);
    expect(parseConfig({ ...openai, HISTORY_CONDENSE_AT_CHARS: '2500' }).condenseAtChars).toBe(2_500);
    expect(parseConfig({ ...openai, HISTORY_CONDENSE_AT_CHARS: '0' }).condenseAtChars).toBe(0);
    expect(parseConfig({ ...base, HISTORY_CONDENSE_AT_CHARS: '2500' }).condenseAtChars).toBe(0);
  });

  it('reads REDIS_URL with the default key prefix', () => {
    expect(parseConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' }).redis).toEqual({
      url: 'redis://127.0.0.1:6379',
      keyPrefix: 'pva:',
    });
  });

  it('a variable left blank (as .env.example leaves them) means its default, never an empty value', () => {
    const blank = { MODEL_MODE: ' ', AGENT_IO: '', OPENAI_MODEL: '', INFERENCE_LLM: '', INFERENCE_STT: ' ', INFERENCE_TTS: '', METRICS_HOST: '', REDIS_KEY_PREFIX: ' ' };
    const c = parseConfig({ ...base, ...blank, REDIS_URL: 'redis://127.0.0.1:6379', OPENAI_API_KEY: 'sk-x' });
    expect(c.modelMode).toBe('openai');
    expect(c.io).toBe('voice');
    expect(c.openai?.model).toBe('gpt-4.1-mini');
    expect(c.inference).toMatchObject({ llm: 'openai/gpt-4.1-mini', stt: 'deepgram/nova-3:en', tts: 'cartesia/sonic-3' });
    expect(c.metrics.host).toBe('0.0.0.0');
    expect(c.redis?.keyPrefix).toBe('pva:');
    expect(() => parseConfig({ ...base, MODEL_MODE: 'cloud' })).toThrow(/MODEL_MODE.*"auto"\|"inference"\|"openai"\|"offline"/);
  });

  it('reads the replica acknowledgements of session writes (off by default)', () => {
    expect(parseConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' }).replicaAcks).toEqual({ replicaAcks: 0, replicaAckTimeoutMs: 100 });
    expect(parseConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_REPLICA_ACKS: '1', REDIS_REPLICA_ACK_TIMEOUT_MS: '50' }).replicaAcks).toEqual({ replicaAcks: 1, replicaAckTimeoutMs: 50 });
  });

  it('reads a Sentinel group: REDIS_SENTINELS (port defaults to 26379, IPv6 in brackets), REDIS_SENTINEL_MASTER, passwords', () => {
    const c = parseConfig({
      ...base,
      REDIS_SENTINELS: ' sentinel-a:26380, sentinel_b ,[::1]:26381 ',
      REDIS_SENTINEL_MASTER: 'voice-master',
      REDIS_PASSWORD: 'data-pass',
      REDIS_SENTINEL_PASSWORD: 'sentinel-pass',
      REDIS_KEY_PREFIX: 'app:',
    });
    expect(c.redis).toEqual({
      sentinel: {
        sentinels: [
          { host: 'sentinel-a', port: 26_380 },
          { host: 'sentinel_b', port: 26_379 },
          { host: '::1', port: 26_381 },
        ],
        name: 'voice-master',
        password: 'data-pass',
        sentinelPassword: 'sentinel-pass',
      },
      keyPrefix: 'app:',
    });
    expect(parseConfig({ ...base, REDIS_SENTINELS: '10.0.0.5:26379', REDIS_SENTINEL_MASTER: 'm' }).redis).toEqual({
      sentinel: { sentinels: [{ host: '10.0.0.5', port: 26_379 }], name: 'm' },
      keyPrefix: 'pva:',
    });
  });

  it('reads a Redis Cluster: REDIS_CLUSTER_NODES (port defaults to 6379, IPv6 in brackets) and REDIS_PASSWORD', () => {
    const c = parseConfig({ ...base, REDIS_CLUSTER_NODES: ' node-a:7000, node_b ,[::1]:7002 ', REDIS_PASSWORD: 'data-pass' });
    expect(c.redis?.cluster?.nodes.map((n) => `${n.host}/${n.port}`)).toEqual(['node-a/7000', 'node_b/6379', '::1/7002']);
    expect([c.redis?.cluster?.password, c.redis?.keyPrefix, c.redis?.url, c.redis?.sentinel]).toEqual(['data-pass', 'pva:', undefined, undefined]);
    expect(parseConfig({ ...base, REDIS_CLUSTER_NODES: '10.0.0.5:7000', REDIS_REPLICA_ACKS: '0' }).redis).toEqual({ cluster: { nodes: [{ host: '10.0.0.5', port: 7_000 }] }, keyPrefix: 'pva:' });
    expect(parseConfig({ ...base, REDIS_CLUSTER_NODES: '10.0.0.5:7000', REDIS_REPLICA_ACKS: '1' }).replicaAcks).toEqual({ replicaAcks: 1, replicaAckTimeoutMs: 100 });
  });

  it('reads TLS: a rediss:// REDIS_URL or REDIS_TLS=true on a cluster or a Sentinel group, with the private CA of REDIS_TLS_CA_FILE', () => {
    const single = parseConfig({ ...base, REDIS_URL: 'rediss://cache.internal:6380', REDIS_TLS_CA_FILE: TEST_CA }).redis;
    expect(single?.url).toBe('rediss://cache.internal:6380');
    expect(single?.tls?.ca).toContain('-----BEGIN CERTIFICATE-----');
    expect(parseConfig({ ...base, REDIS_URL: 'rediss://cache.internal:6380' }).redis).toEqual({ url: 'rediss://cache.internal:6380', tls: {}, keyPrefix: 'pva:' });
    const cluster = parseConfig({ ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_TLS: 'true', REDIS_TLS_CA_FILE: TEST_CA }).redis?.cluster;
    expect(cluster?.tls?.ca).toContain('-----BEGIN CERTIFICATE-----');
    expect(parseConfig({ ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_TLS: 'false' }).redis?.cluster?.tls).toBeUndefined();
    const sentinels = { REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_MASTER: 'mymaster' };
    expect(parseConfig({ ...base, ...sentinels, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: TEST_CA }).redis?.sentinel?.tls?.ca).toContain('-----BEGIN CERTIFICATE-----');
    expect(parseConfig({ ...base, ...sentinels, REDIS_TLS: 'true' }).redis?.sentinel?.tls).toEqual({});
    expect(parseConfig({ ...base, ...sentinels }).redis?.sentinel?.tls).toBeUndefined();
  });

  it('never echoes a REDIS_SENTINELS entry (it may hold a password) or a password in its errors', () => {
    let message = '';
    try {
      parseConfig({ ...base, REDIS_SENTINELS: 'ok:1,user:hunter2@host:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_SENTINEL_PASSWORD: 'sentinel-pass' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/REDIS_SENTINELS must be a comma-separated list of host:port; entry 2 of 2 is not/);
    expect(message).not.toMatch(/hunter2|sentinel-pass/);
  });

  it('refuses a REDIS_URL the client could not parse, without echoing it (it may hold a password)', () => {
    for (const url of ['redis://:hunter2@127.0.0.1:notaport', 'redis://:hunter2@127.0.0.1:99999', 'redis://', 'http://:hunter2@127.0.0.1:6379']) {
      expect(() => parseConfig({ ...base, REDIS_URL: url }), url).toThrow(/^invalid configuration: REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL \(host, optional port 1-65535\)$/);
    }
    expect(parseConfig({ ...base, REDIS_URL: 'redis://:pw@cache.internal:6380/2' }).redis).toMatchObject({ url: 'redis://:pw@cache.internal:6380/2' });
  });

  const sentinels = { REDIS_SENTINELS: '127.0.0.1:26379', REDIS_SENTINEL_MASTER: 'mymaster' };
  const bad: Array<[string, Record<string, string | undefined>, RegExp]> = [
    ['REDIS_URL with REDIS_SENTINELS', { ...base, ...sentinels, REDIS_URL: 'redis://127.0.0.1:6379' }, /REDIS_URL, REDIS_SENTINELS\/REDIS_SENTINEL_MASTER and REDIS_CLUSTER_NODES are mutually exclusive/],
    ['REDIS_CLUSTER_NODES with REDIS_URL', { ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://127.0.0.1:6379' }, /REDIS_URL, REDIS_SENTINELS\/REDIS_SENTINEL_MASTER and REDIS_CLUSTER_NODES are mutually exclusive/],
    ['REDIS_CLUSTER_NODES with REDIS_SENTINELS', { ...base, ...sentinels, REDIS_CLUSTER_NODES: 'a:7000' }, /are mutually exclusive/],
    ['a cluster node entry that is not host:port', { ...base, REDIS_CLUSTER_NODES: 'a:7000,user:hunter2@b:7001' }, /REDIS_CLUSTER_NODES must be a comma-separated list of host:port; entry 2 of 2 is not/],
    ['REDIS_TLS that is not a boolean', { ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_TLS: 'yes' }, /REDIS_TLS must be true or false, got "yes"/],
    ['REDIS_TLS with a single Redis', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_TLS: 'true' }, /REDIS_TLS is only used with REDIS_CLUSTER_NODES or REDIS_SENTINELS \(a single Redis over TLS is a rediss:\/\/ REDIS_URL/],
    ['REDIS_TLS_CA_FILE that cannot be read', { ...base, REDIS_URL: 'rediss://127.0.0.1:6380', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' }, /REDIS_TLS_CA_FILE names a file that cannot be read/],
    ['REDIS_TLS_CA_FILE that is not PEM', { ...base, REDIS_URL: 'rediss://127.0.0.1:6380', REDIS_TLS_CA_FILE: fileURLToPath(new URL('../../package.json', import.meta.url)) }, /REDIS_TLS_CA_FILE must name a PEM file of certificates/],
    ['REDIS_TLS_CA_FILE without TLS', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_TLS_CA_FILE: TEST_CA }, /REDIS_TLS_CA_FILE is only used over TLS/],
    ['REDIS_SENTINEL_PASSWORD on a cluster', { ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINEL_PASSWORD: 'x' }, /REDIS_SENTINEL_PASSWORD is only used with REDIS_SENTINELS/],
    ['REDIS_SENTINELS without a master name', { ...base, REDIS_SENTINELS: '127.0.0.1:26379' }, /REDIS_SENTINEL_MASTER is required when REDIS_SENTINELS is set/],
    ['REDIS_SENTINEL_MASTER without sentinels', { ...base, REDIS_SENTINEL_MASTER: 'mymaster' }, /REDIS_SENTINELS is required when REDIS_SENTINEL_MASTER is set/],
    ['a sentinel port out of range', { ...base, ...sentinels, REDIS_SENTINELS: 'a:1,b:70000' }, /REDIS_SENTINELS must be a comma-separated list of host:port; entry 2 of 2 is not/],
    ['an empty sentinel entry', { ...base, ...sentinels, REDIS_SENTINELS: 'a:1,' }, /REDIS_SENTINELS must be a comma-separated list/],
    ['a master name with a space', { ...base, ...sentinels, REDIS_SENTINEL_MASTER: 'my master' }, /REDIS_SENTINEL_MASTER must be one master name, without spaces/],
    ['REDIS_PASSWORD without sentinels', { ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_PASSWORD: 'x' }, /REDIS_PASSWORD is only used with REDIS_SENTINELS or REDIS_CLUSTER_NODES/],
    ['REDIS_SENTINEL_PASSWORD without sentinels', { ...base, REDIS_SENTINEL_PASSWORD: 'x' }, /REDIS_SENTINEL_PASSWORD is only used with REDIS_SENTINELS/],
    ['missing secret', { ...base, LIVEKIT_API_SECRET: undefined }, /LIVEKIT_API_SECRET is required/],
    ['empty secret', { ...base, LIVEKIT_API_SECRET: ' ' }, /LIVEKIT_API_SECRET must not be empty/],
    ['missing key', { ...base, LIVEKIT_API_KEY: undefined }, /LIVEKIT_API_KEY is required/],
    ['missing url', { ...base, LIVEKIT_URL: undefined }, /LIVEKIT_URL is required/],
    ['bad url', { ...base, LIVEKIT_URL: 'localhost:7880' }, /LIVEKIT_URL must be a ws:\/\//],
    ['bad redis url', { ...base, REDIS_URL: 'http://x' }, /REDIS_URL must be a redis:\/\//],
    ['bad model mode', { ...base, MODEL_MODE: 'magic' }, /MODEL_MODE/],
    ['openai mode without key', { ...base, MODEL_MODE: 'openai' }, /OPENAI_API_KEY is required/],
    ['voice without models', { ...base, AGENT_IO: 'voice' }, /AGENT_IO=voice needs models/],
    ['OPENAI_STT_DETECT_LANGUAGE that is not a boolean', { ...base, OPENAI_API_KEY: 'sk-x', OPENAI_STT_DETECT_LANGUAGE: 'yes' }, /OPENAI_STT_DETECT_LANGUAGE must be true or false, got "yes"/],
    ['OPENAI_STT_DETECT_LANGUAGE with LiveKit Inference', { ...base, OPENAI_API_KEY: 'sk-x', LIVEKIT_INFERENCE_API_KEY: 'k', LIVEKIT_INFERENCE_API_SECRET: 's', OPENAI_STT_DETECT_LANGUAGE: 'true' }, /OPENAI_STT_DETECT_LANGUAGE is only used with the OpenAI models \(the model mode is inference; LiveKit Inference detects the language with an INFERENCE_STT ending in :multi\)/],
    ['OPENAI_STT_DETECT_LANGUAGE offline', { ...base, OPENAI_STT_DETECT_LANGUAGE: 'true' }, /OPENAI_STT_DETECT_LANGUAGE is only used with the OpenAI models \(the model mode is offline/],
    ['bad load threshold', { ...base, WORKER_LOAD_THRESHOLD: '2' }, /WORKER_LOAD_THRESHOLD must be a number in \(0, 1\]/],
    ['bad metrics port', { ...base, METRICS_PORT: 'abc' }, /METRICS_PORT must be a port number \(0-65535\), got "abc"/],
    ['a metrics port out of range', { ...base, METRICS_PORT: '70000' }, /METRICS_PORT must be a port number/],
    ['a zero job start bound', { ...base, WORKER_INIT_TIMEOUT_MS: '0' }, /WORKER_INIT_TIMEOUT_MS must be a positive integer, got "0"/],
    ['bad resume policy', { ...base, RESUME_POLICY: 'Sometimes' }, /RESUME_POLICY must be one of/],
    ['bad rejoin ttl', { ...base, REJOIN_TTL_MS: '1.5' }, /REJOIN_TTL_MS must be a whole number/],
    ['negative replica acks', { ...base, REDIS_REPLICA_ACKS: '-1' }, /REDIS_REPLICA_ACKS must be a non-negative integer, got "-1"/],
    ['a zero replica ack wait', { ...base, REDIS_REPLICA_ACKS: '1', REDIS_REPLICA_ACK_TIMEOUT_MS: '0' }, /REDIS_REPLICA_ACK_TIMEOUT_MS must be a positive integer/],
    ['a negative policy check interval', { ...base, REDIS_POLICY_CHECK_MS: '-5' }, /REDIS_POLICY_CHECK_MS must be a non-negative integer, got "-5"/],
    // A Node timer fires at once past 2^31 - 1 ms: a "very long" setting would loop instead.
    ['a policy check interval past a timer\'s limit', { ...base, REDIS_POLICY_CHECK_MS: '2592000000' }, /REDIS_POLICY_CHECK_MS must be at most 2147483647 \(about 24\.8 days: a timer's limit\), got "2592000000"/],
    ['an idle check-in past a timer\'s limit', { ...base, IDLE_CHECK_IN_MS: '2147483648' }, /IDLE_CHECK_IN_MS must be at most 2147483647/],
    ['a rejoin window past a timer\'s limit', { ...base, REJOIN_TTL_MS: '2147483648', SESSION_TTL_MS: '4000000000' }, /REJOIN_TTL_MS must be at most 2147483647/],
    ['bad encryption key', { ...base, STORE_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' }, /STORE_ENCRYPTION_KEYS: key k1 must decode to 32 bytes/],
    ['a condensing threshold too low to leave room', { ...base, HISTORY_CONDENSE_AT_CHARS: '500' }, /HISTORY_CONDENSE_AT_CHARS must be 0 \(off\) or between 2000 and 3600/],
    ['a condensing threshold past the summary bound', { ...base, HISTORY_CONDENSE_AT_CHARS: '4000' }, /HISTORY_CONDENSE_AT_CHARS must be 0 \(off\) or between 2000 and 3600/],
    ['a condensing threshold that is not a number', { ...base, HISTORY_CONDENSE_AT_CHARS: 'soon' }, /HISTORY_CONDENSE_AT_CHARS must be a non-negative integer, got "soon"/],
  ];
  for (const [name, env, re] of bad) {
    it(`rejects ${name} with a ConfigError naming the variable`, () => {
      let err: unknown;
      try {
        parseConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(re);
    });
  }

  it('takes timer settings up to a timer\'s limit, and TTLs (Redis expiries, not timers) beyond it', () => {
    const c = parseConfig({ ...base, IDLE_CHECK_IN_MS: '2147483647', REJOIN_TTL_MS: '2147483647', SESSION_TTL_MS: '2592000000', PROFILE_TTL_MS: '5184000000' });
    expect(c.idle.checkInAfterMs).toBe(2_147_483_647);
    expect(c.policy).toMatchObject({ rejoinTtlMs: 2_147_483_647, sessionTtlMs: 2_592_000_000, profileTtlMs: 5_184_000_000 });
  });

  it('names every problem at once', () => {
    expect(() => parseConfig({})).toThrow(/LIVEKIT_URL is required.*LIVEKIT_API_KEY is required.*LIVEKIT_API_SECRET is required/);
  });
});

describe('the worker process', () => {
  it('without LIVEKIT_API_SECRET prints one clear error naming it and exits non-zero', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const r = spawnSync(`${root}/node_modules/.bin/tsx`, ['agent/main.ts', 'start'], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PVA_ENV_FILE: '', LIVEKIT_URL: 'ws://127.0.0.1:1', LIVEKIT_API_KEY: 'k' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBeNull();
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/LIVEKIT_API_SECRET is required/);
  });
});
