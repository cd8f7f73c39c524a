import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * Local infrastructure for `npm start` and the tests. Policy (developers' guide): use Postgres and
 * NATS when reachable, start them when installed, otherwise fail saying exactly what to install.
 */

/** Resolves true when a TCP connection to host:port succeeds within `timeoutMs`. */
export function isPortOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host);
  });
}

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls `check` every `intervalMs` until it resolves true; rejects after `timeoutMs` naming `what`.
 * (A condition with a deadline — never a fixed sleep.)
 */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) };
}

/**
 * Makes sure the Postgres server of `adminUrl` (a postgres:// URL of a database that exists, e.g.
 * `…/postgres`) answers: reachable → used; else a Debian cluster (`pg_ctlcluster`) is started;
 * else throws with install instructions.
 */
export async function ensurePostgres(adminUrl: string, log: (msg: string) => void = () => undefined): Promise<void> {
  const { host, port } = hostPort(adminUrl, 5432);
  if (await isPortOpen(host, port)) return;
  const clusters = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
  if (clusters.length > 0 && existsSync('/usr/bin/pg_ctlcluster')) {
    const version = clusters.sort().at(-1)!;
    log(`PostgreSQL not reachable at ${host}:${port}; starting cluster ${version}/main`);
    execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
    await waitFor(`PostgreSQL on ${host}:${port}`, () => isPortOpen(host, port), 30_000, 200);
    return;
  }
  throw new Error(
    `PostgreSQL is not reachable at ${host}:${port} and none is installed here.\n` +
      `Install and start it (Debian/Ubuntu: apt-get install -y postgresql && pg_ctlcluster --skip-systemctl-redirect 15 main start),\n` +
      `or point DATABASE_URL at a server you have (trust or password auth).`,
  );
}

/** Creates database `name` on the server of `adminUrl` if absent; returns its URL. */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database "${name.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Drops database `name` (terminating its sessions). */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`drop database if exists "${name.replaceAll('"', '""')}" with (force)`);
  } finally {
    await client.end();
  }
}

/** Path of the `nats-server` binary: `$NATS_SERVER_BIN`, `PATH`, or /usr/sbin; undefined if none. */
export function findNatsServer(): string | undefined {
  const candidates = [
    process.env['NATS_SERVER_BIN'],
    ...(process.env['PATH'] ?? '').split(':').map((d) => join(d, 'nats-server')),
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  return candidates.find((c): c is string => Boolean(c) && existsSync(c!));
}

const NATS_INSTALL_HINT =
  'Install it (Debian/Ubuntu: apt-get install -y nats-server) or set NATS_SERVER_BIN, or point NATS_URL at a running JetStream-enabled server.';

/** A nats-server child process with JetStream, on 127.0.0.1:`port`, storing in `storeDir`. */
export interface NatsServerProcess {
  url: string;
  port: number;
  storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store (after stop). */
  start(): Promise<void>;
  /** Stops it and deletes its store (only if the store was created here). */
  dispose(): Promise<void>;
}

/**
 * Spawns a private nats-server with JetStream (for tests and for `npm start` when none is
 * reachable). `port` 0 picks a free one; `storeDir` defaults to a new temp folder. Throws with
 * install instructions when no binary is found.
 */
export async function startNatsServer(options: { port?: number; storeDir?: string } = {}): Promise<NatsServerProcess> {
  const bin = findNatsServer();
  if (!bin) throw new Error(`nats-server is not installed. ${NATS_INSTALL_HINT}`);
  const port = options.port || (await freePort());
  const ownStore = !options.storeDir;
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'crm-nats-'));
  let child: ChildProcess | undefined;

  const start = async () => {
    const proc = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], { stdio: 'ignore' });
    child = proc;
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`nats-server exited with ${String(code)}`))));
    exited.catch(() => undefined);
    await Promise.race([waitFor(`nats-server on port ${port}`, () => isPortOpen('127.0.0.1', port), 10_000, 25), exited]);
  };
  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop,
    start,
    dispose: async () => {
      await stop();
      if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/**
 * Makes sure NATS with JetStream answers at `natsUrl`: reachable → used (returns undefined);
 * else a private nats-server is started on that port (returned, so the caller stops it);
 * else throws with install instructions.
 */
export async function ensureNats(natsUrl: string, log: (msg: string) => void = () => undefined): Promise<NatsServerProcess | undefined> {
  const { host, port } = hostPort(natsUrl.split(',')[0]!, 4222);
  if (await isPortOpen(host, port)) return undefined;
  if (!findNatsServer()) throw new Error(`NATS is not reachable at ${host}:${port} and nats-server is not installed. ${NATS_INSTALL_HINT}`);
  log(`NATS not reachable at ${host}:${port}; starting nats-server with JetStream`);
  return startNatsServer({ port });
}
