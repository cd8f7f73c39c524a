import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pg from 'pg';
import {
  createDatabase,
  dropDatabase,
  ensurePostgres,
  findNatsServer,
  freePort,
  randomNatsPassword,
  serviceNatsUsers,
  startNatsServer,
  type NatsServerProcess,
} from './infra.ts';
import { killAll, spawnApp, stopApps, waitUntilReady, type AppSpec, type RunningApp } from './processes.ts';
import { fetchToken } from './seed.ts';
import { measureConsumer, measureRawPublish, measureRawPull, measureRawSql, measureRelay, type EventPathInfra } from './bench/event-path.ts';
import { cpuSecondsOf, describeMachine, memoryOf, type Machine } from './bench/machine.ts';
import { measureDuplicateCandidates, skipDuplicateScanOfLoadedData } from './bench/duplicates.ts';
import { listScenarios, loadSearchData, measureDeepPage, measureListScenarios, SEARCH_DATA } from './bench/search.ts';
import { percentile, sleep } from './bench/stats.ts';
import { int, ms, pct, renderTable, type Row } from './bench/table.ts';
import { non2xxShare, requireWrk, rps, runWrk, shareOf, type WrkResult, type WrkRun } from './bench/wrk.ts';

/**
 * `npm run bench`: the performance figures of issue 6 §1, each beside a baseline measured in the
 * same run and its target. Boots the real processes the way `npm start` does (one Node process
 * each: dev issuer, contacts-svc, analytics-svc, gateway; plus an Express hello-world, a stub gRPC
 * upstream and a second gateway in front of it) on a private throwaway database and private
 * nats-servers, drives HTTP load with wrk over loopback (bounded by time), measures the event path
 * in-process (the platform's real OutboxRelay and the analytics consumer), prints one table and
 * writes the figures to tmp/bench/results-<time>.json. Everything it started is stopped and its
 * databases dropped, also on Ctrl-C. About 3 minutes.
 *
 * Options: `--only=<name,…>` runs some scenarios (hello, healthz, get16, get64, stub, post,
 * events, rawsql, projection, overload, search); `--cpu-prof` runs both gateways, contacts-svc and the consumer's analytics-svc with
 * `node --cpu-prof` (profiles in tmp/bench/prof/, written when they stop); `--hold` boots
 * everything, prints the URLs and a token and waits for Ctrl-C (to drive or profile by hand).
 * Needs wrk (Debian/Ubuntu: apt-get install -y wrk), PostgreSQL and nats-server as `npm start` does.
 */

const repoRoot = resolve(import.meta.dirname, '../../..');
const benchDir = resolve(repoRoot, 'tmp/bench');
const logDir = resolve(benchDir, 'logs');
const profDir = resolve(benchDir, 'prof');
const adminUrl = (() => {
  const url = new URL(process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/crm');
  url.pathname = '/postgres';
  return url.toString();
})();
const HOST = '127.0.0.1';
const UNLIMITED = '1000000000';

const argv = process.argv.slice(2);
const only = argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const cpuProf = argv.includes('--cpu-prof');
const hold = argv.includes('--hold');
const wanted = (name: string): boolean => !only || only.includes(name);

const say = (line: string): void => void process.stdout.write(`${line}\n`);

// everything cleanup() must stop or drop, filled in as it starts
const apps: RunningApp[] = [];
const natsServers: NatsServerProcess[] = [];
const databases: string[] = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopApps([apps.filter((a) => a.spec.name.startsWith('gateway')), apps.filter((a) => !a.spec.name.startsWith('gateway'))], 10_000);
    for (const n of natsServers) await n.dispose().catch(() => undefined);
    for (const db of databases) await dropDatabase(adminUrl, db).catch(() => undefined);
  })();
  return cleaning;
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));
process.on('exit', () => killAll(apps));

