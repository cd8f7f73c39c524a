import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SpanKind, type AttributeValue } from '@opentelemetry/api';
import { describeSpans, startTestTelemetry, type TestSpan, type TestTelemetry } from '@crm/testing/telemetry';
import type * as testingModule from '@crm/testing';
import type { GatewayHandle as Gateway } from '../src/app.ts';
import type { TestSuite as Suite } from './support/suite.ts';

/**
 * Observability of the running suite (issue 6 §5) with the OpenTelemetry SDK in-process on an
 * in-memory exporter and the production instrumentations: one trace from the gateway through
 * gRPC, Postgres, the outbox relay and NATS into analytics' consumer; no spans from probes,
 * scrapes and the idle relay; trace ids in log lines; the gateway's access log; route and method
 * labels of the metrics that keep resources apart.
 *
 * The subjects are imported dynamically, after the SDK has patched the modules they load (see
 * @crm/testing/telemetry).
 */

// types only (erased): the modules themselves load after the SDK, below
type Testing = typeof testingModule;

let telemetry: TestTelemetry;
let testing: Testing;
let suite: Suite;
/** A gateway of the suite whose log lines this spec reads. */
let gateway: Gateway;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  telemetry = await startTestTelemetry('crm-observability-test');
  testing = await import('@crm/testing');
  const [{ startTestSuite }, app] = await Promise.all([import('./support/suite.ts'), import('../src/app.ts')]);
  suite = await startTestSuite();
  const config = app.configSchema.parse({
    PORT: '0',
    OPS_PORT: '0',
    PUBLIC_OPS_ENDPOINTS: 'true',
    DATABASE_URL: suite.infra.databaseUrl,
    KEYCLOAK_URL: suite.issuer.localUrl,
    KEYCLOAK_PUBLIC_URL: suite.issuer.baseUrl,
    CONTACTS_GRPC_URL: `127.0.0.1:${suite.contacts.grpcPort}`,
    ANALYTICS_GRPC_URL: `127.0.0.1:${suite.analytics.grpcPort}`,
    LOG_LEVEL: 'info',
    ...testing.gatewayTokenEnv(),
  });
  gateway = await app.createGateway(config, { logDestination: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) } });
});

afterAll(async () => {
  await gateway?.close();
  await suite?.close();
  await telemetry?.shutdown();
});

/** fetch against this spec's gateway as `admin@acme.test` (or without a token). */
async function api(path: string, init: RequestInit & { json?: unknown; token?: string | null } = {}): Promise<Response> {
  const { json, token, ...rest } = init;
  const headers = new Headers(rest.headers);
  const bearer = token === undefined ? await suite.token('admin@acme.test') : token;
  if (bearer) headers.set('authorization', `Bearer ${bearer}`);
  if (json !== undefined) headers.set('content-type', 'application/json');
  return fetch(`${gateway.url}${path}`, { ...rest, headers, ...(json !== undefined ? { body: JSON.stringify(json) } : {}) });
}

const traceOf = (span: TestSpan): string => span.spanContext().traceId;
const idOf = (span: TestSpan): string => span.spanContext().spanId;
const parentOf = (span: TestSpan): string | undefined => span.parentSpanContext?.spanId;
const attr = (span: TestSpan, ...names: string[]): AttributeValue | undefined => names.map((n) => span.attributes[n]).find((v) => v !== undefined);

/** The one span matching `match`; fails listing every span when there is none or several. */
function only(spans: readonly TestSpan[], what: string, match: (span: TestSpan) => boolean): TestSpan {
  const found = spans.filter(match);
  if (found.length !== 1) throw new Error(`expected one ${what}, found ${found.length} among:\n${describeSpans(spans)}`);
  return found[0]!;
}

/** True when `ancestor` is `span`'s parent, grandparent, … within `spans`. */
function descends(spans: readonly TestSpan[], span: TestSpan, ancestor: TestSpan): boolean {
  let current: TestSpan | undefined = span;
  while (current) {
    const parent = parentOf(current);
    if (parent === idOf(ancestor)) return true;
    current = spans.find((s) => idOf(s) === parent);
  }
  return false;
}

/** The access-log line of the request sent with `requestId`. */
async function accessLine(requestId: string): Promise<Record<string, unknown>> {
  const find = () => lines.find((l) => l['msg'] === 'request completed' && l['requestId'] === requestId);
  await testing.waitFor(`the access-log line of ${requestId}`, async () => find() !== undefined);
  return find()!;
}

/** The `sub` claim of a JWT. */
function subjectOf(token: string): string {
  return (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { sub: string }).sub;
}

