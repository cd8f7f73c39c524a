import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import pg from 'pg';

/** What the bench ran on, printed with the results (and copied into BENCHMARKS.md). */
export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  node: string;
  postgres: string;
  natsServer: string;
  wrk: string;
  /** 1-minute load average when the bench started. */
  load: number;
  /** Other Jest runs seen when the bench started (their CPU use makes figures noisy). */
  otherTestRuns: number;
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .split('\n')[0]!
      .trim();
  } catch (error) {
    // wrk --version exits 1 after printing its banner
    const out = (error as { stdout?: string }).stdout ?? '';
    return out.split('\n')[0]?.trim() || 'unknown';
  }
}

/** Jest processes other than ours (the bench runs none). */
function jestRuns(): number {
  try {
    const out = execFileSync('pgrep', ['-f', 'jest'], { encoding: 'utf8' });
    return out.split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

/** Describes this machine; `databaseUrl` is asked for the Postgres version, `natsServer` is the binary. */
export async function describeMachine(databaseUrl: string, natsServer: string): Promise<Machine> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ v: string }>("select current_setting('server_version') as v");
  await client.end();
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    postgres: rows[0]?.v ?? 'unknown',
    natsServer: firstLine(natsServer, ['--version']),
    wrk: firstLine('wrk', ['--version']).replace(/ Copyright.*/, ''),
    load: Math.round(loadavg()[0]! * 100) / 100,
    otherTestRuns: jestRuns(),
  };
}

/** Resident and peak memory of a process (MiB), from /proc (Linux); undefined elsewhere. */
export function memoryOf(pid: number | undefined): { rssMiB: number; peakMiB: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { rssMiB: Math.round(kb('VmRSS') / 1024), peakMiB: Math.round(kb('VmHWM') / 1024) };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
export function cpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15 (clock ticks)
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /, '')
      .split(' ');
    const ticksPerSecond = 100; // USER_HZ on Linux
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}