async function startApp(spec: AppSpec, profile = false): Promise<RunningApp> {
  const env = profile ? { ...spec.env, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir} --cpu-prof-name=${spec.name}-\${pid}.cpuprofile` } : spec.env;
  const app = spawnApp({ ...spec, env }, { cwd: repoRoot, logDir });
  apps.push(app);
  await waitUntilReady(app, 90_000, `tmp/bench/logs/${spec.name}.log`);
  return app;
}

function organizationIdOf(alias: string): string {
  const realm = JSON.parse(readFileSync(resolve(repoRoot, 'deploy/keycloak/realm-crm.json'), 'utf8')) as { organizations?: { alias: string; id: string }[] };
  const id = realm.organizations?.find((o) => o.alias === alias)?.id;
  if (!id) throw new Error(`organization ${alias} is not in the realm export`);
  return id;
}

async function throwawayDatabase(prefix: string): Promise<string> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  databases.push(name);
  return createDatabase(adminUrl, name);
}

async function privateNats(): Promise<{ server: NatsServerProcess; password: string; bench: { user: string; pass: string } }> {
  const password = randomNatsPassword();
  const bench = { user: 'crm-bench', pass: randomNatsPassword() };
  const server = await startNatsServer({ users: [...serviceNatsUsers(() => password), bench] });
  natsServers.push(server);
  return { server, password, bench };
}

/** A wrk result with the CPU time each process measured spent per request meanwhile (ms). */
type Measured = WrkResult & { cpuMsPerRequest: Record<string, number> };

/** A wrk run and the CPU time each process of `processes` spent per request meanwhile (ms). */
async function runMeasured(run: WrkRun, processes: Record<string, RunningApp>): Promise<Measured> {
  const before = Object.fromEntries(Object.entries(processes).map(([name, app]) => [name, cpuSecondsOf(app.child.pid) ?? 0]));
  const result = await runWrk(run);
  const cpuMsPerRequest = Object.fromEntries(
    Object.entries(processes).map(([name, app]) => [name, (((cpuSecondsOf(app.child.pid) ?? 0) - before[name]!) * 1000) / Math.max(1, result.requests)]),
  );
  return { ...result, cpuMsPerRequest };
}

/** `gateway 0.41, contacts-svc 0.22` (CPU ms per request). */
function cpuText(r: { cpuMsPerRequest: Record<string, number> }): string {
  return Object.entries(r.cpuMsPerRequest)
    .map(([name, msPerRequest]) => `${name} ${msPerRequest.toFixed(2)}`)
    .join(', ');
}

/** `wrk` result summary for the log: req/s, p50/p99, non-2xx share. */
function describe(r: WrkResult): string {
  return `${int(rps(r))} req/s, p50 ${ms(r.p50Us / 1000)} ms, p99 ${ms(r.p99Us / 1000)} ms, non-2xx ${pct(non2xxShare(r))}`;
}

const results: Record<string, unknown> = {};
const rows: Row[] = [];

async function main(): Promise<void> {
  requireWrk();
  mkdirSync(logDir, { recursive: true });
  if (cpuProf) mkdirSync(profDir, { recursive: true });
  await ensurePostgres(adminUrl, say);
  const machine: Machine = await describeMachine(adminUrl, findNatsServer() ?? 'nats-server');
  results['machine'] = machine;
  say(
    `Machine: ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres}, ${machine.natsServer}, ${machine.wrk}`,
  );
  say(`Load average ${machine.load}${machine.otherTestRuns ? `; WARNING: ${machine.otherTestRuns} jest processes running — figures will be noisy` : ''}`);
  const org = organizationIdOf('acme');

  // ── phase A: the event path, on its own database and nats-server ──
  if (wanted('events')) {
    const databaseUrl = await throwawayDatabase('crm_bench_events');
    const nats = await privateNats();
    const infra: EventPathInfra = {
      databaseUrl,
      natsUrl: nats.server.url,
      credentials: (user) => nats.server.credentials(user),
      benchUser: nats.bench,
      organizationId: org,
    };
    const EVENTS = 20_000;
    say(`Event path: ${int(EVENTS)} outbox rows → relay (in-process) → JetStream → analytics-svc…`);
    const relay = await measureRelay(infra, EVENTS, 30);
    say(`  relay     ${int(relay.perSecond)} events/s (${int(relay.events)} in ${relay.seconds.toFixed(1)} s)`);
    const rawPublish = await measureRawPublish(infra, EVENTS);
    const rawPull = await measureRawPull(infra, EVENTS, 30);
    say(`  raw JetStream: publish ${int(rawPublish.perSecond)}/s, pull+ack ${int(rawPull.perSecond)}/s`);
    const ports = { grpc: await freePort(), ops: await freePort() };
    const analytics = await startApp(
      {
        name: 'analytics-svc-events',
        script: 'apps/analytics-svc/src/main.ts',
        env: {
          DATABASE_URL: databaseUrl,
          NATS_URL: nats.server.url,
          NATS_PASSWORD: nats.password,
          INTERNAL_TOKEN_PUBLIC_KEYS: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString(),
          GRPC_PORT: String(ports.grpc),
          OPS_PORT: String(ports.ops),
          LOG_LEVEL: 'info',
        },
        readyUrl: `http://${HOST}:${ports.ops}/readyz`,
      },
      cpuProf,
    );
    const consumer = await measureConsumer(infra, relay.events, 30);
    say(`  consumer  ${int(consumer.perSecond)} events/s (${int(consumer.events)} in ${consumer.seconds.toFixed(1)} s)`);
    await stopApps([[analytics]]);
    results['events'] = { relay, consumer, rawPublish, rawPull };
    rows.push({
      figure: 'outbox relay (events/s)',
      measured: int(relay.perSecond) + (relay.complete ? '' : ' (cut at 30 s)'),
      baseline: `${int(rawPublish.perSecond)} raw JetStream publish`,
      target: '≥ 5,000',
      pass: relay.perSecond >= 5000,
    });
    rows.push({
      figure: 'consumer apply (events/s)',
      measured: int(consumer.perSecond) + (consumer.complete ? '' : ' (cut at 30 s)'),
      baseline: `${int(rawPull.perSecond)} raw JetStream pull+ack`,
      target: '≥ 5,000',
      pass: consumer.perSecond >= 5000,
    });
    await nats.server.dispose();
  }

  // ── phase B: the processes ──
  const needProcesses = ['hello', 'healthz', 'get16', 'get64', 'stub', 'post', 'rawsql', 'projection', 'overload', 'search'].some(wanted);
  if (!needProcesses) return;
  say('Starting the processes (private database and nats-server; logs in tmp/bench/logs/)…');
  const databaseUrl = await throwawayDatabase('crm_bench');
  const nats = await privateNats();
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const port = () => freePort();
  const issuerPort = await port();
  const issuerUrl = `http://${HOST}:${issuerPort}`;
  const helloPort = await port();
  const stub = { grpc: await port(), ops: await port() };
  const svc = { contacts: { grpc: await port(), ops: await port() }, analytics: { grpc: await port(), ops: await port() } };
  const gw = { port: await port(), ops: await port() };
  const gwStub = { port: await port(), ops: await port() };

  const serviceEnvOf = (s: { grpc: number; ops: number }) => ({
    DATABASE_URL: databaseUrl,
    NATS_URL: nats.server.url,
    NATS_PASSWORD: nats.password,
    INTERNAL_TOKEN_PUBLIC_KEYS: publicPem,
    GRPC_PORT: String(s.grpc),
    OPS_PORT: String(s.ops),
    LOG_LEVEL: 'info',
  });
  const gatewayEnv = (p: { port: number; ops: number }, contactsUrl: string, analyticsUrl: string) => ({
    HOST,
    PORT: String(p.port),
    OPS_PORT: String(p.ops),
    DATABASE_URL: databaseUrl,
    KEYCLOAK_URL: issuerUrl,
    CONTACTS_GRPC_URL: contactsUrl,
    ANALYTICS_GRPC_URL: analyticsUrl,
    INTERNAL_TOKEN_PRIVATE_KEY: privatePem,
    // the limiters still count every request in Postgres; the bench must not hit their limit
    RATE_LIMIT_PER_MINUTE: UNLIMITED,
    RATE_LIMIT_PER_IP_PER_MINUTE: UNLIMITED,
    LOG_LEVEL: 'info',
  });

  const booted = Date.now();
  const [hello, stubUpstream, , contacts, analytics] = await Promise.all([
    startApp({ name: 'hello', script: 'tools/dev/src/bench/hello.ts', env: { PORT: String(helloPort) }, readyUrl: `http://${HOST}:${helloPort}/readyz` }),
    startApp({
      name: 'stub-upstream',
      script: 'tools/dev/src/bench/stub-upstream.ts',
      env: { GRPC_PORT: String(stub.grpc), OPS_PORT: String(stub.ops) },
      readyUrl: `http://${HOST}:${stub.ops}/readyz`,
    }),
    startApp({
      name: 'dev-issuer',
      script: 'tools/dev-issuer/src/main.ts',
      env: { DEV_ISSUER_HOST: HOST, DEV_ISSUER_PORT: String(issuerPort) },
      readyUrl: `${issuerUrl}/realms/crm/.well-known/openid-configuration`,
    }),
    startApp(
      {
        name: 'contacts-svc',
        script: 'apps/contacts-svc/src/main.ts',
        env: serviceEnvOf(svc.contacts),
        readyUrl: `http://${HOST}:${svc.contacts.ops}/readyz`,
      },
      cpuProf,
    ),
    startApp({
      name: 'analytics-svc',
      script: 'apps/analytics-svc/src/main.ts',
      env: serviceEnvOf(svc.analytics),
      readyUrl: `http://${HOST}:${svc.analytics.ops}/readyz`,
    }),
  ]);
  const gateway = await startApp(
    {
      name: 'gateway',
      script: 'apps/gateway/src/main.ts',
      env: gatewayEnv(gw, `${HOST}:${svc.contacts.grpc}`, `${HOST}:${svc.analytics.grpc}`),
      readyUrl: `http://${HOST}:${gw.port}/readyz`,
    },
    cpuProf,
  );
  const gatewayStub = await startApp(
    {
      name: 'gateway-stub',
      script: 'apps/gateway/src/main.ts',
      env: gatewayEnv(gwStub, `${HOST}:${stub.grpc}`, `${HOST}:${stub.grpc}`),
      readyUrl: `http://${HOST}:${gwStub.port}/readyz`,
    },
    cpuProf,
  );
  say(`  ready in ${((Date.now() - booted) / 1000).toFixed(1)} s`);
  const gatewayUrl = `http://${HOST}:${gw.port}`;
  const token = () => fetchToken(issuerUrl, 'admin@acme.test', 'crm-dev');

  // companies to read: created through the API (this also warms up the write path)
  const ids: string[] = [];
  {
    const t = await token();
    await Promise.all(
      Array.from({ length: 8 }, async (_, loop) => {
        for (let i = loop; i < 200; i += 8) ids.push(await createCompany(gatewayUrl, t, `Seed ${i}`));
      }),
    );
  }
  const paths = ids.map((id) => `/api/v1/companies/${id}`);
  let raw: Awaited<ReturnType<typeof measureRawSql>> | undefined;
  if (wanted('rawsql')) {
    say('Raw SQL baselines (pg, 16 connections, 5 s each)…');
    raw = await measureRawSql(databaseUrl, org, 16, 5);
    say(`  create ${int(raw.create.perSecond)}/s p99 ${ms(raw.create.p99Ms)} ms; get ${int(raw.get.perSecond)}/s p99 ${ms(raw.get.p99Ms)} ms`);
    results['rawSql'] = raw;
  }
  const memoryAtStart = memoryOf(gateway.child.pid);
  results['gatewayMemoryAfterBoot'] = memoryAtStart;

  if (hold) {
    say(`Holding (Ctrl-C stops everything). Gateway ${gatewayUrl}, gateway over the stub http://${HOST}:${gwStub.port}, hello http://${HOST}:${helloPort}/`);
    say(`  TOKEN=${await token()}`);
    say(`  GET path: ${paths[0]}`);
    await new Promise(() => undefined);
  }

  let hello16: Measured | undefined;
  if (wanted('hello') || wanted('healthz') || wanted('stub')) {
    const r = await runMeasured({ url: `http://${HOST}:${helloPort}/`, connections: 16, seconds: 10 }, { hello });
    hello16 = r;
    say(`Express hello-world (c=16): ${describe(r)}; CPU ms/request: ${cpuText(r)}`);
    results['hello'] = hello16;
    rows.push({ figure: 'Express 5 hello-world, c=16 (req/s)', measured: int(rps(hello16)), baseline: '—', target: 'baseline', pass: undefined });
  }
  if (wanted('healthz')) {
    const r = await runMeasured({ url: `${gatewayUrl}/healthz`, connections: 16, seconds: 10 }, { gateway });
    say(`gateway /healthz (c=16): ${describe(r)}; CPU ms/request: ${cpuText(r)}`);
    results['healthz'] = r;
    rows.push({
      figure: 'gateway /healthz, c=16 (req/s)',
      measured: `${int(rps(r))} (p99 ${ms(r.p99Us / 1000)} ms)`,
      baseline: hello16 ? `${int(rps(hello16))} hello-world` : '—',
      target: '—',
      pass: undefined,
    });
  }
  if (wanted('get16')) {
    const t = await token();
    await runWrk({ url: gatewayUrl, paths, token: t, connections: 16, seconds: 3 }); // warm-up
    const r = await runMeasured({ url: gatewayUrl, paths, token: t, connections: 16, seconds: 15 }, { gateway, 'contacts-svc': contacts });
    say(`GET /api/v1/companies/{id} (c=16): ${describe(r)}; CPU ms/request: ${cpuText(r)}`);
    results['get16'] = r;
    rows.push({
      figure: 'GET by id with token, c=16 (req/s)',
      measured: int(rps(r)) + okSuffix(r),
      baseline: raw ? `${int(raw.get.perSecond)} raw SQL select` : '—',
      target: '≥ 2,500',
      pass: rps(r) >= 2500 && non2xxShare(r) === 0,
    });
    rows.push({
      figure: 'GET by id with token, c=16: p50 / p99 (ms)',
      measured: `${ms(r.p50Us / 1000)} / ${ms(r.p99Us / 1000)}`,
      baseline: raw ? `${ms(raw.get.p50Ms)} / ${ms(raw.get.p99Ms)} raw SQL` : '—',
      target: 'p99 ≤ 25',
      pass: r.p99Us / 1000 <= 25,
    });
    rows.push({ figure: 'GET by id, c=16: CPU ms per request', measured: cpuText(r), baseline: '—', target: '—', pass: undefined });
  }
  if (wanted('get64')) {
    const r = await runMeasured({ url: gatewayUrl, paths, token: await token(), connections: 64, seconds: 10 }, { gateway, 'contacts-svc': contacts });
    say(`GET /api/v1/companies/{id} (c=64): ${describe(r)}; CPU ms/request: ${cpuText(r)}`);
    results['get64'] = r;
    rows.push({
      figure: 'GET by id with token, c=64 (req/s; p50 / p99 ms)',
      measured: `${int(rps(r))}; ${ms(r.p50Us / 1000)} / ${ms(r.p99Us / 1000)}${okSuffix(r)}`,
      baseline: '—',
      target: '—',
      pass: undefined,
    });
  }
  if (wanted('stub')) {
    const t = await token();
    const url = `http://${HOST}:${gwStub.port}`;
    await runWrk({ url, paths, token: t, connections: 16, seconds: 2 }); // warm-up
    const r = await runMeasured({ url, paths, token: t, connections: 16, seconds: 10 }, { gateway: gatewayStub, stub: stubUpstream });
    say(`gateway → stub gRPC upstream (c=16): ${describe(r)}; CPU ms/request: ${cpuText(r)}`);
    results['stub'] = r;
    const share = hello16 ? rps(r) / rps(hello16) : 0;
    rows.push({
      figure: 'gateway over stub gRPC upstream, c=16 (req/s)',
      measured: `${int(rps(r))} = ${pct(share)} of hello (p99 ${ms(r.p99Us / 1000)} ms)${okSuffix(r)}`,
      baseline: hello16 ? `${int(rps(hello16))} hello-world` : '—',
      target: '≥ 50 % of hello',
      pass: hello16 ? share >= 0.5 && non2xxShare(r) === 0 : undefined,
    });
    rows.push({
      figure: 'gateway over stub: CPU ms per request',
      measured: cpuText(r),
      baseline: hello16 ? cpuText(hello16) : '—',
      target: '—',
      pass: undefined,
    });
  }
  if (wanted('post')) {
    const t = await token();
    const body = '{"name":"Bench {n}","domain":"b{n}.bench.test","industry":"software","employees":12}';
    await runWrk({ url: `${gatewayUrl}/api/v1/companies`, method: 'POST', body, idempotency: true, token: t, connections: 16, seconds: 2 }); // warm-up
    const r = await runMeasured(
      { url: `${gatewayUrl}/api/v1/companies`, method: 'POST', body, idempotency: true, token: t, connections: 16, seconds: 15 },
      { gateway, 'contacts-svc': contacts, 'analytics-svc': analytics },
    );
    say(`POST /api/v1/companies with Idempotency-Key (c=16): ${describe(r)}; CPU ms/request: ${cpuText(r)}`);
    results['post'] = r;
    rows.push({
      figure: 'POST creates with Idempotency-Key, c=16 (/s)',
      measured: int(rps(r)) + okSuffix(r),
      baseline: raw ? `${int(raw.create.perSecond)} raw SQL insert+outbox tx` : '—',
      target: '≥ 800',
      pass: rps(r) >= 800 && non2xxShare(r) === 0,
    });
    rows.push({
      figure: 'POST creates, c=16: p50 / p99 (ms)',
      measured: `${ms(r.p50Us / 1000)} / ${ms(r.p99Us / 1000)}`,
      baseline: raw ? `${ms(raw.create.p50Ms)} / ${ms(raw.create.p99Ms)} raw SQL` : '—',
      target: 'p99 ≤ 100',
      pass: r.p99Us / 1000 <= 100,
    });
    rows.push({ figure: 'POST creates: CPU ms per request', measured: cpuText(r), baseline: '—', target: '—', pass: undefined });
  }
  if (wanted('projection')) {
    say('Commit → projection with 32 writers (15 s)…');
    const p = await measureProjection(gatewayUrl, await token(), databaseUrl, 32, 15);
    say(
      `  ${int(p.writesPerSecond)} writes/s; commit → projection p50 ${ms(p.p50Ms)} ms, p99 ${ms(p.p99Ms)} ms, max ${ms(p.maxMs)} ms (${p.missing} not projected)`,
    );
    results['projection'] = p;
    rows.push({
      figure: 'commit → projection, 32 writers: p50 / p99 (ms)',
      measured: `${ms(p.p50Ms)} / ${ms(p.p99Ms)} at ${int(p.writesPerSecond)} writes/s${p.missing ? `, ${p.missing} missing` : ''}`,
      baseline: '—',
      target: 'p99 ≤ 250',
      pass: p.p99Ms <= 250 && p.missing === 0,
    });
  }
  if (wanted('overload')) {
    const before = memoryOf(gateway.child.pid);
    const r = await runWrk({ url: gatewayUrl, paths, token: await token(), connections: 256, seconds: 15, threads: 2 });
    await sleep(1000);
    const after = memoryOf(gateway.child.pid);
    const shed = shareOf(r, 429, 503);
    say(`Overload GET by id (c=256): ${describe(r)}; 429/503 ${pct(shed)}; gateway RSS ${before?.rssMiB} → ${after?.rssMiB} MiB (peak ${after?.peakMiB})`);
    results['overload'] = { wrk: r, memoryBefore: before, memoryAfter: after, shedShare: shed };
    const timeouts = r.errors.timeout + r.errors.connect + r.errors.read;
    rows.push({
      figure: 'overload c=256 GET: req/s; p50 / p99 (ms)',
      measured: `${int(rps(r))}; ${ms(r.p50Us / 1000)} / ${ms(r.p99Us / 1000)}${timeouts ? `; ${int(timeouts)} socket errors/timeouts` : ''}`,
      baseline: '—',
      target: '—',
      pass: undefined,
    });
    rows.push({
      figure: 'overload c=256: 429/503 share; gateway RSS (MiB)',
      measured: `${pct(shed)}; ${before?.rssMiB ?? '?'} → ${after?.rssMiB ?? '?'} (peak ${after?.peakMiB ?? '?'})`,
      baseline: memoryAtStart ? `${memoryAtStart.rssMiB} MiB after boot` : '—',
      target: '—',
      pass: undefined,
    });
  }
  if (wanted('search')) await searchPhase(databaseUrl, gatewayUrl, token, org);
}