describe('tracing', () => {
  it('follows a create in one trace: HTTP → gRPC client → gRPC server → outbox insert → relay publish → analytics consumer', async () => {
    telemetry.reset();
    const res = await api('/api/v1/companies', { method: 'POST', json: { name: 'Traced Inc', industry: 'software' } });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    const [row] = await suite.contacts.orm.em
      .fork()
      .execute<{ id: string }[]>(`select id from contacts.outbox where aggregate_id = ? and subject = 'crm.contacts.company.created'`, [id]);
    const eventId = row!.id;
    const isProcess = (s: TestSpan) => s.kind === SpanKind.CONSUMER && attr(s, 'messaging.message.id') === eventId;
    await testing.waitFor('the consumer span of the event', async () => telemetry.spans().some(isProcess));

    const http = only(telemetry.spans(), 'HTTP server span', (s) => s.kind === SpanKind.SERVER && attr(s, 'http.route') === '/api/v1/companies');
    const spans = telemetry.spans().filter((s) => traceOf(s) === traceOf(http));
    const name = 'grpc.crm.contacts.v1.DuplicateService/CreateCompanyWithDuplicateCheck';
    const grpcClient = only(spans, 'gRPC client span', (s) => s.kind === SpanKind.CLIENT && s.name === name);
    const grpcServer = only(spans, 'gRPC server span', (s) => s.kind === SpanKind.SERVER && s.name === name);
    const insert = only(
      spans,
      'outbox insert',
      (s) => s.kind === SpanKind.CLIENT && /insert into "?contacts"?\."?outbox"?/i.test(String(attr(s, 'db.query.text', 'db.statement'))),
    );
    const publish = only(spans, 'relay publish span', (s) => s.kind === SpanKind.PRODUCER);
    const processing = only(spans, 'consumer span', isProcess);

    expect(parentOf(http)).toBeUndefined();
    expect(http.name).toBe('POST /api/v1/companies');
    expect(descends(spans, grpcClient, http)).toBe(true);
    expect(parentOf(grpcServer)).toBe(idOf(grpcClient));
    expect(parentOf(insert)).toBe(idOf(grpcServer));
    expect(attr(insert, 'db.system.name', 'db.system')).toBe('postgresql');
    // the write's trace, continued by the relay's publish (however much later it runs)
    expect(parentOf(publish)).toBe(idOf(grpcServer));
    expect(publish.name).toBe('publish crm.contacts.company.created');
    expect(publish.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.operation.type': 'send',
      'messaging.destination.name': 'crm.contacts.company.created',
      'messaging.message.id': eventId,
    });
    // the consumer continues from the publish: the relay sent its own traceparent
    expect(parentOf(processing)).toBe(idOf(publish));
    expect(processing.name).toBe('process crm.contacts.company.created');
    expect(processing.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.consumer.group.name': 'analytics-svc' });
    expect(
      spans.some((s) => parentOf(s) === idOf(processing) && /insert into "?analytics"?\."?inbox"?/i.test(String(attr(s, 'db.query.text', 'db.statement')))),
    ).toBe(true);
  });

  it('makes no spans for probes, scrapes, readiness checks and an idle relay over 10 poll cycles', async () => {
    // warm: the token and the realm keys are fetched before the window (the dev issuer is traced too)
    expect((await api('/api/v1/companies?limit=1')).status).toBe(200);
    telemetry.reset();

    const probes = [
      `${gateway.url}/healthz`,
      `${gateway.url}/readyz`,
      `${gateway.url}/metrics`,
      `${gateway.opsUrl}/healthz`,
      `${gateway.opsUrl}/readyz`, // also checks each backend's grpc.health.v1
      `${gateway.opsUrl}/metrics`,
      ...[suite.contacts.opsPort, suite.analytics.opsPort].flatMap((port) => ['healthz', 'readyz', 'metrics'].map((p) => `http://127.0.0.1:${port}/${p}`)),
    ];
    for (const url of probes) expect((await fetch(url)).status).toBe(200);

    // drive the relay's poll cycle: each kick runs one batch on the empty outbox
    const relay = suite.contacts.relay!;
    const original = relay.relayBatch.bind(relay);
    let polled = Promise.withResolvers<void>();
    relay.relayBatch = async () => {
      try {
        return await original();
      } finally {
        polled.resolve();
      }
    };
    try {
      for (let cycle = 0; cycle < 10; cycle++) {
        polled = Promise.withResolvers<void>();
        relay.kick();
        await polled.promise;
      }
    } finally {
      relay.relayBatch = original;
    }
    expect(describeSpans(telemetry.spans())).toBe('');

    // the control: a request now is traced, so spans of the above would have been caught
    const res = await api('/api/v1/companies?limit=1');
    expect(res.status).toBe(200);
    await testing.waitFor('the span of the control request', async () =>
      telemetry.spans().some((s) => s.kind === SpanKind.SERVER && parentOf(s) === undefined),
    );
    const roots = telemetry.spans().filter((s) => parentOf(s) === undefined);
    expect(roots.map((s) => s.name)).toEqual(['GET /api/v1/companies']);
  });
});

