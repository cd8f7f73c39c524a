import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './infra.ts';

/**
 * Child processes of `npm start`: one Node program per app, its output in a log file, readiness
 * by HTTP polling, and an ordered, bounded shutdown.
 */

/** What to run: `script` is a .ts entry point relative to `cwd`, run by this same Node binary. */
export interface AppSpec {
  name: string;
  script: string;
  /** Added to (and overriding) this process's environment. */
  env: Record<string, string>;
  /** GET this URL; a 2xx answer means ready. */
  readyUrl: string;
}

/** A spawned app. `exited()` is true once the process has ended (by itself or by a signal). */
export interface RunningApp {
  spec: AppSpec;
  child: ChildProcess;
  /** Absolute path of the log file that receives the child's stdout and stderr. */
  logPath: string;
  /** `Date.now()` at spawn, for "ready in n s". */
  startedAt: number;
  exited(): boolean;
  /** e.g. "exit code 1" or "signal SIGKILL"; "running" while alive. */
  exitDescription(): string;
}

/**
 * Spawns `spec` with `process.execPath` (so a .ts entry runs on the same Node 24 as this script,
 * whatever `node` is on PATH) and stdout+stderr written to `<logDir>/<name>.log` (truncated).
 * The child gets its own process group (`detached`) so a terminal Ctrl-C reaches only the parent,
 * which then stops the children in order; the caller must therefore always stop them.
 */
export function spawnApp(spec: AppSpec, options: { cwd: string; logDir: string }): RunningApp {
  mkdirSync(options.logDir, { recursive: true });
  const logPath = join(options.logDir, `${spec.name}.log`);
  const fd = openSync(logPath, 'w');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [spec.script], { cwd: options.cwd, env: { ...process.env, ...spec.env }, stdio: ['ignore', fd, fd], detached: true });
  } finally {
    // the child has its own copy of the descriptor
    closeSync(fd);
  }
  // a spawn failure (e.g. ENOENT) arrives as 'error'; without a listener it would crash the parent
  child.on('error', () => undefined);
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    spec,
    child,
    logPath,
    startedAt: Date.now(),
    exited,
    exitDescription: () => (child.signalCode !== null ? `signal ${child.signalCode}` : child.exitCode !== null ? `exit code ${child.exitCode}` : 'running'),
  };
}

/** The last `lines` lines of a text file ('' when it cannot be read). */
export function tailFile(path: string, lines = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** "--- last lines of <label> ---", the tail of the app's log, "---". */
export function logTail(app: RunningApp, logLabel: string): string {
  return `--- last lines of ${logLabel} ---\n${tailFile(app.logPath) || '(empty)'}\n---`;
}

/** GETs `url` once (2 s deadline): true on a 2xx; never throws. */
export async function probeReadiness(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer(); // read fully, so the connection is released
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Resolves when `app.spec.readyUrl` answers 2xx. Rejects when the process exits first or after
 * `timeoutMs` (ms), with a message naming the app and ending with the tail of its log
 * (`logLabel` names the log file).
 */
export async function waitUntilReady(app: RunningApp, timeoutMs: number, logLabel: string): Promise<void> {
  const { name, readyUrl } = app.spec;
  try {
    // true on exit as well, so a crashed child is reported at once rather than at the deadline
    await waitFor(`${name} (${readyUrl})`, async () => app.exited() || (await probeReadiness(readyUrl)), timeoutMs, 100);
  } catch (err) {
    throw new Error(`${name} did not become ready: ${(err as Error).message}\n${logTail(app, logLabel)}`);
  }
  if (app.exited()) throw new Error(`${name} stopped before it was ready (${app.exitDescription()})\n${logTail(app, logLabel)}`);
}

/**
 * Stops apps tier by tier (e.g. [[gateway], services, [issuer]]): SIGTERM to every live app of a
 * tier, wait up to `graceMs` for all of them to exit, SIGKILL the rest, then the next tier.
 * Resolves the names of the apps that had to be killed.
 */
export async function stopApps(tiers: RunningApp[][], graceMs = 10_000): Promise<string[]> {
  const killed: string[] = [];
  for (const tier of tiers) {
    const alive = tier.filter((a) => !a.exited());
    for (const a of alive) a.child.kill('SIGTERM');
    try {
      await waitFor(`${alive.map((a) => a.spec.name).join(', ')} to exit`, async () => alive.every((a) => a.exited()), graceMs, 50);
    } catch {
      const stuck = alive.filter((a) => !a.exited());
      for (const a of stuck) {
        a.child.kill('SIGKILL');
        killed.push(a.spec.name);
      }
      // SIGKILL cannot be ignored; this deadline only covers the kernel reaping the process
      await waitFor('killed apps to exit', async () => stuck.every((a) => a.exited()), 5000, 50).catch(() => undefined);
    }
  }
  return killed;
}

/** SIGKILLs every live app at once (second Ctrl-C, or the parent exiting on an error). */
export function killAll(apps: RunningApp[]): void {
  for (const a of apps) if (!a.exited()) a.child.kill('SIGKILL');
}