/**
 * Issue 7: contact search, filtered lists and a deep page at a million contacts, through the
 * gateway beside the bare SQL statement of each (loaded last: the data would slow the scenarios
 * above down).
 */
async function searchPhase(databaseUrl: string, gatewayUrl: string, freshToken: () => Promise<string>, org: string): Promise<void> {
  const tagId = randomUUID();
  say(
    `Search data: ${int(SEARCH_DATA.contacts)} contacts and ${int(SEARCH_DATA.companies)} companies (+ ${int(SEARCH_DATA.otherContacts)} contacts of another organization)…`,
  );
  const loadSeconds = await loadSearchData(databaseUrl, org, organizationIdOf('globex'), tagId);
  say(`  loaded in ${loadSeconds.toFixed(0)} s`);
  // a token fetched now: the load can outlast one fetched before it
  const token = await freshToken();
  const figures = await measureListScenarios(databaseUrl, gatewayUrl, token, org, listScenarios(tagId), 40);
  results['search'] = { loadSeconds, figures };
  for (const f of figures) {
    say(`  ${f.name}: API p50 ${ms(f.apiP50)} / p95 ${ms(f.apiP95)} ms; SQL p50 ${ms(f.sqlP50)} / p95 ${ms(f.sqlP95)} ms (${f.rows} rows)`);
    const isSearch = f.name.startsWith('search');
    rows.push({
      figure: `contacts ${f.name}: API p50 / p95 (ms)`,
      measured: `${ms(f.apiP50)} / ${ms(f.apiP95)}`,
      baseline: `${ms(f.sqlP50)} / ${ms(f.sqlP95)} same SQL`,
      target: isSearch ? 'p50 ≤ 1.5× SQL, p95 ≤ 50' : 'p95 ≤ 50',
      pass: f.apiP95 <= 50 && (!isSearch || f.apiP50 <= 1.5 * f.sqlP50),
    });
  }
  const deep = await measureDeepPage(gatewayUrl, token, 'name', 100, 20);
  results['deepPage'] = deep;
  say(`  page at row ${int(deep.depthRows)} (sort=name, 200 per page): p50 ${ms(deep.deepP50)} ms; page 1: ${ms(deep.firstP50)} ms`);
  rows.push({
    figure: `contacts sorted by name: page at row ${int(deep.depthRows)}, p50 (ms)`,
    measured: ms(deep.deepP50),
    baseline: `${ms(deep.firstP50)} page 1`,
    target: '≤ 1.2× page 1',
    pass: deep.deepP50 <= 1.2 * deep.firstP50,
  });
  // issue 8: duplicate candidates of a new contact at the same million contacts
  await skipDuplicateScanOfLoadedData(databaseUrl);
  const dup = await measureDuplicateCandidates(databaseUrl, gatewayUrl, await freshToken(), org, 40);
  results['duplicateCandidates'] = dup;
  say(
    `  duplicate candidates of a new contact: p50 ${ms(dup.candidatesP50)} / p95 ${ms(dup.candidatesP95)} ms (GET by id ${ms(dup.getP50)} / ${ms(dup.getP95)}); found ${dup.found}/${dup.samples}, clean ${dup.clean}/${dup.samples}`,
  );
  rows.push({
    figure: `contacts:findDuplicates at ${int(SEARCH_DATA.contacts)} contacts: p50 / p95 (ms)`,
    measured: `${ms(dup.candidatesP50)} / ${ms(dup.candidatesP95)}`,
    baseline: `${ms(dup.getP50)} / ${ms(dup.getP95)} GET by id`,
    target: 'p95 ≤ 20, every match found',
    pass: dup.candidatesP95 <= 20 && dup.found === dup.samples && dup.clean === dup.samples,
  });
}

