import { fork } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JobMetrics, METRICS_SOCKET_ENV, MetricsHub, MetricsState } from '../../agent/metrics.js';
import { waitFor } from '../support/wait.js';

const hubs: MetricsHub[] = [];
afterEach(async () => {
  for (const h of hubs.splice(0)) await h.close();
});

describe('MetricsState', () => {
  it('renders counters, gauges summed over live jobs, and histograms in the Prometheus text format', () => {
    const s = new MetricsState();
    s.apply({ t: 'inc', name: 'pva_sessions_started_total', labels: { greeting: 'first_time' }, value: 1 }, 1);
    s.apply({ t: 'inc', name: 'pva_sessions_started_total', labels: { greeting: 'first_time' }, value: 2 }, 2);
    s.apply({ t: 'gauge', name: 'pva_active_sessions', value: 1 }, 1);
    s.apply({ t: 'gauge', name: 'pva_active_sessions', value: 1 }, 2);
    s.apply({ t: 'observe', name: 'pva_store_latency_seconds', labels: { op: 'save' }, value: 0.003 }, 1);
    let text = s.render();
    expect(text).toContain('pva_sessions_started_total{greeting="first_time"} 3');
    expect(text).toContain('pva_active_sessions 2');
    expect(text).toContain('pva_store_latency_seconds_bucket{op="save",le="0.0025"} 0');
    expect(text).toContain('pva_store_latency_seconds_bucket{op="save",le="0.005"} 1');
    expect(text).toContain('pva_store_latency_seconds_count{op="save"} 1');
    s.dropConnection(2); // that job ended
    text = s.render();
    expect(text).toContain('pva_active_sessions 1');
    expect(text).toContain('pva_sessions_started_total{greeting="first_time"} 3'); // counters stay
  });

  it('ignores unknown metric names and escapes label values', () => {
    const s = new MetricsState();
    s.apply({ t: 'inc', name: 'nope' as never, labels: {}, value: 1 }, 1);
    s.apply({ t: 'inc', name: 'pva_context_messages_total', labels: { result: 'a"b\\c' }, value: 1 }, 1);
    const text = s.render();
    expect(text).not.toContain('nope');
    expect(text).toContain('pva_context_messages_total{result="a\\"b\\\\c"} 1');
  });
});

describe('MetricsHub', () => {
  it('adds up reports from separate processes and serves them on /metrics', async () => {
    const hub = new MetricsHub(join(mkdtempSync(join(tmpdir(), 'pva-metrics-')), 'hub.sock'));
    hubs.push(hub);
    const port = await hub.start(0, '127.0.0.1');
    // Two real child processes report like job processes do.
    const dir = mkdtempSync(join(tmpdir(), 'pva-metrics-child-'));
    const child = join(dir, 'child.mts');
    const metricsModule = fileURLToPath(new URL('../../agent/metrics.ts', import.meta.url));
    writeFileSync(
      child,
      `import { JobMetrics } from ${JSON.stringify(metricsModule)};
       const m = new JobMetrics(process.argv[2]);
       m.inc('pva_sessions_started_total', { greeting: 'returning' });
       m.inc('pva_reconnects_total');
       await m.close();`,
    );
    const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/esm/index.mjs', import.meta.url));
    await Promise.all(
      [1, 2].map(
        () =>
          new Promise<void>((resolve, reject) => {
            const p = fork(child, [hub.socketPath], { execArgv: ['--import', tsx], stdio: 'ignore' });
            p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child exited ${code}`))));
          }),
      ),
    );
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    await waitFor('both reports counted', async () => (await scrape()).includes('pva_sessions_started_total{greeting="returning"} 2'));
    expect(await scrape()).toContain('pva_reconnects_total 2');
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
  });

  it('a job without a hub, or whose hub cannot be reached, reports nothing and never throws', async () => {
    // No hub configured: the job process's environment names no socket.
    const saved = process.env[METRICS_SOCKET_ENV];
    delete process.env[METRICS_SOCKET_ENV];
    const none = new JobMetrics();
    if (saved !== undefined) process.env[METRICS_SOCKET_ENV] = saved;
    const hub = new MetricsHub(join(mkdtempSync(join(tmpdir(), 'pva-metrics-')), 'hub.sock'));
    hubs.push(hub);
    const port = await hub.start(0, '127.0.0.1');
    const faults: unknown[] = [];
    const onFault = (err: unknown) => faults.push(err);
    process.on('unhandledRejection', onFault);
    process.on('uncaughtException', onFault);
    try {
      none.inc('pva_reconnects_total');
      const broken = new JobMetrics('/nonexistent/dir/hub.sock');
      broken.inc('pva_reconnects_total');
      broken.inc('pva_reconnects_total');
      // One job that does reach the hub, for comparison.
      const linked = new JobMetrics(hub.socketPath);
      linked.inc('pva_reconnects_total');
      await Promise.all([none.close(), broken.close(), linked.close()]);
      const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      await waitFor('the linked job counted', async () => (await scrape()).includes('pva_reconnects_total 1'));
      // Let anything the failed connection left behind surface before looking.
      await new Promise((r) => setImmediate(r));
      expect(await scrape()).toContain('pva_reconnects_total 1');
      expect(faults).toEqual([]);
    } finally {
      process.off('unhandledRejection', onFault);
      process.off('uncaughtException', onFault);
    }
  });
});
