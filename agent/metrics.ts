/**
 * Prometheus metrics that stay right although every job runs in its own process.
 *
 * The worker process (where `cli.runApp` runs) owns a {@link MetricsHub}: an HTTP server with
 * `GET /metrics`, and a Unix socket on which job processes report. Job processes inherit the
 * socket path through `PVA_METRICS_SOCKET` (set before any job is forked) and report through a
 * {@link JobMetrics}; each report is one JSON line. A job that cannot reach the hub drops its
 * reports (metrics never block a conversation).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createConnection, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Env var carrying the hub's socket path to job processes. */
export const METRICS_SOCKET_ENV = 'PVA_METRICS_SOCKET';

/** Counters, with help text and label names. */
export const COUNTERS = {
  pva_sessions_started_total: { help: 'Arrivals greeted, by greeting kind.', labels: ['greeting'] },
  pva_resume_decisions_total: { help: 'Resume decisions, by kind and reason.', labels: ['kind', 'why'] },
  pva_reconnects_total: { help: 'Rejoins of a participant within the rejoin window (same room, same job).', labels: [] },
  pva_context_messages_total: { help: 'Dynamic-context data messages, by result.', labels: ['result'] },
  pva_takeovers_total: { help: 'Sessions taken over by a newer arrival of the same identity elsewhere.', labels: [] },
  pva_store_errors_total: { help: 'Store operations that failed or timed out, by operation.', labels: ['op'] },
  pva_summary_condensed_total: { help: 'Summaries of older turns condensed by the model, by result (ok, failed, unusable).', labels: ['result'] },
  pva_idle_total: { help: 'Idle steps taken: check-ins said after a silence, and calls the agent ended after one (IDLE_CHECK_IN_MS, IDLE_HANG_UP_MS).', labels: ['step'] },
  pva_languages_adopted_total: { help: 'Conversations that took the language the participant was heard speaking or wrote in, by its primary subtag.', labels: ['language'] },
} as const;

/** Gauges summed over live jobs (and the worker process's own value, if it sets one). */
export const GAUGES = {
  pva_active_sessions: { help: 'Participant sessions currently held by this worker’s jobs.' },
  pva_store_degraded: { help: 'Jobs currently working from memory because the shared store is unreachable.' },
  pva_redis_evicting_masters: { help: 'Redis masters that may evict session keys when full (maxmemory set, maxmemory-policy not noeviction), as last read (at start, then every REDIS_POLICY_CHECK_MS).' },
  pva_clock_skew_seconds: { help: "This worker's clock minus Redis's (the largest by magnitude over the masters), as last measured (at start, then every REDIS_POLICY_CHECK_MS); beyond ±1 s leases and rejoin windows are misread." },
} as const;

/** Histograms, seconds. */
export const HISTOGRAMS = {
  pva_store_latency_seconds: { help: 'Latency of store operations, by operation.', labels: ['op'] },
  pva_arrival_to_greeting_seconds: { help: 'From a participant linking to the greeting being sent.', labels: [] },
} as const;

/** Histogram bucket upper bounds, seconds. */
export const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export type CounterName = keyof typeof COUNTERS;
export type GaugeName = keyof typeof GAUGES;
export type HistogramName = keyof typeof HISTOGRAMS;
type Labels = Record<string, string>;

type Report =
  | { t: 'inc'; name: CounterName; labels: Labels; value: number }
  | { t: 'observe'; name: HistogramName; labels: Labels; value: number }
  | { t: 'gauge'; name: GaugeName; value: number };

const labelKey = (labels: Labels) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');

/** The aggregate, kept by the hub. Pure; exported for tests. */
export class MetricsState {
  private readonly counters = new Map<string, number>();
  private readonly hist = new Map<string, { buckets: number[]; sum: number; count: number }>();
  /** gauge name → connection id → value */
  private readonly gauges = new Map<string, Map<number, number>>();

  apply(r: Report, connId: number): void {
    if (r.t === 'inc' && r.name in COUNTERS && r.value > 0) {
      const k = `${r.name}{${labelKey(r.labels)}}`;
      this.counters.set(k, (this.counters.get(k) ?? 0) + r.value);
    } else if (r.t === 'observe' && r.name in HISTOGRAMS && Number.isFinite(r.value)) {
      const k = `${r.name}|${labelKey(r.labels)}`;
      const h = this.hist.get(k) ?? { buckets: LATENCY_BUCKETS_S.map(() => 0), sum: 0, count: 0 };
      LATENCY_BUCKETS_S.forEach((b, i) => {
        if (r.value <= b) h.buckets[i]! += 1;
      });
      h.sum += r.value;
      h.count += 1;
      this.hist.set(k, h);
    } else if (r.t === 'gauge' && r.name in GAUGES) {
      const m = this.gauges.get(r.name) ?? new Map<number, number>();
      m.set(connId, r.value);
      this.gauges.set(r.name, m);
    }
  }

