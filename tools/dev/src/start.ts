import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  createDatabase,
  ensurePostgres,
  freePort,
  isPortOpen,
  randomNatsPassword,
  serviceNatsUsers,
  startNatsServer,
  type NatsServerProcess,
} from './infra.ts';
import { killAll, logTail, spawnApp, stopApps, waitUntilReady, type AppSpec, type RunningApp } from './processes.ts';
import { fetchToken, seedDemoData } from './seed.ts';

/**
 * `npm start`: the whole CRM suite on this machine. Finds or starts Postgres, starts NATS, the
 * dev issuer, the five services and the gateway as child processes (logs in tmp/logs/), waits
 * until each is ready, seeds the Maven CRM sample companies once, prints where to go, and runs
 * until Ctrl-C / SIGTERM, then stops everything in order (gateway first, issuer last).
 *
 * Zero trust between the parts, as in production: a fresh Ed25519 key pair per run (the gateway
 * signs internal tokens with the private key, the services get the public key), and NATS with a
 * user per service (its permissions, a fresh random password per run).
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/crm; its database is
 * created if absent), LOG_LEVEL (default info). NATS_URL unset: a nats-server with the services'
 * users is started on 127.0.0.1:4222 (another free port when 4222 is taken), storing in tmp/nats;
 * NATS_URL set: that server is used, every service connecting as its own name with NATS_PASSWORD.
 * `--exit-after-seed` or CRM_START_EXIT_AFTER_SEED=1: stop cleanly once seeded (smoke test).
 * Exit codes: 0 after a clean stop, 1 when something failed to start, 130 on a forced second Ctrl-C.
 */

const repoRoot = resolve(import.meta.dirname, '../../..');
const logDir = resolve(repoRoot, 'tmp/logs');
const csvPath = resolve(repoRoot, 'data/maven-crm/accounts.csv');
const exitAfterSeed = process.argv.includes('--exit-after-seed') || process.env['CRM_START_EXIT_AFTER_SEED'] === '1';
/** Generous: the first start runs every service's migrations. */
const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;

const databaseUrl = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/crm';
const externalNatsUrl = process.env['NATS_URL'];
const externalNatsPassword = process.env['NATS_PASSWORD'];
const logLevel = process.env['LOG_LEVEL'] ?? 'info';

const HOST = '127.0.0.1';
const ISSUER_PORT = 8080;
const GATEWAY_PORT = 3000;
const issuerUrl = `http://${HOST}:${ISSUER_PORT}`;
const gatewayUrl = `http://${HOST}:${GATEWAY_PORT}`;
const SERVICES = [
  { name: 'contacts-svc', grpc: 7051, ops: 9401 },
  { name: 'pipeline-svc', grpc: 7052, ops: 9402 },
  { name: 'quotes-svc', grpc: 7053, ops: 9403 },
  { name: 'activities-svc', grpc: 7054, ops: 9404 },
  { name: 'analytics-svc', grpc: 7055, ops: 9405 },
] as const;
const NATS_PORT = 4222;
const natsStoreDir = resolve(repoRoot, 'tmp/nats');

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const complain = (line: string): void => void process.stderr.write(`${line}\n`);
const logLabel = (app: RunningApp): string => `tmp/logs/${app.spec.name}.log`;

// Everything shutdown() must stop, filled in as things start.
let nats: NatsServerProcess | undefined;
let issuer: RunningApp | undefined;
const services: RunningApp[] = [];
let gateway: RunningApp | undefined;
const allApps = (): RunningApp[] => [gateway, ...services, issuer].filter((a): a is RunningApp => a !== undefined);
let stopping: Promise<void> | undefined;

/** Stops the children (gateway → services → issuer), then a NATS server this run started, and exits with `code`. Idempotent. */
function shutdown(code: number): Promise<void> {
  stopping ??= (async () => {
    const started = allApps().length > 0;
    if (started) say('Stopping…');
    const killed = await stopApps([gateway ? [gateway] : [], services, issuer ? [issuer] : []], STOP_GRACE_MS);
    if (killed.length > 0) complain(`  killed after ${STOP_GRACE_MS / 1000} s without exiting: ${killed.join(', ')}`);
    if (nats) {
      await nats.dispose();
      say('  stopped the nats-server started for this run');
    }
    if (started) say('Stopped.');
    process.exit(code);
  })();
  return stopping;
}

