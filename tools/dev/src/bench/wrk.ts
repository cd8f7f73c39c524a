import { execFileSync, spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** wrk's report through report.lua: counts, latency percentiles (µs) and answers by status. */
export interface WrkResult {
  requests: number;
  durationUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  statuses: Record<string, number>;
}

/** One wrk run: loopback URL, connections, seconds, and what report.lua sends. */
export interface WrkRun {
  url: string;
  connections: number;
  seconds: number;
  threads?: number;
  method?: 'GET' | 'POST';
  /** Paths used in turn (default the URL's). */
  paths?: readonly string[];
  token?: string;
  /** POST body; `{n}` becomes a value unique to the request. */
  body?: string;
  /** Send a unique `Idempotency-Key` per request. */
  idempotency?: boolean;
  /** Per-request timeout, seconds (wrk's default 2). */
  timeoutSeconds?: number;
}

const SCRIPT = resolve(import.meta.dirname, 'report.lua');
let runs = 0;

/** Throws with how to install wrk when it is not on PATH. */
export function requireWrk(): void {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (error) {
    // wrk --version exits 1 after printing its banner; only a missing binary is a problem
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return;
    throw new Error(
      'wrk is not installed: `npm run bench` drives HTTP load with it.\n' +
        'Install it (Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y wrk; macOS: brew install wrk), then run `npm run bench` again.',
    );
  }
}

/** Runs wrk against a loopback URL and returns report.lua's figures. Rejects when wrk fails or prints no report. */
export function runWrk(run: WrkRun): Promise<WrkResult> {
  const url = new URL(run.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) throw new Error(`bench drives loopback URLs only, not ${run.url}`);
  runs += 1;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    BENCH_METHOD: run.method ?? 'GET',
    BENCH_PATHS: (run.paths ?? []).join(' '),
    BENCH_TOKEN: run.token ?? '',
    BENCH_IDEMPOTENCY: run.idempotency ? '1' : '0',
    BENCH_RUN: `${process.pid}-${runs}`,
  };
  if (run.body !== undefined) env['BENCH_BODY'] = run.body;
  const threads = Math.min(run.threads ?? 2, run.connections);
  const args = [`-t${threads}`, `-c${run.connections}`, `-d${run.seconds}s`, `--timeout`, `${run.timeoutSeconds ?? 2}s`, '-s', SCRIPT, run.url];
  return new Promise((resolvePromise, reject) => {
    const child = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (code !== 0 || !line) return reject(new Error(`wrk ${args.join(' ')} failed (exit ${String(code)}):\n${out}${err}`));
      resolvePromise(JSON.parse(line.slice('BENCH_JSON '.length)) as WrkResult);
    });
  });
}

/** Requests per second of a run. */
export const rps = (r: WrkResult): number => r.requests / (r.durationUs / 1e6);

/** Share (0..1) of answers with one of `statuses`. */
export function shareOf(r: WrkResult, ...statuses: number[]): number {
  const total = Object.values(r.statuses).reduce((a, b) => a + b, 0);
  const some = statuses.reduce((sum, s) => sum + (r.statuses[String(s)] ?? 0), 0);
  return total === 0 ? 0 : some / total;
}

/** Share (0..1) of answers that are not 2xx. */
export function non2xxShare(r: WrkResult): number {
  const total = Object.values(r.statuses).reduce((a, b) => a + b, 0);
  const bad = Object.entries(r.statuses)
    .filter(([s]) => !s.startsWith('2'))
    .reduce((sum, [, c]) => sum + c, 0);
  return total === 0 ? 0 : bad / total;
}