/** ` (n % non-2xx)` when some answers were not 2xx. */
function okSuffix(r: WrkResult): string {
  const bad = non2xxShare(r);
  return bad > 0 ? ` (${pct(bad)} non-2xx: ${JSON.stringify(r.statuses)})` : '';
}

async function createCompany(gatewayUrl: string, token: string, name: string): Promise<string> {
  const res = await fetch(`${gatewayUrl}/api/v1/companies`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name, industry: 'software' }),
  });
  const body = (await res.json()) as { id?: string };
  if (res.status !== 201 || !body.id) throw new Error(`POST /api/v1/companies answered ${res.status}: ${JSON.stringify(body)}`);
  return body.id;
}

/**
 * Commit → projection latency: `writers` closed loops create companies through the gateway for
 * `seconds`; a poller reads analytics' projection every 5 ms and notes when each company shows
 * up. Latency = seen − the create's response (the commit happened just before the response, so
 * this is at most a few ms short, plus up to 5 ms of polling).
 */
async function measureProjection(gatewayUrl: string, token: string, databaseUrl: string, writers: number, seconds: number) {
  const pending = new Map<string, number>();
  const latencies: number[] = [];
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  let writing = true;
  let writes = 0;
  const poller = (async () => {
    // after the writers stop, up to 10 s more for the last events to arrive
    let deadline = Infinity;
    while (writing || (pending.size > 0 && performance.now() < deadline)) {
      if (!writing && deadline === Infinity) deadline = performance.now() + 10_000;
      if (pending.size > 0) {
        const { rows: found } = await client.query<{ company_id: string }>(
          'select company_id from analytics.company_projection where company_id = any($1::uuid[])',
          [[...pending.keys()]],
        );
        const now = performance.now();
        for (const { company_id } of found) {
          const at = pending.get(company_id);
          if (at === undefined) continue;
          latencies.push(now - at);
          pending.delete(company_id);
        }
      }
      await sleep(5);
    }
  })();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const id = await createCompany(gatewayUrl, token, `Writer ${w}-${i}`);
        pending.set(id, performance.now());
        writes++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  writing = false;
  await poller;
  await client.end();
  return {
    writes,
    writesPerSecond: writes / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: percentile(latencies, 100),
    missing: pending.size,
  };
}

let exitCode = 0;
try {
  await main();
  say('');
  say(renderTable(rows));
  const file = resolve(benchDir, `results-${new Date().toISOString().replaceAll(':', '-')}.json`);
  mkdirSync(benchDir, { recursive: true });
  writeFileSync(file, JSON.stringify({ ...results, rows }, null, 2));
  say(`\nFigures: ${file.slice(repoRoot.length + 1)}`);
} catch (error) {
  process.stderr.write(`✗ bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