function onSignal(): void {
  if (!stopping) {
    void shutdown(0);
    return;
  }
  complain('Forced exit: killing the remaining processes.');
  killAll(allApps());
  void nats?.stop(); // sends its SIGTERM synchronously; not worth waiting for
  process.exit(130);
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// The children have their own process groups: never leave them behind when we exit on an error.
process.on('exit', () => killAll(allApps()));

function start(spec: AppSpec): RunningApp {
  if (stopping) throw new Error('stopping');
  const app = spawnApp(spec, { cwd: repoRoot, logDir });
  app.child.once('exit', () => {
    if (stopping) return;
    complain(`✗ ${spec.name} stopped unexpectedly (${app.exitDescription()})\n${logTail(app, logLabel(app))}`);
    void shutdown(1);
  });
  return app;
}

async function ready(app: RunningApp, detail: string): Promise<void> {
  await waitUntilReady(app, READY_TIMEOUT_MS, logLabel(app));
  const seconds = ((Date.now() - app.startedAt) / 1000).toFixed(1);
  say(`  ✓ ${app.spec.name.padEnd(15)} ${detail.padEnd(38)} ready in ${seconds} s`);
}

/** Ports this run needs that something already listens on ("3000 (gateway)", …). */
async function busyPorts(): Promise<string[]> {
  const wanted: [number, string][] = [
    [GATEWAY_PORT, 'gateway'],
    [ISSUER_PORT, 'dev-issuer'],
    ...SERVICES.flatMap((s): [number, string][] => [
      [s.grpc, `${s.name} gRPC`],
      [s.ops, `${s.name} ops`],
    ]),
  ];
  const open = await Promise.all(wanted.map(([port]) => isPortOpen(HOST, port)));
  return wanted.filter((_, i) => open[i]).map(([port, what]) => `${port} (${what})`);
}

async function main(): Promise<void> {
  // before starting anything: a busy port almost always means the previous run is still up
  const busy = await busyPorts();
  if (busy.length > 0) {
    complain(
      `Cannot start: ports already in use on ${HOST}: ${busy.join(', ')}.\n` +
        `Probably a previous \`npm start\` is still running: stop it with Ctrl-C in its terminal\n` +
        `(find it with \`pgrep -af 'src/main.ts'\` or \`ss -ltnp\`), then run \`npm start\` again.`,
    );
    process.exit(1);
  }

  // the admin connection goes to the same server's `postgres` database, which always exists
  const dbUrl = new URL(databaseUrl);
  const dbName = decodeURIComponent(dbUrl.pathname.replace(/^\//, '')) || 'crm';
  const adminUrl = new URL(databaseUrl);
  adminUrl.pathname = '/postgres';
  await ensurePostgres(adminUrl.toString(), say);
  const crmDatabaseUrl = await createDatabase(adminUrl.toString(), dbName);
  if (externalNatsUrl !== undefined && !externalNatsPassword) {
    throw new Error('NATS_URL is set but NATS_PASSWORD is not: the services need the password of their NATS users (unset NATS_URL to run a local nats-server)');
  }
  const natsPasswords = new Map<string, string>();
  let natsUrl: string;
  if (externalNatsUrl === undefined) {
    mkdirSync(natsStoreDir, { recursive: true });
    const users = serviceNatsUsers((user) => {
      const password = randomNatsPassword();
      natsPasswords.set(user, password);
      return password;
    });
    const port = (await isPortOpen(HOST, NATS_PORT)) ? await freePort() : NATS_PORT;
    nats = await startNatsServer({ users, port, storeDir: natsStoreDir });
    natsUrl = nats.url;
  } else {
    natsUrl = externalNatsUrl;
  }
  say(`Postgres ${dbUrl.host}/${dbName} · NATS ${natsUrl.replace(/^nats:\/\//, '')} · logs in tmp/logs/`);

  // this run's internal-token key pair: only this gateway can act as a caller of these services
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const internalTokenPublicKey = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const internalTokenPrivateKey = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  issuer = start({
    name: 'dev-issuer',
    script: 'tools/dev-issuer/src/main.ts',
    env: { DEV_ISSUER_HOST: HOST, DEV_ISSUER_PORT: String(ISSUER_PORT) },
    readyUrl: `${issuerUrl}/realms/crm/.well-known/openid-configuration`,
  });
  for (const s of SERVICES) {
    const env = {
      DATABASE_URL: crmDatabaseUrl,
      NATS_URL: natsUrl,
      NATS_PASSWORD: natsPasswords.get(s.name) ?? externalNatsPassword ?? '',
      INTERNAL_TOKEN_PUBLIC_KEYS: internalTokenPublicKey,
      GRPC_PORT: String(s.grpc),
      OPS_PORT: String(s.ops),
      LOG_LEVEL: logLevel,
    };
    services.push(start({ name: s.name, script: `apps/${s.name}/src/main.ts`, env, readyUrl: `http://${HOST}:${s.ops}/readyz` }));
  }
  await Promise.all([
    ready(issuer, `${issuerUrl}/realms/crm`),
    ...services.map((app, i) => ready(app, `gRPC :${SERVICES[i]!.grpc}, ops :${SERVICES[i]!.ops}`)),
  ]);

  gateway = start({
    name: 'gateway',
    script: 'apps/gateway/src/main.ts',
    env: {
      HOST,
      PORT: String(GATEWAY_PORT),
      DATABASE_URL: crmDatabaseUrl,
      KEYCLOAK_URL: issuerUrl,
      CONTACTS_GRPC_URL: `${HOST}:${SERVICES[0].grpc}`,
      ANALYTICS_GRPC_URL: `${HOST}:${SERVICES[4].grpc}`,
      INTERNAL_TOKEN_PRIVATE_KEY: internalTokenPrivateKey,
      LOG_LEVEL: logLevel,
    },
    readyUrl: `${gatewayUrl}/readyz`,
  });
  await ready(gateway, gatewayUrl);

  const token = await fetchToken(issuerUrl, 'admin@acme.test', 'crm-dev');
  const seeded = await seedDemoData({
    gatewayUrl,
    token,
    csvPath,
    log: (m) => {
      if (m.startsWith('warning')) complain(`  seed ${m}`);
    },
  });
  say(
    seeded.skipped
      ? 'Demo data: companies already present, not seeding again.'
      : `Demo data: created ${seeded.created} companies from data/maven-crm/accounts.csv.`,
  );

  // one end-to-end read (gateway → analytics-svc → Postgres) before saying the suite runs
  const overview = await fetch(`${gatewayUrl}/api/v1/analytics/overview`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(15_000),
  });
  if (!overview.ok) throw new Error(`GET /api/v1/analytics/overview failed with HTTP ${overview.status}: ${await overview.text()}`);
  await overview.arrayBuffer();

  const tokenUrl = `${issuerUrl}/realms/crm/protocol/openid-connect/token`;
  say('');
  say('CRM suite is running.');
  say(`  Gateway   ${gatewayUrl}`);
  say(`  API docs  ${gatewayUrl}/api/docs`);
  say(`  Issuer    ${issuerUrl}/realms/crm (demo user admin@acme.test, password crm-dev)`);
  say('Try it:');
  say(
    `  TOKEN=$(curl -s -d grant_type=password -d client_id=crm-cli -d username=admin@acme.test -d password=crm-dev ${tokenUrl} | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
  );
  say(`  curl -s -H "Authorization: Bearer $TOKEN" ${gatewayUrl}/api/v1/companies`);

  if (exitAfterSeed) {
    say('');
    say('--exit-after-seed: shutting down.');
    await shutdown(0);
    return;
  }
  say('Press Ctrl-C to stop.');
}

main().catch((err: unknown) => {
  // once shutdown has begun, errors are just the startup being cut short
  if (!stopping) complain(`✗ npm start failed: ${err instanceof Error ? err.message : String(err)}`);
  void shutdown(1);
});