describe('logs', () => {
  it('carry the trace_id and span_id of the span they are written under', async () => {
    const requestId = `bad-token-${Date.now()}`;
    const res = await api('/api/v1/companies', { token: 'not-a-token', headers: { 'x-request-id': requestId } });
    expect(res.status).toBe(401);
    const access = await accessLine(requestId);
    const traceId = String(access['trace_id']);
    // written by the authentication middleware, inside the request
    const refused = lines.find((l) => l['msg'] === 'access token refused' && l['trace_id'] === traceId);
    expect(refused).toBeDefined();
    await testing.waitFor('the spans of the refused request', async () => telemetry.spans().some((s) => idOf(s) === refused?.['span_id']));
    const span = telemetry.spans().find((s) => idOf(s) === refused?.['span_id'])!;
    expect(traceOf(span)).toBe(traceId);
    expect(refused).toMatchObject({ trace_flags: '01' });
  });

  it('have an access-log line per request with the route template, never the raw id', async () => {
    const created = (await (await api('/api/v1/companies', { method: 'POST', json: { name: 'Logged Inc' } })).json()) as { id: string };
    const requestId = `get-company-${Date.now()}`;
    const res = await api(`/api/v1/companies/${created.id}`, { headers: { 'x-request-id': requestId } });
    expect(res.status).toBe(200);
    const body = await res.arrayBuffer();
    const line = await accessLine(requestId);
    const token = await suite.token('admin@acme.test');
    expect(line).toMatchObject({
      level: 30,
      service: 'gateway',
      method: 'GET',
      route: '/api/v1/companies/:id',
      status: 200,
      bytes: body.byteLength,
      organizationId: testing.organizationId('acme'),
      userId: subjectOf(token),
    });
    expect(String(line['remoteAddress'])).toMatch(/127\.0\.0\.1$/);
    expect(line['durationMs']).toEqual(expect.any(Number));
    expect(JSON.stringify(line)).not.toContain(created.id);
    expect(JSON.stringify(line)).not.toContain(token);
    // its trace ids name the request's HTTP server span
    const server = telemetry.spans().find((s) => idOf(s) === line['span_id']);
    expect(server).toMatchObject({ kind: SpanKind.SERVER, name: 'GET /api/v1/companies/:id' });
    expect(traceOf(server!)).toBe(line['trace_id']);
  });

  it('leave probes and scrapes out of the access log', async () => {
    await (await fetch(`${gateway.url}/healthz`, { headers: { 'x-request-id': 'probe-healthz' } })).arrayBuffer();
    await (await fetch(`${gateway.url}/metrics`, { headers: { 'x-request-id': 'probe-metrics' } })).arrayBuffer();
    const after = await api('/api/v1/nowhere', { headers: { 'x-request-id': 'after-probes' } });
    expect(after.status).toBe(404);
    expect((await accessLine('after-probes'))['route']).toBe('unmatched');
    expect(lines.filter((l) => String(l['requestId']).startsWith('probe-'))).toEqual([]);
  });
});

describe('metric labels', () => {
  it('name the route template of each resource, also for errors and refusals, never a raw path', async () => {
    const company = (await (await api('/api/v1/companies', { method: 'POST', json: { name: 'Labelled Inc' } })).json()) as { id: string };
    const missing = '01900000-0000-7000-8000-000000000000';
    expect((await api(`/api/v1/companies/${company.id}`)).status).toBe(200);
    expect((await api(`/api/v1/companies/${missing}`)).status).toBe(404);
    expect((await api(`/api/v1/contacts/${missing}`)).status).toBe(404);
    expect((await api(`/api/v1/contacts/${missing}`, { token: null })).status).toBe(401);
    expect((await api(`/api/v1/no-such-resource/${missing}`)).status).toBe(404);

    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const series = [...metrics.matchAll(/^http_server_request_duration_seconds_count\{([^}]*)\}/gm)].map((m) => m[1] ?? '');
    const labelled = (route: string, status: string) => series.some((s) => s.includes(`route="${route}"`) && s.includes(`status="${status}"`));
    expect(labelled('/api/v1/companies/:id', '200')).toBe(true);
    // a 404 from the service leaves the router through the error handler: still its full template
    expect(labelled('/api/v1/companies/:id', '404')).toBe(true);
    expect(labelled('/api/v1/contacts/:id', '404')).toBe(true);
    // refused before routing, labelled with the route it was for
    expect(labelled('/api/v1/contacts/:id', '401')).toBe(true);
    expect(labelled('unmatched', '404')).toBe(true);
    const routes = new Set(series.map((s) => /route="([^"]*)"/.exec(s)?.[1]));
    expect([...routes].filter((r) => !r?.startsWith('/') && r !== 'unmatched')).toEqual([]);
    expect([...routes].filter((r) => r?.startsWith('/:'))).toEqual([]);
    expect(metrics).not.toContain(missing);
    expect(metrics).not.toContain(company.id);
  });

  it('name each gRPC method of each service on its own', async () => {
    const labels = new Set((await suite.contacts.metrics.grpcRequests.get()).values.map((v) => String(v.labels['method'])));
    expect(labels).toContain('crm.contacts.v1.CompanyService/GetCompany');
    expect(labels).toContain('crm.contacts.v1.ContactService/GetContact');
    expect(labels).toContain('crm.contacts.v1.DuplicateService/CreateCompanyWithDuplicateCheck');
  });
});
