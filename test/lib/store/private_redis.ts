import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

/** Path of the redis-server binary the outage tests start. */
export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

/** The test certificates (`test/fixtures/tls`: a private CA and a server certificate for 127.0.0.1). */
export const TEST_TLS_DIR = fileURLToPath(new URL('../../fixtures/tls/', import.meta.url));

/**
 * redis-server arguments that add a TLS port (`tlsPort`) with the test certificates, beside the
 * plaintext port (which {@link PrivateRedis} uses to see that the server is up). Clients are not
 * asked for certificates.
 */
export function tlsServerArgs(tlsPort: number): string[] {
  return ['--tls-port', String(tlsPort), '--tls-cert-file', join(TEST_TLS_DIR, 'server.crt'), '--tls-key-file', join(TEST_TLS_DIR, 'server.key'), '--tls-ca-cert-file', join(TEST_TLS_DIR, 'ca.crt'), '--tls-auth-clients', 'no'];
}

/** True when a private redis-server can be started. */
export function canStartRedis(): boolean {
  return existsSync(REDIS_SERVER_BIN);
}

/** A free loopback TCP port (the shared test helper). */
export { freeTcpPort as freePort } from '../../support/ports.js';

/**
 * Every private redis-server still running in this process, killed when the process ends: a run
 * whose `afterAll` hooks never ran (a `-t` filter that skipped every test of a file whose
 * fixtures started at module load) leaves no server behind. Vitest ends its worker processes with
 * SIGTERM, which skips `exit` handlers: that signal kills the servers too, then is raised again
 * with its default action. One set and one pair of hooks per process, however many test files
 * load this module.
 */
const running: Set<ChildProcess> = ((globalThis as { [k: symbol]: unknown })[Symbol.for('pva.test.privateRedis')] ??= (() => {
  const set = new Set<ChildProcess>();
  const killAll = () => {
    for (const p of set) p.kill('SIGKILL');
    set.clear();
  };
  process.once('exit', killAll);
  process.once('SIGTERM', () => {
    killAll();
    process.kill(process.pid, 'SIGTERM');
  });
  return set;
})()) as Set<ChildProcess>;

/** A private, non-persistent redis-server on a loopback port; restarted empty. */
export class PrivateRedis {
  private proc: ChildProcess | null = null;
  /**
   * `extraArgs` go after the defaults (e.g. the cluster settings of {@link PrivateCluster});
   * `opts.leadingArgs` before them (a config file and `--sentinel` for {@link PrivateSentinel});
   * `opts.password` becomes `--requirepass` and is used to check that the server is up.
   */
  constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[] = [],
    private readonly opts: { leadingArgs?: readonly string[]; password?: string } = {},
  ) {}

  /** True while the server process runs. */
  get isRunning(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server and polls until it answers PING (deadline 10 s). */
  async start(): Promise<void> {
    const auth = this.opts.password === undefined ? [] : ['--requirepass', this.opts.password];
    const args = [...(this.opts.leadingArgs ?? []), '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...auth, ...this.extraArgs];
    const proc = spawn(REDIS_SERVER_BIN, args, { stdio: 'ignore' });
    this.proc = proc;
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!this.isRunning) throw new Error(`redis-server on ${this.port} exited while starting`);
      const c = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 500, password: this.opts.password });
      c.on('error', () => {});
      try {
        await c.connect();
        await c.ping();
        c.disconnect();
        return;
      } catch {
        c.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not start`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Freezes the server (SIGSTOP): it holds its connections but answers nothing until {@link resume}. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  /** Lets a {@link pause}d server run again (SIGCONT). */
  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /**
   * Stops (`SIGSTOP`) or resumes (`SIGCONT`) the server process: while stopped it keeps its data
   * and its connections but answers nothing, as a Redis out of reach.
   */
  freeze(frozen: boolean): void {
    if (!this.isRunning) throw new Error('the server is not running');
    this.proc!.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  /** SIGKILLs the server and waits for the process to exit. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p === null || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }
}
