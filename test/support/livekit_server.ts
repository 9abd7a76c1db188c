/**
 * Starts a real `livekit-server` (built by scripts/ensure_livekit_server.sh) on free loopback
 * ports with a test configuration, and stops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeTcpPort, freeUdpPort } from './ports.js';
import { waitFor } from './wait.js';

/** A running livekit-server. */
export interface LiveKitServer {
  url: string;
  httpUrl: string;
  apiKey: string;
  apiSecret: string;
  process: ChildProcess;
  logs: string[];
  stop(): Promise<void>;
}

/** Test API key/secret (the server is loopback-only and lives for one test run). */
export const TEST_API_KEY = 'testkey';
export const TEST_API_SECRET = 'test-secret-for-e2e-runs-only-0123456789abcdef';

/**
 * Starts livekit-server; `departureTimeoutS` is the default room departure timeout; `webhookUrls`
 * receive its webhooks, signed with the test key.
 */
export async function startLiveKitServer(bin: string, { departureTimeoutS = 60, webhookUrls = [] as string[] } = {}): Promise<LiveKitServer> {
  const port = await freeTcpPort();
  const tcpPort = await freeTcpPort();
  const udpPort = await freeUdpPort();
  const dir = mkdtempSync(join(tmpdir(), 'pva-livekit-'));
  const config = join(dir, 'livekit.yaml');
  writeFileSync(
    config,
    [
      `port: ${port}`,
      'bind_addresses: [127.0.0.1]',
      'rtc:',
      `  tcp_port: ${tcpPort}`,
      `  udp_port: ${udpPort}`,
      '  use_external_ip: false',
      '  node_ip: 127.0.0.1',
      '  enable_loopback_candidate: true',
      'keys:',
      `  ${TEST_API_KEY}: ${TEST_API_SECRET}`,
      'room:',
      '  auto_create: true',
      '  empty_timeout: 60',
      `  departure_timeout: ${departureTimeoutS}`,
      'logging:',
      '  level: info',
      ...(webhookUrls.length > 0 ? ['webhook:', `  api_key: ${TEST_API_KEY}`, '  urls:', ...webhookUrls.map((u) => `    - ${u}`)] : []),
      '',
    ].join('\n'),
  );
  const proc = spawn(bin, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const keep = (b: Buffer) => {
    logs.push(b.toString());
    if (logs.length > 20000) logs.splice(0, 10000);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const httpUrl = `http://127.0.0.1:${port}`;
  let exited = false;
  proc.once('exit', () => (exited = true));
  await waitFor(
    'livekit-server to answer',
    async () => {
      if (exited) throw new Error(`livekit-server exited: ${logs.join('').slice(-2000)}`);
      const res = await fetch(httpUrl).catch(() => undefined);
      return res?.ok === true;
    },
    { timeoutMs: 30_000 },
  );
  return {
    url: `ws://127.0.0.1:${port}`,
    httpUrl,
    apiKey: TEST_API_KEY,
    apiSecret: TEST_API_SECRET,
    process: proc,
    logs,
    stop: async () => {
      if (exited) return;
      const done = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      t.unref();
      await done;
      clearTimeout(t);
    },
  };
}