  /** A job went away: its gauges no longer count. */
  dropConnection(connId: number): void {
    for (const m of this.gauges.values()) m.delete(connId);
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    for (const [name, def] of Object.entries(COUNTERS)) {
      out.push(`# HELP ${name} ${def.help}`, `# TYPE ${name} counter`);
      for (const [k, v] of this.counters) if (k.startsWith(`${name}{`)) out.push(`${k.replace('{}', '')} ${v}`);
    }
    for (const [name, def] of Object.entries(GAUGES)) {
      out.push(`# HELP ${name} ${def.help}`, `# TYPE ${name} gauge`);
      let sum = 0;
      for (const v of this.gauges.get(name)?.values() ?? []) sum += v;
      out.push(`${name} ${sum}`);
    }
    for (const [name, def] of Object.entries(HISTOGRAMS)) {
      out.push(`# HELP ${name} ${def.help}`, `# TYPE ${name} histogram`);
      for (const [k, h] of this.hist) {
        const [n, labels] = k.split('|') as [string, string];
        if (n !== name) continue;
        const sep = labels ? `${labels},` : '';
        LATENCY_BUCKETS_S.forEach((b, i) => out.push(`${name}_bucket{${sep}le="${b}"} ${h.buckets[i]}`));
        out.push(`${name}_bucket{${sep}le="+Inf"} ${h.count}`);
        out.push(`${name}_sum${labels ? `{${labels}}` : ''} ${h.sum}`, `${name}_count${labels ? `{${labels}}` : ''} ${h.count}`);
      }
    }
    return `${out.join('\n')}\n`;
  }
}

/** The worker-process side: `/metrics` over HTTP, reports from jobs over a Unix socket. */
export class MetricsHub {
  readonly state = new MetricsState();
  readonly socketPath: string;
  private http: HttpServer | undefined;
  private sock: NetServer | undefined;
  private nextConn = 1;

  constructor(socketPath = join(tmpdir(), `pva-metrics-${process.pid}.sock`)) {
    this.socketPath = socketPath;
  }

  /** Starts both servers; returns the HTTP port. Sets {@link METRICS_SOCKET_ENV} for future children. */
  async start(port: number, host = '0.0.0.0'): Promise<number> {
    rmSync(this.socketPath, { force: true });
    this.sock = createNetServer((s) => this.onJob(s));
    await new Promise<void>((r) => this.sock!.listen(this.socketPath, r));
    this.sock.unref();
    process.env[METRICS_SOCKET_ENV] = this.socketPath;
    this.http = createHttpServer((req, res) => {
      if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.state.render());
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => this.http!.listen(port, host, r));
    this.http.unref();
    const addr = this.http.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  private onJob(s: Socket): void {
    const id = this.nextConn++;
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 1_000_000) buf = ''; // a runaway sender loses its partial line, nothing else
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.state.apply(JSON.parse(line) as Report, id);
        } catch {
          /* a malformed line is dropped */
        }
      }
    });
    const drop = () => this.state.dropConnection(id);
    s.on('close', drop);
    s.on('error', drop);
  }

  async close(): Promise<void> {
    await Promise.all([
      new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r())),
      new Promise<void>((r) => (this.sock ? this.sock.close(() => r()) : r())),
    ]);
    rmSync(this.socketPath, { force: true });
  }
}

/** The job-process side. Fire-and-forget; a no-op when no hub is configured. */
export class JobMetrics {
  private socket: Socket | undefined;
  private broken = false;

  constructor(private readonly socketPath: string | undefined = process.env[METRICS_SOCKET_ENV]) {}

  private send(r: Report): void {
    if (!this.socketPath || this.broken) return;
    if (!this.socket) {
      this.socket = createConnection(this.socketPath);
      this.socket.on('error', () => {
        this.broken = true;
        this.socket?.destroy();
      });
      this.socket.unref();
    }
    this.socket.write(`${JSON.stringify(r)}\n`);
  }

  inc(name: CounterName, labels: Labels = {}, value = 1): void {
    this.send({ t: 'inc', name, labels, value });
  }
  observe(name: HistogramName, seconds: number, labels: Labels = {}): void {
    this.send({ t: 'observe', name, labels, value: seconds });
  }
  gauge(name: GaugeName, value: number): void {
    this.send({ t: 'gauge', name, value });
  }
  /** Flushes and closes (the hub then stops counting this job's gauges). */
  async close(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (!s || this.broken) return;
    await new Promise<void>((r) => s.end(() => r()));
  }
}
