/**
 * Global setup of the e2e project: builds/locates livekit-server, makes sure a Redis answers,
 * starts one livekit-server on free loopback ports for the whole run, and stops it afterwards.
 * Under CI a missing piece is a failure (never a skip).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startLiveKitServer, type LiveKitServer } from '../support/livekit_server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    livekitUrl: string;
    livekitApiKey: string;
    livekitApiSecret: string;
    redisUrl: string;
    /** The livekit-server binary, for a test that needs a server of its own (another configuration). */
    livekitServerBin: string;
  }
}

let server: LiveKitServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  const bin =
    process.env.LIVEKIT_SERVER_BIN ??
    execFileSync('bash', ['scripts/ensure_livekit_server.sh'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
      .trim()
      .split('\n')
      .pop()!;
  const redisUrl = execFileSync('bash', ['scripts/ensure_redis.sh'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: process.env,
  }).trim();
  server = await startLiveKitServer(bin);
  project.provide('livekitUrl', server.url);
  project.provide('livekitApiKey', server.apiKey);
  project.provide('livekitApiSecret', server.apiSecret);
  project.provide('redisUrl', redisUrl);
  project.provide('livekitServerBin', bin);
}

export async function teardown(): Promise<void> {
  await server?.stop();
  // Kept for diagnosis next to the workers' logs (git-ignored).
  if (server) {
    mkdirSync('.tools/test-logs', { recursive: true });
    writeFileSync('.tools/test-logs/livekit-server.log', server.logs.join(''));
  }
}
