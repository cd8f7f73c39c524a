import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { NatsCredentials } from '@crm/platform';
import { natsAuthorizationConfig, type NatsUser } from './nats-auth.ts';

export * from './nats-auth.ts';

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

/** A nats-server child process with JetStream and user authentication, on 127.0.0.1:`port`, storing in `storeDir`. */
export interface NatsServerProcess {
  url: string;
  port: number;
  storeDir: string;
  /** The users the server accepts (every other client is refused). */
  users: readonly NatsUser[];
  /** `{ user, pass }` of one of {@link users}; throws for an unknown user. */
  credentials(user: string): NatsCredentials;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port, store and users (after stop). */
  start(): Promise<void>;
  /** Stops it and deletes its configuration and its store (the store only if it was created here). */
  dispose(): Promise<void>;
}

/**
 * Spawns a private nats-server with JetStream that accepts only `users` (for tests and for
 * `npm start`): its configuration (listen address, store, `authorization` with the users and
 * their permissions, see nats-auth.ts) is written to a private temp folder. `port` 0 picks a free
 * one; `storeDir` defaults to a new temp folder. Throws with install instructions when no binary
 * is found, or when the server exits during start (e.g. a bad configuration).
 */
export async function startNatsServer(options: { users: readonly NatsUser[]; port?: number; storeDir?: string }): Promise<NatsServerProcess> {
  const bin = findNatsServer();
  if (!bin) throw new Error(`nats-server is not installed. ${NATS_INSTALL_HINT}`);
  const port = options.port || (await freePort());
  const ownStore = !options.storeDir;
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'crm-nats-'));
  // mkdtemp creates the folder 0700 and the file is 0600: the passwords stay private
  const configDir = mkdtempSync(join(tmpdir(), 'crm-nats-conf-'));
  const configFile = join(configDir, 'nats.conf');
  writeFileSync(
    configFile,
    `listen: ${JSON.stringify(`127.0.0.1:${port}`)}\njetstream: { store_dir: ${JSON.stringify(storeDir)} }\n${natsAuthorizationConfig(options.users)}`,
    { mode: 0o600 },
  );
  let child: ChildProcess | undefined;

  const start = async () => {
    const proc = spawn(bin, ['-c', configFile], { stdio: 'ignore' });
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
  try {
    await start();
  } catch (err) {
    rmSync(configDir, { recursive: true, force: true });
    if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    users: options.users,
    credentials: (user) => {
      const found = options.users.find((u) => u.user === user);
      if (!found) throw new Error(`nats-server has no user ${user}`);
      return { user: found.user, pass: found.pass };
    },
    stop,
    start,
    dispose: async () => {
      await stop();
      rmSync(configDir, { recursive: true, force: true });
      if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
